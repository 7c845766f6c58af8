"""Fill the scratch database with finished deliveries, as a long-running installation has."""

from __future__ import annotations

from datetime import timedelta

from django.db import connection
from django.utils import timezone

from benchmarks.emitting import EVENT_TYPE
from deliveries.attempt_partitions import attempt_partitions_ensure
from deliveries.models import Attempt, Delivery
from deliveries.sql_names import sql_with_names
from subscriptions.models import Endpoint, EventType, Tenant
from subscriptions.services import tenant_create
from webhooks.models import Event

# Table and column names come from the models (deliveries.sql_names).
PREFILL_SQL = """
INSERT INTO {Event.table} ({Event.public_id}, {Event.tenant_id}, {Event.event_type_id},
    {Event.payload}, {Event.ordering_key}, {Event.created_at})
SELECT 'msg_prefill' || g, %(tenant)s, %(event_type)s, jsonb_build_object('n', g), '',
       now() - make_interval(secs => %(count)s - g)
FROM generate_series(1, %(count)s) AS g;

INSERT INTO {Delivery.table} ({Delivery.event_id}, {Delivery.endpoint_id}, {Delivery.status},
    {Delivery.attempt_count}, {Delivery.next_attempt_at}, {Delivery.next_trigger},
    {Delivery.leased_by}, {Delivery.last_response_status}, {Delivery.last_error},
    {Delivery.last_attempt_at}, {Delivery.created_at}, {Delivery.finished_at},
    {Delivery.ordering_key}, {Delivery.waiting_on_key})
SELECT e.{Event.id}, %(endpoint)s, 'succeeded', 1, NULL, 'scheduled', '', 200, '',
       e.{Event.created_at}, e.{Event.created_at}, e.{Event.created_at}, '', false
FROM {Event.table} e WHERE e.{Event.tenant_id} = %(tenant)s;

INSERT INTO {Attempt.table} ({Attempt.delivery_id}, {Attempt.number}, {Attempt.trigger},
    {Attempt.started_at}, {Attempt.duration_ms}, {Attempt.url}, {Attempt.request_headers},
    {Attempt.response_status}, {Attempt.response_headers}, {Attempt.response_body},
    {Attempt.error_kind}, {Attempt.error_message})
SELECT d.{Delivery.id}, 1, 'scheduled', d.{Delivery.created_at}, 12.5,
       'https://archive.invalid/hook', '{{"webhook-id": "msg_prefill"}}', 200,
       '{{"content-length": "0"}}', '', '', ''
FROM {Delivery.table} d WHERE d.{Delivery.endpoint_id} = %(endpoint)s;
"""
# A long-running installation's tables have been vacuumed and checkpointed; measuring in the
# wake of a bulk load would time autovacuum and the checkpoint instead.
SETTLE = ("VACUUM ANALYZE", "CHECKPOINT")


def prefill_finished_deliveries(*, tenant: Tenant, count: int) -> None:
    """Store `count` succeeded deliveries, each with its event and attempt, for another tenant.

    They are finished: no claim or sweep should ever read them, which is what this measures.
    """
    # Their attempts go back `count` seconds: into partitions of their own, as a running
    # installation's would be, not all into the default one.
    attempt_partitions_ensure(since=(timezone.now() - timedelta(seconds=count)).date())
    archive = tenant_create(slug=f"{tenant.slug}-archive", name="Finished deliveries")
    endpoint = Endpoint.objects.create(tenant=archive, url="https://archive.invalid/hook")
    event_type = EventType.objects.get(name=EVENT_TYPE)
    params = {"tenant": archive.id, "event_type": event_type.id, "endpoint": endpoint.id,
              "count": count}  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute(sql_with_names(PREFILL_SQL, Event, Delivery, Attempt), params)
        for statement in SETTLE:
            cursor.execute(statement)
