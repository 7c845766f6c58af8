from django.db import migrations, models


def make_unlogged(apps, schema_editor):
    """A flag lives two seconds: PostgreSQL need not write it to the WAL (deliveries.wake_flags)."""
    if schema_editor.connection.vendor != "postgresql":
        return
    table = schema_editor.quote_name(apps.get_model("deliveries", "WakeFlag")._meta.db_table)
    schema_editor.execute(f"ALTER TABLE {table} SET UNLOGGED")


class Migration(migrations.Migration):

    dependencies = [
        ("deliveries", "0017_attempt_error_kind_transform"),
    ]

    operations = [
        migrations.CreateModel(
            name="WakeFlag",
            fields=[
                ("name", models.CharField(max_length=32, primary_key=True, serialize=False)),
                ("holder", models.CharField(max_length=200)),
                ("expires_at_ms", models.BigIntegerField()),
            ],
        ),
        migrations.RunPython(make_unlogged, migrations.RunPython.noop, elidable=False),
    ]
