from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from deliveries.models import Delivery
from inbox.models import Inbox
from subscriptions.models import ApiKey, Endpoint, EventType, Tenant
from subscriptions.services import (
    api_key_create,
    endpoint_create,
    event_type_create,
    tenant_create,
)
from subscriptions.verification import EndpointVerifiedError, endpoint_verification_retry
from webhooks import send_event

DEMO_TENANT = "demo"
DEMO_EVENT_TYPE = "order.paid"
ORDER_SCHEMA = {
    "type": "object",
    "required": ["order_id", "amount"],
    "properties": {"order_id": {"type": "string"}, "amount": {"type": "integer", "minimum": 0}},
}


class Command(BaseCommand):
    help = (
        "Run Hookline for a try-out: migrate, seed a demo tenant whose endpoint is the built-in "
        "test inbox, start web, worker and beat, and send a sample event. Ctrl-C stops everything."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--no-serve", action="store_true", help="Seed only; start nothing.")

    def handle(self, *args: object, port: int, no_serve: bool, **_: object) -> None:
        call_command("migrate", interactive=False, verbosity=0)
        call_command("collectstatic", interactive=False, verbosity=0)
        username, password = _ensure_admin()
        endpoint = _ensure_demo_endpoint(port)
        base = f"http://127.0.0.1:{port}"
        self.stdout.write(f"Admin: {base}/admin/  user {username!r}, password {password!r}")
        self.stdout.write(
            f"API:   {base}/api/docs/  key for tenant {DEMO_TENANT!r}: {_fresh_api_key()}"
        )
        self.stdout.write(f"Dashboard: {base}/dashboard/  (same user)")
        if no_serve:
            return
        # Ctrl-C, `kill` and a closed terminal all stop the children too.
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, _interrupt)
        processes = _start_processes(port)
        try:
            _wait_for_web(base, processes)
            self._send_sample(endpoint, base)
            self.stdout.write("Hookline is running. Press Ctrl-C to stop web, worker and beat.")
            _watch(processes)
        except KeyboardInterrupt:
            self.stdout.write("\nStopping…")
        finally:
            _stop(processes)

    def _send_sample(self, endpoint: Endpoint, base: str) -> None:
        endpoint.refresh_from_db(fields=["verified_at"])
        if endpoint.verified_at is None:
            # Its challenge went while the web server was starting: the inbox answers one now.
            with contextlib.suppress(EndpointVerifiedError):  # its retry got there first
                endpoint_verification_retry(endpoint=endpoint)
        event = send_event(DEMO_TENANT, DEMO_EVENT_TYPE, {"order_id": "ord_1001", "amount": 4200})
        delivery = Delivery.objects.get(event=event, endpoint=endpoint)
        self.stdout.write(
            f"Sent sample event {event.public_id} ({DEMO_EVENT_TYPE}) to {endpoint.url}"
        )
        delivery = _wait_for_delivery(delivery)
        self.stdout.write(
            f"Delivery {delivery.id}: {delivery.status} after {delivery.attempt_count} attempt(s), "
            f"HTTP {delivery.last_response_status}. See it at "
            f"{base}/admin/deliveries/delivery/{delivery.id}/change/"
        )
        inbox = Inbox.objects.get(tenant__slug=DEMO_TENANT)
        self.stdout.write(f"What the receiver got: {base}/admin/inbox/inbox/{inbox.id}/change/")


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _ensure_admin() -> tuple[str, str]:
    """An `admin` superuser whose password is kept under var/, so it is the same on every run."""
    path = Path(settings.VAR_DIR) / "demo-admin-password"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(12))
        path.chmod(0o600)
    password = path.read_text().strip()
    user, _ = get_user_model().objects.get_or_create(
        username="admin", defaults={"is_staff": True, "is_superuser": True}
    )
    user.set_password(password)
    user.save(update_fields=["password"])
    return "admin", password


