"""Ordering keys, in process: deliveries that share a key go one at a time, in emission order.

Real HTTP to a real receiver, the engine's own claim, send and record; on both databases (the
PostgreSQL run checks deliveries.ordering's SQL, the SQLite run its ORM twin). The same rules
with real worker processes, several at once, are in test_ordering_workers.py.
"""

from __future__ import annotations

import io
import json
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from deliveries import fair
from deliveries.batch import deliver_claimed, deliver_due_batch, deliver_now
from deliveries.bulk import deliveries_lease_due
from deliveries.holds import backlog_park, backlog_unpark
from deliveries.models import Delivery
from deliveries.ordering import (
    deep_heads_per_claim,
    delivery_blocked_by,
    keys_advance,
    keys_stalled,
)
from deliveries.services import deliveries_claim_due, deliveries_replay
from subscriptions.models import Endpoint
from tests.factories import EndpointFactory, EventTypeFactory, TenantFactory
from webhooks import send_event
from webhooks.errors import InvalidOrderingKeyError

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def tenant():
    EventTypeFactory(name="order.updated")
    return TenantFactory()


@pytest.fixture
def endpoint(tenant, receiver):
    return EndpointFactory(tenant=tenant, url=receiver.url("/hook"))


def emit(tenant, step: str, key: str | None = "ord_1", order: str = "ord_1") -> Delivery:
    event = send_event(tenant, "order.updated", {"order": order, "step": step}, ordering_key=key)
    return Delivery.objects.filter(event=event).first()


def steps(receiver, path: str = "/hook") -> list[tuple[str, str]]:
    bodies = [json.loads(r.body)["data"] for r in receiver.requests(path)]
    return [(body["order"], body["step"]) for body in bodies]


def drain(rounds: int = 20) -> None:
    """Run batches until nothing is due, past retry delays (the test schedule is short)."""
    for _ in range(rounds):
        Delivery.objects.filter(status=Delivery.Status.PENDING, waiting_on_key=False).exclude(
            next_attempt_at=None
        ).update(next_attempt_at=timezone.now())
        if not deliver_due_batch(limit=50):
            return


def test_only_the_oldest_delivery_of_a_key_is_due_the_rest_wait(tenant, endpoint):
    created, paid, shipped = (emit(tenant, step) for step in ("created", "paid", "shipped"))
    assert (created.waiting_on_key, created.ordering_key) == (False, "ord_1")
    assert created.next_attempt_at is not None
    for waiting in (paid, shipped):
        assert waiting.status == Delivery.Status.PENDING
        assert waiting.waiting_on_key
        assert waiting.next_attempt_at is None
        assert delivery_blocked_by(waiting) == created.id
    assert delivery_blocked_by(created) is None
    leased = deliveries_lease_due(
        limit=10, at=timezone.now(), skip_endpoint_ids=[], token="t", expires_at=timezone.now()
    )
    assert leased.delivery_ids == [created.id]


def test_a_claim_takes_a_head_and_the_run_behind_it_sent_in_order_in_one_batch(
    tenant, endpoint, receiver
):
    created, paid, shipped = (emit(tenant, step) for step in ("created", "paid", "shipped"))
    claim = deliveries_claim_due(limit=10)
    assert [d.id for d in claim.deliveries] == [created.id, paid.id, shipped.id]
    deliver_claimed(claim)
    assert steps(receiver) == [("ord_1", "created"), ("ord_1", "paid"), ("ord_1", "shipped")]
    assert set(Delivery.objects.values_list("status", "waiting_on_key")) == {
        (Delivery.Status.SUCCEEDED, False)
    }


