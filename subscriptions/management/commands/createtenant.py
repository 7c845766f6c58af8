from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from subscriptions.services import api_key_create, tenant_create


class Command(BaseCommand):
    help = (
        "Create a tenant and print a new API key for it (the key is the last line of output); "
        "with --staff-key, the key may also change the event-type catalog."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug", help="Short unique name, such as acme.")
        parser.add_argument("--name", default="", help="Display name (defaults to the slug).")
        parser.add_argument(
            "--member", action="append", default=[], help="Username allowed to see this tenant."
        )
        parser.add_argument(
            "--staff-key",
            action="store_true",
            help="Make the key a staff key: it may also change the event-type catalog.",
        )

    def handle(
        self,
        *args: object,
        slug: str,
        name: str,
        member: list[str],
        staff_key: bool,
        **options: object,
    ) -> None:
        users = list(get_user_model().objects.filter(username__in=member))
        missing = set(member) - {user.get_username() for user in users}
        if missing:
            raise CommandError(f"No such user: {', '.join(sorted(missing))}")
        try:
            tenant = tenant_create(slug=slug, name=name)
        except ValidationError as error:
            raise CommandError("; ".join(error.messages)) from None
        tenant.members.add(*users)
        _, key = api_key_create(tenant=tenant, name="created by createtenant", is_staff=staff_key)
        kind = (
            "staff API key (it may also change the event-type catalog)" if staff_key else "API key"
        )
        self.stdout.write(f"Created tenant {tenant.slug!r}. Its {kind}, shown only now:")
        self.stdout.write(key)
