from __future__ import annotations

import json

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from subscriptions.services import event_type_create


class Command(BaseCommand):
    help = "Add an event type, such as order.paid, to the catalog."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="Dot-separated name, such as order.paid.")
        parser.add_argument("--description", default="")
        parser.add_argument(
            "--schema", help="JSON Schema for the payload: inline JSON or @file.json."
        )

    def handle(
        self, *args: object, name: str, description: str, schema: str | None, **_: object
    ) -> None:
        try:
            event_type = event_type_create(
                name=name, description=description, schema=_load_schema(schema)
            )
        except ValidationError as error:
            raise CommandError("; ".join(error.messages)) from None
        self.stdout.write(f"Created event type {event_type.name!r}.")


def _load_schema(raw: str | None) -> dict | None:
    if raw is None:
        return None
    try:
        if raw.startswith("@"):
            with open(raw[1:], encoding="utf-8") as file:
                return json.load(file)
        return json.loads(raw)
    except (OSError, ValueError) as error:
        raise CommandError(f"Cannot read the schema: {error}") from None
