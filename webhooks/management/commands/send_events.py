from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from subscriptions.models import Tenant
from webhooks.batches import (
    MAX_BATCH_EVENTS,
    EventItem,
    ItemRejected,
    ItemStatus,
    RejectionCode,
    events_send,
    item_from_mapping,
)
from webhooks.errors import EventError, UnknownTenantError
from webhooks.payloads import json_object_members
from webhooks.services import tenant_resolved

SHOWN_REJECTIONS = 100  # lines listed at the end; the count covers all of them


@dataclass
class Tally:
    lines: int = 0  # read and sent (or rejected)
    created: int = 0
    duplicates: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)  # (line number, why)


class Command(BaseCommand):
    help = (
        "Send the events of a JSON Lines file, in batches of up to 500 (a backfill). Each line is "
        'an object like the API\'s: {"event_type": …, "payload": {…}, "idempotency_key": …, '
        '"ordering_key": …}. Lines with an idempotency key are safe to send again. Exits non-zero '
        "if any line was rejected."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", required=True, help="The tenant's slug.")
        parser.add_argument("--file", required=True, help="A .jsonl file, or - for stdin.")
        parser.add_argument(
            "--batch-size",
            type=int,
            default=MAX_BATCH_EVENTS,
            help=f"Events per transaction, 1 to {MAX_BATCH_EVENTS} (default {MAX_BATCH_EVENTS}).",
        )

    def handle(self, *args: object, tenant: str, file: str, batch_size: int, **_: Any) -> None:
        if not 1 <= batch_size <= MAX_BATCH_EVENTS:
            raise CommandError(f"--batch-size must be from 1 to {MAX_BATCH_EVENTS}.")
        try:
            receiver = tenant_resolved(tenant)
        except UnknownTenantError as error:
            raise CommandError(str(error)) from None
        tally = Tally()
        with _opened(file) as lines:
            total = _line_count(file)
            stream: Any = self.stderr._out  # the command's text stream, which tqdm writes to
            with tqdm(total=total, unit="line", file=stream) as progress:
                for chunk in _chunks(lines, batch_size, tally):
                    _send(receiver, chunk, tally)
                    progress.update(chunk.lines)
                    tally.lines += chunk.lines
        self._report(tally)

    def _report(self, tally: Tally) -> None:
        self.stdout.write(
            f"Created {tally.created}, duplicates {tally.duplicates}, "
            f"rejected {len(tally.rejected)}."
        )
        for number, why in sorted(tally.rejected)[:SHOWN_REJECTIONS]:
            self.stderr.write(f"line {number}: {why}")
        if len(tally.rejected) > SHOWN_REJECTIONS:
            self.stderr.write(f"… and {len(tally.rejected) - SHOWN_REJECTIONS} more.")
        if tally.rejected:
            raise CommandError(f"{len(tally.rejected)} lines were rejected; the others were sent.")


@dataclass
class _Chunk:
    items: list[EventItem] = field(default_factory=list)
    numbers: list[int] = field(default_factory=list)  # each item's line number
    lines: int = 0  # lines read for it, blank and rejected ones included


def _chunks(lines: IO[bytes], size: int, tally: Tally) -> Iterator[_Chunk]:
    chunk = _Chunk()
    for number, raw in enumerate(lines, start=1):
        chunk.lines += 1
        if raw.strip():
            try:
                chunk.items.append(_item(raw))
                chunk.numbers.append(number)
            except ItemRejected as rejected:
                tally.rejected.append((number, f"{rejected.code.value}: {rejected.detail}"))
        if len(chunk.items) == size:
            yield chunk
            chunk = _Chunk()
    if chunk.lines:
        yield chunk


def _item(raw: bytes) -> EventItem:
    """A line as an item; raises ItemRejected for one that is not a JSON object of its fields."""
    try:
        values, texts = json_object_members(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ItemRejected(RejectionCode.INVALID_ITEM, "The line is not UTF-8 text.") from None
    except (ValueError, RecursionError) as error:
        raise ItemRejected(RejectionCode.INVALID_ITEM, f"The line is not JSON ({error}).") from None
    return item_from_mapping(values, texts.get("payload"))


def _send(tenant: Tenant, chunk: _Chunk, tally: Tally) -> None:
    if not chunk.items:
        return
    try:
        results = events_send(tenant=tenant, items=chunk.items)
    except EventError as error:
        raise CommandError(
            f"Stopped at line {chunk.numbers[0]}: {error} The {tally.lines} lines before it were "
            "sent; run the command again to go on (lines with an idempotency key are not sent "
            "twice)."
        ) from None
    for result in results:
        if result.status == ItemStatus.CREATED:
            tally.created += 1
        elif result.status == ItemStatus.DUPLICATE:
            tally.duplicates += 1
        else:
            code = result.code.value if result.code else "rejected"
            tally.rejected.append((chunk.numbers[result.index], f"{code}: {result.detail}"))


@contextmanager
def _opened(name: str) -> Iterator[IO[bytes]]:
    """The file (stdin for "-"), read as bytes: each line is decoded alone, so that a line that
    is not UTF-8 is that line's problem only."""
    if name == "-":
        yield sys.stdin.buffer
        return
    try:
        file = Path(name).open("rb")  # noqa: SIM115 - closed below
    except OSError as error:
        raise CommandError(f"Cannot read {name}: {error.strerror}.") from None
    with file:
        yield file


def _line_count(name: str) -> int | None:
    """The file's lines, for the progress bar (unknown for stdin)."""
    if name == "-":
        return None
    lines, last = 0, b"\n"
    with Path(name).open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            lines, last = lines + block.count(b"\n"), block[-1:]
    return lines + (last != b"\n")