def test_what_waits_behind_a_failed_send_in_the_batch_is_not_sent(tenant, endpoint, receiver):
    receiver.script("/hook", [200, 200, 500])  # the heads go, then "paid" fails
    created, paid, shipped, delivered = (
        emit(tenant, step) for step in ("created", "paid", "shipped", "delivered")
    )
    other = emit(tenant, "created", key="ord_2", order="ord_2")
    assert deliver_due_batch(limit=10) == 5

    assert steps(receiver) == [("ord_1", "created"), ("ord_2", "created"), ("ord_1", "paid")]
    rows = {d.id: d for d in Delivery.objects.all()}
    assert rows[created.id].status == rows[other.id].status == Delivery.Status.SUCCEEDED
    # The failed one is its key's head now, retrying; the rest wait behind it, released.
    assert (rows[paid.id].status, rows[paid.id].waiting_on_key) == (Delivery.Status.PENDING, False)
    assert rows[paid.id].next_attempt_at is not None
    for waiting in (rows[shipped.id], rows[delivered.id]):
        assert waiting.waiting_on_key
        assert (waiting.leased_by, waiting.next_attempt_at) == ("", None)
    drain()
    assert [step for order, step in steps(receiver) if order == "ord_1"] == [
        "created", "paid", "paid", "shipped", "delivered",
    ]  # fmt: skip


@pytest.fixture(params=[False, True], ids=["in-due-order", "fair"])
def either_claim(request, monkeypatch, settings):
    settings.WEBHOOKS_FAIR_CLAIMS = request.param
    monkeypatch.setattr(fair, "_rotation", fair._Rotation(contended=request.param))


@pytest.mark.usefixtures("either_claim")
def test_a_claim_leaves_most_keys_with_a_backlog_to_other_workers(tenant, endpoint):
    for n in range(3):
        for key in ("a", "b", "c", "d"):
            emit(tenant, f"step-{n}", key=key, order=key)
    limit = 8  # one head with its run fills it
    assert deep_heads_per_claim(limit) == 1
    first = deliveries_claim_due(limit=limit)
    assert [(d.ordering_key, d.event.payload["step"]) for d in first.deliveries] == [
        ("a", "step-0"), ("a", "step-1"), ("a", "step-2"),
    ]  # fmt: skip
    second = deliveries_claim_due(limit=limit)  # another worker's: the next key
    assert [d.ordering_key for d in second.deliveries] == ["b", "b", "b"]


def test_only_an_unbroken_run_behind_the_head_is_leased(tenant, endpoint):
    head = emit(tenant, "created")
    held = emit(tenant, "paid")
    emit(tenant, "shipped")
    Delivery.objects.filter(id=held.id).update(
        leased_by="another", lease_expires_at=timezone.now() + timedelta(minutes=1)
    )
    claim = deliveries_claim_due(limit=10)
    assert [d.id for d in claim.deliveries] == [head.id]


def test_a_key_is_delivered_in_emission_order_one_at_a_time(tenant, endpoint, receiver):
    for step in ("created", "paid", "shipped", "delivered"):
        emit(tenant, step)
    drain()
    assert steps(receiver) == [
        ("ord_1", "created"), ("ord_1", "paid"), ("ord_1", "shipped"), ("ord_1", "delivered"),
    ]  # fmt: skip
    assert not Delivery.objects.filter(status=Delivery.Status.PENDING).exists()


def test_a_failing_head_holds_its_own_key_only(tenant, endpoint, receiver):
    receiver.script("/hook", [500])  # the first request: ord_1's head
    emit(tenant, "created", order="ord_1")
    emit(tenant, "paid", order="ord_1")
    emit(tenant, "created", key="ord_2", order="ord_2")
    emit(tenant, "unkeyed", key=None, order="-")
    # ord_1's head, ord_2's head, the unkeyed one, and "paid", claimed behind ord_1's head
    assert deliver_due_batch(limit=10) == 4
    assert set(steps(receiver)) == {("ord_1", "created"), ("ord_2", "created"), ("-", "unkeyed")}
    receiver.script("/hook", [500])  # and its retry
    drain()
    ord_1 = [step for order, step in steps(receiver) if order == "ord_1"]
    assert ord_1 == ["created", "created", "created", "paid"]  # failed twice, then in order


def test_a_dead_lettered_head_lets_the_next_of_its_key_go(tenant, endpoint, receiver, settings):
    settings.WEBHOOKS_RETRY_SCHEDULE = (0.0,)
    receiver.script("/hook", [500, 500])
    head = emit(tenant, "created")
    second = emit(tenant, "paid")
    drain()
    head.refresh_from_db()
    second.refresh_from_db()
    assert head.status == Delivery.Status.FAILED
    assert second.status == Delivery.Status.SUCCEEDED
    assert steps(receiver) == [("ord_1", "created")] * 2 + [("ord_1", "paid")]


