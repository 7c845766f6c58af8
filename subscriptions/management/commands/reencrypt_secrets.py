from __future__ import annotations

from django.core.management.base import BaseCommand
from django.db import transaction

from subscriptions.models import Endpoint

ENCRYPTED = ["secret", "previous_secrets", "headers"]


class Command(BaseCommand):
    help = (
        "Re-encrypt every endpoint's secrets (current and replaced) and custom headers with the "
        "first key of WEBHOOKS_ENCRYPTION_KEYS. Rotate keys by putting the new key first, running "
        "this, then removing the old key."
    )

    def handle(self, *args: object, **options: object) -> None:
        count = 0
        with transaction.atomic():
            for endpoint in Endpoint.objects.select_for_update().only(*ENCRYPTED, "id"):
                # Reading decrypts with whichever key fits; saving encrypts with the first.
                endpoint.save(update_fields=ENCRYPTED)
                count += 1
        self.stdout.write(f"Re-encrypted the secrets of {count} endpoints with the current key.")
