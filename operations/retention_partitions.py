"""Retention of attempts stored in partitions by day (PostgreSQL): each partition goes whole.

A partition that ends by the cutoff goes in one transaction (operations.retention runs this after
deleting the deliveries it purges):

1. Its attempts that must stay are copied into the archive partition, blanked: those of a
   delivery that retention keeps (failed, pending, or finished since the cutoff). Their number,
   trigger, time, status and error stay in the delivery's timeline. A tenant with a retention
   of its own (operations.retention_tenants) is judged by its own cutoff: a tenant that keeps
   its data longer keeps its deliveries, and their attempts are copied whole, captured headers
   and bodies included, while its own window holds them.
2. The partition is dropped, with however many millions of rows it holds, in one statement: no
   row is deleted one by one.

Readers see the partition or the archived copies, never both: the copies appear as it goes, at
commit. Retention's cutoff is kept to the partition: an attempt goes, or is blanked, once the
whole of its partition (a UTC day with the usual retention: deliveries.attempt_partitions) is
older than the cutoff, up to a day later than on a plain table.

A delivery deleted (with its attempts) while its partition is being copied may leave archived
copies behind, which no one reads; a delivery replayed then, after retention found it doomed,
keeps its row but loses the attempts of that partition, which retention was deleting.
"""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q, QuerySet

from deliveries.attempt_partitions import (
    AttemptPartition,
    PartitionInUse,
    archive_table,
    attempt_partition_drop,
    attempt_partitions,
    days_in_default,
    partition_span,
    partitions_planned,
)
from deliveries.models import Attempt, Delivery
from deliveries.sql_names import sql_with_names
from operations.retention_tenants import RetentionCutoffs
from subscriptions.models import Endpoint

# What an attempt keeps of its request and response once blanked.
BLANK_CAPTURE = {"request_headers": {}, "response_headers": {}, "response_body": ""}


def partitions_to_purge(before: datetime) -> list[AttemptPartition]:
    """The partitions that end by `before`, oldest first."""
    return [partition for partition in attempt_partitions() if partition.upper <= before]


def attempt_partition_purge(
    partition: AttemptPartition, *, cutoffs: RetentionCutoffs
) -> tuple[int, int] | None:
    """Archive the attempts of `partition` that retention keeps, by the global cutoff or their
    tenant's own, then drop it, in one transaction. Returns (attempts deleted, attempts
    archived), or None, having changed nothing, when it is in use (PartitionInUse): the next run
    tries again."""
    try:
        with transaction.atomic():
            archived = _archive_kept(partition, cutoffs)
            return attempt_partition_drop(partition) - archived, archived
    except PartitionInUse:
        return None


def _archive_kept(partition: AttemptPartition, cutoffs: RetentionCutoffs) -> int:
    name = connection.ops.quote_name(partition.name)
    with connection.cursor() as cursor:
        cursor.execute(sql_with_names(_BOUNDS_SQL, Attempt).replace("<day>", name))
        first, last = cursor.fetchone()
        if last is None:
            return 0  # an empty partition
        # The deliveries whose first attempt is in it are a range of ids: read that range, not
        # the whole table. Attempts of older deliveries (retries past midnight, replays) are
        # looked up one by one.
        own = cutoffs.archive_params()
        params = {"first": last + 1 if first is None else first, "last": last,
                  "succeeded": Delivery.Status.SUCCEEDED, "before": cutoffs.before,
                  **own}  # fmt: skip
        # Without a tenant of its own retention, one cutoff for all: no join per delivery.
        template = _ARCHIVE_SQL if own["tenant_ids"] else _ARCHIVE_ONE_CUTOFF_SQL
        sql = sql_with_names(template, Attempt, Delivery, Endpoint)
        cursor.execute(sql.replace("<day>", name).replace("<archive>", archive_table()), params)
        return cursor.rowcount


_BOUNDS_SQL = """
SELECT (SELECT min({Attempt.delivery_id}) FROM <day> WHERE {Attempt.number} = 1),
       (SELECT max({Attempt.delivery_id}) FROM <day>)
"""
_COLUMNS = [field.attname for field in Attempt._meta.concrete_fields]
_BLANKED = {"request_headers": "jsonb_build_object()", "response_headers": "jsonb_build_object()",
            "response_body": "''"}  # fmt: skip
