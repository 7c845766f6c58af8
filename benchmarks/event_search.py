"""The API's event list and payload search with many events stored, for `benchmark_lists`.

A tenant of its own gets `events` events (1,000,000 by default) beside the delivery benchmark's:
every other one `"status": "paid"` (a value half of them hold), each its own `order_id`, one
customer in a thousand, and one event in a hundred of a second type. Each search is timed as a
client calls it, through the API with a key, and the payload search's plan is printed as
PostgreSQL ran it.
"""

from __future__ import annotations

from datetime import timedelta

from django.db import connection
from django.test import Client

from deliveries.sql_names import sql_with_names
from subscriptions.models import EventType, Tenant
from subscriptions.services import api_key_create
from webhooks.event_search import events_matching, payload_match_parsed
from webhooks.models import Event

# Half a second apart, the newest now: the time-range search takes an hour in the middle.
FILL_SQL = """
INSERT INTO {Event.table} ({Event.public_id}, {Event.tenant_id}, {Event.event_type_id},
    {Event.payload}, {Event.ordering_key}, {Event.created_at})
SELECT 'msg_search' || g, %(tenant)s,
       CASE WHEN g %% 100 = 0 THEN %(rare_type)s ELSE %(event_type)s END,
       jsonb_build_object('order_id', 'ord_' || g, 'customer', jsonb_build_object('id', g %% 1000),
                          'status', CASE WHEN g %% 2 = 0 THEN 'paid' ELSE 'refunded' END,
                          'amount', g %% 9973),
       '', now() - make_interval(secs => (%(events)s - g) * 0.5)
FROM generate_series(1, %(events)s) AS g;
ANALYZE {Event.table};
"""
SEARCHES = {
    "events, newest first": "",
    "events by payload, half match": "data.status=paid",
    "events by payload, 1 in 1,000": "data.customer.id=42",
    "events by payload, one match": "data.order_id=ord_{middle}",
    "events by payload, no match": "data.order_id=ord_missing",
    "events by type, 1 in 100": "event_type=search.rare",
    "events by time, an hour": "created_after={start}&created_before={end}",
}
# The payload searches whose plans are printed: the planner must take the GIN index for a rare
# value and none, and may walk the (tenant, created_at) index for a common one.
EXPLAINED = ("data.order_id=ord_{middle}", "data.order_id=ord_missing", "data.status=paid")


def events_fill(events: int) -> Client:
    """Store the events; returns a client holding an API key of their tenant."""
    tenant = Tenant.objects.create(slug="search", name="Event search")
    common = EventType.objects.create(name="search.common")
    rare = EventType.objects.create(name="search.rare")
    with connection.cursor() as cursor:
        cursor.execute(
            sql_with_names(FILL_SQL, Event),
            {"tenant": tenant.id, "event_type": common.id, "rare_type": rare.id, "events": events},
        )
    _, key = api_key_create(tenant=tenant, name="benchmark")
    return Client(HTTP_HOST="localhost", HTTP_AUTHORIZATION=f"Bearer {key}")


def search_paths(events: int) -> dict[str, str]:
    """Each search's URL, its values chosen from the fill."""
    window = Event.objects.filter(public_id=f"msg_search{events // 2}").values_list(
        "created_at", flat=True
    )
    start = window.get()
    values = {
        "middle": events // 2,
        "start": start.isoformat().replace("+00:00", "Z"),
        "end": (start.replace(microsecond=0) + timedelta(hours=1))
        .isoformat()
        .replace("+00:00", "Z"),
    }
    return {name: "/api/v1/events/?" + query.format(**values) for name, query in SEARCHES.items()}


def payload_search_plans(events: int) -> dict[str, str]:
    """EXPLAIN (ANALYZE, BUFFERS) of the first page of each EXPLAINED search, built by the API's
    own query code."""
    tenant = Tenant.objects.get(slug="search")
    plans = {}
    for query in EXPLAINED:
        name, value = query.format(middle=events // 2).split("=")
        match = payload_match_parsed(name, value)
        found = events_matching(Event.objects.filter(tenant=tenant), match)
        page = found.order_by("-created_at", "-id")[:51]
        plans[f"{name}={value}"] = page.explain(analyze=True, buffers=True)
    return plans
