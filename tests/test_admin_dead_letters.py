"""The admin's dead-letter list, its replay action, and enabling and disabling endpoints."""

from __future__ import annotations

import pytest
from django.utils import timezone

from deliveries.models import Attempt, Delivery
from subscriptions.models import Endpoint, EventType
from tests.factories import EndpointFactory, EventTypeFactory, TenantFactory
from webhooks.models import Event

pytestmark = pytest.mark.django_db

DEAD_LETTERS = "/admin/deliveries/deadletter/"
DELIVERIES = "/admin/deliveries/delivery/"
ENDPOINTS = "/admin/subscriptions/endpoint/"


@pytest.fixture
def tenant():
    EventTypeFactory(name="order.paid")
    EventTypeFactory(name="invoice.overdue")
    return TenantFactory()


def make_delivery(
    endpoint: Endpoint,
    status: str,
    *,
    event_type: str = "order.paid",
    attempts: int = 0,
    last_status: int | None = None,
    last_error: str = "",
) -> Delivery:
    now = timezone.now()
    event = Event.objects.create(
        tenant=endpoint.tenant, event_type=EventType.objects.get(name=event_type), payload={}
    )
    pending = status == Delivery.Status.PENDING
    return Delivery.objects.create(
        event=event,
        endpoint=endpoint,
        status=status,
        attempt_count=attempts,
        last_response_status=last_status,
        last_error=last_error,
        next_attempt_at=now if pending else None,
        finished_at=None if pending else now,
    )


def cell(field: str, value: object) -> bytes:
    return f'<td class="field-{field}">{value}</td>'.encode()


def run_action(admin_client, path: str, action: str, objects: list) -> str:
    response = admin_client.post(
        path, {"action": action, "_selected_action": [o.pk for o in objects]}, follow=True
    )
    assert response.status_code == 200
    return "\n".join(str(message) for message in response.context["messages"])


def test_dead_letter_list_shows_only_failed_deliveries_with_what_went_wrong(admin_client, tenant):
    dead_endpoint = EndpointFactory(tenant=tenant, url="http://127.0.0.1:9/dead")
    dead = make_delivery(
        dead_endpoint,
        Delivery.Status.FAILED,
        event_type="invoice.overdue",
        attempts=7,
        last_status=503,
        last_error="HTTP 503 from the receiver",
    )
    timed_out = make_delivery(
        dead_endpoint, Delivery.Status.FAILED, attempts=4, last_error="no response within 2 s"
    )
    make_delivery(
        EndpointFactory(tenant=tenant, url="http://127.0.0.1:9/waiting"),
        Delivery.Status.PENDING,
        attempts=2,
        last_status=500,
        last_error="HTTP 500 while still retrying",
    )
    make_delivery(
        EndpointFactory(tenant=tenant, url="http://127.0.0.1:9/fine"),
        Delivery.Status.SUCCEEDED,
        attempts=1,
        last_status=200,
    )

    response = admin_client.get(DEAD_LETTERS)

    assert response.status_code == 200
    assert {d.pk for d in response.context["cl"].result_list} == {dead.pk, timed_out.pk}
    content = response.content
    assert b"http://127.0.0.1:9/dead" in content
    assert b"http://127.0.0.1:9/waiting" not in content
    assert b"http://127.0.0.1:9/fine" not in content
    assert cell("event_type", "invoice.overdue") in content
    assert cell("event_type", "order.paid") in content
    assert cell("attempt_count", 7) in content
    assert cell("attempt_count", 4) in content
    assert cell("last_response_status", 503) in content
    assert cell("last_error", "HTTP 503 from the receiver") in content
    assert cell("last_error", "no response within 2 s") in content
    assert b"HTTP 500 while still retrying" not in content


def test_dead_letter_detail_shows_the_attempts(admin_client, tenant):
    dead = make_delivery(
        EndpointFactory(tenant=tenant, url="http://127.0.0.1:9/dead"),
        Delivery.Status.FAILED,
        attempts=1,
        last_status=502,
    )
    Attempt.objects.create(
        delivery=dead, number=1, started_at=timezone.now(), duration_ms=3.0,
        url="http://127.0.0.1:9/dead", response_status=502, error_kind="http_status",
        error_message="HTTP 502 bad gateway",
    )  # fmt: skip

    response = admin_client.get(f"{DEAD_LETTERS}{dead.pk}/change/")

    assert response.status_code == 200
    assert b"HTTP 502 bad gateway" in response.content


