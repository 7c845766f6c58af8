"""What a benchmark phase cost, and where: processor time of the emitting process, the workers,
the receiver and the database's own server processes, WAL written, and broker messages, read
before and after it.

Processor time comes from /proc (Linux), per process, so other programs on the machine do not
count; the database processes are this database's backends (pg_stat_activity). WAL and the
broker's command counts are the servers' own totals, so they include anyone else using those
servers meanwhile: on a quiet machine that is nobody.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import redis
from django.db import connection

_TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
# The commands that move a message through Celery's Redis transport: a publish pushes it, a
# consumer pops it. A message costs one push; pops without a message time out and are not
# messages, so the pushes are what is counted.
_PUBLISH_COMMANDS = ("cmdstat_lpush", "cmdstat_rpush")


@dataclass(frozen=True)
class Reading:
    host_cpu_s: float  # this process: the application that emits
    worker_cpu_s: float
    receiver_cpu_s: float
    database_cpu_s: float
    wal_bytes: int
    broker_messages: int


@dataclass(frozen=True)
class Meter:
    """Reads the costs of a worker process tree, a receiver process, the database, and the
    broker at `broker_url` (Redis; other brokers are not counted)."""

    worker_pid: int
    receiver_pid: int
    broker_url: str

    def read(self) -> Reading:
        return Reading(
            host_cpu_s=cpu_seconds(os.getpid()),
            worker_cpu_s=sum(cpu_seconds(pid) for pid in process_tree(self.worker_pid)),
            receiver_cpu_s=cpu_seconds(self.receiver_pid),
            database_cpu_s=sum(cpu_seconds(pid) for pid in _database_backends()),
            wal_bytes=_wal_position(),
            broker_messages=_broker_pushes(self.broker_url),
        )


def per_thousand(before: Reading, after: Reading, deliveries: int) -> dict[str, float]:
    """The costs between two readings per 1,000 deliveries, as the benchmark prints them."""
    scale = 1000 / max(deliveries, 1)
    return {
        "host_cpu_s": round(scale * (after.host_cpu_s - before.host_cpu_s), 3),
        "worker_cpu_s": round(scale * (after.worker_cpu_s - before.worker_cpu_s), 3),
        "receiver_cpu_s": round(scale * (after.receiver_cpu_s - before.receiver_cpu_s), 3),
        "database_cpu_s": round(scale * (after.database_cpu_s - before.database_cpu_s), 3),
        "wal_bytes": round(scale * (after.wal_bytes - before.wal_bytes)),
        "broker_messages": round(scale * (after.broker_messages - before.broker_messages), 1),
    }


def cpu_seconds(pid: int) -> float:
    """User and system processor seconds of one live process (0 once it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    # The command name, in parentheses, may hold spaces: fields are counted after it.
    fields = stat.rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS_PER_SECOND


def process_tree(pid: int) -> list[int]:
    """`pid` and its live descendants."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rpartition(")")[2].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(entry.name))
    tree, pending = [], [pid]
    while pending:
        current = pending.pop()
        tree.append(current)
        pending.extend(children.get(current, ()))
    return tree


def _database_backends() -> list[int]:
    if connection.vendor != "postgresql":
        return []
    with connection.cursor() as cursor:
        cursor.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
        return [pid for (pid,) in cursor.fetchall()]


def _wal_position() -> int:
    if connection.vendor != "postgresql":
        return 0
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')")
        return int(cursor.fetchone()[0])


def _broker_pushes(broker_url: str) -> int:
    if not broker_url.startswith("redis"):
        return 0
    client = redis.Redis.from_url(broker_url)
    try:
        stats: dict[str, dict[str, int]] = client.info("commandstats")  # type: ignore[assignment]
    finally:
        client.close()
    return sum(int(stats.get(name, {}).get("calls", 0)) for name in _PUBLISH_COMMANDS)
