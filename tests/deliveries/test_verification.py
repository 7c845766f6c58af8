"""Endpoint ownership verification, in process: an unverified endpoint receives its challenge and
nothing else; the echo verifies it and its held events flow.

Real HTTP to a real receiver, the engine's own claim, send and record, on both databases. The same
with a real worker process is in test_verification_worker.py; the API, the admin and the dashboard
are tested beside their own code.
"""

from __future__ import annotations

import json

import pytest
from django.utils import timezone
from standardwebhooks import Webhook

from deliveries.batch import deliver_due_batch
from deliveries.models import Attempt, Delivery
from deliveries.selectors import backlogs_by_tenant
from deliveries.services import deliveries_replay
from deliveries.verification import NO_ECHO, SUPERSEDED, echoes
from subscriptions.models import VERIFICATION_EVENT_TYPE, Endpoint
from subscriptions.services import endpoint_create, endpoint_disable, endpoint_enable
from subscriptions.verification import (
    EndpointVerifiedError,
    endpoint_url_changed,
    endpoint_verification_retry,
    verification_applies,
)
from tests.factories import EndpointFactory, EventTypeFactory, TenantFactory
from tests.receiver import Received
from webhooks import send_event
from webhooks.errors import EndpointUnverifiedError, UnknownEventTypeError
from webhooks.services import event_send_test

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def tenant(settings):
    settings.WEBHOOKS_VERIFY_ENDPOINTS = True
    EventTypeFactory(name="order.paid")
    return TenantFactory()


def echo(received: Received) -> bytes:
    """A receiver that answers challenges as Hookline's helpers do."""
    message = json.loads(received.body)
    if message["type"] != VERIFICATION_EVENT_TYPE:
        return b""
    return json.dumps({"challenge": message["data"]["challenge"]}).encode()


def emit(tenant, count: int, key: str | None = None) -> list[str]:
    return [
        send_event(tenant, "order.paid", {"n": n}, ordering_key=key).public_id for n in range(count)
    ]


def drain(rounds: int = 20) -> None:
    """Run batches until two in a row find nothing (a claim that only parked finds nothing)."""
    idle = 0
    for _ in range(rounds):
        idle = 0 if deliver_due_batch(limit=100) else idle + 1
        if idle == 2:
            return


def types_received(receiver, path: str) -> list[str]:
    return [json.loads(r.body)["type"] for r in receiver.requests(path)]


def fresh(endpoint: Endpoint) -> Endpoint:
    return Endpoint.objects.get(id=endpoint.id)


def test_with_verification_off_a_new_endpoint_is_trusted_and_receives_at_once(
    tenant, receiver, settings
):
    settings.WEBHOOKS_VERIFY_ENDPOINTS = False
    endpoint = endpoint_create(tenant=tenant, url=receiver.url("/off"))
    emit(tenant, 2)
    drain()

    assert fresh(endpoint).verified_at is not None
    assert types_received(receiver, "/off") == ["order.paid", "order.paid"]


def test_a_new_endpoint_receives_its_signed_challenge_and_nothing_else(tenant, receiver):
    endpoint = endpoint_create(tenant=tenant, url=receiver.url("/new"))
    assert endpoint.verified_at is None
    emit(tenant, 3)

    drain()

    [request] = receiver.requests("/new")
    message = Webhook(endpoint.secret).verify(request.body, request.headers)
    assert message["type"] == VERIFICATION_EVENT_TYPE
    assert message["data"] == {"challenge": fresh(endpoint).verification_challenge}
    assert len(message["data"]["challenge"]) >= 40
    held = Delivery.objects.filter(endpoint=endpoint, event__event_type__name="order.paid")
    assert [(d.status, d.next_attempt_at, d.attempt_count) for d in held] == [
        (Delivery.Status.PENDING, None, 0)
    ] * 3
    assert backlogs_by_tenant(tenants=[tenant.id], at=timezone.now())[tenant.id].unverified == 3


def test_a_wrong_echo_is_a_failed_attempt_and_the_endpoint_stays_unverified(tenant, receiver):
    endpoint = endpoint_create(tenant=tenant, url=receiver.url("/wrong"))
    receiver.reply_with("/wrong", lambda received: b'{"challenge": "not-the-one"}')
    emit(tenant, 1)

    deliver_due_batch(limit=100)

    challenge = Delivery.objects.get(
        endpoint=endpoint, event__event_type__name=VERIFICATION_EVENT_TYPE
    )
    assert challenge.status == Delivery.Status.PENDING  # retried on the usual schedule
    assert challenge.attempt_count == 1
    assert challenge.next_attempt_at is not None
    assert challenge.last_error.startswith(NO_ECHO)
    attempt = challenge.attempts.get()
    assert attempt.response_status == 200
    assert attempt.error_kind == Attempt.ErrorKind.INVALID_RESPONSE
    assert not attempt.succeeded
    assert fresh(endpoint).verified_at is None
    assert types_received(receiver, "/wrong") == [VERIFICATION_EVENT_TYPE]


