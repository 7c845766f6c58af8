"""Endpoint health: disabling on 410 Gone or after days without a success, telling people, and
enabling again. In-process batches against a real receiver."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from deliveries.batch import deliver_due_batch
from deliveries.models import Delivery
from subscriptions.models import Endpoint
from subscriptions.services import endpoint_disable, endpoint_enable
from subscriptions.signals import endpoint_disabled
from tests.factories import EndpointFactory, EventTypeFactory, TenantFactory
from webhooks import send_event

pytestmark = pytest.mark.django_db(transaction=True)

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
OPERATOR = "Ops <ops@example.com>"


@pytest.fixture
def tenant(django_user_model):
    EventTypeFactory(name="order.paid")
    tenant = TenantFactory()
    tenant.members.add(
        django_user_model.objects.create_user("alice", email="alice@example.com"),
        django_user_model.objects.create_user("bob", email=""),
    )
    return tenant


@pytest.fixture(autouse=True)
def health_settings(settings):
    settings.WEBHOOKS_OPERATOR_EMAILS = [OPERATOR]
    settings.WEBHOOKS_DISABLE_AFTER_DAYS = 5.0
    settings.WEBHOOKS_RETRY_SCHEDULE = (1.0,) * 20
    return settings


@pytest.fixture
def disabled_signals():
    """Every `endpoint_disabled` signal sent during the test, as (endpoint id, reason)."""
    sent: list[tuple[int, str]] = []

    def on_disabled(sender: type, endpoint: Endpoint, reason: str, **kwargs: object) -> None:
        assert sender is Endpoint
        assert not endpoint.is_active
        sent.append((endpoint.id, reason))

    endpoint_disabled.connect(on_disabled, weak=False)
    yield sent
    endpoint_disabled.disconnect(on_disabled)


def batch_at(moment: datetime) -> int:
    with time_machine.travel(moment, tick=False):
        return deliver_due_batch(limit=10)


def assert_told_once(endpoint: Endpoint, disabled_signals, mailoutbox, reason_part: str) -> None:
    endpoint.refresh_from_db()
    assert not endpoint.is_active
    assert endpoint.disabled_at is not None
    assert reason_part in endpoint.disabled_reason
    assert disabled_signals == [(endpoint.id, endpoint.disabled_reason)]
    assert len(mailoutbox) == 1
    mail = mailoutbox[0]
    assert sorted(mail.to) == sorted(["alice@example.com", OPERATOR])
    assert endpoint.url in mail.subject
    assert endpoint.disabled_reason in mail.body


# --- 410 Gone -----------------------------------------------------------------------------------


def test_410_disables_the_endpoint_at_once_and_tells_people_exactly_once(
    tenant, receiver, disabled_signals, mailoutbox
):
    endpoint = EndpointFactory(tenant=tenant, url=receiver.url("/gone"))
    receiver.script("/gone", [410, 500, 410])
    for n in range(3):
        send_event(tenant, "order.paid", {"n": n})

    assert deliver_due_batch(limit=10) == 3

    assert_told_once(endpoint, disabled_signals, mailoutbox, "410")
    assert endpoint.failing_since is not None
    statuses = dict(Delivery.objects.values_list("last_response_status", "status").distinct())
    assert statuses == {410: Delivery.Status.FAILED, 500: Delivery.Status.PENDING}
    assert deliver_due_batch(limit=10) == 0
    assert endpoint_disable(endpoint_ids=[endpoint.id], reason="again") == []
    endpoint.refresh_from_db()
    assert "410" in endpoint.disabled_reason
    assert len(disabled_signals) == 1
    assert len(mailoutbox) == 1


def test_410_on_an_endpoint_already_past_the_failure_window_tells_people_once(
    tenant, receiver, disabled_signals, mailoutbox
):
    endpoint = EndpointFactory(tenant=tenant, url=receiver.url("/gone"))
    Endpoint.objects.filter(id=endpoint.id).update(failing_since=T0 - timedelta(days=30))
    receiver.script("/gone", [410])
    with time_machine.travel(T0, tick=False):
        send_event(tenant, "order.paid", {})

    assert batch_at(T0) == 1

    assert_told_once(endpoint, disabled_signals, mailoutbox, "410 Gone")
    assert "days" not in endpoint.disabled_reason


# --- days without a success ---------------------------------------------------------------------


def test_endpoint_is_disabled_once_it_has_failed_for_longer_than_the_window(
    tenant, receiver, disabled_signals, mailoutbox
):
    endpoint = EndpointFactory(tenant=tenant, url=receiver.url("/down"))
    receiver.script("/down", [500] * 4)
    with time_machine.travel(T0, tick=False):
        event = send_event(tenant, "order.paid", {})

    assert batch_at(T0) == 1
    endpoint.refresh_from_db()
    assert endpoint.failing_since == T0
    assert endpoint.is_active

    assert batch_at(T0 + timedelta(days=4)) == 1
    endpoint.refresh_from_db()
    assert endpoint.is_active
    assert endpoint.failing_since == T0
    assert disabled_signals == []
    assert mailoutbox == []

    assert batch_at(T0 + timedelta(days=5, seconds=1)) == 1
    assert_told_once(endpoint, disabled_signals, mailoutbox, "5 days")
    assert endpoint.disabled_at == T0 + timedelta(days=5, seconds=1)
    delivery = Delivery.objects.get(event=event)
    assert delivery.status == Delivery.Status.PENDING
    assert delivery.attempt_count == 3

    assert batch_at(T0 + timedelta(days=6)) == 0
    assert len(disabled_signals) == 1
    assert len(mailoutbox) == 1
    assert len(receiver.requests("/down")) == 3


def test_a_success_resets_the_failure_window(tenant, receiver, disabled_signals, mailoutbox):
    endpoint = EndpointFactory(tenant=tenant, url=receiver.url("/flaky"))
    receiver.script("/flaky", [500, 200, 500, 500, 500])
    with time_machine.travel(T0, tick=False):
        send_event(tenant, "order.paid", {"n": 1})
    assert batch_at(T0) == 1

    assert batch_at(T0 + timedelta(days=3)) == 1  # the retry succeeds
    endpoint.refresh_from_db()
    assert endpoint.failing_since is None
    assert endpoint.last_success_at == T0 + timedelta(days=3)

    with time_machine.travel(T0 + timedelta(days=4), tick=False):
        send_event(tenant, "order.paid", {"n": 2})
    assert batch_at(T0 + timedelta(days=4)) == 1
    endpoint.refresh_from_db()
    assert endpoint.failing_since == T0 + timedelta(days=4)

    assert batch_at(T0 + timedelta(days=5, seconds=1)) == 1  # five days after T0, not after T0+4
    endpoint.refresh_from_db()
    assert endpoint.is_active
    assert endpoint.failing_since == T0 + timedelta(days=4)
    assert disabled_signals == []

    assert batch_at(T0 + timedelta(days=9, seconds=1)) == 1
    assert_told_once(endpoint, disabled_signals, mailoutbox, "5 days")
    assert endpoint.last_success_at == T0 + timedelta(days=3)


def test_disable_after_zero_days_never_disables(
    tenant, receiver, settings, disabled_signals, mailoutbox
):
    settings.WEBHOOKS_DISABLE_AFTER_DAYS = 0
    endpoint = EndpointFactory(tenant=tenant, url=receiver.url("/down"))
    receiver.script("/down", [500] * 3)
    with time_machine.travel(T0, tick=False):
        send_event(tenant, "order.paid", {})

    for days in (0, 30, 365):
        assert batch_at(T0 + timedelta(days=days)) == 1

    endpoint.refresh_from_db()
    assert endpoint.is_active
    assert endpoint.failing_since == T0
    assert endpoint.disabled_reason == ""
    assert disabled_signals == []
    assert mailoutbox == []


# --- disabled endpoints wait; enabling resumes them ---------------------------------------------


def test_disabled_endpoint_keeps_its_pending_deliveries_until_it_is_enabled(
    tenant, receiver, disabled_signals
):
    endpoint = EndpointFactory(tenant=tenant, url=receiver.url("/hook"))
    receiver.script("/hook", [410])
    gone, *waiting = [send_event(tenant, "order.paid", {"n": n}) for n in range(3)]

    assert deliver_due_batch(limit=1) == 1
    endpoint.refresh_from_db()
    assert not endpoint.is_active
    assert endpoint.failing_since is not None
    assert deliver_due_batch(limit=10) == 0
    assert len(receiver.requests("/hook")) == 1
    assert set(Delivery.objects.filter(event__in=waiting).values_list("status", flat=True)) == {
        Delivery.Status.PENDING
    }

    endpoint_enable(endpoint=endpoint)

    assert endpoint.is_active
    assert endpoint.disabled_reason == ""
    assert endpoint.disabled_at is None
    assert endpoint.failing_since is None
    assert deliver_due_batch(limit=10) == 2
    assert set(Delivery.objects.filter(event__in=waiting).values_list("status", flat=True)) == {
        Delivery.Status.SUCCEEDED
    }
    assert Delivery.objects.get(event=gone).status == Delivery.Status.FAILED
    assert len(receiver.requests("/hook")) == 3
    endpoint.refresh_from_db()
    assert endpoint.failing_since is None
    assert endpoint.last_success_at is not None
    assert len(disabled_signals) == 1
