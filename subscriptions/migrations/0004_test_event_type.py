from django.db import migrations

TEST_EVENT_TYPE = "hookline.test"


def add_test_event_type(apps, schema_editor):
    EventType = apps.get_model("subscriptions", "EventType")
    EventType.objects.get_or_create(
        name=TEST_EVENT_TYPE,
        defaults={"description": "A test message sent from Hookline on request; safe to ignore."},
    )


class Migration(migrations.Migration):
    dependencies = [("subscriptions", "0003_alter_endpoint_headers_alter_endpoint_secret")]

    operations = [migrations.RunPython(add_test_event_type, migrations.RunPython.noop)]