def _fresh_api_key() -> str:
    """A new key for the demo tenant each run; the previous run's demo key is revoked."""
    tenant = Tenant.objects.get(slug=DEMO_TENANT)
    ApiKey.objects.filter(tenant=tenant, name="demo", revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )
    return api_key_create(tenant=tenant, name="demo")[1]


def _ensure_demo_endpoint(port: int) -> Endpoint:
    tenant = Tenant.objects.filter(slug=DEMO_TENANT).first() or tenant_create(
        slug=DEMO_TENANT, name="Demo tenant"
    )
    if not EventType.objects.filter(name=DEMO_EVENT_TYPE).exists():
        event_type_create(
            name=DEMO_EVENT_TYPE, description="An order was paid.", schema=ORDER_SCHEMA
        )
    inbox, _ = Inbox.objects.get_or_create(tenant=tenant)
    url = f"http://127.0.0.1:{port}/inbox/{inbox.token}/"
    endpoint = Endpoint.objects.filter(tenant=tenant, url=url).first()
    if endpoint is None:
        if settings.WEBHOOKS_REQUIRE_HTTPS:
            raise CommandError(
                "The demo receiver is plain http on 127.0.0.1: run with "
                "WEBHOOKS_REQUIRE_HTTPS=false WEBHOOKS_PRIVATE_NETWORK_ALLOWLIST=127.0.0.0/8 "
                "(`make run` sets both)."
            )
        endpoint = endpoint_create(tenant=tenant, url=url, description="The demo's test inbox")
    return endpoint


def _start_processes(port: int) -> dict[str, subprocess.Popen]:
    bin_dir = Path(sys.executable).parent
    commands = {
        "web": [
            str(bin_dir / "gunicorn"),
            "config.wsgi",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "2",
            "--access-logfile",
            "-",
        ],
        "worker": [str(bin_dir / "celery"), "-A", "config", "worker", "--loglevel", "INFO"],
        "beat": [str(bin_dir / "celery"), "-A", "config", "beat", "--loglevel", "WARNING"],
    }
    env = os.environ.copy()
    # The web's /metrics adds up the worker's counters through files in one shared directory.
    env.setdefault("PROMETHEUS_MULTIPROC_DIR", str(_fresh_metrics_dir()))
    # Own sessions: Ctrl-C reaches this command alone, which then stops the children in order.
    return {
        name: subprocess.Popen(command, cwd=settings.BASE_DIR, env=env, start_new_session=True)
        for name, command in commands.items()
    }


def _fresh_metrics_dir() -> Path:
    """`var/prometheus`, emptied: counters start from zero with the processes."""
    directory = Path(settings.VAR_DIR) / "prometheus"
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):
        stale.unlink()
    return directory


def _wait_for_web(base: str, processes: dict[str, subprocess.Popen], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _check_alive(processes)
        try:
            with urllib.request.urlopen(f"{base}/admin/login/", timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    raise CommandError(f"The web process did not answer at {base} within {timeout:g} s.")


def _wait_for_delivery(delivery: Delivery, timeout: float = 30) -> Delivery:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        delivery.refresh_from_db()
        if delivery.status != Delivery.Status.PENDING:
            break
        time.sleep(0.2)
    return delivery


def _watch(processes: dict[str, subprocess.Popen]) -> None:
    while True:
        _check_alive(processes)
        time.sleep(0.5)


def _check_alive(processes: dict[str, subprocess.Popen]) -> None:
    for name, process in processes.items():
        if process.poll() is not None:
            raise CommandError(f"The {name} process exited with code {process.returncode}.")


def _stop(processes: dict[str, subprocess.Popen]) -> None:
    # SIGTERM to each main process lets it shut its own children down cleanly (a Celery worker
    # finishes its running tasks); whatever is left after the grace period is killed.
    for process in processes.values():
        if process.poll() is None:
            process.terminate()
    for process in processes.values():
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=20)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
