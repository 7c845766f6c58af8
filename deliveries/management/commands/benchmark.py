from __future__ import annotations

import json
import os
import subprocess
import sys

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection

from deliveries.bench.scratch import scratch_database

# The benchmark's own Redis database, so a running Hookline's queue is never touched.
BENCH_REDIS_DB = 12


class Command(BaseCommand):
    help = (
        "Measure delivery throughput and latency against a receiver on 127.0.0.1, in a scratch "
        "database, with real Celery workers; compare with a bare requests loop measured in the "
        "same run. Needs PostgreSQL and Redis."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--events", type=int, default=2500)
        parser.add_argument("--endpoints", type=int, default=2)
        parser.add_argument("--workers", type=int, default=2)
        parser.add_argument("--inside", action="store_true", help="(internal)")

    def handle(self, *args: object, events: int, endpoints: int, workers: int, inside: bool,
               **_: object) -> None:  # fmt: skip
        if inside:
            from deliveries.bench.delivery import run

            self._report(run(events=events, endpoints=endpoints, workers=workers))
            return
        if connection.vendor != "postgresql" or not settings.CELERY_BROKER_URL.startswith("redis"):
            raise CommandError("The benchmark needs PostgreSQL and Redis: set DATABASE_URL and "
                               "CELERY_BROKER_URL.")  # fmt: skip
        broker = settings.CELERY_BROKER_URL.rsplit("/", 1)[0] + f"/{BENCH_REDIS_DB}"
        with scratch_database("bench") as url:
            env = {**os.environ, "DATABASE_URL": url, "CELERY_BROKER_URL": broker,
                   "CACHE_URL": "locmem://", "WEBHOOKS_REQUIRE_HTTPS": "false",
                   "WEBHOOKS_PRIVATE_NETWORK_ALLOWLIST": "127.0.0.0/8",
                   "WEBHOOKS_SWEEP_INTERVAL": "1"}  # fmt: skip
            command = [
                sys.executable, "manage.py", "benchmark", "--inside", "--events", str(events),
                "--endpoints", str(endpoints), "--workers", str(workers),
            ]  # fmt: skip
            result = subprocess.run(command, env=env, cwd=settings.BASE_DIR, check=False)
        if result.returncode:
            raise CommandError("The benchmark failed.")

    def _report(self, figures: dict) -> None:
        for name, value in figures.items():
            self.stdout.write(f"{name:<34}{value:>14}")
        self.stdout.write(json.dumps({"benchmark": "delivery", **figures}))
