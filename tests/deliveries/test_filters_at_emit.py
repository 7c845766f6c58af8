"""Endpoint filters at emit: an event gets a delivery only to endpoints whose filter matches it.

On both databases: the PostgreSQL run checks deliveries.bulk's statements, the SQLite run its ORM
twin. The last test sends through a real worker to a real receiver.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from deliveries import bulk, dispatch
from deliveries.batch import deliver_due_batch
from deliveries.models import Delivery
from subscriptions import filters
from subscriptions.models import Endpoint, EventType
from tests.factories import EndpointFactory, EventTypeFactory, TenantFactory
from webhooks import send_event
from webhooks.models import Event
from webhooks.services import event_send_test
from webhooks.wire import iso_timestamp

pytestmark = pytest.mark.django_db

BIG_EUR = 'data.amount > 10000 && data.currency == "EUR"'


@pytest.fixture
def tenant():
    return TenantFactory(slug="acme")


@pytest.fixture
def paid() -> EventType:
    return EventTypeFactory(name="order.paid")


def emit(tenant, payload: dict, *, kind: str = "order.paid", **options) -> bulk.StoredEvent:
    """Through the service, as the host emits, but returning what the statement reported."""
    stored: list[bulk.StoredEvent] = []
    real = bulk.event_insert_with_deliveries

    def recording(**kwargs):
        stored.append(real(**kwargs))
        return stored[-1]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("webhooks.services.event_insert_with_deliveries", recording)
        send_event(tenant, kind, payload, **options)
    return stored[-1]


def receivers(event: Event | None) -> set[int]:
    return set(Delivery.objects.filter(event=event).values_list("endpoint_id", flat=True))


def test_an_event_goes_to_endpoints_without_a_filter_and_to_those_whose_filter_matches(
    tenant, paid
):
    everything = EndpointFactory(tenant=tenant)
    big_eur = EndpointFactory(tenant=tenant, filter=BIG_EUR)
    gifts = EndpointFactory(tenant=tenant, filter='"gift" in data.tags')
    acme_paid = EndpointFactory(tenant=tenant, filter='tenant == "acme" && type == "order.paid"')

    stored = emit(tenant, {"amount": 12000, "currency": "EUR", "tags": []})

    assert receivers(stored.event) == {everything.id, big_eur.id, acme_paid.id}
    assert (stored.deliveries, stored.due) == (3, 3)
    stored = emit(tenant, {"amount": 50, "currency": "EUR", "tags": ["gift"]})
    assert receivers(stored.event) == {everything.id, gifts.id, acme_paid.id}


def test_a_filter_sees_the_timestamp_receivers_get(tenant, paid):
    cutoff = timezone.now() - timedelta(minutes=1)
    endpoint = EndpointFactory(tenant=tenant, filter=f'timestamp > "{cutoff.isoformat()[:19]}"')
    EndpointFactory(tenant=tenant, filter='timestamp < "2000-01-01"')

    stored = emit(tenant, {"n": 1})

    assert receivers(stored.event) == {endpoint.id}
    assert iso_timestamp(stored.event).endswith("Z")


def test_an_event_that_matches_no_filter_creates_no_delivery_and_wakes_no_worker(
    tenant, paid, django_capture_on_commit_callbacks
):
    EndpointFactory(tenant=tenant, filter=BIG_EUR)
    EndpointFactory(tenant=tenant, filter="data.amount > 1000000")

    with django_capture_on_commit_callbacks() as callbacks:
        stored = emit(tenant, {"amount": 12000, "currency": "USD"})

    assert stored.event is not None
    assert Event.objects.filter(id=stored.event.id).exists()
    assert (stored.deliveries, stored.due) == (0, 0)
    assert not Delivery.objects.exists()
    assert dispatch.wake_workers not in callbacks


def test_a_matching_event_wakes_the_workers(tenant, paid, django_capture_on_commit_callbacks):
    EndpointFactory(tenant=tenant, filter=BIG_EUR)

    with django_capture_on_commit_callbacks() as callbacks:
        emit(tenant, {"amount": 12000, "currency": "EUR"})

    assert dispatch.wake_workers in callbacks


def test_a_filter_failing_at_run_time_is_no_match_and_is_logged_once(
    tenant, paid, caplog, monkeypatch
):
    monkeypatch.setattr(filters, "_logged_at", {})
    failing = EndpointFactory(tenant=tenant, filter='data.coupon.code == "X"')
    sound = EndpointFactory(tenant=tenant, filter="data.amount > 0")

    with caplog.at_level(logging.WARNING, logger="subscriptions.filters"):
        first = emit(tenant, {"amount": 1})
        second = emit(tenant, {"amount": 2})

    assert receivers(first.event) == receivers(second.event) == {sound.id}
    [record] = caplog.records
    assert f"Filter of endpoint {failing.id} failed on event type order.paid" in record.getMessage()


def test_a_filter_is_evaluated_only_for_endpoints_that_want_the_event(tenant, paid, monkeypatch):
    refunded = EventTypeFactory(name="order.refunded")
    wanted = EndpointFactory(tenant=tenant, filter="data.amount > 0", event_types=[paid])
    EndpointFactory(tenant=tenant, filter="data.amount > 0", event_types=[refunded])
    EndpointFactory(tenant=tenant, filter="data.amount > 0", is_active=False)
    EndpointFactory(filter="data.amount > 0")  # another tenant's
    evaluated: list[list[int]] = []
    real = bulk.endpoints_matching

    def recording(candidates, context):
        candidates = list(candidates)
        evaluated.append([endpoint_id for endpoint_id, _ in candidates])
        return real(candidates, context)

    monkeypatch.setattr(bulk, "endpoints_matching", recording)
    stored = emit(tenant, {"amount": 5})

    assert evaluated == [[wanted.id]]
    assert receivers(stored.event) == {wanted.id}


def test_no_filter_is_evaluated_when_no_endpoint_has_one(tenant, paid, monkeypatch):
    EndpointFactory(tenant=tenant)
    EndpointFactory(tenant=tenant, filter="data.amount > 0", event_types=[EventTypeFactory(
        name="order.refunded")])  # fmt: skip

    def refuse(*args):
        raise AssertionError("no filter should be evaluated")

    monkeypatch.setattr(bulk, "endpoints_matching", refuse)
    stored = emit(tenant, {"amount": 5})

    assert stored.deliveries == 1


def test_a_matching_delivery_to_an_endpoint_whose_circuit_is_open_waits_for_it(tenant, paid):
    until = timezone.now() + timedelta(minutes=1)
    paused = EndpointFactory(tenant=tenant, filter="data.amount > 0", circuit_open_until=until)
    flowing = EndpointFactory(tenant=tenant, filter="data.amount > 0")

    stored = emit(tenant, {"amount": 5})

    assert (stored.deliveries, stored.due) == (2, 1)
    held = dict(Delivery.objects.values_list("endpoint_id", "next_attempt_at"))
    assert held == {paused.id: until, flowing.id: stored.event.created_at}


def test_a_test_event_goes_to_its_endpoint_whatever_the_filter(tenant, paid):
    endpoint = EndpointFactory(tenant=tenant, filter="false")

    delivery = event_send_test(endpoint=endpoint, event_type="order.paid", payload={"n": 1})

    assert delivery.endpoint_id == endpoint.id
    assert receivers(delivery.event) == {endpoint.id}


def test_a_repeated_idempotency_key_creates_nothing_for_filtered_endpoints(tenant, paid):
    endpoint = EndpointFactory(tenant=tenant, filter="data.amount > 0")

    first = send_event(tenant, "order.paid", {"amount": 5}, idempotency_key="once")
    again = send_event(tenant, "order.paid", {"amount": 5}, idempotency_key="once")

    assert again.id == first.id
    assert list(Delivery.objects.values_list("endpoint_id", flat=True)) == [endpoint.id]


def test_keyed_events_to_a_filtered_endpoint_wait_behind_the_ones_it_matched(tenant, paid):
    endpoint = EndpointFactory(tenant=tenant, filter='data.step != "skipped"')

    first = emit(tenant, {"step": "skipped"}, ordering_key="ord_1")
    second = emit(tenant, {"step": "packed"}, ordering_key="ord_1")
    third = emit(tenant, {"step": "shipped"}, ordering_key="ord_1")

    assert receivers(first.event) == set()
    # The first event it matched is the head of its key; the next waits behind it.
    assert (second.deliveries, second.due, second.waiting_endpoint_ids) == (1, 1, ())
    assert (third.deliveries, third.due, third.waiting_endpoint_ids) == (1, 0, (endpoint.id,))
    head, behind = Delivery.objects.order_by("id")
    assert (head.event_id, head.waiting_on_key, head.next_attempt_at is not None) == (
        second.event.id, False, True
    )  # fmt: skip
    assert (behind.event_id, behind.waiting_on_key, behind.next_attempt_at) == (
        third.event.id, True, None
    )  # fmt: skip


@pytest.mark.django_db(transaction=True)
def test_keyed_events_with_filters_reach_the_receiver_in_emission_order(tenant, paid, receiver):
    EndpointFactory(tenant=tenant, url=receiver.url("/steps"), filter="data.step % 2 == 1")

    for step in range(1, 8):
        send_event(tenant, "order.paid", {"step": step}, ordering_key="ord_1")
    for _ in range(10):
        deliver_due_batch(limit=2)

    assert [json.loads(r.body)["data"]["step"] for r in receiver.requests("/steps")] == [1, 3, 5, 7]


@pytest.mark.skipif("connection.vendor != 'postgresql'")
def test_a_filter_changed_while_the_event_was_evaluated_is_evaluated_again(
    tenant, paid, monkeypatch
):
    changed = EndpointFactory(tenant=tenant, filter="data.amount > 100")
    added_by_others: list[Endpoint] = []
    real = bulk.endpoints_matching

    def meanwhile(candidates, context):
        # Another request changes one filter and adds a filtered endpoint, once.
        if not added_by_others:
            Endpoint.objects.filter(id=changed.id).update(filter="data.amount > 1")
            added_by_others.append(EndpointFactory(tenant=tenant, filter="data.amount > 2"))
        return real(candidates, context)

    monkeypatch.setattr(bulk, "endpoints_matching", meanwhile)
    stored = emit(tenant, {"amount": 5})

    assert receivers(stored.event) == {changed.id, added_by_others[0].id}
    assert stored.deliveries == 2
    assert connection.vendor == "postgresql"


@pytest.mark.skipif("connection.vendor != 'postgresql'")
def test_filters_cleared_while_the_event_was_evaluated_leave_unfiltered_endpoints(
    tenant, paid, monkeypatch
):
    cleared = EndpointFactory(tenant=tenant, filter="data.amount > 100")
    removed = EndpointFactory(tenant=tenant, filter="data.amount > 1")
    real = bulk.endpoints_matching
    calls: list[int] = []

    def meanwhile(candidates, context):
        calls.append(1)
        if len(calls) == 1:  # another request, while this one evaluates
            Endpoint.objects.filter(id=cleared.id).update(filter="")
            Endpoint.objects.filter(id=removed.id).update(is_active=False)
        return real(candidates, context)

    monkeypatch.setattr(bulk, "endpoints_matching", meanwhile)
    stored = emit(tenant, {"amount": 5})

    assert receivers(stored.event) == {cleared.id}
    assert stored.deliveries == 1


def test_a_filter_changed_between_two_emits_decides_the_second(tenant, paid):
    endpoint = EndpointFactory(tenant=tenant, filter="data.amount > 1")
    other = EndpointFactory(tenant=tenant, filter="data.amount > 2")
    first = emit(tenant, {"amount": 5})

    Endpoint.objects.filter(id=endpoint.id).update(filter="data.amount > 10")
    changed = emit(tenant, {"amount": 5})
    Endpoint.objects.filter(id__in=[endpoint.id, other.id]).update(filter="")
    cleared = emit(tenant, {"amount": 5})

    assert receivers(first.event) == {endpoint.id, other.id}
    assert receivers(changed.event) == {other.id}
    assert receivers(cleared.event) == {endpoint.id, other.id}


@pytest.mark.skipif("connection.vendor != 'postgresql'")
def test_filters_seen_before_are_evaluated_first_and_the_emit_is_one_statement(
    tenant, paid, django_assert_num_queries
):
    kind = EventType.objects.get(name="order.paid")
    endpoint = EndpointFactory(tenant=tenant, filter="data.amount > 1")
    EndpointFactory(tenant=tenant)

    def insert(amount: int) -> bulk.StoredEvent:
        text = json.dumps({"amount": amount})
        return bulk.event_insert_with_deliveries(
            tenant=tenant, event_type=kind, payload={"amount": amount}, payload_json=text,
            payload_text=text, idempotency_key=None,
        )  # fmt: skip

    with django_assert_num_queries(2):  # the first time: stored nothing, evaluated, stored
        insert(5)
    with django_assert_num_queries(1):
        matched = insert(5)
    with django_assert_num_queries(1):
        missed = insert(0)

    assert (matched.deliveries, missed.deliveries) == (2, 1)
    assert endpoint.id in receivers(matched.event)
    assert endpoint.id not in receivers(missed.event)


@pytest.mark.services
def test_a_worker_delivers_only_the_events_an_endpoint_filter_matches(worker, receiver):
    tenant = TenantFactory()
    EventTypeFactory(name="order.paid")
    EndpointFactory(tenant=tenant, url=receiver.url("/big-eur"), filter=BIG_EUR)
    EndpointFactory(tenant=tenant, url=receiver.url("/all"))

    sent = [
        send_event(tenant, "order.paid", {"amount": amount, "currency": currency})
        for amount, currency in [(20000, "EUR"), (20000, "USD"), (50, "EUR"), (10001, "EUR")]
    ]

    received = receiver.wait_for(4, "/all")
    assert len(received) == 4
    big = receiver.wait_for(2, "/big-eur")
    assert sorted(r.headers["webhook-id"] for r in big) == sorted(
        [sent[0].public_id, sent[3].public_id]
    )
    time.sleep(0.3)
    assert len(receiver.requests("/big-eur")) == 2