def test_a_replayed_dead_letter_goes_back_to_the_head_of_its_key(
    tenant, endpoint, receiver, settings
):
    settings.WEBHOOKS_RETRY_SCHEDULE = ()
    receiver.script("/hook", [500])
    dead = emit(tenant, "created")
    assert deliver_due_batch(limit=10) == 1
    later = emit(tenant, "paid")  # the key's new head: nothing of it is pending before it
    assert not later.waiting_on_key
    deliveries_replay(deliveries=Delivery.objects.filter(id=dead.id))

    dead.refresh_from_db()
    later.refresh_from_db()
    assert (dead.status, dead.waiting_on_key) == (Delivery.Status.PENDING, False)
    assert later.waiting_on_key
    assert delivery_blocked_by(later) == dead.id
    drain()
    assert steps(receiver) == [("ord_1", "created"), ("ord_1", "created"), ("ord_1", "paid")]


def test_a_replay_waits_for_the_delivery_of_its_key_in_flight(tenant, endpoint, receiver, settings):
    settings.WEBHOOKS_RETRY_SCHEDULE = ()
    receiver.script("/hook", [500])
    dead = emit(tenant, "created")
    deliver_due_batch(limit=10)
    later = emit(tenant, "paid")
    claim = deliveries_claim_due(limit=10)  # a worker holds the key's head
    assert [d.id for d in claim.deliveries] == [later.id]

    deliveries_replay(deliveries=Delivery.objects.filter(id=dead.id))
    dead.refresh_from_db()
    assert dead.waiting_on_key  # not sent alongside the one in flight
    assert deliveries_claim_due(limit=10).deliveries == []


def test_keys_are_per_endpoint(tenant, endpoint, receiver):
    EndpointFactory(tenant=tenant, url=receiver.url("/other"))
    emit(tenant, "created")
    emit(tenant, "paid")
    # One delivery of the key per endpoint is due: each endpoint has its own line. (A batch of 64
    # takes two heads with deliveries waiting behind them: deep_heads_per_claim.)
    claim = deliveries_claim_due(limit=64)
    heads = [d for d in claim.deliveries if not d.waiting_on_key]
    assert sorted(d.endpoint.url for d in heads) == sorted(
        [receiver.url("/hook"), receiver.url("/other")]
    )


def test_a_new_head_waits_for_an_open_circuit_and_a_disabled_endpoint(tenant, endpoint):
    head = emit(tenant, "created")
    second = emit(tenant, "paid")
    until = timezone.now() + timedelta(minutes=5)
    Endpoint.objects.filter(id=endpoint.id).update(circuit_open_until=until)
    Delivery.objects.filter(id=head.id).update(status=Delivery.Status.SUCCEEDED)
    assert keys_advance([(endpoint.id, "ord_1")]) == [second.id]
    second.refresh_from_db()
    assert not second.waiting_on_key
    assert second.next_attempt_at == until

    third = emit(tenant, "shipped")
    Endpoint.objects.filter(id=endpoint.id).update(circuit_open_until=None, is_active=False)
    backlog_park(endpoint_ids=[endpoint.id])
    Delivery.objects.filter(id=second.id).update(status=Delivery.Status.SUCCEEDED)
    keys_advance([(endpoint.id, "ord_1")])
    third.refresh_from_db()
    assert not third.waiting_on_key
    assert third.next_attempt_at is None


def test_enabling_an_endpoint_wakes_its_heads_not_what_waits_behind_them(tenant, endpoint):
    head = emit(tenant, "created")
    second = emit(tenant, "paid")
    backlog_park(endpoint_ids=[endpoint.id])
    backlog_unpark(endpoint_ids=[endpoint.id], at=timezone.now())
    head.refresh_from_db()
    second.refresh_from_db()
    assert head.next_attempt_at is not None
    assert second.waiting_on_key
    assert second.next_attempt_at is None


def test_attempting_a_waiting_delivery_now_is_refused(tenant, endpoint, receiver):
    emit(tenant, "created")
    second = emit(tenant, "paid")
    assert deliver_now(second.id) is None
    assert receiver.requests() == []


