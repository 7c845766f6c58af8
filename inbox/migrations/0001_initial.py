"""The test inbox moved here from the deliveries app; its tables keep their names."""

import django.db.models.deletion
import django.utils.timezone
import inbox.models
from django.db import migrations, models

from config.moved_models import content_types_moved


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('contenttypes', '0002_remove_content_type_name'),
        ('deliveries', '0012_replayjob_failure'),
        ('subscriptions', '0008_secrets_and_header_encryption'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='Inbox',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('token', models.CharField(default=inbox.models.new_inbox_token, max_length=64, unique=True)),
                        ('respond_status', models.PositiveSmallIntegerField(default=200)),
                        ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                        ('tenant', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='inboxes', to='subscriptions.tenant')),
                    ],
                    options={
                        'verbose_name_plural': 'inboxes',
                        'db_table': 'deliveries_inbox',
                    },
                ),
                migrations.CreateModel(
                    name='InboxRequest',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('received_at', models.DateTimeField(default=django.utils.timezone.now)),
                        ('method', models.CharField(max_length=10)),
                        ('headers', models.JSONField(default=dict)),
                        ('body', models.TextField(blank=True)),
                        ('webhook_id', models.CharField(blank=True, db_index=True, max_length=64)),
                        ('signature_valid', models.BooleanField(help_text='Empty when no endpoint matched.', null=True)),
                        ('response_status', models.PositiveSmallIntegerField()),
                        ('inbox', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='requests', to='inbox.inbox')),
                    ],
                    options={
                        'db_table': 'deliveries_inboxrequest',
                        'ordering': ['-id'],
                    },
                ),
            ],
        ),
        content_types_moved(from_app="deliveries", to_app="inbox", models=['inbox', 'inboxrequest']),
    ]
