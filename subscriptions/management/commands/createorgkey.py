from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from subscriptions.services import organisation_key_create


class Command(BaseCommand):
    help = (
        "Create an organisation key, which manages tenants, their API keys and portal links "
        "through /api/v1/tenants/ (the key is the last line of output)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="What the key is for, such as 'billing service'.")

    def handle(self, *args: object, name: str, **options: object) -> None:
        name = name.strip()
        if not name or len(name) > 200 or "\x00" in name:
            raise CommandError("Give the key a name of 1 to 200 characters, without NUL.")
        organisation_key, key = organisation_key_create(name=name)
        self.stdout.write(
            f"Created organisation key {organisation_key.prefix}… ({name}). "
            "The key, shown only now:"
        )
        self.stdout.write(key)