def test_an_echo_verifies_and_the_held_events_then_flow_in_order_once_each(tenant, receiver):
    endpoint = endpoint_create(tenant=tenant, url=receiver.url("/echo"))
    receiver.reply_with("/echo", echo)
    sent = emit(tenant, 5, key="ord_1") + emit(tenant, 5)

    drain()

    endpoint = fresh(endpoint)
    assert endpoint.verified_at is not None
    assert endpoint.verification_challenge == ""
    requests = receiver.requests("/echo")
    assert types_received(receiver, "/echo")[0] == VERIFICATION_EVENT_TYPE
    ids = [r.headers["webhook-id"] for r in requests[1:]]
    assert sorted(ids) == sorted(sent)  # every held event, once
    keyed = [i for i in ids if i in sent[:5]]
    assert keyed == sent[:5]  # the ordering key's events in emission order
    assert not Delivery.objects.filter(endpoint=endpoint, status=Delivery.Status.PENDING).exists()


@pytest.mark.parametrize(
    ("body", "echoed"),
    [
        ("abc", True),
        ("  abc\r\n", True),
        ('{"challenge": "abc"}', True),
        ('{"challenge": "abc", "other": 1}', True),
        ('{"challenge": "abd"}', False),
        ('{"challenge": ["abc"]}', False),
        ('["abc"]', False),
        ("ab c", False),
        ("", False),
        ("{" * 5000, False),
        ('{"challenge": "abc"', False),
    ],
)
def test_an_echo_is_the_challenge_alone_or_a_json_object_carrying_it(body, echoed):
    assert echoes(body, "abc") is echoed


def test_nothing_echoes_an_empty_challenge():
    assert not echoes("", "")
    assert not echoes('{"challenge": ""}', "")


def test_a_url_change_resets_verification_and_holds_what_is_pending(tenant, receiver):
    endpoint = endpoint_create(tenant=tenant, url=receiver.url("/old"))
    receiver.reply_with("/old", echo)
    drain()
    assert fresh(endpoint).verified_at is not None
    receiver.script("/old", [500] * 10)
    emit(tenant, 2)
    deliver_due_batch(limit=100)  # both fail once: retrying

    endpoint = fresh(endpoint)
    endpoint.url = receiver.url("/new")
    endpoint.save(update_fields=["url"])
    assert endpoint_url_changed(endpoint=endpoint, previous_url=receiver.url("/old"))
    emit(tenant, 1)
    drain()

    assert fresh(endpoint).verified_at is None
    assert types_received(receiver, "/new") == [VERIFICATION_EVENT_TYPE]
    waiting = Delivery.objects.filter(endpoint=endpoint, event__event_type__name="order.paid")
    assert [d.next_attempt_at for d in waiting] == [None] * 3

    receiver.reply_with("/new", echo)
    endpoint_verification_retry(endpoint=endpoint)
    drain()

    assert fresh(endpoint).verified_at is not None
    assert types_received(receiver, "/new")[2:] == ["order.paid"] * 3


def test_saving_the_same_url_keeps_the_endpoint_verified(tenant, receiver):
    endpoint = EndpointFactory(tenant=tenant, url=receiver.url("/same"))

    assert not endpoint_url_changed(endpoint=endpoint, previous_url=receiver.url("/same"))
    assert fresh(endpoint).verified_at is not None


def test_a_retry_sends_a_fresh_challenge_and_the_old_one_cannot_verify(tenant, receiver):
    endpoint = endpoint_create(tenant=tenant, url=receiver.url("/retry"))
    first = fresh(endpoint).verification_challenge
    old = Delivery.objects.get(endpoint=endpoint)

    assert endpoint_verification_retry(endpoint=endpoint)

    second = fresh(endpoint).verification_challenge
    assert second != first
    old.refresh_from_db()
    assert old.status == Delivery.Status.FAILED
    assert old.last_error == SUPERSEDED
    receiver.reply_with("/retry", echo)
    drain()
    [request] = receiver.requests("/retry")
    assert json.loads(request.body)["data"]["challenge"] == second
    assert fresh(endpoint).verified_at is not None
    with pytest.raises(EndpointVerifiedError):
        endpoint_verification_retry(endpoint=endpoint)


def test_a_replay_to_an_unverified_endpoint_waits_for_the_echo(tenant, receiver, settings):
    settings.WEBHOOKS_VERIFY_ENDPOINTS = False
    endpoint = endpoint_create(tenant=tenant, url=receiver.url("/replayed"))
    emit(tenant, 1)
    drain()
    settings.WEBHOOKS_VERIFY_ENDPOINTS = True
    endpoint.url = receiver.url("/moved")
    endpoint.save(update_fields=["url"])
    endpoint_url_changed(endpoint=endpoint, previous_url=receiver.url("/replayed"))

    deliveries_replay(
        deliveries=Delivery.objects.filter(endpoint=endpoint, status=Delivery.Status.SUCCEEDED)
    )
    drain()

    assert types_received(receiver, "/moved") == [VERIFICATION_EVENT_TYPE]
    replayed = Delivery.objects.get(endpoint=endpoint, event__event_type__name="order.paid")
    assert (replayed.status, replayed.next_attempt_at) == (Delivery.Status.PENDING, None)


