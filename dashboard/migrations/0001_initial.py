"""Portal links moved here from the deliveries app; the table keeps its name."""

import django.db.models.deletion
import django.utils.timezone
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
                    name='PortalLink',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('token_hash', models.CharField(editable=False, max_length=64, unique=True)),
                        ('capabilities', models.JSONField(default=list)),
                        ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                        ('expires_at', models.DateTimeField()),
                        ('opened_at', models.DateTimeField(blank=True, null=True)),
                        ('opened_from', models.GenericIPAddressField(blank=True, help_text='The client address that opened the link.', null=True)),
                        ('revoked_at', models.DateTimeField(blank=True, null=True)),
                        ('issued_by', models.ForeignKey(blank=True, help_text='The API key that asked for the link; empty for links issued from code.', null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='portal_links', to='subscriptions.apikey')),
                        ('tenant', models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='portal_links', to='subscriptions.tenant')),
                    ],
                    options={
                        'db_table': 'deliveries_portallink',
                        'ordering': ['-id'],
                        'indexes': [models.Index(fields=['tenant', '-id'], name='portal_link_tenant_idx')],
                    },
                ),
            ],
        ),
        content_types_moved(from_app="deliveries", to_app="dashboard", models=['portallink']),
    ]
