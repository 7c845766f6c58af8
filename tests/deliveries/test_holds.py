"""A paused or disabled endpoint's backlog is held out of the due index's path, and comes back
when the endpoint does."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from deliveries import wake_flags
from deliveries.batch import deliver_due_batch
from deliveries.bulk import endpoints_mark_healthy
from deliveries.dispatch import WAKE_FLAG
from deliveries.models import Delivery
from subscriptions.models import Endpoint
from subscriptions.services import endpoint_disable, endpoint_enable
from tests.deliveries.pauses import reopen_now
from tests.factories import EndpointFactory, EventTypeFactory, TenantFactory
from webhooks import send_event

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def tenant(settings):
    settings.WEBHOOKS_CIRCUIT_FAILURES = 3
    settings.WEBHOOKS_CIRCUIT_COOLDOWN = 60.0
    settings.WEBHOOKS_RETRY_SCHEDULE = (0.0,) * 10
    EventTypeFactory(name="order.paid")
    return TenantFactory()


def emit(tenant, count: int) -> None:
    for n in range(count):
        send_event(tenant, "order.paid", {"n": n})


def due_now(endpoint: Endpoint) -> int:
    """What a claim walking the due index would have to step over for this endpoint."""
    return Delivery.objects.filter(
        endpoint=endpoint, status=Delivery.Status.PENDING, next_attempt_at__lte=timezone.now()
    ).count()


@pytest.fixture
def paused(tenant, receiver):
    down = EndpointFactory(tenant=tenant, url=receiver.url("/down"))
    receiver.script("/down", [500] * 3)  # then 200 again
    emit(tenant, 10)
    deliver_due_batch(limit=50)
    down.refresh_from_db()
    assert down.circuit_open_until is not None
    return down


def test_an_open_circuit_holds_the_backlog_until_its_pause_ends(paused):
    waiting = Delivery.objects.filter(endpoint=paused, status=Delivery.Status.PENDING)

    assert waiting.count() == 10
    assert due_now(paused) == 0
    assert {d.next_attempt_at for d in waiting} == {paused.circuit_open_until}


def test_events_sent_while_the_circuit_is_open_wait_for_the_pause_too(paused, tenant):
    emit(tenant, 5)

    assert due_now(paused) == 0
    newest = Delivery.objects.filter(endpoint=paused).order_by("-id")[:5]
    assert {d.next_attempt_at for d in newest} == {paused.circuit_open_until}


def test_a_probe_holds_the_rest_of_the_backlog_while_it_is_out(paused, receiver):
    reopen_now(paused)
    receiver.script("/down", [500] * 100)

    assert deliver_due_batch(limit=50) == 1  # the probe fails: the circuit opens again

    paused.refresh_from_db()
    assert paused.circuit_open_until > timezone.now() + timedelta(seconds=100)
    assert due_now(paused) == 0


def test_a_recovered_endpoint_gets_its_backlog_at_once(paused):
    reopen_now(paused)

    assert deliver_due_batch(limit=50) == 1  # the probe succeeds and closes the circuit
    assert due_now(paused) == 9
    assert deliver_due_batch(limit=50) == 9
    assert not Delivery.objects.filter(endpoint=paused, status=Delivery.Status.PENDING).exists()


def test_a_disabled_endpoint_backlog_is_never_due_until_it_is_enabled(tenant, receiver):
    endpoint = EndpointFactory(tenant=tenant, url=receiver.url("/later"))
    emit(tenant, 4)

    endpoint_disable(endpoint_ids=[endpoint.id], reason="Disabled by a test.")

    waiting = Delivery.objects.filter(endpoint=endpoint, status=Delivery.Status.PENDING)
    assert [d.next_attempt_at for d in waiting] == [None] * 4
    assert deliver_due_batch(limit=50) == 0

    endpoint_enable(endpoint=endpoint)

    assert due_now(endpoint) == 4
    assert deliver_due_batch(limit=50) == 4
    assert len(receiver.requests("/later")) == 4


def test_enabling_an_endpoint_with_an_open_circuit_makes_its_backlog_due(paused):
    endpoint_enable(endpoint=paused)

    assert due_now(paused) == 10
    assert deliver_due_batch(limit=50) == 10


def test_the_admin_change_form_cannot_flip_is_active_past_the_backlog(admin_client, tenant):
    endpoint = EndpointFactory(tenant=tenant)
    emit(tenant, 2)
    endpoint_disable(endpoint_ids=[endpoint.id], reason="Disabled by a test.")

    response = admin_client.post(
        f"/admin/subscriptions/endpoint/{endpoint.id}/change/",
        {"tenant": tenant.pk, "url": endpoint.url, "is_active": "on", "headers": "{}",
         "description": "", "payload_format": "json"},
    )  # fmt: skip

    assert response.status_code == 302  # saved
    endpoint.refresh_from_db()
    assert not endpoint.is_active  # enabling is the Enable action's job: it resumes the backlog


def test_a_success_rewrites_a_healthy_endpoint_at_most_once_a_second(tenant):
    now = timezone.now()
    recent = EndpointFactory(tenant=tenant, last_success_at=now - timedelta(milliseconds=300))
    stale = EndpointFactory(tenant=tenant, last_success_at=now - timedelta(seconds=5))
    failing = EndpointFactory(
        tenant=tenant, last_success_at=now, consecutive_failures=2, failing_since=now
    )
    paused_until = now + timedelta(seconds=30)
    paused = EndpointFactory(tenant=tenant, consecutive_failures=9, circuit_open_until=paused_until)

    closed = endpoints_mark_healthy(
        endpoint_ids=[recent.id, stale.id, failing.id, paused.id],
        at=now,
        unchanged_for=timedelta(seconds=1),
    )

    assert closed == {paused.id: paused_until}
    for endpoint in (recent, stale, failing, paused):
        endpoint.refresh_from_db()
    assert recent.last_success_at == now - timedelta(milliseconds=300)  # left alone
    assert stale.last_success_at == now
    assert (failing.consecutive_failures, failing.failing_since) == (0, None)
    assert (paused.circuit_open_until, paused.consecutive_failures) == (None, 0)


def test_events_for_a_paused_endpoint_alone_wake_no_worker(paused, tenant):
    flags = wake_flags.store()
    flags.clear(WAKE_FLAG)

    emit(tenant, 3)  # every subscribed endpoint is paused: nothing could go now

    assert flags.holder(WAKE_FLAG) is None
    EndpointFactory(tenant=tenant)
    emit(tenant, 1)
    assert flags.holder(WAKE_FLAG) is not None
