"""Hookline's sender and the installed receiver package agree: the plain Python receiver of
docs/receiving.md, run on the oldest and the newest Python with nothing but the package's wheel
installed, answers Hookline's ownership challenge and verifies real deliveries, during a secret
rotation too."""

from __future__ import annotations

import re
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from deliveries.batch import deliver_due_batch, deliver_now
from deliveries.models import Attempt, Delivery
from subscriptions.models import generate_signing_secret
from subscriptions.services import endpoint_create, endpoint_rotate_secret
from tests.factories import EventTypeFactory, TenantFactory
from webhooks import send_event

from .pythons import ROOT, Python, bare_env

# Neither PostgreSQL nor Redis counts here: CI runs these in its pass without services only.
pytestmark = pytest.mark.service_free

EXAMPLE = re.compile(r"<!-- stdlib-receiver-example -->\n```python\n(.*?)\n```", re.S)


class RunningReceiver:
    def __init__(self, process: subprocess.Popen, port: int, log: Path) -> None:
        self.process, self.url, self.log = process, f"http://127.0.0.1:{port}/", log

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture
def stdlib_receiver(receiver_venv, tmp_path: Path) -> Iterator:
    """start(secret): the documented receiver, as a file, under a venv holding only the wheel."""
    match = EXAMPLE.search((ROOT / "docs" / "receiving.md").read_text())
    assert match, "docs/receiving.md lost its plain Python receiver"
    script = tmp_path / "receiver.py"
    script.write_text(match[1] + "\n")
    venv_python = receiver_venv()
    started: list[RunningReceiver] = []

    def start(secret: str) -> RunningReceiver:
        port = _free_port()
        log = tmp_path / "receiver.log"
        env = bare_env() | {"HOOKLINE_WEBHOOK_SECRET": secret, "PORT": str(port)}
        with log.open("wb") as output:
            process = subprocess.Popen(
                [str(venv_python), "-I", str(script)],
                cwd=tmp_path,
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        receiver = RunningReceiver(process, port, log)
        started.append(receiver)
        _wait_for_port(receiver, port)
        return receiver

    yield start
    for receiver in started:
        receiver.process.terminate()
        receiver.process.wait(timeout=10)
        print(f"--- the plain receiver's log ---\n{receiver.output()}")


@pytest.mark.django_db(transaction=True)
def test_the_installed_package_on_another_python_verifies_what_hookline_sends(
    python: Python, stdlib_receiver, settings
):
    settings.WEBHOOKS_VERIFY_ENDPOINTS = True
    secret = generate_signing_secret()
    receiver = stdlib_receiver(secret)
    EventTypeFactory(name="order.paid")
    tenant = TenantFactory()
    endpoint = endpoint_create(tenant=tenant, url=receiver.url, secret=secret)
    event = send_event(tenant, "order.paid", {"order_id": "ord_1001", "note": "café ☕"})

    for _ in range(4):
        deliver_due_batch(limit=10)

    endpoint.refresh_from_db()
    assert endpoint.verified_at is not None, receiver.output()
    challenge = Attempt.objects.exclude(delivery__event=event).get(delivery__endpoint=endpoint)
    assert challenge.response_status == 200
    assert challenge.delivery.event.payload["challenge"] in challenge.response_body
    delivered = Delivery.objects.get(event=event)
    assert delivered.status == Delivery.Status.SUCCEEDED, receiver.output()
    assert delivered.attempts.get().response_status == 202
    assert f"accepted {event.public_id} order.paid" in receiver.output()

    # A rotation: the receiver still holds the old secret, and the message carries its signature.
    endpoint_rotate_secret(endpoint=endpoint)
    rotated = send_event(tenant, "order.paid", {"order_id": "ord_1002"})
    attempt = deliver_now(Delivery.objects.get(event=rotated).id)
    assert attempt is not None
    assert attempt.response_status == 202, (attempt.response_body, receiver.output())
    assert len(attempt.request_headers["webhook-signature"].split()) == 2

    # The same signed headers over a changed body: refused, by the package on that Python.
    headers = {
        name: value
        for name, value in attempt.request_headers.items()
        if name.lower() in ("content-type", "webhook-id", "webhook-timestamp", "webhook-signature")
    }
    tampered = requests.post(
        receiver.url, data=b'{"type":"order.paid"}', headers=headers, timeout=10
    )
    assert tampered.status_code == 401
    assert tampered.json()["error"].startswith("no signature matches")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_for_port(receiver: RunningReceiver, port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if receiver.process.poll() is not None:
            raise AssertionError(f"the plain receiver exited:\n{receiver.output()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"the plain receiver did not listen in {timeout} s")
