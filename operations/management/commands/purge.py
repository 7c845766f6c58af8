from __future__ import annotations

import re
from datetime import UTC, datetime, time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from operations.retention import (
    PurgeCounts,
    dead_letters_purge,
    retention_cutoff,
    retention_purge,
)
from operations.retention_tenants import tenants_with_own_retention

# (field of PurgeCounts, what it counts, what happens to it)
RETENTION_LINES = (
    ("deliveries", "succeeded deliveries", "deleted"),
    ("attempts", "attempts", "deleted"),
    ("events", "events", "deleted"),
    ("attempts_blanked", "attempts' captured headers and bodies", "blanked"),
    ("inbox_requests", "test-inbox requests", "deleted"),
    ("replay_jobs", "finished replay jobs", "deleted"),
)
DEAD_LETTER_LINES = (
    ("deliveries", "failed deliveries", "deleted"),
    ("attempts", "attempts", "deleted"),
    ("events", "events", "deleted"),
)


class Command(BaseCommand):
    help = (
        "Purge what is older than WEBHOOKS_RETENTION_DAYS (or --days; a tenant with its own "
        "retention_days, older than that): succeeded deliveries and "
        "their attempts, events left without deliveries, attempts' captured headers and bodies, "
        "test-inbox requests and finished replay jobs. Failed deliveries stay unless --failed "
        "--before is given."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--dry-run", action="store_true", help="Count what would go; change nothing."
        )
        parser.add_argument(
            "--days", type=int, help="Purge what is older than this, not WEBHOOKS_RETENTION_DAYS."
        )
        parser.add_argument(
            "--batch-size",
            type=int,
            help="Rows per statement (default WEBHOOKS_RETENTION_BATCH_SIZE).",
        )
        parser.add_argument(
            "--failed",
            action="store_true",
            help="Delete failed deliveries (dead letters) finished before --before instead.",
        )
        parser.add_argument(
            "--before",
            help="With --failed: a date or time (2026-11-01, 2026-11-01T09:00Z), or days ago.",
        )

    def handle(self, *args: object, **options: Any) -> None:
        self.verbosity = int(options["verbosity"])
        batch_size = self._batch_size(options["batch_size"])
        dry_run = bool(options["dry_run"])
        if options["failed"]:
            self._purge_dead_letters(options, batch_size, dry_run)
        else:
            self._purge_expired(options, batch_size, dry_run)

    def _purge_expired(self, options: dict, batch_size: int, dry_run: bool) -> None:
        if options["before"] is not None:
            raise CommandError("--before goes with --failed; to purge by age, give --days.")
        days = options["days"]
        if days is not None and days < 1:
            raise CommandError(f"--days must be at least 1, not {days}.")
        if days is None:
            days = settings.WEBHOOKS_RETENTION_DAYS
            if days == 0 and not tenants_with_own_retention():
                self.stdout.write(
                    "Retention is off (WEBHOOKS_RETENTION_DAYS=0): nothing purged. "
                    "Give --days N to purge once."
                )
                return
        before = retention_cutoff(days=days)
        if before is None:
            self.stdout.write("Purging what is older than each tenant's own retention_days:")
        else:
            self._heading(f"Purging what is older than {days} days", before, dry_run)
        counts = retention_purge(
            before=before, batch_size=batch_size, dry_run=dry_run, on_batch=self._progress
        )
        self._report(counts, RETENTION_LINES, dry_run)

    def _purge_dead_letters(self, options: dict, batch_size: int, dry_run: bool) -> None:
        if options["days"] is not None:
            raise CommandError("--failed takes --before, not --days.")
        if options["before"] is None:
            raise CommandError(
                "--failed needs --before: a date such as 2026-11-01, or a number of days."
            )
        before = _parse_before(options["before"])
        self._heading("Purging failed deliveries (dead letters) finished", before, dry_run)
        counts = dead_letters_purge(
            before=before, batch_size=batch_size, dry_run=dry_run, on_batch=self._progress
        )
        self._report(counts, DEAD_LETTER_LINES, dry_run)

    def _batch_size(self, given: int | None) -> int:
        if given is None:
            return settings.WEBHOOKS_RETENTION_BATCH_SIZE
        if given < 1:
            raise CommandError(f"--batch-size must be at least 1, not {given}.")
        return given

    def _heading(self, what: str, before: datetime, dry_run: bool) -> None:
        stamp = before.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        suffix = " (dry run: nothing is changed)" if dry_run else ""
        self.stdout.write(f"{what} before {stamp}{suffix}:")

    def _progress(self, category: str, count: int) -> None:
        if self.verbosity >= 2:
            self.stderr.write(f"  batch: {count} {category}")

    def _report(self, counts: PurgeCounts, lines: tuple, dry_run: bool) -> None:
        width = max(len(label) for _, label, _ in lines)
        for field, label, action in lines:
            verb = f"would be {action}" if dry_run else action
            self.stdout.write(f"  {label:<{width}}  {getattr(counts, field):>9}  {verb}")


_DAYS = re.compile(r"\s*(\d+)\s*d?\s*")


def _parse_before(raw: str) -> datetime:
    """A number of days ago, a date (midnight UTC) or an ISO 8601 time (UTC if no offset)."""
    moment = None
    if days := _DAYS.fullmatch(raw):
        moment = retention_cutoff(days=int(days.group(1))) or timezone.now()
    else:
        try:
            moment = parse_datetime(raw)
            if moment is None and (day := parse_date(raw)) is not None:
                moment = datetime.combine(day, time.min)
        except ValueError:
            moment = None
    if moment is None:
        raise CommandError(
            f"--before must be a number of days, a date such as 2026-11-01 or a time such as "
            f"2026-11-01T09:00Z, not {raw!r}."
        )
    if timezone.is_naive(moment):
        moment = moment.replace(tzinfo=UTC)
    if moment > timezone.now():
        raise CommandError(f"--before {raw} is in the future: that would purge every dead letter.")
    return moment
