"""On PostgreSQL, attempts become a partitioned table: a day a partition, and an archive.

    deliveries_attempt            LIST (archived)
      deliveries_attempt_archive    archived = true: kept past the retention window, blanked
      deliveries_attempt_live       archived = false, RANGE (started_at)
        deliveries_attempt_pYYYYMMDD  from that UTC day on, for a day (or a few: see below)
        deliveries_attempt_default    whatever no other takes (moved out when its own is created)

The rows move in one transaction: the old table is renamed, the partitioned one created with the
same columns and its partitions, the rows copied, the indexes built, and the old table dropped.
The ids go on from the old table's sequence. The attempts older than the retention window share
one partition, which the first purge drops (archiving what it keeps first); the window and the
week ahead are cut in partitions of a day, or of more with a retention over 59 days or none (the
rule of deliveries.attempt_partitions.partition_span, as it was when this was written). The primary key becomes (id, archived, started_at), as PostgreSQL requires of a
partitioned table; Django still addresses attempts by id. Other databases keep the plain table:
the model's state is the same on both. Backwards, the rows move into a plain table again.

This keeps its own SQL rather than calling deliveries.attempt_partitions: a migration does what
it did when it was written, whatever that module becomes.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import migrations

DAYS_AHEAD = 7


def _quote(schema_editor, name):
    return schema_editor.connection.ops.quote_name(name)


def _span(retention_days):
    return 30 if retention_days <= 0 else max(1, retention_days // 30)


def _ranges(first_row, today, retention_days):
    """(first day, end day) of each partition: one for what is older than the retention window,
    then spans up to the week ahead."""
    day = min(first_row.astimezone(UTC).date(), today) if first_row else today
    ranges = []
    window = today - timedelta(days=retention_days) if retention_days > 0 else None
    if window is not None and day < window:
        ranges.append((day, window))
        day = window
    while day <= today + timedelta(days=DAYS_AHEAD):
        ranges.append((day, day + timedelta(days=_span(retention_days))))
        day = ranges[-1][1]
    return ranges


def _midnight(day):
    return datetime(day.year, day.month, day.day, tzinfo=UTC).isoformat()


def _set_aside(cursor, schema_editor, table, suffix):
    """Rename `table`, its sequence and its primary key out of the way; drop its other indexes
    (their names must be free for the new table's, and the copy reads the whole table anyway)."""
    cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [table])
    sequence = cursor.fetchone()[0]
    cursor.execute(
        "SELECT indexrelid::regclass::text, indisprimary FROM pg_index WHERE indrelid = %s::regclass",
        [table],
    )
    indexes = cursor.fetchall()
    aside = f"{table}_{suffix}"
    q = lambda name: _quote(schema_editor, name)  # noqa: E731
    for index, primary in indexes:
        if not primary:
            cursor.execute(f"DROP INDEX {index}")
    cursor.execute(f"ALTER TABLE {q(table)} RENAME CONSTRAINT {q(table + '_pkey')} TO {q(aside + '_pkey')}")
    cursor.execute(f"ALTER TABLE {q(table)} RENAME TO {q(aside)}")
    cursor.execute(f"ALTER SEQUENCE {sequence} RENAME TO {q(aside + '_id_seq')}")
    return aside


def _copy_rows_and_sequence(cursor, schema_editor, table, aside):
    q = lambda name: _quote(schema_editor, name)  # noqa: E731
    cursor.execute(
        f"SELECT setval(pg_get_serial_sequence(%s, 'id'), last_value, is_called) "
        f"FROM {q(aside + '_id_seq')}",
        [table],
    )
    cursor.execute(f"INSERT INTO {q(table)} SELECT * FROM {q(aside)}")


def _add_indexes(schema_editor, model):
    for index in model._meta.indexes:
        schema_editor.add_index(model, index)


def partition(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    model = apps.get_model("deliveries", "Attempt")
    table = model._meta.db_table
    q = lambda name: _quote(schema_editor, name)  # noqa: E731
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(f"LOCK TABLE {q(table)} IN ACCESS EXCLUSIVE MODE")
        cursor.execute(f"SELECT min(started_at) FROM {q(table)}")
        ranges = _ranges(cursor.fetchone()[0], datetime.now(UTC).date(), settings.WEBHOOKS_RETENTION_DAYS)
        aside = _set_aside(cursor, schema_editor, table, "unpartitioned")
        cursor.execute(
            f"CREATE TABLE {q(table)} (LIKE {q(aside)} INCLUDING DEFAULTS INCLUDING CONSTRAINTS "
            f"INCLUDING IDENTITY INCLUDING STORAGE) PARTITION BY LIST (archived)"
        )
        cursor.execute(
            f"ALTER TABLE {q(table)} ADD CONSTRAINT {q(table + '_pkey')} "
            f"PRIMARY KEY (id, archived, started_at)"
        )
        live = q(f"{table}_live")
        cursor.execute(f"CREATE TABLE {q(table + '_archive')} PARTITION OF {q(table)} FOR VALUES IN (true)")
        cursor.execute(
            f"CREATE TABLE {live} PARTITION OF {q(table)} FOR VALUES IN (false) "
            f"PARTITION BY RANGE (started_at)"
        )
        cursor.execute(f"CREATE TABLE {q(table + '_default')} PARTITION OF {live} DEFAULT")
        for first, end in ranges:
            cursor.execute(
                f"CREATE TABLE {q(f'{table}_p{first:%Y%m%d}')} PARTITION OF {live} "
                f"FOR VALUES FROM ('{_midnight(first)}') TO ('{_midnight(end)}')"
            )
        _copy_rows_and_sequence(cursor, schema_editor, table, aside)
        _add_indexes(schema_editor, model)
        cursor.execute(f"DROP TABLE {q(aside)}")
        # Autovacuum analyzes the partitions but never a partitioned table itself.
        cursor.execute(f"ANALYZE {q(table)}")


def unpartition(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    model = apps.get_model("deliveries", "Attempt")
    table = model._meta.db_table
    q = lambda name: _quote(schema_editor, name)  # noqa: E731
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(f"LOCK TABLE {q(table)} IN ACCESS EXCLUSIVE MODE")
        aside = _set_aside(cursor, schema_editor, table, "partitioned")
        cursor.execute(
            f"CREATE TABLE {q(table)} (LIKE {q(aside)} INCLUDING DEFAULTS INCLUDING CONSTRAINTS "
            f"INCLUDING IDENTITY INCLUDING STORAGE)"
        )
        cursor.execute(f"ALTER TABLE {q(table)} ADD CONSTRAINT {q(table + '_pkey')} PRIMARY KEY (id)")
        _copy_rows_and_sequence(cursor, schema_editor, table, aside)
        _add_indexes(schema_editor, model)
        cursor.execute(f"DROP TABLE {q(aside)}")
        cursor.execute(f"ANALYZE {q(table)}")


class Migration(migrations.Migration):

    dependencies = [
        ("deliveries", "0019_attempt_archived_without_constraint"),
    ]

    operations = [migrations.RunPython(partition, unpartition, elidable=False)]
