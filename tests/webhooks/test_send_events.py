"""send_events: a batch in one transaction, with a result per item (both databases)."""

from __future__ import annotations

import pytest
from django.db import transaction
from django.test import override_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deliveries.models import Delivery
from subscriptions.models import VERIFICATION_EVENT_TYPE, EventType
from tests.factories import EndpointFactory, EventTypeFactory, TenantFactory
from webhooks import send_event, send_events
from webhooks.batches import MAX_BATCH_EVENTS, ItemStatus, RejectionCode
from webhooks.errors import BatchTooLargeError, UnknownTenantError
from webhooks.models import Event
from webhooks.wire import message

pytestmark = pytest.mark.django_db

CREATED, DUPLICATE, REJECTED = ItemStatus.CREATED, ItemStatus.DUPLICATE, ItemStatus.REJECTED


@pytest.fixture
def paid():
    return EventTypeFactory(name="order.paid")


@pytest.fixture
def tenant(paid):
    tenant = TenantFactory(slug="acme")
    EndpointFactory(tenant=tenant, url="http://127.0.0.1:9/one")
    EndpointFactory(tenant=tenant, url="http://127.0.0.1:9/two")
    return tenant


def stored() -> dict[str, dict]:
    """Every event, by public id, with its deliveries' endpoints."""
    return {
        event.public_id: {
            "payload": event.payload,
            "key": event.idempotency_key,
            "endpoints": sorted(event.deliveries.values_list("endpoint_id", flat=True)),
        }
        for event in Event.objects.prefetch_related("deliveries")
    }


def statuses(results) -> list[str]:
    return [result.status for result in results]


@pytest.mark.pgbouncer
def test_a_batch_stores_each_event_with_one_delivery_per_subscribed_endpoint(tenant):
    results = send_events(tenant, [("order.paid", {"n": n}) for n in range(3)])

    assert statuses(results) == [CREATED] * 3
    assert [result.index for result in results] == [0, 1, 2]
    assert [result.deliveries for result in results] == [2, 2, 2]
    events = list(Event.objects.order_by("id"))
    assert [event.public_id for event in events] == [result.event_id for result in results]
    assert [event.payload for event in events] == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert Delivery.objects.filter(status=Delivery.Status.PENDING).count() == 6
    assert all(d.next_attempt_at is not None for d in Delivery.objects.all())


def test_mixed_valid_and_invalid_items_store_the_valid_ones_and_say_why_of_the_others(tenant):
    results = send_events(
        tenant,
        [
            ("order.paid", {"n": 0}),
            ("order.unknown", {"n": 1}),
            ("order.paid", ["not", "an", "object"]),
            ("order.paid", {"n": 3}, {"ordering_key": "has space"}),
            ("order.paid", {"n": 4}),
        ],
    )

    assert statuses(results) == [CREATED, REJECTED, REJECTED, REJECTED, CREATED]
    codes = [(result.code, result.field) for result in results]
    assert codes[1:4] == [
        (RejectionCode.UNKNOWN_EVENT_TYPE, "event_type"),
        (RejectionCode.INVALID_PAYLOAD, "payload"),
        (RejectionCode.INVALID_ORDERING_KEY, "ordering_key"),
    ]
    assert "order.unknown" in results[1].detail
    assert "JSON object" in results[2].detail
    assert "visible ASCII" in results[3].detail
    assert sorted(e["payload"]["n"] for e in stored().values()) == [0, 4]
    assert results[1].event_id is results[1].deliveries is None


def test_the_same_idempotency_key_twice_in_a_batch_makes_the_second_a_duplicate(tenant):
    results = send_events(
        tenant,
        [
            ("order.paid", {"n": 1}, {"idempotency_key": "k1"}),
            ("order.paid", {"n": 2}),
            ("order.paid", {"n": 1}, {"idempotency_key": "k1"}),
        ],
    )

    assert statuses(results) == [CREATED, CREATED, DUPLICATE]
    assert results[2].event_id == results[0].event_id
    assert results[2].deliveries is None
    assert Event.objects.filter(idempotency_key="k1").count() == 1
    assert Delivery.objects.count() == 4


