"""Prometheus metrics: counters moved by the workers' attempts, gauges read from the database.

Attempts run in Celery's pool processes, not in the web process that serves /metrics. With
PROMETHEUS_MULTIPROC_DIR set (before any process starts), prometheus-client keeps each process's
counters in a file of that directory and the scrape adds them up; without it, a scrape sees the
counters of the process that answers it. The gauges are not counted anywhere: they are read from
the database at scrape time, with queries that stay cheap however many finished deliveries pile up.
"""

from __future__ import annotations

import collections
import logging
import os
import socket
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING

from django.db import DatabaseError
from django.utils import timezone
from prometheus_client import Counter, Histogram, values
from prometheus_client.core import GaugeMetricFamily

from deliveries.retry import OUTCOMES, Action
from deliveries.selectors import dead_letters_count, deliveries_backlog, endpoints_disabled_count

if TYPE_CHECKING:
    from deliveries.claims import Outcome

logger = logging.getLogger(__name__)


def _process_identifier() -> str:
    """Names this process's files in PROMETHEUS_MULTIPROC_DIR: the host name, then the pid.

    Containers have process ids of their own, so the web and worker containers that share the
    directory would both have a process 7 writing one file; their host names (container ids)
    tell them apart.
    """
    return f"{_HOST}-{os.getpid()}"


_HOST = socket.gethostname().replace("_", "-")  # "_" separates the parts of a file's name
if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    # Before any metric exists: each one takes its storage from ValueClass when it is made.
    values.ValueClass = values.MultiProcessValue(process_identifier=_process_identifier)

DELIVERIES = Counter(
    "hookline_deliveries",
    "Deliveries moved on by an attempt: succeeded, retry_scheduled, or failed (dead-lettered).",
    ["outcome"],
)
ATTEMPTS = Counter(
    "hookline_attempts",
    "HTTP attempts by result: the status class (2xx…5xx), or the error when no answer came.",
    ["result"],
)
# Receivers answer in milliseconds when healthy; a timeout ends an attempt at WEBHOOKS_TIMEOUT.
ATTEMPT_SECONDS = Histogram(
    "hookline_attempt_duration_seconds",
    "How long each HTTP attempt took, answer or error.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 30),
)

_STATUS_CLASSES = {n: f"{n}xx" for n in range(1, 6)}
_ERROR_KINDS = ("timeout", "connection", "tls", "blocked", "invalid_response", "invalid_request")

# Children resolved once: a labels() lookup per attempt would cost more than the increment. Made
# up front, so that every series exists (at 0) before its first attempt and rate() sees it start.
_deliveries = {action: DELIVERIES.labels(outcome) for action, outcome in OUTCOMES.items()}
_attempts = {
    result: ATTEMPTS.labels(result)
    for result in ("2xx", "3xx", "4xx", "5xx", *_ERROR_KINDS, "internal")
}


def attempt_result(status: int | None, error_kind: str) -> str:
    """The `result` label of an attempt: `2xx` and so on, else its error kind."""
    if status is not None:
        return _STATUS_CLASSES.get(status // 100, "other_status")
    return error_kind or "unknown"


def outcomes_count(*, outcomes: Iterable[Outcome], **_: object) -> None:
    """Count recorded attempts and where they moved their deliveries (connected to the engine's
    `attempts_recorded`). No I/O but a memory map.

    Counters move once per batch and label (each move is a write to the shared file), the
    histogram once per attempt.
    """
    actions: collections.Counter[Action] = collections.Counter()
    results: collections.Counter[str] = collections.Counter()
    for outcome in outcomes:
        attempt = outcome.attempt
        actions[outcome.decision.action] += 1
        results[attempt_result(attempt.response_status, attempt.error_kind)] += 1
        ATTEMPT_SECONDS.observe(attempt.duration_ms / 1000)
    for action, count in actions.items():
        _deliveries[action].inc(count)
    for result, count in results.items():
        counter = _attempts.get(result)
        if counter is None:
            counter = _attempts[result] = ATTEMPTS.labels(result)
        counter.inc(count)


class DatabaseCollector:
    """Gauges read at scrape time: the due backlog and its oldest wait, dead letters, disabled
    endpoints. With the database down they are left out, and the counters still go out."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            gauges = _database_gauges(timezone.now())
        except DatabaseError as error:
            logger.warning("Metrics left out the database's gauges: %s", error)
            return
        yield from gauges


def _database_gauges(now: datetime) -> list[GaugeMetricFamily]:
    due, oldest_due_at = deliveries_backlog(at=now)
    return [
        _gauge(
            "hookline_backlog_deliveries",
            "Pending deliveries whose time has come (due, not yet delivered).",
            due,
        ),
        _gauge(
            "hookline_backlog_oldest_seconds",
            "How long the longest-waiting due delivery has been due; 0 with no backlog.",
            _seconds_since(oldest_due_at, now),
        ),
        _gauge(
            "hookline_dead_letters",
            "Deliveries whose retries ran out (status failed): the dead-letter queue.",
            dead_letters_count(),
        ),
        _gauge(
            "hookline_endpoints_disabled",
            "Endpoints disabled, by an operator or after failing for too long.",
            endpoints_disabled_count(),
        ),
    ]


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def _seconds_since(moment: datetime | None, now: datetime) -> float:
    return max(0.0, (now - moment).total_seconds()) if moment is not None else 0.0
