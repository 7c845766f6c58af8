"""The delivery benchmark, run inside a scratch database with real Celery workers.

Everything is measured in one run on the same machine, so the figures that matter are ratios to
a baseline taken seconds apart (a bare `requests` loop), not absolute claims.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import requests
from celery import current_app
from django.conf import settings
from django.core.management import call_command
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from benchmarks.costs import Meter, per_thousand
from benchmarks.emitting import EVENT_TYPE, emit_batches, emit_burst, emit_steady
from benchmarks.filtered import fan_out_filtered
from benchmarks.history import history_figures, partitioned_capacity
from benchmarks.noisy import (
    NOISY_BACKLOG,
    QUIET_PATH,
    noisy_duplicates,
    noisy_neighbour,
    quiet_latencies,
)
from benchmarks.ordered import ORDERED_BACKLOG, ORDERED_PATH, order_check, ordered_backlogs
from benchmarks.prefill import prefill_finished_deliveries
from benchmarks.traced import Drain, Drained, traced_backlogs
from benchmarks.transformed import transformed_backlog
from deliveries.batch import deliver_due_batch
from deliveries.dispatch import wake_workers
from deliveries.holds import backlog_resume
from deliveries.models import Delivery
from subscriptions.models import Endpoint, Tenant, generate_signing_secret
from subscriptions.services import endpoint_create, event_type_create, tenant_create
from webhooks import send_event
from webhooks.signing import VerificationError, secret_key, signature_header, verify

FAN_OUT_ENDPOINTS = 1000


@dataclass
class Options:
    events: int
    endpoints: int
    workers: int
    steady_rate: float
    steady_seconds: float
    scenario: str = ""  # "", "slow-endpoint", "failing-endpoint" or "noisy-neighbour"
    prefill: int = 0
    ordered: int = 0  # the ordered variant's number of ordering keys (0: not run)
    history: int = 0  # attempts to store for the history variant (0: not run)
    transform: bool = False  # also drain backlogs with a transformation on every endpoint
    otel: bool = False  # also drain backlogs with fresh workers, untraced and traced


@dataclass
class Receiver:
    port: int
    process: subprocess.Popen
    out: Path

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def stop(self) -> list[dict]:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=30)
        return [json.loads(line) for line in self.out.read_text().splitlines()]


@dataclass
class Run:
    """What the phases measured, for the summary."""

    options: Options
    figures: dict = field(default_factory=dict)
    windows: dict[str, tuple[float, float]] = field(default_factory=dict)
    expected: int = 0
    secrets: dict[str, str] = field(default_factory=dict)  # by receiver path
    quiet_events: int = 0  # the noisy-neighbour variant's quiet tenant, one endpoint
    uncounted: int = 0  # delivered, but outside the exactly-once count (the noisy backlog)
    meter: Meter | None = None
    # Per backlog phase: its costs per 1,000 deliveries (benchmarks.costs.per_thousand).
    costs: dict[str, dict[str, float]] = field(default_factory=dict)


def start_receiver(workdir: Path, name: str) -> Receiver:
    port = _free_port()
    out = workdir / f"{name}.jsonl"
    process = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.receiver", str(port), str(out)],
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


def start_workers(count: int, workdir: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """`celery worker` as a user runs it: `count` processes, beat embedded; `env` adds to the
    environment."""
    log = (workdir / "worker.log").open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "--concurrency", str(count),
         "--hostname", "bench@%h", "--loglevel", "WARNING", "--beat",
         "--schedule", str(workdir / "beat")],
        cwd=settings.BASE_DIR, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        env={**os.environ, **(env or {})},
    )  # fmt: skip


def wait_until_ready(timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if current_app.control.ping(timeout=0.5):
            return
    raise RuntimeError("The benchmark's Celery worker did not start.")


def stop_workers(worker: subprocess.Popen) -> float:
    """Stop the worker; returns the CPU seconds it and its children used."""
    before = os.times()
    os.killpg(worker.pid, signal.SIGTERM)
    worker.wait(timeout=60)
    after = os.times()
    return (after.children_user - before.children_user) + (
        after.children_system - before.children_system
    )


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_delivered(endpoint_ids: list[int], since_id: int, count: int, timeout: float) -> float:
    """Wait until `count` deliveries after `since_id` to these endpoints succeeded."""
    deadline = time.monotonic() + timeout
    done = Delivery.objects.filter(
        id__gt=since_id, endpoint_id__in=endpoint_ids, status=Delivery.Status.SUCCEEDED
    )
    while time.monotonic() < deadline:
        if done.count() >= count:
            return time.time()
        time.sleep(0.05)
    raise RuntimeError(f"Only {done.count()} of {count} deliveries arrived in {timeout:g} s.")


def _last_delivery_id() -> int:
    return Delivery.objects.order_by("-id").values_list("id", flat=True).first() or 0


Emit = Callable[[Tenant, int], float]


def _backlog(
    run: Run, tenant: Tenant, healthy: list[int], name: str,
    emit: Emit = emit_burst, emit_figure: str = "emit_ms_per_event",
) -> None:  # fmt: skip
    """Deliveries already queued, workers only: delivery capacity. The emit is timed on its own,
    no worker woken: `emit_figure`."""
    options = run.options
    since = _last_delivery_id()
    # Held back while they are emitted, as if their endpoints' circuits were open.
    held = Endpoint.objects.filter(tenant=tenant)
    until = timezone.now() + timedelta(days=1)
    held.update(circuit_open_until=until)
    expected = options.events * len(healthy)
    with _metered(run, f"{name}_emit", expected):
        emit_seconds = emit(tenant, options.events)
    run.figures.setdefault(emit_figure, round(1000 * emit_seconds / options.events, 3))
    before = run.meter.read() if run.meter else None
    started = time.time()
    with transaction.atomic():  # the circuits close, as after a successful probe
        held.update(circuit_open_until=None)
        backlog_resume(held_until=dict.fromkeys(held.values_list("id", flat=True), until),
                       at=timezone.now())  # fmt: skip
    wake_workers()
    finished = _wait_delivered(healthy, since, expected, timeout=300)
    run.figures[f"{name}_per_s"] = round(expected / (finished - started), 1)
    if run.meter and before:
        run.costs[name] = per_thousand(before, run.meter.read(), expected)
    run.windows[name] = (started, finished)
    run.expected += expected


def _phase(run: Run, tenant: Tenant, healthy: list[int], name: str) -> float:
    """A backlog phase named `name`; returns its deliveries per second."""
    _backlog(run, tenant, healthy, name)
    return run.figures[f"{name}_per_s"]


def _burst(run: Run, tenant: Tenant, healthy: list[int], batched: bool = False) -> None:
    """One process emits a burst while the workers deliver: end to end, with latency. Batched,
    with send_events, 100 events a call."""
    options = run.options
    phase = "burst_batch" if batched else "burst"
    since = _last_delivery_id()
    expected = options.events * len(healthy)
    name = "end_to_end_batch" if batched else "end_to_end"
    with _metered(run, name, expected):
        started = time.time()
        emit_seconds = (emit_batches if batched else emit_burst)(tenant, options.events)
        finished = _wait_delivered(healthy, since, expected, timeout=300)
    run.figures[f"{name}_per_s"] = round(expected / (finished - started), 1)
    # Beside busy workers, and waking them: what an application pays under load.
    run.figures[f"{phase}_emit_ms_per_event"] = round(1000 * emit_seconds / options.events, 3)
    run.windows[phase] = (started, finished)
    run.expected += expected


@contextlib.contextmanager
def _metered(run: Run, name: str, deliveries: int) -> Iterator[None]:
    """Keep what the block cost, per 1,000 of its `deliveries`, as the costs of phase `name`."""
    if run.meter is None:
        yield
        return
    before = run.meter.read()
    yield
    run.costs[name] = per_thousand(before, run.meter.read(), deliveries)


def _steady(run: Run, tenant: Tenant, healthy: list[int]) -> None:
    options = run.options
    since = _last_delivery_id()
    started = time.time()
    count = emit_steady(tenant, options.steady_rate, options.steady_seconds)
    finished = _wait_delivered(healthy, since, count * len(healthy), timeout=120)
    run.windows["steady"] = (started, finished)
    run.expected += count * len(healthy)


def _queries_per_delivery(tenant: Tenant, endpoints: int) -> tuple[float, float]:
    """Queries per emitted event and per delivered delivery, counted in this process."""
    events = max(1, settings.WEBHOOKS_BATCH_SIZE // endpoints)
    with CaptureQueriesContext(connection) as emitted:
        for n in range(events):
            send_event(tenant, EVENT_TYPE, {"n": n, "sent_at": time.time()})
    with CaptureQueriesContext(connection) as delivered:
        count = deliver_due_batch(limit=events * endpoints)
    return len(emitted) / events, len(delivered) / max(count, 1)


def _fan_out_ms() -> float:
    """send_event to one tenant's 1,000 subscribed endpoints (never delivered: workers are off)."""
    tenant = tenant_create(slug="fan-out", name="Fan-out")
    Endpoint.objects.bulk_create(
        Endpoint(tenant=tenant, url=f"https://fan-out.invalid/{n}")
        for n in range(FAN_OUT_ENDPOINTS)
    )
    started = time.perf_counter()
    for n in range(10):
        send_event(tenant, EVENT_TYPE, {"n": n})
    return 1000 * (time.perf_counter() - started) / 10


