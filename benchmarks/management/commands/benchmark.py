from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import subprocess
import sys
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection

from benchmarks.delivery import TROUBLED_PATHS, Options, run
from benchmarks.ordered import ordered_failed, ordered_report
from benchmarks.scratch import scratch_database

# The benchmark's own Redis database, so a running Hookline's queue is never touched.
BENCH_REDIS_DB = 12
SCENARIO_ENDPOINTS = 10
# The inner process's exit status when the ordered variant's receiver saw a key broken.
ORDER_BROKEN = 3


class Command(BaseCommand):
    help = (
        "Measure delivery throughput and latency against a receiver on 127.0.0.1, in a scratch "
        "database, with real Celery workers; compare with a bare requests loop measured in the "
        "same run. Needs PostgreSQL and Redis."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--events", type=int, default=5000, help="events per phase (default 5000)"
        )
        parser.add_argument(
            "--endpoints", type=int, default=1, help="endpoints each event fans out to (default 1)"
        )
        parser.add_argument(
            "--workers",
            type=int,
            default=os.cpu_count() or 2,
            help="worker processes (default: one per CPU)",
        )
        parser.add_argument(
            "--steady-rate",
            type=float,
            default=200.0,
            help="events per second in the steady phase (default 200)",
        )
        parser.add_argument("--steady-seconds", type=float, default=10.0)
        scenario = parser.add_mutually_exclusive_group()
        scenario.add_argument(
            "--slow-endpoint",
            action="store_const",
            dest="scenario",
            const="slow-endpoint",
            default="",
            help=f"{SCENARIO_ENDPOINTS} endpoints, one of which stops answering",
        )
        scenario.add_argument(
            "--failing-endpoint",
            action="store_const",
            dest="scenario",
            const="failing-endpoint",
            help=f"{SCENARIO_ENDPOINTS} endpoints, one of which answers 500",
        )
        scenario.add_argument(
            "--noisy-neighbour",
            action="store_const",
            dest="scenario",
            const="noisy-neighbour",
            help="one tenant's backlog of 20,000 (or --prefill) drains while another emits 5/s",
        )
        scenario.add_argument(
            "--ordered",
            type=_positive,
            default=0,
            metavar="K",
            help="a backlog of 20,000 (or --prefill) over K ordering keys drains, against the "
            "same backlog without keys; the receiver checks every key's order",
        )
        parser.add_argument(
            "--prefill",
            type=int,
            default=0,
            help="finished deliveries to store before measuring again; with --noisy-neighbour "
            "or --ordered, the backlog's size",
        )
        parser.add_argument(
            "--transform",
            action="store_true",
            help="drain the backlog again plain and with a transformation on every endpoint, "
            "and time one transformation in process",
        )
        parser.add_argument(
            "--history",
            type=int,
            default=0,
            metavar="N",
            help="also store N attempts (half of them on a day past the retention window), time "
            "the delivery pages, lists and a claim, purge that day, and compare the backlog with "
            "attempts partitioned and in a plain table",
        )
        parser.add_argument("--inside", action="store_true", help="(internal)")

    def handle(self, *args: object, inside: bool, **options: Any) -> None:
        names = {f.name for f in dataclasses.fields(Options)}
        chosen = Options(**{name: options[name] for name in names})
        if chosen.scenario in TROUBLED_PATHS:
            chosen.endpoints = SCENARIO_ENDPOINTS
        # Stopped from outside, the benchmark still stops its workers and drops its database.
        signal.signal(signal.SIGTERM, _exit_cleanly)
        if inside:
            self._report(run(chosen))
            return
        if connection.vendor != "postgresql" or not settings.CELERY_BROKER_URL.startswith("redis"):
            raise CommandError("The benchmark needs PostgreSQL and Redis: set DATABASE_URL and "
                               "CELERY_BROKER_URL.")  # fmt: skip
        broker = settings.CELERY_BROKER_URL.rsplit("/", 1)[0] + f"/{BENCH_REDIS_DB}"
        with scratch_database("bench") as url:
            env = {**os.environ, "DATABASE_URL": url, "CELERY_BROKER_URL": broker,
                   "CACHE_URL": "locmem://", "WEBHOOKS_REQUIRE_HTTPS": "false",
                   "WEBHOOKS_PRIVATE_NETWORK_ALLOWLIST": "127.0.0.0/8",
                   "LOG_LEVEL": "WARNING",
                   # The receivers are on 127.0.0.1; no web server runs, so no host is Hookline's.
                   "ALLOWED_HOSTS": "localhost"}  # fmt: skip
            command = [sys.executable, "manage.py", "benchmark", "--inside", *self._flags(chosen)]
            inner = subprocess.Popen(command, env=env, cwd=settings.BASE_DIR)
            try:
                returncode = inner.wait()
            finally:
                if inner.poll() is None:
                    inner.terminate()
                    inner.wait(timeout=90)
        if returncode == ORDER_BROKEN:
            raise CommandError("The ordered variant's checks failed.")
        if returncode:
            raise CommandError("The benchmark failed.")

    def _flags(self, options: Options) -> list[str]:
        flags = []
        for field in dataclasses.fields(options):
            value = getattr(options, field.name)
            if field.name == "scenario":
                flags += [f"--{value}"] if value else []
            elif field.name == "ordered":  # a scenario too: only when chosen
                flags += ["--ordered", str(value)] if value else []
            elif field.name == "transform":
                flags += ["--transform"] if value else []
            else:
                flags += [f"--{field.name.replace('_', '-')}", str(value)]
        return flags

    def _report(self, figures: dict) -> None:
        for name, value in figures.items():
            self.stdout.write(f"{name:<34}{value!s:>14}")
        ordered = "ordered_keys" in figures
        if ordered:
            for line in ordered_report(figures):
                self.stdout.write(line)
        self.stdout.write(json.dumps({"benchmark": "delivery", **figures}))
        if ordered and ordered_failed(figures):
            sys.exit(ORDER_BROKEN)


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number from 1 up")
    return int(text)


def _exit_cleanly(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)