def test_keys_used_by_an_earlier_batch_or_send_event_make_duplicates_and_store_nothing(tenant):
    single = send_event(tenant, "order.paid", {"n": 0}, idempotency_key="k0")
    first = send_events(tenant, [("order.paid", {"n": 1}, {"idempotency_key": "k1"})])
    before = stored()

    again = send_events(
        tenant,
        [
            ("order.paid", {"n": 0}, {"idempotency_key": "k0"}),
            ("order.paid", {"n": 1}, {"idempotency_key": "k1"}),
        ],
    )

    assert statuses(again) == [DUPLICATE, DUPLICATE]
    assert [r.event_id for r in again] == [single.public_id, first[0].event_id]
    assert stored() == before


def test_a_key_taken_by_a_different_event_rejects_the_item_within_and_across_batches(tenant):
    send_events(tenant, [("order.paid", {"n": 1}, {"idempotency_key": "k1"})])

    results = send_events(
        tenant,
        [
            ("order.paid", {"n": 99}, {"idempotency_key": "k1"}),  # taken before
            ("order.paid", {"n": 2}, {"idempotency_key": "k2"}),
            ("order.paid", {"n": 3}, {"idempotency_key": "k2"}),  # taken in this batch
            ("order.paid", {"n": 2}, {"idempotency_key": "k2", "ordering_key": "o"}),
        ],
    )

    assert statuses(results) == [REJECTED, CREATED, REJECTED, REJECTED]
    assert {results[n].code for n in (0, 2, 3)} == {RejectionCode.IDEMPOTENCY_CONFLICT}
    assert results[0].detail == "This idempotency key was already used for a different event."
    assert sorted(e["payload"]["n"] for e in stored().values()) == [1, 2]


def test_a_repeated_key_matches_whatever_the_key_order_of_the_payload(tenant):
    send_events(tenant, [("order.paid", {"a": 1, "b": [1.5]}, {"idempotency_key": "k"})])

    [again] = send_events(tenant, [("order.paid", {"b": [1.5], "a": 1}, {"idempotency_key": "k"})])

    assert again.status == DUPLICATE


def test_an_atomic_batch_with_one_rejected_item_stores_nothing_and_says_so_for_every_item(
    tenant,
):
    send_events(tenant, [("order.paid", {"n": 0}, {"idempotency_key": "k0"})])
    before = stored()

    results = send_events(
        tenant,
        [
            ("order.paid", {"n": 1}),
            ("order.paid", {"n": 0}, {"idempotency_key": "k0"}),
            ("order.gone", {"n": 2}),
            ("order.paid", {"n": 3}),
        ],
        atomic=True,
    )

    assert statuses(results) == [REJECTED] * 4
    assert [r.code for r in results] == [
        RejectionCode.NOT_STORED, RejectionCode.NOT_STORED, RejectionCode.UNKNOWN_EVENT_TYPE,
        RejectionCode.NOT_STORED,
    ]  # fmt: skip
    assert results[0].detail == (
        "Not stored: the batch is atomic, and the item at index 2 was rejected."
    )
    assert stored() == before


def test_an_atomic_batch_without_rejections_is_stored_whole(tenant):
    results = send_events(
        tenant,
        [
            ("order.paid", {"n": 1}, {"idempotency_key": "k"}),
            ("order.paid", {"n": 1}, {"idempotency_key": "k"}),
        ],
        atomic=True,
    )

    assert statuses(results) == [CREATED, DUPLICATE]
    assert Event.objects.count() == 1


def test_more_than_the_limit_is_refused_whole(tenant):
    items = [("order.paid", {"n": n}) for n in range(MAX_BATCH_EVENTS + 1)]

    with pytest.raises(BatchTooLargeError, match="at most 500 events, not 501"):
        send_events(tenant, items)

    assert not Event.objects.exists()


def test_the_limit_itself_is_accepted(tenant):
    results = send_events(tenant, [("order.paid", {"n": n}) for n in range(MAX_BATCH_EVENTS)])

    assert statuses(results) == [CREATED] * MAX_BATCH_EVENTS
    assert Delivery.objects.count() == 2 * MAX_BATCH_EVENTS


def test_an_empty_batch_stores_nothing(tenant):
    assert send_events(tenant, []) == []
    assert not Event.objects.exists()