def test_enabling_an_unverified_endpoint_lets_only_its_challenge_go(tenant, receiver):
    endpoint = endpoint_create(tenant=tenant, url=receiver.url("/enabled"))
    emit(tenant, 2)
    endpoint_disable(endpoint_ids=[endpoint.id], reason="Disabled by a test.")
    drain()
    assert receiver.requests("/enabled") == []

    endpoint_enable(endpoint=endpoint)
    drain()

    assert types_received(receiver, "/enabled") == [VERIFICATION_EVENT_TYPE]


def test_a_challenge_to_a_disabled_endpoint_waits_until_it_is_enabled(tenant, receiver):
    endpoint = endpoint_create(tenant=tenant, url=receiver.url("/later"))
    endpoint_disable(endpoint_ids=[endpoint.id], reason="Disabled by a test.")
    receiver.reply_with("/later", echo)

    assert endpoint_verification_retry(endpoint=endpoint)
    drain()
    assert receiver.requests("/later") == []

    endpoint_enable(endpoint=endpoint)
    drain()
    assert fresh(endpoint).verified_at is not None


def test_other_endpoints_keep_receiving_while_one_waits_for_its_echo(tenant, receiver):
    endpoint_create(tenant=tenant, url=receiver.url("/silent"))
    EndpointFactory(tenant=tenant, url=receiver.url("/trusted"))
    trusting = TenantFactory(verify_endpoints=False)
    other = endpoint_create(tenant=trusting, url=receiver.url("/other"))
    emit(tenant, 3)
    send_event(trusting, "order.paid", {"n": 0})

    drain()

    assert types_received(receiver, "/silent") == [VERIFICATION_EVENT_TYPE]
    assert types_received(receiver, "/trusted") == ["order.paid"] * 3
    assert fresh(other).verified_at is not None
    assert types_received(receiver, "/other") == ["order.paid"]


@pytest.mark.parametrize(
    ("setting", "tenant_says", "applies"),
    [
        (False, None, False),
        (True, None, True),
        (False, True, True),
        (True, False, False),
    ],
)
def test_a_tenant_overrides_the_setting_both_ways(settings, setting, tenant_says, applies):
    settings.WEBHOOKS_VERIFY_ENDPOINTS = setting
    tenant = TenantFactory(verify_endpoints=tenant_says)

    assert verification_applies(tenant) is applies
    endpoint = endpoint_create(tenant=tenant, url="http://127.0.0.1:9/override")
    assert (fresh(endpoint).verified_at is None) is applies


def test_endpoints_saved_before_verification_was_turned_on_stay_trusted(tenant, settings):
    settings.WEBHOOKS_VERIFY_ENDPOINTS = False
    endpoint = endpoint_create(tenant=tenant, url="http://127.0.0.1:9/before")
    settings.WEBHOOKS_VERIFY_ENDPOINTS = True

    endpoint.description = "edited"
    endpoint.save(update_fields=["description"])

    assert fresh(endpoint).verified_at is not None
    assert not Delivery.objects.filter(endpoint=endpoint).exists()


def test_turning_verification_off_and_retrying_trusts_the_endpoint_and_lets_events_go(
    tenant, receiver, settings
):
    endpoint = endpoint_create(tenant=tenant, url=receiver.url("/stuck"))
    emit(tenant, 2)
    drain()
    settings.WEBHOOKS_VERIFY_ENDPOINTS = False

    assert not endpoint_verification_retry(endpoint=endpoint)
    drain()

    assert fresh(endpoint).verified_at is not None
    assert types_received(receiver, "/stuck") == [VERIFICATION_EVENT_TYPE] + ["order.paid"] * 2


def test_the_challenge_is_json_whatever_the_payload_format(tenant, receiver):
    endpoint = endpoint_create(tenant=tenant, url=receiver.url("/xml"))
    Endpoint.objects.filter(id=endpoint.id).update(payload_format=Endpoint.PayloadFormat.XML)
    receiver.reply_with("/xml", echo)
    emit(tenant, 1)

    drain()

    first, second = receiver.requests("/xml")
    assert first.headers["content-type"] == "application/json"
    assert second.headers["content-type"].startswith("application/xml")


def test_nobody_can_emit_or_test_send_a_challenge(tenant):
    endpoint = EndpointFactory(tenant=tenant)
    with pytest.raises(UnknownEventTypeError, match="ownership challenge"):
        send_event(tenant, VERIFICATION_EVENT_TYPE, {"challenge": "forged"})
    with pytest.raises(UnknownEventTypeError, match="ownership challenge"):
        event_send_test(endpoint=endpoint, event_type=VERIFICATION_EVENT_TYPE)


def test_an_unverified_endpoint_gets_no_test_event(tenant):
    endpoint = endpoint_create(tenant=tenant, url="http://127.0.0.1:9/untested")

    with pytest.raises(EndpointUnverifiedError):
        event_send_test(endpoint=endpoint)
    assert Delivery.objects.filter(endpoint=endpoint).count() == 1  # the challenge alone
