"""The delivery benchmark, run inside a scratch database: raw ceiling, backlog capacity, burst.

Everything is measured in one run on the same machine, so the figures are ratios to a baseline
taken minutes apart, not absolute claims.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import requests
from django.conf import settings
from django.core.management import call_command

from deliveries.models import Delivery
from subscriptions.models import generate_signing_secret
from subscriptions.services import endpoint_create, event_type_create, tenant_create
from webhooks import send_event
from webhooks.signing import secret_key, signature_header


@dataclass
class Receiver:
    port: int
    process: subprocess.Popen
    out: Path

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def stop(self) -> list[list]:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=30)
        return [json.loads(line) for line in self.out.read_text().splitlines()]


def start_receiver(workdir: Path, name: str) -> Receiver:
    port = _free_port()
    out = workdir / f"{name}.jsonl"
    process = subprocess.Popen(
        [sys.executable, "-m", "deliveries.bench.receiver", str(port), str(out)],
        cwd=settings.BASE_DIR, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    if process.stdout is None or process.stdout.readline().strip() != "ready":
        raise RuntimeError("The benchmark receiver did not start.")
    return Receiver(port, process, out)


def raw_ceiling(receiver: Receiver, count: int) -> float:
    """Signed POSTs per second from one bare keep-alive session: no database, no queue."""
    session = requests.Session()
    session.trust_env = False
    key = secret_key(generate_signing_secret())
    started = time.perf_counter()
    for n in range(count):
        body = json.dumps({"type": "bench", "data": {"n": n, "sent_at": time.time()}}).encode()
        stamp = int(time.time())
        headers = {
            "content-type": "application/json",
            "webhook-id": f"msg_raw{n}",
            "webhook-timestamp": str(stamp),
            "webhook-signature": signature_header([key], f"msg_raw{n}", stamp, body),
        }
        session.post(receiver.url("/raw"), data=body, headers=headers, timeout=10)
    return count / (time.perf_counter() - started)


def start_workers(count: int, workdir: Path) -> list[subprocess.Popen]:
    workers = []
    for index in range(count):
        log = (workdir / f"worker{index}.log").open("wb")
        workers.append(subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "worker", "--concurrency", "1",
             "--hostname", f"bench{index}@%h", "--loglevel", "WARNING",
             *(["--beat", "--schedule", str(workdir / "beat")] if index == 0 else [])],
            cwd=settings.BASE_DIR, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        ))  # fmt: skip
    return workers


def stop_workers(workers: list[subprocess.Popen]) -> float:
    """Stop the workers; returns the CPU seconds they and their children used."""
    for worker in workers:
        os.killpg(worker.pid, signal.SIGTERM)
    for worker in workers:
        worker.wait(timeout=30)
    return os.times().children_user + os.times().children_system


def wait_for(receiver: Receiver, count: int, timeout: float) -> None:
    """Wait until `count` deliveries have succeeded (the receiver writes its log only at exit)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _received_so_far(receiver) >= count:
            return
        time.sleep(0.05)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def _received_so_far(receiver: Receiver) -> int:
    return Delivery.objects.filter(status=Delivery.Status.SUCCEEDED).count()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run(*, events: int, endpoints: int, workers: int) -> dict:
    call_command("migrate", verbosity=0)
    workdir = Path(tempfile.mkdtemp(prefix="hookline-bench-"))
    receiver = start_receiver(workdir, "receiver")
    total = events * endpoints
    ceiling = raw_ceiling(receiver, total)
    tenant = tenant_create(slug="bench", name="Benchmark")
    event_type_create(name="bench.event")
    for n in range(endpoints):
        endpoint_create(tenant=tenant, url=receiver.url(f"/e{n}"))

    emit_started = time.perf_counter()
    for n in range(events):
        send_event(tenant, "bench.event", {"n": n, "sent_at": time.time()})
    emit_seconds = time.perf_counter() - emit_started
    pool = start_workers(workers, workdir)
    started = time.perf_counter()
    wait_for(receiver, total, timeout=120)
    backlog_seconds = time.perf_counter() - started

    burst_started = time.perf_counter()
    burst_from = time.time()
    for n in range(events):
        send_event(tenant, "bench.event", {"n": n, "sent_at": time.time()})
    wait_for(receiver, 2 * total, timeout=120)
    burst_seconds = time.perf_counter() - burst_started
    cpu_seconds = stop_workers(pool)
    records = receiver.stop()
    return _summary(records, total, ceiling, backlog_seconds, burst_seconds, burst_from,
                    emit_seconds / events, cpu_seconds)  # fmt: skip


def _summary(
    records: list[list], total: int, ceiling: float, backlog_seconds: float,
    burst_seconds: float, burst_from: float, emit_seconds: float, cpu_seconds: float,
) -> dict:  # fmt: skip
    delivered = [r for r in records if r[0].startswith("/e")]
    burst = [(at - sent) * 1000 for _, _, at, sent in delivered if sent >= burst_from]
    unique = {(path, webhook_id) for path, webhook_id, _, _ in delivered}
    return {
        "deliveries": 2 * total,
        "raw_ceiling_per_s": round(ceiling, 1),
        "backlog_per_s": round(total / backlog_seconds, 1),
        "backlog_vs_ceiling_pct": round(100 * total / backlog_seconds / ceiling, 1),
        "end_to_end_per_s": round(total / burst_seconds, 1),
        "end_to_end_vs_ceiling_pct": round(100 * total / burst_seconds / ceiling, 1),
        "burst_latency_ms_p50": round(percentile(burst, 0.50), 1) if burst else None,
        "burst_latency_ms_p95": round(percentile(burst, 0.95), 1) if burst else None,
        "burst_latency_ms_p99": round(percentile(burst, 0.99), 1) if burst else None,
        "emit_ms_per_event": round(1000 * emit_seconds, 3),
        "worker_cpu_s_per_1000": round(1000 * cpu_seconds / max(len(delivered), 1), 3),
        "received": len(delivered),
        "lost": 2 * total - len(unique),
        "duplicated": len(delivered) - len(unique),
    }