def _draining_with_fresh_workers(
    run: Run, tenant: Tenant, healthy: list[int], workdir: Path
) -> Drain:
    """A backlog drained by workers started for it, with extra environment, then stopped: each
    phase pays the same start, and their CPU time is that phase's alone."""

    def drain(name: str, env: dict[str, str]) -> Drained:
        worker = start_workers(run.options.workers, workdir, env)
        try:
            wait_until_ready()
            _backlog(run, tenant, healthy, name)
        finally:
            cpu_seconds = stop_workers(worker)
        deliveries = run.options.events * len(healthy)
        return Drained(run.figures[f"{name}_per_s"], cpu_seconds, deliveries)

    return drain


TROUBLED_PATHS = {"slow-endpoint": "/hang0", "failing-endpoint": "/fail0"}


def run(options: Options) -> dict:
    call_command("migrate", verbosity=0)
    workdir = Path(tempfile.mkdtemp(prefix="hookline-bench-"))
    receiver = start_receiver(workdir, "receiver")
    try:
        return _measure(options, receiver, workdir)
    finally:
        if receiver.process.poll() is None:
            receiver.process.kill()


def _measure(options: Options, receiver: Receiver, workdir: Path) -> dict:
    run = Run(options)
    run.figures["broker"] = "amqp" if settings.CELERY_BROKER_URL.startswith("amqp") else "redis"
    per_phase = options.events * options.endpoints
    run.figures["raw_ceiling_per_s"] = round(raw_ceiling(receiver, min(per_phase, 5000)), 1)
    tenant = tenant_create(slug="bench", name="Benchmark")
    event_type_create(name=EVENT_TYPE)
    endpoints = []
    for n in range(options.endpoints):
        endpoint = endpoint_create(tenant=tenant, url=receiver.url(f"/e{n}"))
        endpoints.append(endpoint.id)
        run.secrets[f"/e{n}"] = endpoint.secret
    healthy = endpoints
    worker = start_workers(options.workers, workdir)
    run.meter = Meter(worker.pid, receiver.process.pid, settings.CELERY_BROKER_URL)
    try:
        wait_until_ready()
        _backlog(run, tenant, endpoints, "backlog")
        _backlog(run, tenant, endpoints, "backlog_batch", emit=emit_batches,
                 emit_figure="batch_emit_ms_per_event")  # fmt: skip
        if options.scenario == "noisy-neighbour":
            noisy = noisy_neighbour(
                url=receiver.url(""),
                endpoints=options.endpoints,
                backlog=options.prefill or NOISY_BACKLOG,
                window=options.steady_seconds,
                unshared_per_s=run.figures["backlog_per_s"],
            )
            run.figures.update(noisy.figures)
            run.secrets.update(noisy.secrets)
            run.quiet_events = noisy.quiet_events
            run.uncounted = noisy.figures["noisy_delivered_in_window"]
        elif options.ordered:
            ordered = ordered_backlogs(
                url=receiver.url(""),
                endpoints=options.endpoints,
                backlog=options.prefill or ORDERED_BACKLOG,
                keys=options.ordered,
            )
            run.figures.update(ordered.figures)
            run.secrets.update(ordered.secrets)
            run.expected += ordered.expected
        elif options.scenario:
            # Endpoint 0 turns bad; the others should keep their share of the throughput.
            healthy = endpoints[1:]
            Endpoint.objects.filter(id=endpoints[0]).update(
                url=receiver.url(TROUBLED_PATHS[options.scenario])
            )
            _backlog(run, tenant, healthy, "backlog_troubled")
            share = len(healthy) / len(endpoints)
            run.figures["healthy_throughput_kept_pct"] = round(
                100
                * run.figures["backlog_troubled_per_s"]
                / (run.figures["backlog_per_s"] * share),
                1,
            )
        if options.transform:
            transformed_backlog(healthy, lambda name: _phase(run, tenant, healthy, name),
                                run.figures)  # fmt: skip
        if options.history:
            partitioned_capacity(lambda name: _phase(run, tenant, healthy, name), run.figures)
        if options.prefill and options.scenario != "noisy-neighbour" and not options.ordered:
            started = time.monotonic()
            prefill_finished_deliveries(tenant=tenant, count=options.prefill)
            run.figures["prefill_seconds"] = round(time.monotonic() - started, 1)
            _backlog(run, tenant, healthy, "backlog_prefilled")
        _burst(run, tenant, healthy)
        _burst(run, tenant, healthy, batched=True)
        _steady(run, tenant, healthy)
    finally:
        cpu_seconds = stop_workers(worker)
    delivered = run.expected + run.quiet_events + run.uncounted
    run.figures["worker_cpu_s_per_1000"] = round(1000 * cpu_seconds / max(delivered, 1), 3)
    if options.otel:
        traced_backlogs(_draining_with_fresh_workers(run, tenant, healthy, workdir), run.figures)
    # The in-process counts below must not wait on a bad endpoint.
    Endpoint.objects.exclude(id__in=healthy).update(is_active=False)
    emit_queries, delivery_queries = _queries_per_delivery(tenant, len(healthy))
    run.expected += settings.WEBHOOKS_BATCH_SIZE // len(healthy) * len(healthy)
    fan_out_ms = _fan_out_ms()
    run.figures["fan_out_1000_ms_per_event"] = round(fan_out_ms, 1)
    filtered = fan_out_filtered(event_type=EVENT_TYPE, endpoints=FAN_OUT_ENDPOINTS)
    run.figures["fan_out_1000_filtered_ms_per_event"] = round(filtered.ms_per_event, 1)
    run.figures["filter_us_per_endpoint"] = round(
        filtered.filter_us_per_endpoint(FAN_OUT_ENDPOINTS), 2
    )
    run.figures["queries_per_event"] = round(emit_queries, 2)
    run.figures["queries_per_delivery"] = round(delivery_queries, 3)
    if options.history:  # last: its fill would slow every phase after it
        run.figures.update(history_figures(options.history))
    records = receiver.stop()
    return _summary(run, records)


