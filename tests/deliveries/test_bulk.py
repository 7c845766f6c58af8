"""The engine's hot statements, each written twice: SQL on PostgreSQL, the ORM elsewhere.

Every test here runs against whichever database the suite has, so the PostgreSQL run checks the
SQL and the SQLite run checks the ORM twin against the same expectations (deliveries.bulk). None
may be marked `services`: that would leave the twin untested. The marking of a healthy endpoint
is covered in test_holds.py, the loader in test_loading.py, the racing idempotency keys in
tests/webhooks/test_idempotency_race.py.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from deliveries import fair
from deliveries.bulk import (
    ATTEMPT_COLUMNS,
    DeliveryChange,
    StoredEvent,
    attempts_insert,
    deliveries_apply,
    deliveries_extend_lease,
    deliveries_lease_due,
    event_insert_with_deliveries,
)
from deliveries.models import Attempt, Delivery
from deliveries.services import deliveries_claim_due
from subscriptions.models import Endpoint, EventType, Tenant
from tests.factories import EndpointFactory, EventTypeFactory, TenantFactory
from webhooks.models import Event

pytestmark = pytest.mark.django_db

TOKEN = "lease-of-this-test"


@pytest.fixture
def tenant() -> Tenant:
    return TenantFactory()


@pytest.fixture
def paid() -> EventType:
    return EventTypeFactory(name="order.paid")


def emit(tenant: Tenant, kind: EventType, *, key: str | None = None) -> StoredEvent:
    text = json.dumps({"order": "ord_1", "note": "naïve ☕"}, ensure_ascii=False)
    return event_insert_with_deliveries(
        tenant=tenant, event_type=kind, payload=json.loads(text), payload_json=text,
        payload_text=text, idempotency_key=key,
    )  # fmt: skip


# --- fan-out: the event and one delivery per subscribed endpoint --------------------------------


def test_an_event_gets_one_pending_delivery_per_active_endpoint_that_wants_it(tenant, paid):
    refunded = EventTypeFactory(name="order.refunded")
    wanted = [
        EndpointFactory(tenant=tenant),  # no types: every type
        EndpointFactory(tenant=tenant, event_types=[paid]),
        EndpointFactory(tenant=tenant, event_types=[paid, refunded]),  # one delivery, not two
    ]
    EndpointFactory(tenant=tenant, event_types=[refunded])
    EndpointFactory(tenant=tenant, is_active=False)
    EndpointFactory()  # another tenant's

    stored = emit(tenant, paid)

    assert (stored.deliveries, stored.due, stored.event_type_current) == (3, 3, True)
    event = Event.objects.get()
    assert stored.event.id == event.id
    assert event.payload_text == '{"order": "ord_1", "note": "naïve ☕"}'
    assert event.payload == {"order": "ord_1", "note": "naïve ☕"}
    deliveries = Delivery.objects.filter(event=event).order_by("endpoint_id")
    assert [d.endpoint_id for d in deliveries] == [endpoint.id for endpoint in wanted]
    for delivery in deliveries:
        assert (delivery.status, delivery.attempt_count, delivery.next_trigger) == (
            Delivery.Status.PENDING, 0, Attempt.Trigger.SCHEDULED
        )  # fmt: skip
        assert (delivery.leased_by, delivery.lease_expires_at, delivery.last_error) == (
            "",
            None,
            "",
        )
        assert delivery.next_attempt_at == delivery.created_at == event.created_at


def test_a_delivery_to_an_endpoint_whose_circuit_is_open_waits_for_the_pause_to_end(tenant, paid):
    now = timezone.now()
    paused = EndpointFactory(tenant=tenant, circuit_open_until=now + timedelta(minutes=1))
    cooled = EndpointFactory(tenant=tenant, circuit_open_until=now - timedelta(seconds=1))
    closed = EndpointFactory(tenant=tenant)

    stored = emit(tenant, paid)

    assert (stored.deliveries, stored.due) == (3, 2)  # the paused one wakes no worker
    held = dict(Delivery.objects.values_list("endpoint_id", "next_attempt_at"))
    created = stored.event.created_at
    assert held == {paused.id: paused.circuit_open_until, cooled.id: created, closed.id: created}


def test_an_event_for_paused_endpoints_alone_is_not_due(tenant, paid):
    EndpointFactory(tenant=tenant, circuit_open_until=timezone.now() + timedelta(minutes=1))

    stored = emit(tenant, paid)

    assert (stored.deliveries, stored.due) == (1, 0)


def test_a_taken_idempotency_key_stores_nothing(tenant, paid):
    EndpointFactory(tenant=tenant)
    first = emit(tenant, paid, key="once")

    again = emit(tenant, paid, key="once")
    elsewhere = emit(TenantFactory(), paid, key="once")  # keys are per tenant

    assert (again.event, again.deliveries, again.event_type_current) == (None, 0, True)
    assert elsewhere.event is not None
    assert Event.objects.filter(tenant=tenant).get().id == first.event.id
    assert Delivery.objects.count() == 1


@pytest.mark.parametrize("change", [{"archived": True}, {"name": "order.settled"}])
def test_an_event_type_changed_since_it_was_read_stores_nothing(tenant, paid, change):
    EndpointFactory(tenant=tenant)
    EventType.objects.filter(id=paid.id).update(**change)  # `paid` is the caller's stale copy

    stored = emit(tenant, paid)

    assert (stored.event, stored.deliveries, stored.event_type_current) == (None, 0, False)
    assert not Event.objects.exists()
    assert not Delivery.objects.exists()


# --- lease: the claim of due deliveries --------------------------------------------------------


def delivery(endpoint: Endpoint, *, due_in: float | None = -1.0, **fields) -> Delivery:
    """A delivery to `endpoint`, due `due_in` seconds from now (None: never due)."""
    kind = EventTypeFactory(name="order.paid")
    event = Event.objects.create(tenant=endpoint.tenant, event_type=kind, payload={})
    due = None if due_in is None else timezone.now() + timedelta(seconds=due_in)
    return Delivery.objects.create(event=event, endpoint=endpoint, next_attempt_at=due, **fields)


def lease(*, limit: int = 50, skip: list[int] | None = None):
    now = timezone.now()
    return deliveries_lease_due(
        limit=limit, at=now, skip_endpoint_ids=skip or [], token=TOKEN,
        expires_at=now + timedelta(seconds=30),
    )  # fmt: skip


@pytest.mark.usefixtures("either_claim")
@pytest.mark.pgbouncer
def test_a_lease_takes_due_deliveries_oldest_first_up_to_the_limit(tenant):
    endpoint = EndpointFactory(tenant=tenant)
    newest, oldest, middle = (delivery(endpoint, due_in=-n) for n in (1, 3, 2))

    leased = lease(limit=2)

    assert leased.delivery_ids == [oldest.id, middle.id]
    assert leased.probes_ready is False
    rows = {d.id: d for d in Delivery.objects.all()}
    assert {rows[oldest.id].leased_by, rows[middle.id].leased_by} == {TOKEN}
    assert rows[oldest.id].lease_expires_at > timezone.now()
    assert (rows[newest.id].leased_by, rows[newest.id].lease_expires_at) == ("", None)


@pytest.mark.usefixtures("either_claim")
@pytest.mark.pgbouncer
def test_a_lease_takes_only_free_due_deliveries_to_endpoints_whose_circuit_is_closed(tenant):
    now = timezone.now()
    endpoint = EndpointFactory(tenant=tenant)
    free = delivery(endpoint)
    lapsed = delivery(endpoint, leased_by="a-dead-worker", lease_expires_at=now)
    delivery(endpoint, leased_by="a-live-worker", lease_expires_at=now + timedelta(seconds=30))
    delivery(endpoint, due_in=10)
    delivery(endpoint, due_in=None)  # parked: its endpoint was disabled
    delivery(endpoint, status=Delivery.Status.SUCCEEDED)
    delivery(endpoint, status=Delivery.Status.FAILED)
    delivery(EndpointFactory(tenant=tenant, is_active=False))
    delivery(EndpointFactory(tenant=tenant, circuit_open_until=now + timedelta(minutes=1)))
    # A cooldown that ended makes room for one probe, which the claim leases separately.
    delivery(EndpointFactory(tenant=tenant, circuit_open_until=now - timedelta(seconds=1)))
    skipped = EndpointFactory(tenant=tenant)
    delivery(skipped)

    leased = lease(skip=[skipped.id])

    assert sorted(leased.delivery_ids) == sorted([free.id, lapsed.id])
    assert set(Delivery.objects.filter(leased_by=TOKEN).values_list("id", flat=True)) == {
        free.id, lapsed.id
    }  # fmt: skip


@pytest.fixture
def rotation(monkeypatch, settings):
    """Fair claims under contention, each test's starting from the first endpoint whatever earlier
    tests leased."""
    settings.WEBHOOKS_FAIR_CLAIMS = True
    monkeypatch.setattr(fair, "_rotation", fair._Rotation(contended=True))


@pytest.fixture(params=[False, True], ids=["in-due-order", "fair"])
def either_claim(request, monkeypatch, settings):
    """Both claims, in due order across tenants (the default) and fair: what both must do."""
    settings.WEBHOOKS_FAIR_CLAIMS = request.param
    monkeypatch.setattr(fair, "_rotation", fair._Rotation(contended=request.param))


@pytest.mark.usefixtures("rotation")
def test_a_tenant_with_one_due_delivery_is_served_beside_another_tenants_backlog(tenant):
    backlog = [delivery(EndpointFactory(tenant=tenant), due_in=-60)]
    backlog += [delivery(backlog[0].endpoint, due_in=-60 + n) for n in range(1, 30)]
    quiet = delivery(EndpointFactory(tenant=TenantFactory()), due_in=-1)

    leased = lease(limit=5)

    assert quiet.id in leased.delivery_ids
    assert len(leased.delivery_ids) == 5
    assert [d.id for d in backlog[:4]] == [i for i in leased.delivery_ids if i != quiet.id]


@pytest.mark.usefixtures("rotation")
def test_a_shared_batch_is_sent_in_its_turns_so_a_quiet_tenant_does_not_wait_for_the_rest(tenant):
    busy = EndpointFactory(tenant=tenant)
    backlog = [delivery(busy, due_in=-60 + n) for n in range(30)]
    quiet = delivery(EndpointFactory(tenant=TenantFactory()), due_in=-1)

    claim = deliveries_claim_due(limit=20)  # shared: half a batch, in turns over the tenants

    # In due order the quiet tenant's delivery, the newest, would be sent after the other nine.
    assert [d.id for d in claim.deliveries] == [backlog[0].id, quiet.id] + [
        d.id for d in backlog[1:9]
    ]


@pytest.mark.usefixtures("rotation")
def test_an_endpoint_with_one_due_delivery_is_served_beside_its_tenants_busy_endpoint(tenant):
    busy = EndpointFactory(tenant=tenant)
    for n in range(20):
        delivery(busy, due_in=-60 + n)
    other = delivery(EndpointFactory(tenant=tenant), due_in=-1)

    assert other.id in lease(limit=3).delivery_ids


@pytest.mark.usefixtures("rotation")
@pytest.mark.pgbouncer
def test_tenants_share_a_batch_in_proportion_to_their_delivery_weights():
    light, heavy = TenantFactory(delivery_weight=1), TenantFactory(delivery_weight=3)
    for owner in (light, heavy):
        endpoint = EndpointFactory(tenant=owner)
        for n in range(60):
            delivery(endpoint, due_in=-60 + n / 10)

    leased = Delivery.objects.filter(id__in=lease(limit=40).delivery_ids)

    by_tenant = {owner: leased.filter(endpoint__tenant=owner).count() for owner in (light, heavy)}
    assert by_tenant == {light: 10, heavy: 30}


@pytest.mark.usefixtures("rotation")
def test_successive_claims_take_turns_over_endpoints_with_due_deliveries():
    endpoints = [EndpointFactory(tenant=TenantFactory()) for _ in range(3)]
    for endpoint in endpoints:
        for n in range(3):
            delivery(endpoint, due_in=-10 + n)

    served = []
    for _ in range(6):
        (leased,) = lease(limit=1).delivery_ids
        served.append(Delivery.objects.get(id=leased).endpoint_id)

    assert served == [e.id for e in endpoints] * 2


def test_claims_share_only_under_contention(tenant, monkeypatch, settings):
    settings.WEBHOOKS_FAIR_CLAIMS = True
    monkeypatch.setattr(fair, "_rotation", fair._Rotation())
    busy = EndpointFactory(tenant=tenant)
    for n in range(10):
        delivery(busy, due_in=-60 + n)
    quiet = delivery(EndpointFactory(tenant=TenantFactory()), due_in=-1)

    def claim() -> list[int]:
        return [d.id for d in deliveries_claim_due(limit=4).deliveries]

    first = claim()  # nothing says there is contention: due order, cheaply
    assert quiet.id not in first
    assert fair.sharing()  # it came back full: the next claims share, in half batches
    second = claim()
    assert len(second) == 2
    assert quiet.id in second
    sizes = [len(claim()) for _ in range(3)]  # the backlog's last five: 2, 2, then 1
    assert sizes == [2, 2, 1]
    assert not fair.sharing()  # short of full: due order again


@pytest.mark.parametrize(
    ("is_active", "cooldown_ends_in", "ready"),
    [(True, -1, True), (True, 60, False), (False, -1, False), (True, None, False)],
)
@pytest.mark.usefixtures("either_claim")
def test_a_lease_says_whether_an_ended_cooldown_lets_a_probe_go(
    tenant, is_active, cooldown_ends_in, ready
):
    until = (
        None if cooldown_ends_in is None else timezone.now() + timedelta(seconds=cooldown_ends_in)
    )
    EndpointFactory(tenant=tenant, is_active=is_active, circuit_open_until=until)

    assert lease().probes_ready is ready


# --- renewing and ending leases -----------------------------------------------------------------


@pytest.mark.pgbouncer
def test_renewing_extends_only_the_leases_the_token_still_holds(tenant):
    now = timezone.now()
    endpoint = EndpointFactory(tenant=tenant)
    held = delivery(endpoint, leased_by=TOKEN, lease_expires_at=now + timedelta(seconds=5))
    # Run out but taken by no claim since: still this token's, and renewed.
    lapsed = delivery(endpoint, leased_by=TOKEN, lease_expires_at=now - timedelta(seconds=5))
    taken = delivery(endpoint, leased_by="another-worker", lease_expires_at=now)
    free = delivery(endpoint)
    until = now + timedelta(seconds=60)

    renewed = deliveries_extend_lease(
        delivery_ids=[held.id, lapsed.id, taken.id, free.id], token=TOKEN, expires_at=until
    )

    assert renewed == {held.id, lapsed.id}
    leases = dict(Delivery.objects.values_list("id", "lease_expires_at"))
    assert leases == {held.id: until, lapsed.id: until, taken.id: now, free.id: None}


@pytest.mark.pgbouncer
def test_applying_outcomes_moves_on_only_the_deliveries_the_lease_still_holds(tenant):
    now = timezone.now()
    endpoint = EndpointFactory(tenant=tenant)
    lease_fields = {"leased_by": TOKEN, "lease_expires_at": now + timedelta(seconds=30)}
    sent = delivery(endpoint, next_trigger=Attempt.Trigger.REPLAY, **lease_fields)
    retried = delivery(endpoint, **lease_fields)
    taken = delivery(endpoint, leased_by="another-worker", lease_expires_at=now)
    later = now + timedelta(minutes=5)
    changes = [
        DeliveryChange(sent.id, Delivery.Status.SUCCEEDED, 1, now, 200, "", None, now),
        DeliveryChange(retried.id, Delivery.Status.PENDING, 2, now, None, "timed out", later, None),
        DeliveryChange(taken.id, Delivery.Status.FAILED, 1, now, 500, "HTTP 500", None, now),
    ]

    deliveries_apply(changes, lease_token=TOKEN)

    rows = {d.id: d for d in Delivery.objects.all()}
    for change in changes[:2]:
        row = rows[change.delivery_id]
        assert (row.status, row.attempt_count, row.last_attempt_at, row.last_response_status,
                row.last_error, row.next_attempt_at, row.finished_at) == (
            change.status, change.attempt_count, change.last_attempt_at,
            change.last_response_status, change.last_error, change.next_attempt_at,
            change.finished_at,
        )  # fmt: skip
        assert (row.leased_by, row.lease_expires_at) == ("", None)
        assert row.next_trigger == Attempt.Trigger.SCHEDULED  # a replay's next try is scheduled
    untouched = rows[taken.id]
    assert (untouched.status, untouched.attempt_count, untouched.leased_by) == (
        Delivery.Status.PENDING, 0, "another-worker"
    )  # fmt: skip


# --- attempts -----------------------------------------------------------------------------------


@pytest.mark.pgbouncer
def test_attempts_are_stored_column_for_column(tenant):
    target = delivery(EndpointFactory(tenant=tenant))
    now = timezone.now()
    attempts = [
        Attempt(
            delivery=target, number=1, trigger=Attempt.Trigger.SCHEDULED, started_at=now,
            duration_ms=12.5, url="https://example.com/hook?a=1&b=é",
            request_headers={"webhook-id": "msg_1", "X-Note": "naïve ☕"}, response_status=200,
            response_headers={"Content-Type": "text/plain"}, response_body="ok\r\n",
        ),
        Attempt(
            delivery=target, number=2, trigger=Attempt.Trigger.REPLAY,
            started_at=now + timedelta(seconds=1), duration_ms=2000.0, url=target.endpoint.url,
            request_headers={}, response_status=None, response_headers={},
            error_kind=Attempt.ErrorKind.TIMEOUT, error_message="no answer within 2 s",
        ),
    ]  # fmt: skip

    attempts_insert(attempts)

    stored = list(Attempt.objects.filter(delivery=target).order_by("number"))
    assert len(stored) == 2
    for got, want in zip(stored, attempts, strict=True):
        for column in ATTEMPT_COLUMNS:
            assert getattr(got, column) == getattr(want, column), column
