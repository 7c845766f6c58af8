"""Operational alerts moved here from the deliveries app; the table keeps its name."""

import django.utils.timezone
from django.db import migrations, models

from config.moved_models import content_types_moved


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('contenttypes', '0002_remove_content_type_name'),
        ('deliveries', '0012_replayjob_failure'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='OperationalAlert',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('kind', models.CharField(choices=[('dead_letters_over_threshold', 'dead letters over threshold'), ('deliveries_overdue', 'deliveries overdue')], max_length=64)),
                        ('subject', models.CharField(blank=True, default='', max_length=64)),
                        ('details', models.JSONField(blank=True, default=dict, help_text='What operators were told.')),
                        ('raised_at', models.DateTimeField(default=django.utils.timezone.now)),
                        ('cleared_at', models.DateTimeField(blank=True, null=True)),
                    ],
                    options={
                        'db_table': 'deliveries_operationalalert',
                        'ordering': ['-id'],
                        'constraints': [models.UniqueConstraint(condition=models.Q(('cleared_at__isnull', True)), fields=('kind', 'subject'), name='operational_alert_open_once')],
                    },
                ),
            ],
        ),
        content_types_moved(from_app="deliveries", to_app="operations", models=['operationalalert']),
    ]