# The delivery's cutoff: its tenant's own, else the global one. The tenants with their own come
# as two arrays (RetentionCutoffs.archive_params).
_TENANT_CUTOFF = """
JOIN {Endpoint.table} e ON e.{Endpoint.id} = d.{Delivery.endpoint_id}
LEFT JOIN unnest(%(tenant_ids)s::bigint[], %(tenant_cutoffs)s::timestamptz[]) AS r(tenant, cutoff)
  ON r.tenant = e.{Endpoint.tenant_id}"""
_CUTOFF = "COALESCE(r.cutoff, %(before)s)"
_KEPT = """(d.{Delivery.status} <> %(succeeded)s OR d.{Delivery.finished_at} IS NULL
            OR d.{Delivery.finished_at} >= <cutoff>)"""


def _copied(column: str) -> str:
    """An attempt's column in its archived copy: blanked once it started before its cutoff."""
    if column == "archived":
        return "true"
    kept = f"a.{{Attempt.{column}}}"
    if column not in _BLANKED:
        return kept
    return f"CASE WHEN a.{{Attempt.started_at}} >= k.cutoff THEN {kept} ELSE {_BLANKED[column]} END"


_ARCHIVE_SQL = (
    "INSERT INTO <archive> ("
    + ", ".join(f"{{Attempt.{column}}}" for column in _COLUMNS)
    + ") SELECT "
    + ", ".join(_copied(column) for column in _COLUMNS)
    + """ FROM <day> a JOIN (
    SELECT d.{Delivery.id} AS id, <cutoff> AS cutoff FROM {Delivery.table} d <tenant>
    WHERE d.{Delivery.id} BETWEEN %(first)s AND %(last)s AND <kept>
    UNION ALL
    SELECT d.{Delivery.id}, <cutoff> FROM {Delivery.table} d <tenant>
    WHERE d.{Delivery.id} IN (SELECT s.{Attempt.delivery_id} FROM <day> s
                              WHERE s.{Attempt.delivery_id} < %(first)s)
      AND <kept>) k ON k.id = a.{Attempt.delivery_id}"""
).replace("<kept>", _KEPT)
# One cutoff for every delivery: a semi-join on the kept deliveries, every kept attempt blanked.
_ARCHIVE_ONE_CUTOFF_SQL = (
    "INSERT INTO <archive> ("
    + ", ".join(f"{{Attempt.{column}}}" for column in _COLUMNS)
    + ") SELECT "
    + ", ".join(
        {**_BLANKED, "archived": "true"}.get(column, f"a.{{Attempt.{column}}}")
        for column in _COLUMNS
    )  # fmt: skip
    + """ FROM <day> a WHERE a.{Attempt.delivery_id} IN (
    SELECT d.{Delivery.id} FROM {Delivery.table} d
    WHERE d.{Delivery.id} BETWEEN %(first)s AND %(last)s AND <kept>
    UNION ALL
    SELECT d.{Delivery.id} FROM {Delivery.table} d
    WHERE d.{Delivery.id} IN (SELECT s.{Attempt.delivery_id} FROM <day> s
                              WHERE s.{Attempt.delivery_id} < %(first)s)
      AND <kept>)"""
).replace("<kept>", _KEPT.replace("<cutoff>", "%(before)s"))
_ARCHIVE_SQL = _ARCHIVE_SQL.replace("<tenant>", _TENANT_CUTOFF).replace("<cutoff>", _CUTOFF)


def attempts_in_purged_partitions(before: datetime | None) -> QuerySet[Attempt]:
    """The attempts, not archived, of the partitions that a purge by `before` drops now,
    counting those waiting in the default partition by the partition they will move to first."""
    if before is None:
        return Attempt.objects.none()
    existing = attempt_partitions()
    with connection.cursor() as cursor:
        waiting = days_in_default(cursor)
    span = partition_span(settings.WEBHOOKS_RETENTION_DAYS)
    partitions = [*existing, *partitions_planned(existing, waiting, span)]
    in_purged = Q(pk__in=[])
    for partition in partitions:
        if partition.upper <= before:
            in_purged |= Q(started_at__gte=partition.lower, started_at__lt=partition.upper)
    return Attempt.objects.filter(in_purged, archived=False)


def archived_attempts_delete(delivery_ids: list[int]) -> int:
    """Delete the archived attempts of these deliveries; returns how many. Their other attempts
    are left to their day, which drops them with it."""
    attempts = Attempt.objects.filter(archived=True, delivery_id__in=delivery_ids)
    return attempts.delete()[0]
