"""Channels: an event sent with channels reaches only the subscribed endpoints that share one;
without channels, every subscribed endpoint. Single and batch emits, on whichever database the
suite has (the SQL statements on PostgreSQL, their ORM twins on SQLite)."""

from __future__ import annotations

import pytest

from deliveries.models import Delivery
from tests.factories import EndpointFactory, EventTypeFactory, TenantFactory
from webhooks import send_event, send_events
from webhooks.batches import ItemStatus, RejectionCode
from webhooks.errors import InvalidChannelsError
from webhooks.models import Event

pytestmark = pytest.mark.django_db


@pytest.fixture
def tenant():
    return TenantFactory()


@pytest.fixture
def endpoints(tenant):
    """An endpoint on no channel, one on "eu", one on "eu" and "us", one on "us" for another
    event type, and one of another tenant on "eu"."""
    EventTypeFactory(name="order.paid")
    shipped = EventTypeFactory(name="order.shipped")
    return {
        "none": EndpointFactory(tenant=tenant, url="http://127.0.0.1:9/none"),
        "eu": EndpointFactory(tenant=tenant, url="http://127.0.0.1:9/eu", channels=["eu"]),
        "eu+us": EndpointFactory(
            tenant=tenant, url="http://127.0.0.1:9/both", channels=["eu", "us"]
        ),
        "us shipped": EndpointFactory(
            tenant=tenant, url="http://127.0.0.1:9/us", channels=["us"], event_types=[shipped]
        ),
        "elsewhere": EndpointFactory(url="http://127.0.0.1:9/other", channels=["eu"]),
    }


def reached(endpoints, event_id) -> set[str]:
    names = {endpoint.id: name for name, endpoint in endpoints.items()}
    endpoint_ids = Delivery.objects.filter(event__public_id=event_id).values_list(
        "endpoint_id", flat=True
    )
    return {names[endpoint_id] for endpoint_id in endpoint_ids}


def test_an_event_without_channels_reaches_every_subscribed_endpoint(tenant, endpoints):
    event = send_event(tenant, "order.paid", {"order_id": "o-1"})

    assert reached(endpoints, event.public_id) == {"none", "eu", "eu+us"}
    assert event.channels == []


def test_an_event_with_channels_reaches_only_the_endpoints_that_share_one(tenant, endpoints):
    on_eu = send_event(tenant, "order.paid", {"order_id": "o-1"}, channels=["eu"])
    on_us = send_event(tenant, "order.paid", {"order_id": "o-2"}, channels=["us", "apac"])
    on_none = send_event(tenant, "order.paid", {"order_id": "o-3"}, channels=["apac"])

    assert reached(endpoints, on_eu.public_id) == {"eu", "eu+us"}
    assert reached(endpoints, on_us.public_id) == {"eu+us"}
    assert reached(endpoints, on_none.public_id) == set()
    assert Event.objects.get(public_id=on_us.public_id).channels == ["us", "apac"]


def test_a_channel_narrows_the_event_types_never_widens_them(tenant, endpoints):
    event = send_event(tenant, "order.shipped", {"order_id": "o-1"}, channels=["us"])

    assert reached(endpoints, event.public_id) == {"eu+us", "us shipped"}


def test_channels_and_a_filter_must_both_let_the_event_through(tenant, endpoints):
    for endpoint in (endpoints["eu"], endpoints["eu+us"]):
        endpoint.filter = "data.amount > 10"
        endpoint.save(update_fields=["filter"])

    big_on_us = send_event(tenant, "order.paid", {"amount": 50}, channels=["us"])
    small_on_eu = send_event(tenant, "order.paid", {"amount": 5}, channels=["eu"])
    big_on_eu = send_event(tenant, "order.paid", {"amount": 50}, channels=["eu"])

    assert reached(endpoints, big_on_us.public_id) == {"eu+us"}
    assert reached(endpoints, small_on_eu.public_id) == set()
    assert reached(endpoints, big_on_eu.public_id) == {"eu", "eu+us"}


def test_a_batch_sends_each_event_on_its_own_channels(tenant, endpoints):
    results = send_events(
        tenant,
        [
            ("order.paid", {"n": 1}),
            ("order.paid", {"n": 2}, {"channels": ["eu"]}),
            ("order.paid", {"n": 3}, {"channels": ["us"], "idempotency_key": "k-3"}),
            ("order.shipped", {"n": 4}, {"channels": ["us"]}),
            ("order.paid", {"n": 5}, {"channels": ["apac"]}),
        ],
    )

    assert [result.status for result in results] == [ItemStatus.CREATED] * 5
    assert [reached(endpoints, result.event_id) for result in results] == [
        {"none", "eu", "eu+us"}, {"eu", "eu+us"}, {"eu+us"}, {"eu+us", "us shipped"}, set(),
    ]  # fmt: skip
    assert [result.deliveries for result in results] == [3, 2, 1, 2, 0]
    assert Event.objects.get(public_id=results[2].event_id).channels == ["us"]


def test_a_batch_with_filters_and_channels_applies_both(tenant, endpoints):
    endpoints["eu+us"].filter = "data.n > 1"
    endpoints["eu+us"].save(update_fields=["filter"])

    results = send_events(
        tenant,
        [
            ("order.paid", {"n": 1}, {"channels": ["eu"]}),
            ("order.paid", {"n": 2}, {"channels": ["us"]}),
        ],
    )

    assert [reached(endpoints, result.event_id) for result in results] == [{"eu"}, {"eu+us"}]


@pytest.mark.parametrize(
    "channels", [["a b"], [""], ["x" * 129], [f"c{n}" for n in range(11)], "eu", [1], ["eu\n"]]
)
def test_bad_channels_are_refused_and_nothing_is_stored(tenant, endpoints, channels):
    with pytest.raises(InvalidChannelsError, match="A channel is 1 to 128"):
        send_event(tenant, "order.paid", {"order_id": "o-1"}, channels=channels)

    [result] = send_events(tenant, [("order.paid", {"n": 1}, {"channels": channels})])
    assert (result.status, result.code, result.field) == (
        ItemStatus.REJECTED, RejectionCode.INVALID_CHANNELS, "channels",
    )  # fmt: skip
    assert not Event.objects.exists()


def test_a_channel_given_twice_counts_once(tenant, endpoints):
    channels = ["eu"] * 5 + [f"c{n}" for n in range(9)]
    event = send_event(tenant, "order.paid", {"order_id": "o-1"}, channels=channels)

    assert event.channels == ["eu", *[f"c{n}" for n in range(9)]]
    assert reached(endpoints, event.public_id) == {"eu", "eu+us"}


def test_a_repeated_idempotency_key_in_a_batch_with_other_channels_is_a_conflict(tenant, endpoints):
    send_event(tenant, "order.paid", {"n": 1}, idempotency_key="k", channels=["eu"])

    same, other = send_events(
        tenant,
        [
            ("order.paid", {"n": 1}, {"idempotency_key": "k", "channels": ["eu"]}),
            ("order.paid", {"n": 1}, {"idempotency_key": "k", "channels": ["us"]}),
        ],
    )

    assert same.status == ItemStatus.DUPLICATE
    assert other.code == RejectionCode.IDEMPOTENCY_CONFLICT
