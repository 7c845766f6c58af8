from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from tqdm import tqdm

from deliveries.models import Delivery
from deliveries.services import deliveries_replay
from deliveries.validators import replay_since_checked
from subscriptions.models import Endpoint

CHUNK = 500


class Command(BaseCommand):
    help = (
        "Replay deliveries: given ids, or every failed delivery of an endpoint (or of all) since "
        "a time. Each replay is one more attempt with the same webhook-id."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("delivery_ids", nargs="*", type=int, help="Deliveries to replay.")
        parser.add_argument(
            "--endpoint", type=int, help="Replay this endpoint's failed deliveries."
        )
        parser.add_argument(
            "--all-failed", action="store_true", help="Replay every failed delivery."
        )
        parser.add_argument(
            "--since", help="Only deliveries created at or after this ISO 8601 time."
        )

    def handle(self, *args: object, **options: object) -> None:
        selection = self._selection(options)
        ids = list(selection.order_by("id").values_list("id", flat=True))
        if not ids:
            self.stdout.write("Nothing to replay.")
            return
        disabled = list(
            Endpoint.objects.filter(is_active=False, deliveries__id__in=ids)
            .values_list("url", flat=True)
            .distinct()
        )
        queued = 0
        stream: Any = self.stderr._out  # the command's text stream, which tqdm writes to
        with tqdm(total=len(ids), unit="delivery", file=stream) as progress:
            for start in range(0, len(ids), CHUNK):
                chunk = ids[start : start + CHUNK]
                with transaction.atomic():
                    queued += deliveries_replay(deliveries=Delivery.objects.filter(id__in=chunk))
                progress.update(len(chunk))
        self.stdout.write(f"Queued {queued} of {len(ids)} deliveries for replay.")
        for url in disabled:
            self.stderr.write(f"Endpoint {url} is disabled: its replays wait until it is enabled.")

    def _selection(self, options: dict) -> QuerySet[Delivery]:
        ids, endpoint_id = options["delivery_ids"], options["endpoint"]
        if bool(ids) + bool(endpoint_id) + bool(options["all_failed"]) != 1:
            raise CommandError(
                "Give delivery ids, or --endpoint ID, or --all-failed (one of them)."
            )
        if ids:
            if options["since"]:
                raise CommandError("--since applies to --endpoint and --all-failed, not to ids.")
            missing = set(ids) - set(
                Delivery.objects.filter(id__in=ids).values_list("id", flat=True)
            )
            if missing:
                raise CommandError(f"No such delivery: {', '.join(map(str, sorted(missing)))}")
            return Delivery.objects.filter(id__in=ids)
        selection = Delivery.objects.filter(status=Delivery.Status.FAILED)
        if endpoint_id:
            if not Endpoint.objects.filter(id=endpoint_id).exists():
                raise CommandError(f"No such endpoint: {endpoint_id}")
            selection = selection.filter(endpoint_id=endpoint_id)
        if options["since"]:
            selection = selection.filter(created_at__gte=_parse_since(options["since"]))
        return selection


def _parse_since(raw: str) -> datetime:
    try:
        moment = parse_datetime(raw)
    except ValueError:
        moment = None
    if moment is None:
        raise CommandError(
            f"--since must be an ISO 8601 time such as 2026-11-28T09:00Z, not {raw!r}"
        )
    if timezone.is_naive(moment):
        moment = moment.replace(tzinfo=UTC)
    try:
        return replay_since_checked(moment)
    except ValidationError as error:
        raise CommandError(f"--since {raw!r}: {error.messages[0]}") from None
