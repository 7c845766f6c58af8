"""Replaced signing secrets become a list, each kept until its own expiry; custom header values
are encrypted at rest.

The single previous secret (when it still signs) becomes the first entry of `previous_secrets`;
every row's headers are re-saved through the encrypting field. Reversing keeps the replaced
secret expiring last and writes the headers back in clear.
"""

import json

import subscriptions.encryption
import subscriptions.validators
from django.db import migrations
from django.utils import timezone


def forwards(apps, schema_editor):
    Endpoint = apps.get_model("subscriptions", "Endpoint")
    now = timezone.now()
    for endpoint in Endpoint.objects.only("id", "previous_secret", "previous_secret_expires_at",
                                          "headers"):  # fmt: skip
        until = endpoint.previous_secret_expires_at
        endpoint.previous_secrets = (
            [subscriptions.encryption.PreviousSecret(secret=endpoint.previous_secret,
                                                     expires_at=until)]  # fmt: skip
            if endpoint.previous_secret and until and until > now
            else []
        )
        # Rows read back their plain headers; saving stores them encrypted.
        endpoint.save(update_fields=["previous_secrets", "headers"])
    _check_constraints_now(schema_editor)


def backwards(apps, schema_editor):
    Endpoint = apps.get_model("subscriptions", "Endpoint")
    table = schema_editor.connection.ops.quote_name(Endpoint._meta.db_table)
    column = schema_editor.connection.ops.quote_name(Endpoint._meta.get_field("headers").column)
    for endpoint in Endpoint.objects.only("id", "previous_secrets", "headers"):
        latest = endpoint.previous_secrets[0] if endpoint.previous_secrets else None
        endpoint.previous_secret = latest.secret if latest else ""
        endpoint.previous_secret_expires_at = latest.expires_at if latest else None
        endpoint.save(update_fields=["previous_secret", "previous_secret_expires_at"])
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {table} SET {column} = %s WHERE id = %s",
                [json.dumps(endpoint.headers), endpoint.id],
            )
    _check_constraints_now(schema_editor)


def _check_constraints_now(schema_editor):
    # PostgreSQL refuses to alter a table with deferred constraint checks still queued by the
    # updates above; running them now lets the column changes that follow go ahead.
    if schema_editor.connection.vendor == "postgresql":
        with schema_editor.connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")


class Migration(migrations.Migration):
    dependencies = [
        ("subscriptions", "0007_endpoint_payload_format"),
    ]

    operations = [
        migrations.AddField(
            model_name="endpoint",
            name="previous_secrets",
            field=subscriptions.encryption.PreviousSecretsField(
                blank=True, default=list, editable=False
            ),
        ),
        migrations.AlterField(
            model_name="endpoint",
            name="headers",
            field=subscriptions.encryption.EncryptedJSONField(
                blank=True,
                default=dict,
                help_text="Extra headers sent each time.",
                validators=[subscriptions.validators.validate_endpoint_headers],
            ),
        ),
        migrations.RunPython(forwards, backwards),
        migrations.RemoveField(model_name="endpoint", name="previous_secret"),
        migrations.RemoveField(model_name="endpoint", name="previous_secret_expires_at"),
    ]
