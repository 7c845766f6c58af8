"""Hold the backlogs of endpoints already paused or disabled, as deliveries.holds does from now on."""

from django.db import migrations


def hold_backlogs(apps, schema_editor):
    Delivery = apps.get_model("deliveries", "Delivery")
    Endpoint = apps.get_model("subscriptions", "Endpoint")
    pending = Delivery.objects.filter(status="pending")
    pending.filter(endpoint__is_active=False).update(next_attempt_at=None)
    paused = Endpoint.objects.filter(is_active=True, circuit_open_until__isnull=False)
    for endpoint in paused.only("id", "circuit_open_until"):
        pending.filter(
            endpoint_id=endpoint.id, next_attempt_at__lt=endpoint.circuit_open_until
        ).update(next_attempt_at=endpoint.circuit_open_until)


class Migration(migrations.Migration):
    dependencies = [
        ("deliveries", "0008_delivery_endpoint_single_index_dropped"),
        ("subscriptions", "0006_endpoint_rate_slot"),
    ]

    operations = [migrations.RunPython(hold_backlogs, migrations.RunPython.noop)]