def test_a_stalled_key_is_found_and_advanced_by_the_sweeper(tenant, endpoint, receiver):
    head = emit(tenant, "created")
    second = emit(tenant, "paid")
    emit(tenant, "created", key="ord_2", order="ord_2")
    # A worker finished the head and died before it advanced the key.
    Delivery.objects.filter(id=head.id).update(status=Delivery.Status.SUCCEEDED)
    assert keys_stalled() == [(endpoint.id, "ord_1")]

    from deliveries.tasks import sweep_due_deliveries

    sweep_due_deliveries()
    second.refresh_from_db()
    assert not second.waiting_on_key
    assert second.next_attempt_at is not None
    assert keys_stalled() == []


def test_only_keys_whose_head_waits_are_stalled(tenant, endpoint, receiver):
    other = EndpointFactory(tenant=tenant, url=receiver.url("/other"))
    for key in ("k1", "k2", "k3"):
        emit(tenant, "created", key=key)  # a head at each endpoint
        emit(tenant, "paid", key=key)
    emit(tenant, "created", key=None)
    # k1's and k3's heads finished without an advance, at the first endpoint only.
    finished = Delivery.objects.filter(endpoint=endpoint, ordering_key__in=["k1", "k3"])
    finished.filter(waiting_on_key=False).update(status=Delivery.Status.SUCCEEDED)

    assert keys_stalled() == [(endpoint.id, "k1"), (endpoint.id, "k3")]
    assert keys_stalled(limit=1) == [(endpoint.id, "k1")]
    keys_advance(keys_stalled())
    assert keys_stalled() == []
    assert Delivery.objects.filter(endpoint=other, waiting_on_key=True).count() == 3


def test_advancing_is_idempotent_and_never_lets_two_of_a_key_go(tenant, endpoint):
    head = emit(tenant, "created")
    emit(tenant, "paid")
    for _ in range(3):
        assert keys_advance([(endpoint.id, "ord_1")]) == []
    going = Delivery.objects.filter(waiting_on_key=False, status=Delivery.Status.PENDING)
    assert list(going.values_list("id", flat=True)) == [head.id]


def test_unkeyed_events_are_never_held(tenant, endpoint):
    first = emit(tenant, "created", key=None)
    second = emit(tenant, "created", key="")
    assert not first.waiting_on_key
    assert not second.waiting_on_key
    assert (first.ordering_key, second.ordering_key) == ("", "")
    assert keys_advance([(endpoint.id, "")]) == []


@pytest.mark.parametrize(
    "key",
    ["x" * 129, "has space", "tab\tkey", "nul\x00", "naïve", "new\nline", "\ud800", 42, ["ord"]],
)
def test_a_bad_ordering_key_is_refused_and_nothing_is_stored(tenant, endpoint, key):
    with pytest.raises(InvalidOrderingKeyError, match="visible ASCII"):
        send_event(tenant, "order.updated", {"n": 1}, ordering_key=key)
    assert not Delivery.objects.exists()


def test_the_replay_command_keeps_keys_in_order(tenant, endpoint, receiver, settings):
    settings.WEBHOOKS_RETRY_SCHEDULE = ()
    receiver.script("/hook", [500, 500])
    emit(tenant, "created")
    emit(tenant, "paid")
    drain()  # both dead-lettered, in order
    assert Delivery.objects.filter(status=Delivery.Status.FAILED).count() == 2
    call_command("replay", "--endpoint", str(endpoint.id), stdout=io.StringIO())
    drain()
    assert steps(receiver)[2:] == [("ord_1", "created"), ("ord_1", "paid")]


def test_an_emit_whose_key_cannot_be_advanced_still_succeeds(tenant, endpoint, monkeypatch, caplog):
    from django.db import OperationalError

    from deliveries import ordering

    def broken(*args, **kwargs):
        raise OperationalError("the database went away")

    emit(tenant, "created")
    monkeypatch.setattr(ordering, "keys_advance", broken)
    waiting = emit(tenant, "paid")  # advanced after the commit: the failure is only logged
    assert waiting.waiting_on_key
    assert "the sweeper will" in caplog.text
