"""The indexes of the API's event list and payload search.

The events table can be large, so on PostgreSQL the indexes are built CONCURRENTLY: writes go
on while they are built (the migration is not atomic, and an interrupted build leaves an INVALID
index that running the migration again drops and rebuilds). The GIN index on the payload serves
`GET /api/v1/events/?data.<path>=<value>` (a containment query) and is PostgreSQL's alone, so
the model's state does not list it. Other databases get the two B-tree indexes plainly.
"""

from django.db import migrations, models

LIST_INDEXES = [
    models.Index(fields=["tenant", "created_at", "id"], name="event_tenant_created_idx"),
    models.Index(
        fields=["tenant", "event_type", "created_at", "id"], name="event_tenant_type_idx"
    ),
]
PAYLOAD_INDEX = "event_payload_path_ops_idx"


def create_indexes(apps, schema_editor):
    event = apps.get_model("webhooks", "Event")
    if schema_editor.connection.vendor != "postgresql":
        for index in LIST_INDEXES:
            schema_editor.add_index(event, index)
        return
    table = schema_editor.quote_name(event._meta.db_table)
    payload = schema_editor.quote_name(event._meta.get_field("payload").column)
    for index in LIST_INDEXES:
        # A build broken off leaves an INVALID index under the name: drop it, build it again.
        schema_editor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {schema_editor.quote_name(index.name)}")
        schema_editor.add_index(event, index, concurrently=True)
    schema_editor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {PAYLOAD_INDEX}")
    schema_editor.execute(
        f"CREATE INDEX CONCURRENTLY {PAYLOAD_INDEX} ON {table} USING gin ({payload} jsonb_path_ops)"
    )


def drop_indexes(apps, schema_editor):
    event = apps.get_model("webhooks", "Event")
    if schema_editor.connection.vendor != "postgresql":
        for index in LIST_INDEXES:
            schema_editor.remove_index(event, index)
        return
    for name in [index.name for index in LIST_INDEXES] + [PAYLOAD_INDEX]:
        schema_editor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {schema_editor.quote_name(name)}")


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("webhooks", "0005_event_channels"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AddIndex(model_name="event", index=index) for index in LIST_INDEXES
            ],
            database_operations=[migrations.RunPython(create_indexes, drop_indexes)],
        ),
    ]
