from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import dj_database_url
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection

from benchmarks.brokers import (
    BrokerUnavailable,
    bench_broker_urls,
    broker_checked,
    broker_comparison,
    comparison_report,
)
from benchmarks.costs import cpu_seconds
from benchmarks.delivery import TROUBLED_PATHS, Options, run
from benchmarks.ordered import ordered_failed, ordered_report
from benchmarks.pgbouncer import PgBouncer, pgbouncer_binary
from benchmarks.pooled import pooled_figures, pooled_report
from benchmarks.scratch import scratch_database

SCENARIO_ENDPOINTS = 10
# The inner process's exit status when the ordered variant's receiver saw a key broken.
ORDER_BROKEN = 3


class Command(BaseCommand):
    help = (
        "Measure delivery throughput and latency against a receiver on 127.0.0.1, in a scratch "
        "database, with real Celery workers; compare with a bare requests loop measured in the "
        "same run. Needs PostgreSQL, and Redis or RabbitMQ."
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
            "--broker",
            choices=["redis", "amqp", "both"],
            default="",
            help="the workers' broker: redis (database 12 of the server of CELERY_BROKER_URL, or "
            "REDIS_URL), amqp (RabbitMQ, the virtual host hookline_bench), or both, measured one "
            "after the other and compared (default: the kind CELERY_BROKER_URL names)",
        )
        parser.add_argument(
            "--amqp-url",
            default="",
            help="RabbitMQ for --broker amqp or both (default: the virtual host hookline_bench "
            "on the server of CELERY_BROKER_URL, or on 127.0.0.1:5672 as guest)",
        )
        parser.add_argument(
            "--otel",
            action="store_true",
            help="drain the backlog again with fresh workers, tracing off and then on (exporting "
            "to a collector on 127.0.0.1), and time one attempt's span in process",
        )
        parser.add_argument(
            "--pgbouncer",
            action="store_true",
            help="measure the run twice, directly and through a PgBouncer in transaction mode "
            "that the benchmark starts (Debian: apt-get install pgbouncer), and compare",
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

    def handle(self, *args: object, inside: bool, pgbouncer: bool, **options: Any) -> None:
        names = {f.name for f in dataclasses.fields(Options)}
        chosen = Options(**{name: options[name] for name in names})
        if chosen.scenario in TROUBLED_PATHS:
            chosen.endpoints = SCENARIO_ENDPOINTS
        # Stopped from outside, the benchmark still stops its workers and drops its database.
        signal.signal(signal.SIGTERM, _exit_cleanly)
        if inside:
            self._report(run(chosen))
            return
        if connection.vendor != "postgresql":
            raise CommandError("The benchmark needs PostgreSQL: set DATABASE_URL.")
        if settings.DATABASE_POOL_URL:
            raise CommandError(
                "The benchmark creates its databases on the server itself: run it without "
                "DATABASE_POOL_URL (--pgbouncer starts a PgBouncer of its own)."
            )
        if pgbouncer and pgbouncer_binary() is None:
            raise CommandError("--pgbouncer needs PgBouncer: apt-get install pgbouncer.")
        default = "amqp" if settings.CELERY_BROKER_URL.startswith("amqp") else "redis"
        try:
            urls = bench_broker_urls(
                options["broker"] or default,
                broker_url=settings.CELERY_BROKER_URL,
                redis_url=settings.REDIS_URL,
                amqp_url=options["amqp_url"],
            )
            for name, url in urls.items():
                broker_checked(name, url)
        except BrokerUnavailable as error:
            raise CommandError(f"The benchmark needs its broker. {error}") from None
        if pgbouncer:
            if len(urls) > 1:
                raise CommandError("--pgbouncer compares on one broker: --broker redis or amqp.")
            self._measure_direct_and_pooled(chosen, _environment(next(iter(urls.values()))))
            return
        runs = {}
        for name, broker in urls.items():
            with scratch_database("bench") as url:
                runs[name] = self._run_inside(chosen, {**_environment(broker), "DATABASE_URL": url})
        if len(runs) > 1:
            comparison = broker_comparison(runs)
            for line in comparison_report(comparison):
                self.stdout.write(line)
            self.stdout.write(json.dumps(comparison))

    def _run_inside(self, options: Options, env: dict[str, str]) -> dict:
        """One measurement by a process of its own in the scratch database `env` names; echoes
        what it prints, returns its figures."""
        command = [sys.executable, "manage.py", "benchmark", "--inside", *self._flags(options)]
        inner = subprocess.Popen(
            command, env=env, cwd=settings.BASE_DIR, stdout=subprocess.PIPE, text=True
        )
        figures: dict = {}
        try:
            assert inner.stdout is not None
            for line in inner.stdout:
                self.stdout.write(line.rstrip("\n"))
                if line.startswith('{"benchmark"'):
                    figures = json.loads(line)
            returncode = inner.wait()
        finally:
            if inner.poll() is None:
                inner.terminate()
                inner.wait(timeout=90)
        if returncode == ORDER_BROKEN:
            raise CommandError("The ordered variant's checks failed.")
        if returncode:
            raise CommandError("The benchmark failed.")
        return figures

    def _measure_direct_and_pooled(self, options: Options, env: dict[str, str]) -> None:
        """The run directly, then through a PgBouncer in front of the same server, each in a
        scratch database of its own; prints both and the comparison (benchmarks.pooled)."""
        runs, bouncer_cpu_s = {}, 0.0
        for name in ("direct", "pgbouncer"):
            self.stdout.write(f"--- {name} ---")
            with scratch_database(f"bench_{name}") as url, _pgbouncer(url, name) as bouncer:
                pool_url = bouncer.url(url.rsplit("/", 1)[1]) if bouncer else ""
                started = _cpu_seconds(bouncer)
                inner_env = {**env, "DATABASE_URL": url, "DATABASE_POOL_URL": pool_url}
                runs[name] = self._run_inside(options, inner_env)
                bouncer_cpu_s = _cpu_seconds(bouncer) - started
        figures = pooled_figures(runs["direct"], runs["pgbouncer"])
        # PgBouncer's own processor time, which no figure of the pooled run includes.
        delivered = max(runs["pgbouncer"].get("received", 0), 1)
        figures["pgbouncer_process_cpu_s_per_1000"] = round(1000 * bouncer_cpu_s / delivered, 3)
        for line in pooled_report(figures):
            self.stdout.write(line)
        self.stdout.write(json.dumps({"benchmark": "delivery", "variant": "pgbouncer", **figures}))

    def _flags(self, options: Options) -> list[str]:
        flags = []
        for field in dataclasses.fields(options):
            value = getattr(options, field.name)
            if field.name == "scenario":
                flags += [f"--{value}"] if value else []
            elif field.name == "ordered":  # a scenario too: only when chosen
                flags += ["--ordered", str(value)] if value else []
            elif field.name in ("transform", "otel"):
                flags += [f"--{field.name}"] if value else []
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


def _environment(broker: str) -> dict[str, str]:
    """The measuring process's environment, with `broker` for its workers."""
    return {**os.environ, "CELERY_BROKER_URL": broker,
            "REDIS_URL": "", "CACHE_URL": "locmem://",
            "WEBHOOKS_REQUIRE_HTTPS": "false",
            "WEBHOOKS_PRIVATE_NETWORK_ALLOWLIST": "127.0.0.0/8",
            "LOG_LEVEL": "WARNING", "PYTHONUNBUFFERED": "1",
            # The receivers are on 127.0.0.1; no web server runs, so no host is Hookline's.
            "ALLOWED_HOSTS": "localhost"}  # fmt: skip


@contextlib.contextmanager
def _pgbouncer(url: str, run: str) -> Iterator[PgBouncer | None]:
    """For the pgbouncer run, a PgBouncer in transaction mode in front of `url`'s server; for
    the direct run, none."""
    if run != "pgbouncer":
        yield None
        return
    parts = dj_database_url.parse(url)
    with PgBouncer(
        host=parts["HOST"] or "127.0.0.1", port=int(parts["PORT"] or 5432),
        user=parts["USER"] or "postgres", password=parts["PASSWORD"] or "",
    ) as bouncer:  # fmt: skip
        yield bouncer


def _cpu_seconds(bouncer: PgBouncer | None) -> float:
    if bouncer is None or bouncer.process is None:
        return 0.0
    return cpu_seconds(bouncer.process.pid)


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number from 1 up")
    return int(text)


def _exit_cleanly(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)