@pytest.mark.parametrize(
    "item",
    [
        "order.paid",
        ("order.paid",),
        ("order.paid", {}, {}, {}),
        ("order.paid", {}, "k"),
        ("order.paid", {}, {"tenant": "other"}),
        (42, {}),
        None,
    ],
)
def test_a_malformed_item_is_rejected_alone(tenant, item):
    results = send_events(tenant, [item, ("order.paid", {"n": 1})])

    assert statuses(results) == [REJECTED, CREATED]
    assert results[0].code == RejectionCode.INVALID_ITEM
    assert results[0].detail


@pytest.mark.parametrize(
    ("item", "code"),
    [
        (("order.paid\x00", {}), RejectionCode.UNKNOWN_EVENT_TYPE),
        (("order.paid\ud800", {}), RejectionCode.UNKNOWN_EVENT_TYPE),
        (("x" * 10_000, {}), RejectionCode.UNKNOWN_EVENT_TYPE),
        (("order.paid", {"k": "a\x00"}), RejectionCode.INVALID_PAYLOAD),
        (("order.paid", {"k\x00": 1}), RejectionCode.INVALID_PAYLOAD),
        (("order.paid", {"k": "\udfff"}), RejectionCode.INVALID_PAYLOAD),
        (("order.paid", {"k": float("nan")}), RejectionCode.INVALID_PAYLOAD),
        (("order.paid", {"k": {1, 2}}), RejectionCode.INVALID_PAYLOAD),
        (("order.paid", {"k": "x" * 300}), RejectionCode.PAYLOAD_TOO_LARGE),
        (("order.paid", {}, {"idempotency_key": "a\x00"}), RejectionCode.INVALID_IDEMPOTENCY_KEY),
        (("order.paid", {}, {"idempotency_key": "\ud800"}), RejectionCode.INVALID_IDEMPOTENCY_KEY),
        (("order.paid", {}, {"idempotency_key": "k" * 256}), RejectionCode.INVALID_IDEMPOTENCY_KEY),
        (("order.paid", {}, {"idempotency_key": ""}), RejectionCode.INVALID_IDEMPOTENCY_KEY),
        (("order.paid", {}, {"idempotency_key": 7}), RejectionCode.INVALID_IDEMPOTENCY_KEY),
        (("order.paid", {}, {"ordering_key": "a\x00"}), RejectionCode.INVALID_ORDERING_KEY),
        (("order.paid", {}, {"ordering_key": "é"}), RejectionCode.INVALID_ORDERING_KEY),
        (("order.paid", {}, {"ordering_key": "k" * 129}), RejectionCode.INVALID_ORDERING_KEY),
        (("order.paid", {}, {"ordering_key": ["k"]}), RejectionCode.INVALID_ORDERING_KEY),
    ],
)
@override_settings(WEBHOOKS_MAX_PAYLOAD_BYTES=200)
def test_hostile_values_reject_their_item_with_a_clear_reason_and_store_nothing_of_it(
    tenant, item, code
):
    results = send_events(tenant, [item, ("order.paid", {"n": 1})])

    assert statuses(results) == [REJECTED, CREATED]
    assert results[0].code == code
    assert len(results[0].detail) < 300
    assert [e["payload"] for e in stored().values()] == [{"n": 1}]


def test_a_payload_failing_its_types_schema_is_rejected_naming_where(tenant, paid):
    EventType.objects.filter(id=paid.id).update(schema={"type": "object", "required": ["order_id"]})
    paid.refresh_from_db()
    paid.save()  # forgets the cached catalog entry

    results = send_events(tenant, [("order.paid", {}), ("order.paid", {"order_id": "o1"})])

    assert statuses(results) == [REJECTED, CREATED]
    assert results[0].code == RejectionCode.INVALID_PAYLOAD
    assert "does not match the schema" in results[0].detail


def test_an_event_type_archived_since_it_was_cached_is_looked_up_again_and_refused(tenant, paid):
    send_events(tenant, [("order.paid", {"n": 0})])  # the catalog caches order.paid
    EventType.objects.filter(id=paid.id).update(archived=True)  # no signal: the cache is stale

    results = send_events(tenant, [("order.paid", {"n": 1})])

    assert results[0].code == RejectionCode.UNKNOWN_EVENT_TYPE
    assert "archived" in results[0].detail
    assert Event.objects.count() == 1