def _summary(run: Run, records: list[dict]) -> dict:
    figures = run.figures
    ceiling = figures["raw_ceiling_per_s"]
    names = ("backlog", "backlog_troubled", "backlog_prefilled", "end_to_end", "end_to_end_batch")
    for name in names:
        if f"{name}_per_s" in figures:
            figures[f"{name}_vs_ceiling_pct"] = round(100 * figures[f"{name}_per_s"] / ceiling, 1)
    if "backlog_prefilled_per_s" in figures:
        figures["prefilled_vs_empty_pct"] = round(
            100 * figures["backlog_prefilled_per_s"] / figures["backlog_per_s"], 1
        )
    delivered = [r for r in records if r["path"].startswith("/e")]
    for phase in ("burst", "burst_batch", "steady"):
        start, end = run.windows[phase]
        latencies = [1000 * (r["at"] - r["sent_at"]) for r in delivered
                     if start <= r["sent_at"] <= end]  # fmt: skip
        for label, fraction in (("p50", 0.50), ("p95", 0.95), ("p99", 0.99)):
            value = percentile(latencies, fraction) if latencies else None
            figures[f"{phase}_latency_ms_{label}"] = round(value, 1) if value else None
    figures["steady_rate_per_s"] = run.options.steady_rate
    figures["troubled_endpoint_requests"] = sum(
        1 for r in records if r["path"].startswith(("/hang", "/fail"))
    )
    if run.options.scenario == "noisy-neighbour":
        quiet = quiet_latencies(records)
        for label, fraction in (("p50", 0.50), ("p90", 0.90), ("p99", 0.99), ("max", 1.0)):
            value = percentile(quiet, fraction) if quiet else None
            figures[f"quiet_latency_ms_{label}"] = round(value, 1) if value else None
        figures["noisy_duplicated"] = noisy_duplicates(records)
        delivered += [r for r in records if r["path"].startswith(QUIET_PATH)]
        run.expected += run.quiet_events
    if run.options.ordered:
        figures.update(order_check(records, expected=figures["ordered_backlog"]))
        delivered += [r for r in records if r["path"].startswith(ORDERED_PATH)]
    figures.update(_exactly_once(delivered, run.expected, run.secrets))
    figures.update(_costs(run.costs))
    return figures


