from __future__ import annotations

from django.core.management.base import BaseCommand
from django.db import transaction

from subscriptions.models import Endpoint


class Command(BaseCommand):
    help = (
        "Re-encrypt every endpoint secret with the first key of WEBHOOKS_ENCRYPTION_KEYS. Rotate "
        "keys by putting the new key first, running this, then removing the old key."
    )

    def handle(self, *args: object, **options: object) -> None:
        count = 0
        with transaction.atomic():
            for endpoint in Endpoint.objects.select_for_update().only(
                "id", "secret", "previous_secret"
            ):
                # Reading decrypts with whichever key fits; saving encrypts with the first.
                endpoint.save(update_fields=["secret", "previous_secret"])
                count += 1
        self.stdout.write(f"Re-encrypted the secrets of {count} endpoints with the current key.")