def test_replaying_dead_letters_queues_them_and_says_so(admin_client, tenant):
    endpoint = EndpointFactory(tenant=tenant, url="http://127.0.0.1:9/dead")
    chosen = [make_delivery(endpoint, Delivery.Status.FAILED, attempts=3) for _ in range(2)]
    left = make_delivery(endpoint, Delivery.Status.FAILED, attempts=3)

    messages = run_action(admin_client, DEAD_LETTERS, "replay_deliveries", chosen)

    assert messages == "Queued 2 deliveries for replay."
    for delivery in chosen:
        delivery.refresh_from_db()
        assert delivery.status == Delivery.Status.PENDING
        assert delivery.next_trigger == Attempt.Trigger.REPLAY
        assert delivery.next_attempt_at is not None
        assert delivery.finished_at is None
        assert delivery.attempt_count == 3
    assert Delivery.objects.get(pk=left.pk).status == Delivery.Status.FAILED
    remaining = admin_client.get(DEAD_LETTERS).context["cl"].result_list
    assert [d.pk for d in remaining] == [left.pk]


def test_replaying_from_the_deliveries_list_skips_pending_ones_and_says_so(admin_client, tenant):
    endpoint = EndpointFactory(tenant=tenant, url="http://127.0.0.1:9/hook")
    failed = make_delivery(endpoint, Delivery.Status.FAILED, attempts=3)
    succeeded = make_delivery(endpoint, Delivery.Status.SUCCEEDED, attempts=1)
    pending = make_delivery(endpoint, Delivery.Status.PENDING, attempts=1)

    messages = run_action(
        admin_client, DELIVERIES, "replay_deliveries", [failed, succeeded, pending]
    )

    assert messages == (
        "Queued 2 deliveries for replay. 1 still pending were left in the queue as they are."
    )
    queued = Delivery.objects.filter(next_trigger=Attempt.Trigger.REPLAY)
    assert set(queued.values_list("pk", flat=True)) == {failed.pk, succeeded.pk}
    unchanged = Delivery.objects.get(pk=pending.pk)
    assert unchanged.next_trigger == Attempt.Trigger.SCHEDULED
    assert unchanged.next_attempt_at == pending.next_attempt_at


def test_endpoint_admin_disable_stores_a_reason_naming_the_admin_and_tells_people(
    admin_client, admin_user, tenant, settings, mailoutbox, django_capture_on_commit_callbacks
):
    settings.WEBHOOKS_OPERATOR_EMAILS = ["ops@example.com"]
    endpoint = EndpointFactory(tenant=tenant, url="http://127.0.0.1:9/hook")
    other = EndpointFactory(tenant=tenant, url="http://127.0.0.1:9/other")

    with django_capture_on_commit_callbacks(execute=True):
        messages = run_action(admin_client, ENDPOINTS, "disable", [endpoint])

    assert messages == "Disabled 1 endpoints."
    endpoint.refresh_from_db()
    assert not endpoint.is_active
    assert endpoint.disabled_at is not None
    assert endpoint.disabled_reason == f"Disabled by {admin_user.get_username()}."
    assert Endpoint.objects.get(pk=other.pk).is_active
    assert [mail.to for mail in mailoutbox] == [["ops@example.com"]]
    assert endpoint.disabled_reason in mailoutbox[0].body


def test_endpoint_admin_disable_leaves_an_already_disabled_endpoint_and_its_reason(
    admin_client, tenant
):
    endpoint = EndpointFactory(
        tenant=tenant, is_active=False, disabled_reason="The endpoint answered 410 Gone."
    )

    messages = run_action(admin_client, ENDPOINTS, "disable", [endpoint])

    assert messages == "Disabled 0 endpoints."
    endpoint.refresh_from_db()
    assert endpoint.disabled_reason == "The endpoint answered 410 Gone."


def test_endpoint_admin_enable_clears_the_reason_and_the_failure_record(admin_client, tenant):
    now = timezone.now()
    endpoint = EndpointFactory(
        tenant=tenant,
        is_active=False,
        disabled_at=now,
        disabled_reason="Disabled by admin.",
        failing_since=now,
    )
    waiting = make_delivery(endpoint, Delivery.Status.PENDING)

    messages = run_action(admin_client, ENDPOINTS, "enable", [endpoint])

    assert messages == "Enabled 1 endpoints."
    endpoint.refresh_from_db()
    assert endpoint.is_active
    assert endpoint.disabled_reason == ""
    assert endpoint.disabled_at is None
    assert endpoint.failing_since is None
    assert Delivery.objects.get(pk=waiting.pk).status == Delivery.Status.PENDING


def test_endpoint_admin_disable_then_enable_round_trip(admin_client, admin_user, tenant):
    endpoints = [EndpointFactory(tenant=tenant) for _ in range(2)]

    assert run_action(admin_client, ENDPOINTS, "disable", endpoints) == "Disabled 2 endpoints."
    reasons = set(Endpoint.objects.values_list("disabled_reason", flat=True))
    assert reasons == {f"Disabled by {admin_user.get_username()}."}

    assert run_action(admin_client, ENDPOINTS, "enable", endpoints) == "Enabled 2 endpoints."
    assert set(Endpoint.objects.values_list("is_active", "disabled_reason")) == {(True, "")}