# The phases whose costs feed the capacity plan (docs/scaling.md), and what of each is printed.
_PLANNED = {
    "backlog": ("worker_cpu_s", "database_cpu_s", "wal_bytes", "broker_messages",
                "receiver_cpu_s"),
    "backlog_emit": ("host_cpu_s", "database_cpu_s", "wal_bytes"),
    "backlog_batch_emit": ("host_cpu_s", "database_cpu_s", "wal_bytes"),
    "end_to_end": ("host_cpu_s", "worker_cpu_s", "database_cpu_s", "wal_bytes",
                   "broker_messages"),
    "end_to_end_batch": ("host_cpu_s", "worker_cpu_s", "database_cpu_s", "wal_bytes",
                         "broker_messages"),
}  # fmt: skip
_PLANNED_NAMES = {"backlog": "deliver", "backlog_emit": "emit",
                  "backlog_batch_emit": "batch_emit"}  # fmt: skip


def _costs(costs: dict[str, dict[str, float]]) -> dict[str, float]:
    """Costs per 1,000 deliveries: those the capacity plan uses, as `per_1000_<phase>_<cost>`;
    the workers' and the database's processor time in every other backlog phase, to compare."""
    figures = {}
    for name, cost in costs.items():
        if name in _PLANNED:
            label = _PLANNED_NAMES.get(name, name)
            figures.update({f"per_1000_{label}_{key}": cost[key] for key in _PLANNED[name]})
        elif not name.endswith("_emit"):
            figures[f"{name}_worker_cpu_s_per_1000"] = cost["worker_cpu_s"]
            figures[f"{name}_database_cpu_s_per_1000"] = cost["database_cpu_s"]
    return figures


def _exactly_once(delivered: list[dict], expected: int, secrets: dict[str, str]) -> dict:
    unique = {(r["path"], r["headers"].get("webhook-id")) for r in delivered}
    unverified = 0
    for record in delivered:
        try:
            verify(secrets[record["path"]], record["headers"], record["body"].encode(),
                   tolerance=3600)  # fmt: skip
        except (KeyError, VerificationError):
            unverified += 1
    return {
        "received": len(delivered),
        "expected": expected,
        "lost": expected - len(unique),
        "duplicated": len(delivered) - len(unique),
        "unverified": unverified,
    }
