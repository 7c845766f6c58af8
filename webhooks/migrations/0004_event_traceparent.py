from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('webhooks', '0003_ordering_keys'),
    ]

    operations = [
        # A constant default: PostgreSQL adds the column without rewriting the table.
        migrations.AddField(
            model_name='event',
            name='traceparent',
            field=models.CharField(blank=True, db_default='', default='', editable=False, max_length=55),
        ),
    ]
