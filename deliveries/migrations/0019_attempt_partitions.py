"""On PostgreSQL, attempts become a partitioned table: a day a partition, and an archive.

    deliveries_attempt            LIST (archived)
      deliveries_attempt_archive    archived = true: kept past the retention window, blanked
      deliveries_attempt_live       archived = false, RANGE (started_at)
        deliveries_attempt_pYYYYMMDD  one UTC day each
        deliveries_attempt_default    whatever no day takes (moved out when its day is created)

The rows move in one transaction: the old table is renamed, the partitioned one created with the
same columns, a day partition created for every day that holds attempts (and the week ahead),
the rows copied, the indexes built, and the old table dropped. The ids go on from the old
table's sequence. The primary key becomes (id, archived, started_at), as PostgreSQL requires of a
partitioned table; Django still addresses attempts by id. Other databases keep the plain table:
the model's state is the same on both. Backwards, the rows move into a plain table again.

This keeps its own SQL rather than calling deliveries.attempt_partitions: a migration does what
it did when it was written, whatever that module becomes.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.db import migrations

DAYS_AHEAD = 7


def _quote(schema_editor, name):
    return schema_editor.connection.ops.quote_name(name)


def _days_with_rows(cursor, table):
    """Each UTC day on which some attempt started, one index probe per day."""
    days = []
    cursor.execute(f"SELECT min(started_at) FROM {table}")
    first = cursor.fetchone()[0]
    while first is not None:
        day = first.astimezone(UTC).date()
        days.append(day)
        following = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1)
        cursor.execute(f"SELECT min(started_at) FROM {table} WHERE started_at >= %s", [following])
        first = cursor.fetchone()[0]
    return days


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
        days = _days_with_rows(cursor, q(table))
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
        today = datetime.now(UTC).date()
        ahead = [today + timedelta(days=n) for n in range(DAYS_AHEAD + 1)]
        for day in sorted(set(days) | set(ahead)):
            lower = datetime(day.year, day.month, day.day, tzinfo=UTC)
            cursor.execute(
                f"CREATE TABLE {q(f'{table}_p{day:%Y%m%d}')} PARTITION OF {live} "
                f"FOR VALUES FROM ('{lower.isoformat()}') TO ('{(lower + timedelta(days=1)).isoformat()}')"
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
        ("deliveries", "0018_attempt_archived_without_constraint"),
    ]

    operations = [migrations.RunPython(partition, unpartition, elidable=False)]