def test_the_ownership_challenges_type_is_never_emitted_in_a_batch(tenant):
    EventTypeFactory(name=VERIFICATION_EVENT_TYPE)

    results = send_events(tenant, [(VERIFICATION_EVENT_TYPE, {"challenge": "forged"})])

    assert results[0].code == RejectionCode.UNKNOWN_EVENT_TYPE
    assert "ownership challenge" in results[0].detail
    assert not Event.objects.exists()


def test_another_tenants_keys_and_endpoints_are_out_of_reach(tenant):
    other = TenantFactory(slug="other")
    theirs = EndpointFactory(tenant=other, url="http://127.0.0.1:9/theirs")
    send_event(other, "order.paid", {"secret": 1}, idempotency_key="shared")

    [result] = send_events(tenant, [("order.paid", {"n": 1}, {"idempotency_key": "shared"})])

    assert result.status == CREATED  # not a duplicate of the other tenant's event
    event = Event.objects.get(public_id=result.event_id)
    assert event.tenant == tenant
    assert theirs.id not in event.deliveries.values_list("endpoint_id", flat=True)
    assert result.deliveries == 2


def test_a_tenant_is_given_by_slug_and_must_be_active(tenant):
    assert send_events("acme", [("order.paid", {})])[0].status == CREATED
    inactive = TenantFactory(slug="gone", is_active=False)
    with pytest.raises(UnknownTenantError):
        send_events(inactive, [("order.paid", {})])
    with pytest.raises(UnknownTenantError):
        send_events("nobody", [("order.paid", {})])


def test_payloads_are_sent_as_send_event_sends_them(tenant):
    [result] = send_events(tenant, [("order.paid", {"zeta": 1, "alpha": [2.5, "Zoë"]})])

    body = message(Event.objects.get(public_id=result.event_id), "order.paid").content

    assert body.endswith(',"data":{"zeta":1,"alpha":[2.5,"Zoë"]}}'.encode())


def test_a_batch_in_a_transaction_that_rolls_back_stores_nothing(tenant):
    with transaction.atomic():
        send_events(tenant, [("order.paid", {"n": 1})])
        transaction.set_rollback(True)

    assert not Event.objects.exists()


# --- any input at all -----------------------------------------------------------------------------

text = st.lists(
    st.sampled_from(["a", "é", " ", ".", "\x00", "\ud800", "\udfff", "order.paid"]), max_size=4
).map("".join)
json_like = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=8,
)
event_types = st.sampled_from(["order.paid", "order.unknown"]) | text
options = st.fixed_dictionaries(
    {},
    optional={
        "idempotency_key": st.sampled_from(["k1", "k2"]) | text | st.integers() | st.none(),
        "ordering_key": st.sampled_from(["o1", "o2"]) | text | st.none(),
    },
)
payloads = st.dictionaries(text, json_like, max_size=3)
items = st.one_of(
    st.tuples(event_types, payloads),
    st.tuples(event_types, payloads | json_like, options),
    json_like,  # not an item at all
)


# Some items twice: a repeated idempotency key is a duplicate, or, with another payload, a conflict.
batches = st.lists(items, max_size=6).map(lambda drawn: drawn + drawn[: len(drawn) // 2])


@given(batch=batches, atomic=st.booleans())
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_any_items_get_one_answer_each_and_exactly_the_created_ones_are_stored(
    tenant, batch, atomic
):
    before = set(Event.objects.values_list("public_id", flat=True))

    results = send_events(tenant, batch, atomic=atomic)

    assert [result.index for result in results] == list(range(len(batch)))
    created = {r.event_id for r in results if r.status == CREATED}
    assert set(Event.objects.values_list("public_id", flat=True)) - before == created
    for result in results:
        if result.status == REJECTED:
            assert result.code in RejectionCode
            assert result.detail
            assert result.event_id is None
        else:
            assert Event.objects.filter(public_id=result.event_id).exists()
    if atomic and any(r.status == REJECTED for r in results):
        assert created == set()
        assert {r.status for r in results} == {REJECTED}
