"""The test inbox, operational alerts and portal links moved to apps of their own, keeping
their tables: only Django's state changes here."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('deliveries', '0012_replayjob_failure'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RemoveField(
                    model_name='inbox',
                    name='tenant',
                ),
                migrations.RemoveField(
                    model_name='inboxrequest',
                    name='inbox',
                ),
                migrations.DeleteModel(
                    name='OperationalAlert',
                ),
                migrations.RemoveField(
                    model_name='portallink',
                    name='issued_by',
                ),
                migrations.RemoveField(
                    model_name='portallink',
                    name='tenant',
                ),
                migrations.DeleteModel(
                    name='Inbox',
                ),
                migrations.DeleteModel(
                    name='InboxRequest',
                ),
                migrations.DeleteModel(
                    name='PortalLink',
                ),
            ],
        ),
    ]
