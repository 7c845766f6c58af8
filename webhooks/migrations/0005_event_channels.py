from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("webhooks", "0004_event_traceparent"),
    ]

    operations = [
        migrations.AddField(
            model_name="event",
            name="channels",
            field=models.JSONField(
                blank=True,
                db_default=models.Value([], output_field=models.JSONField()),
                default=list,
            ),
        ),
    ]
