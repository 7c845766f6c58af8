"""Fill the scratch database with finished deliveries, as a long-running installation has."""

from __future__ import annotations

from django.db import connection

from subscriptions.models import Endpoint, EventType, Tenant
from subscriptions.services import tenant_create

PREFILL_SQL = """
INSERT INTO webhooks_event (public_id, tenant_id, event_type_id, payload, created_at)
SELECT 'msg_prefill' || g, %(tenant)s, %(event_type)s, jsonb_build_object('n', g),
       now() - make_interval(secs => %(count)s - g)
FROM generate_series(1, %(count)s) AS g;

INSERT INTO deliveries_delivery (event_id, endpoint_id, status, attempt_count, next_attempt_at,
    next_trigger, leased_by, last_response_status, last_error, last_attempt_at, created_at,
    finished_at)
SELECT e.id, %(endpoint)s, 'succeeded', 1, NULL, 'scheduled', '', 200, '', e.created_at,
       e.created_at, e.created_at
FROM webhooks_event e WHERE e.tenant_id = %(tenant)s;

INSERT INTO deliveries_attempt (delivery_id, number, trigger, started_at, duration_ms, url,
    request_headers, response_status, response_headers, response_body, error_kind, error_message)
SELECT d.id, 1, 'scheduled', d.created_at, 12.5, 'https://archive.invalid/hook',
       '{"webhook-id": "msg_prefill"}', 200, '{"content-length": "0"}', '', '', ''
FROM deliveries_delivery d WHERE d.endpoint_id = %(endpoint)s;
"""
# A long-running installation's tables have been vacuumed and checkpointed; measuring in the
# wake of a bulk load would time autovacuum and the checkpoint instead.
SETTLE = ("VACUUM ANALYZE", "CHECKPOINT")


def prefill_finished_deliveries(*, tenant: Tenant, count: int) -> None:
    """Store `count` succeeded deliveries, each with its event and attempt, for another tenant.

    They are finished: no claim or sweep should ever read them, which is what this measures.
    """
    archive = tenant_create(slug=f"{tenant.slug}-archive", name="Finished deliveries")
    endpoint = Endpoint.objects.create(tenant=archive, url="https://archive.invalid/hook")
    event_type = EventType.objects.get(name="bench.event")
    params = {"tenant": archive.id, "event_type": event_type.id, "endpoint": endpoint.id,
              "count": count}  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute(PREFILL_SQL, params)
        for statement in SETTLE:
            cursor.execute(statement)
