from __future__ import annotations

from datetime import UTC, date, timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import OperationalError
from django.utils import timezone
from django.utils.dateparse import parse_date

from deliveries.attempt_partitions import (
    DAYS_AHEAD,
    attempt_partitions_ensure,
    attempts_partitioned,
    partition_sizes,
)

# A day a partition: a mistyped year would otherwise create thousands of them.
MAX_DAYS_BACK = 400
MAX_DAYS_AHEAD = 366


class Command(BaseCommand):
    help = (
        "Create the partitions of attempts for today and the days ahead (and from --since, for a "
        "backfill), move attempts waiting in the default partition into their day, and list the "
        "partitions with their sizes. PostgreSQL only: elsewhere attempts are a plain table."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--days-ahead",
            type=int,
            default=DAYS_AHEAD,
            help=f"Days after today to create (default {DAYS_AHEAD}).",
        )
        parser.add_argument(
            "--since", help="Also create every day from this date on (2026-11-01), for a backfill."
        )

    def handle(self, *args: object, days_ahead: int, since: str | None, **_: Any) -> None:
        if not 0 <= days_ahead <= MAX_DAYS_AHEAD:
            raise CommandError(
                f"--days-ahead must be from 0 to {MAX_DAYS_AHEAD}, not {days_ahead}."
            )
        first = _parse_since(since)
        if not attempts_partitioned():
            self.stdout.write("Attempts are a plain table on this database: no partitions.")
            return
        try:
            created = attempt_partitions_ensure(since=first, days_ahead=days_ahead)
        except OperationalError as error:
            raise CommandError(f"The partitions are busy, try again: {error}") from error
        self.stdout.write(f"Created {len(created)} partition(s).")
        for size in partition_sizes():
            rows = "?" if size.rows is None else f"{size.rows:,}"
            self.stdout.write(f"  {size.name:<40} {rows:>14} rows {size.bytes / 2**20:>10.1f} MB")


def _parse_since(raw: str | None) -> date | None:
    if raw is None:
        return None
    try:
        parsed = parse_date(raw)
    except ValueError:
        parsed = None
    if parsed is None:
        raise CommandError(f"--since must be a date such as 2026-11-01, not {raw!r}.")
    if parsed < timezone.now().astimezone(UTC).date() - timedelta(days=MAX_DAYS_BACK):
        raise CommandError(f"--since may go back at most {MAX_DAYS_BACK} days, not to {parsed}.")
    return parsed
