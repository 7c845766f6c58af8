"""The batch insert (deliveries.batch_emit): one statement on PostgreSQL, the ORM on SQLite, the
same results on both. Like test_bulk.py, nothing here is marked `services`."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from deliveries import batch_emit
from deliveries.batch_emit import NewEvent, events_insert_with_deliveries
from deliveries.models import Attempt, Delivery
from subscriptions.models import Endpoint, EventType, Tenant
from tests.factories import EndpointFactory, EventTypeFactory, TenantFactory
from webhooks.models import Event

pytestmark = pytest.mark.django_db


@pytest.fixture
def tenant() -> Tenant:
    return TenantFactory()


@pytest.fixture
def paid() -> EventType:
    return EventTypeFactory(name="order.paid")


def new(kind: EventType, n: int = 0, *, key: str | None = None, order: str = "") -> NewEvent:
    text = json.dumps({"n": n, "note": "naïve ☕"}, ensure_ascii=False)
    return NewEvent(
        event_type=kind, payload=json.loads(text), payload_json=text, payload_text=text,
        idempotency_key=key, ordering_key=order,
    )  # fmt: skip


def placed(endpoint) -> list[tuple[int, bool, bool]]:
    """The endpoint's deliveries in id order: (event's n, due now, waiting on its key)."""
    return [
        (d.event.payload["n"], d.next_attempt_at is not None, d.waiting_on_key)
        for d in Delivery.objects.filter(endpoint=endpoint).select_related("event").order_by("id")
    ]


def test_each_event_goes_to_every_active_endpoint_of_the_tenant_that_wants_its_type(tenant, paid):
    refunded = EventTypeFactory(name="order.refunded")
    every = EndpointFactory(tenant=tenant)
    only_paid = EndpointFactory(tenant=tenant, event_types=[paid])
    both = EndpointFactory(tenant=tenant, event_types=[paid, refunded])  # one delivery, not two
    EndpointFactory(tenant=tenant, is_active=False)
    EndpointFactory(event_types=[paid])  # another tenant's

    batch = events_insert_with_deliveries(
        tenant=tenant, events=[new(paid, 0), new(refunded, 1), new(paid, 2)]
    )

    assert [item.deliveries for item in batch.items] == [3, 2, 3]
    assert (batch.due, batch.event_types_current, batch.waiting_keys) == (8, True, ())
    events = list(Event.objects.order_by("id"))
    assert [e.public_id for e in events] == [item.public_id for item in batch.items]
    assert [e.payload["n"] for e in events] == [0, 1, 2]  # ids follow the batch's order
    assert events[0].payload_text == '{"n": 0, "note": "naïve ☕"}'
    by_endpoint = {
        endpoint.id: [n for n, _, _ in placed(endpoint)] for endpoint in (every, only_paid, both)
    }
    assert by_endpoint == {every.id: [0, 1, 2], only_paid.id: [0, 2], both.id: [0, 1, 2]}
    for delivery in Delivery.objects.select_related("event"):
        assert (delivery.status, delivery.attempt_count, delivery.next_trigger) == (
            Delivery.Status.PENDING, 0, Attempt.Trigger.SCHEDULED
        )  # fmt: skip
        assert (delivery.leased_by, delivery.lease_expires_at, delivery.ordering_key) == (
            "",
            None,
            "",
        )
        assert delivery.next_attempt_at == delivery.created_at == delivery.event.created_at


def test_deliveries_to_an_endpoint_whose_circuit_is_open_wait_for_the_pause_to_end(tenant, paid):
    until = timezone.now() + timedelta(minutes=1)
    paused = EndpointFactory(tenant=tenant, circuit_open_until=until)
    EndpointFactory(tenant=tenant)

    batch = events_insert_with_deliveries(tenant=tenant, events=[new(paid, 0), new(paid, 1)])

    assert batch.due == 2
    held = Delivery.objects.filter(endpoint=paused).values_list("next_attempt_at", flat=True)
    assert list(held) == [until, until]


def test_later_events_of_a_key_wait_behind_earlier_ones_for_each_endpoint_they_share(tenant, paid):
    refunded = EventTypeFactory(name="order.refunded")
    every = EndpointFactory(tenant=tenant)
    only_paid = EndpointFactory(tenant=tenant, event_types=[paid])

    batch = events_insert_with_deliveries(
        tenant=tenant,
        events=[
            new(refunded, 0, order="k"),
            new(paid, 1, order="k"),
            new(paid, 2),
            new(paid, 3, order="other"),
            new(paid, 4, order="k"),
        ],
    )

    assert placed(every) == [
        (0, True, False), (1, False, True), (2, True, False), (3, True, False), (4, False, True),
    ]  # fmt: skip
    # order.refunded never reached this endpoint: its first event of the key goes at once.
    assert placed(only_paid) == [(1, True, False), (2, True, False), (3, True, False),
                                 (4, False, True)]  # fmt: skip
    assert batch.due == 6
    assert set(Delivery.objects.values_list("ordering_key", flat=True)) == {"", "k", "other"}


def test_a_key_pending_from_before_holds_the_batchs_events_of_that_key(tenant, paid):
    endpoint = EndpointFactory(tenant=tenant)
    events_insert_with_deliveries(tenant=tenant, events=[new(paid, 0, order="k")])

    batch = events_insert_with_deliveries(
        tenant=tenant, events=[new(paid, 1, order="k"), new(paid, 2, order="fresh")]
    )

    assert placed(endpoint) == [(0, True, False), (1, False, True), (2, True, False)]
    assert batch.due == 1
    assert (endpoint.id, "k") in batch.waiting_keys
    assert (endpoint.id, "fresh") not in batch.waiting_keys


def test_a_finished_delivery_of_the_key_holds_nothing(tenant, paid):
    endpoint = EndpointFactory(tenant=tenant)
    events_insert_with_deliveries(tenant=tenant, events=[new(paid, 0, order="k")])
    Delivery.objects.update(status=Delivery.Status.SUCCEEDED)

    batch = events_insert_with_deliveries(tenant=tenant, events=[new(paid, 1, order="k")])

    assert placed(endpoint)[-1] == (1, True, False)
    assert batch.waiting_keys == ()


def test_events_whose_idempotency_key_is_taken_are_skipped_and_the_others_stored(tenant, paid):
    EndpointFactory(tenant=tenant)
    first = events_insert_with_deliveries(tenant=tenant, events=[new(paid, 0, key="once")])
    elsewhere = events_insert_with_deliveries(
        tenant=TenantFactory(), events=[new(paid, 0, key="once")]
    )

    batch = events_insert_with_deliveries(
        tenant=tenant, events=[new(paid, 1), new(paid, 2, key="once"), new(paid, 3, key="new")]
    )

    assert batch.items[1] is None
    assert [item.deliveries for item in (batch.items[0], batch.items[2])] == [1, 1]
    assert elsewhere.items[0] is not None  # keys are per tenant
    assert Event.objects.get(tenant=tenant, idempotency_key="once").public_id == (
        first.items[0].public_id
    )
    assert Event.objects.filter(tenant=tenant).count() == 3


@pytest.mark.parametrize("change", [{"archived": True}, {"name": "order.settled"}])
def test_an_event_type_changed_since_it_was_read_stores_nothing_at_all(tenant, paid, change):
    EndpointFactory(tenant=tenant)
    other = EventTypeFactory(name="order.refunded")
    EventType.objects.filter(id=paid.id).update(**change)  # `paid` is the caller's stale copy

    batch = events_insert_with_deliveries(tenant=tenant, events=[new(other, 0), new(paid, 1)])

    assert (batch.event_types_current, batch.items, batch.due) == (False, [None, None], 0)
    assert not Event.objects.exists()
    assert not Delivery.objects.exists()


def test_an_empty_batch_costs_no_query(tenant):
    with CaptureQueriesContext(connection) as queries:
        batch = events_insert_with_deliveries(tenant=tenant, events=[])

    assert batch.items == []
    assert len(queries) == 0


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the one statement is PostgreSQL's")
@pytest.mark.pgbouncer
def test_on_postgresql_a_batch_is_one_statement(tenant, paid):
    for _ in range(3):
        EndpointFactory(tenant=tenant)

    with CaptureQueriesContext(connection) as queries:
        events_insert_with_deliveries(
            tenant=tenant, events=[new(paid, n, order="k" if n % 2 else "") for n in range(100)]
        )

    assert len(queries) == 1
    assert Delivery.objects.count() == 300


# --- endpoint filters (decision record 0020) ----------------------------------------------------


def test_a_filtered_endpoint_gets_only_the_events_its_filter_matches(tenant, paid):
    refunded = EventTypeFactory(name="order.refunded")
    every = EndpointFactory(tenant=tenant)
    small = EndpointFactory(tenant=tenant, filter="data.n < 2")
    paid_and_odd = EndpointFactory(tenant=tenant, event_types=[paid], filter="data.n % 2 == 1")
    broken = EndpointFactory(tenant=tenant, filter="data.missing > 1")  # a run-time error
    events = [new(paid, 0), new(paid, 1), new(refunded, 3), new(paid, 4), new(paid, 5)]

    batch = events_insert_with_deliveries(tenant=tenant, events=events)

    assert [item.deliveries for item in batch.items] == [2, 3, 1, 1, 2]
    assert [n for n, _, _ in placed(every)] == [0, 1, 3, 4, 5]
    assert [n for n, _, _ in placed(small)] == [0, 1]
    assert [n for n, _, _ in placed(paid_and_odd)] == [1, 5]  # not 3: it wants order.paid only
    assert placed(broken) == []


def test_an_event_that_no_filter_matches_is_stored_without_deliveries(tenant, paid):
    EndpointFactory(tenant=tenant, filter="data.n > 100")

    batch = events_insert_with_deliveries(tenant=tenant, events=[new(paid, 1)])

    assert batch.items[0].deliveries == 0
    assert batch.due == 0
    assert Event.objects.count() == 1
    assert not Delivery.objects.exists()


def test_filters_changed_after_they_were_read_are_read_and_evaluated_again(
    tenant, paid, monkeypatch
):
    """As if another process changed the filter between the batch's read of it and its
    statement: the statement stores nothing that round, and the next one uses the new filter."""
    if connection.vendor != "postgresql":
        pytest.skip("SQLite reads and evaluates each event's filters in its insert's transaction")
    endpoint = EndpointFactory(tenant=tenant, filter="data.n == 1")
    real = batch_emit._filtered_endpoints
    reads = []

    def read_then_change(tenant_id):
        filtered = real(tenant_id)
        if not reads:
            Endpoint.objects.filter(id=endpoint.id).update(filter="data.n == 2")
        reads.append(filtered)
        return filtered

    monkeypatch.setattr(batch_emit, "_filtered_endpoints", read_then_change)

    events_insert_with_deliveries(tenant=tenant, events=[new(paid, 1), new(paid, 2)])

    assert len(reads) == 2
    assert [n for n, _, _ in placed(endpoint)] == [2]
    assert Event.objects.count() == 2


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the one statement is PostgreSQL's")
def test_once_a_tenants_filters_are_known_a_filtered_batch_is_one_statement(tenant, paid):
    filtered = EndpointFactory(tenant=tenant, filter="data.n % 2 == 0")
    events_insert_with_deliveries(tenant=tenant, events=[new(paid, 0)])  # learns the filters

    with CaptureQueriesContext(connection) as queries:
        events_insert_with_deliveries(tenant=tenant, events=[new(paid, n) for n in range(1, 5)])

    assert len(queries) == 1
    assert [n for n, _, _ in placed(filtered)] == [0, 2, 4]
    # A change of the endpoint's event types is seen too: it no longer wants order.paid.
    filtered.event_types.set([EventTypeFactory(name="order.refunded")])
    events_insert_with_deliveries(tenant=tenant, events=[new(paid, 6)])
    assert [n for n, _, _ in placed(filtered)] == [0, 2, 4]
