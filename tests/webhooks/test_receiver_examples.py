"""The receiver examples of the README and docs/receiving.md work as written.

The complete Django receiver of docs/receiving.md, copied into a fresh Django project, verifies a
real delivery. The fresh project runs on an interpreter that sees the venv's Django and the
installed `hookline-receiver` wheel, but not Hookline (no editable-install hook): if the package
imported anything of Hookline's, the server would not start. The README's short receivers and
the Flask snippets run in-process.
"""

from __future__ import annotations

import ast
import json
import os
import re
import socket
import subprocess
import sys
import time
import types
from collections.abc import Iterator
from pathlib import Path

import django
import pytest
import requests
from django.conf import settings
from django.test import RequestFactory
from requests.structures import CaseInsensitiveDict

from deliveries.batch import deliver_due_batch, deliver_now
from deliveries.models import Attempt, Delivery
from deliveries.services import deliveries_replay
from subscriptions.models import generate_signing_secret
from subscriptions.services import endpoint_create
from tests.factories import EndpointFactory, EventTypeFactory, TenantFactory
from webhooks import send_event
from webhooks.models import Event
from webhooks.signing import secret_key, signature_header
from webhooks.wire import message

README = Path(settings.BASE_DIR) / "README.md"
RECEIVING = Path(settings.BASE_DIR) / "docs" / "receiving.md"
EXAMPLE = re.compile(
    r"<!-- receiver-example: (?P<path>\S+) -->\n```python\n(?P<code>.*?)\n```", re.S
)
SHORT_EXAMPLE = re.compile(r"<!-- short-receiver-example -->\n```python\n(.*?)\n```", re.S)
PLAIN_EXAMPLE = re.compile(r"<!-- plain-receiver-example -->\n```python\n(.*?)\n```", re.S)
ROUTE = "webhooks/hookline/"


def documented_examples() -> dict[str, str]:
    """The marked code blocks of docs/receiving.md, by the path they are meant for."""
    return {m["path"]: m["code"] + "\n" for m in EXAMPLE.finditer(RECEIVING.read_text())}


def test_the_receiving_page_marks_the_receiver_example_and_its_other_snippets_parse():
    assert set(documented_examples()) == {"receiver/views.py"}
    section = RECEIVING.read_text().split("## Verifying a message", 1)[1].split("\n## ", 1)[0]
    snippets = re.findall(r"```python\n(.*?)\n```", section, re.S)
    # plain Python, the Django view, Flask with hookline-receiver, standardwebhooks, XML and form
    assert len(snippets) == 5
    for snippet in snippets:
        ast.parse(snippet)


def flask_snippets() -> list[str]:
    section = RECEIVING.read_text().split("### Flask and other frameworks", 1)[1]
    return re.findall(r"```python\n(.*?)\n```", section.split("\n## ", 1)[0], re.S)


def signed_headers(secret: str, body: bytes) -> dict[str, str]:
    stamp = int(time.time())
    signature = signature_header([secret_key(secret)], "msg_1", stamp, body)
    return {"Webhook-Id": "msg_1", "Webhook-Timestamp": str(stamp), "Webhook-Signature": signature}


def test_the_readme_short_receiver_accepts_a_signed_message_and_refuses_others(monkeypatch):
    """The README's shortest receiver, compiled from the README's own text, behind Django."""
    match = SHORT_EXAMPLE.search(README.read_text())
    assert match, "the README lost its short receiver example"
    secret = generate_signing_secret()
    monkeypatch.setenv("HOOKLINE_WEBHOOK_SECRET", secret)
    namespace: dict = {}
    exec(compile(match[1], "README.md", "exec"), namespace)
    view = namespace["hookline_webhook"]
    body = b'{"type":"order.paid","timestamp":"2026-11-29T10:58:36.643Z","data":{}}'
    good = signed_headers(secret, body)

    def answer(data: bytes, headers: dict[str, str]) -> int:
        request = RequestFactory().post("/", data, content_type="application/json", headers=headers)
        return view(request).status_code

    assert answer(body, good) == 202
    assert answer(body + b" ", good) == 401
    assert answer(body, good | {"Webhook-Timestamp": str(int(time.time()) - 600)}) == 401
    assert answer(body, {}) == 400
    assert view(RequestFactory().get("/")).status_code == 405


def test_the_readme_plain_receiver_accepts_refuses_and_echoes_the_challenge(monkeypatch):
    match = PLAIN_EXAMPLE.search(README.read_text())
    assert match, "the README lost its plain Python receiver example"
    secret = generate_signing_secret()
    monkeypatch.setenv("HOOKLINE_WEBHOOK_SECRET", secret)
    namespace: dict = {}
    exec(compile(match[1], "README.md", "exec"), namespace)
    receive = namespace["receive"]
    body = b'{"type":"order.paid","timestamp":"2026-11-29T10:58:36.643Z","data":{}}'
    challenge = b'{"type":"hookline.verification","data":{"challenge":"chl_1"}}'
    good = signed_headers(secret, body)

    assert receive(good, body) == (202, {"status": "accepted", "type": "order.paid"})
    assert receive(signed_headers(secret, challenge), challenge) == (200, {"challenge": "chl_1"})
    assert receive(good, body + b" ")[0] == 401
    assert receive(good | {"Webhook-Timestamp": str(int(time.time()) - 600)}, body)[0] == 401
    assert receive({}, body)[0] == 400


@pytest.mark.parametrize("index", [0, 1], ids=["hookline-receiver", "standardwebhooks"])
def test_the_documented_flask_snippets_accept_a_signed_message_and_refuse_others(
    index, monkeypatch
):
    """Run against a stand-in for Flask: `app.post` registers, `request` is the current one."""
    fake_flask = types.ModuleType("flask")
    fake_flask.request = types.SimpleNamespace()
    fake_flask.Flask = _FakeFlask
    monkeypatch.setitem(sys.modules, "flask", fake_flask)
    secret = generate_signing_secret()
    monkeypatch.setenv("HOOKLINE_WEBHOOK_SECRET", secret)
    namespace: dict = {}
    exec(compile(flask_snippets()[index], "docs/receiving.md", "exec"), namespace)
    handler = namespace["app"].routes["/webhooks/hookline"]
    body = b'{"type":"order.paid","data":{}}'
    good = signed_headers(secret, body)
    stamp = int(good["Webhook-Timestamp"])

    def answer(data: bytes, headers: dict[str, str]) -> int:
        fake_flask.request.headers = CaseInsensitiveDict(headers)
        fake_flask.request.get_data = lambda: data
        return handler()[1]

    assert answer(body, good) == 202
    assert answer(body + b" ", good) == 401
    assert answer(body, good | {"Webhook-Timestamp": str(stamp - 600)}) == 401
    assert answer(body, {"Webhook-Id": "msg_1"}) == (400 if index == 0 else 401)


class _FakeFlask:
    def __init__(self, name: str) -> None:
        self.routes: dict = {}

    def post(self, rule: str):
        def register(view):
            self.routes[rule] = view
            return view

        return register


@pytest.fixture
def bare_python(tmp_path: Path, receiver_wheel: Path) -> Path:
    """A Python that imports the venv's Django and the installed receiver package, and nothing of
    Hookline."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    [site_packages] = venv.glob("lib/python*/site-packages")
    # A plain path line: the venv's .pth files, among them Hookline's editable hook, are not run.
    (site_packages / "venv_django.pth").write_text(str(Path(django.__file__).parent.parent) + "\n")
    python = venv / "bin" / "python"
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet"]
        + ["--no-index", "--no-deps", str(receiver_wheel)],
        capture_output=True,
        text=True,
        env=_bare_env(),
    )
    assert installed.returncode == 0, installed.stderr
    isolated = subprocess.run(
        [
            str(python),
            "-c",
            "import hookline_receiver; print(hookline_receiver.__file__); "
            "import django; import deliveries",
        ],
        env=_bare_env(),
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert "No module named 'deliveries'" in isolated.stderr, "Hookline must not be importable"
    assert isolated.stdout.startswith(str(venv)), "the receiver package is the installed wheel"
    return python


@pytest.fixture
def fresh_project(tmp_path: Path, bare_python: Path) -> Path:
    """`django-admin startproject mysite`, with the documented view."""
    project = tmp_path / "mysite"
    project.mkdir()
    subprocess.run(
        [str(bare_python), "-m", "django", "startproject", "mysite", str(project)],
        check=True,
        env=_bare_env(),
    )
    for relative, code in documented_examples().items():
        target = project / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        (target.parent / "__init__.py").touch()
        target.write_text(code)
    with (project / "mysite" / "urls.py").open("a") as urls:
        urls.write(
            "\nfrom receiver import views\n\n"
            f'urlpatterns.append(path("{ROUTE}", views.hookline_webhook))\n'
        )
    return project


class RunningReceiver:
    def __init__(self, process: subprocess.Popen, url: str, log: Path) -> None:
        self.process, self.url, self.log = process, url, log

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture
def start_receiver(fresh_project: Path, bare_python: Path) -> Iterator:
    """Start the fresh project with `runserver`; it is always stopped after the test."""
    started: list[RunningReceiver] = []

    def start(secret: str) -> RunningReceiver:
        port = _free_port()
        log = fresh_project / "server.log"
        env = _bare_env() | {"HOOKLINE_WEBHOOK_SECRET": secret}
        with log.open("wb") as output:
            process = subprocess.Popen(
                [str(bare_python), "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
                cwd=fresh_project,
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        receiver = RunningReceiver(process, f"http://127.0.0.1:{port}/{ROUTE}", log)
        started.append(receiver)
        _wait_for_port(receiver, port)
        return receiver

    yield start
    for receiver in started:
        receiver.process.terminate()
        try:
            receiver.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            receiver.process.kill()
            receiver.process.wait()
        print(f"--- fresh project's server log ---\n{receiver.output()}")


@pytest.mark.django_db(transaction=True)
def test_the_documented_receiver_in_a_fresh_project_verifies_a_real_delivery(start_receiver):
    secret = generate_signing_secret()
    receiver = start_receiver(secret)
    EventTypeFactory(name="order.paid")
    tenant = TenantFactory()
    EndpointFactory(tenant=tenant, url=receiver.url, secret=secret)

    event = send_event(tenant, "order.paid", {"order_id": "ord_1001", "amount": 4200})
    delivery = Delivery.objects.get(event=event)
    first = deliver_now(delivery.id)

    assert first is not None, receiver.output()
    assert first.response_status == 202, (first.error_message, receiver.output())
    assert '"accepted"' in first.response_body
    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.SUCCEEDED

    # A replay is signed anew but keeps the webhook-id: the example answers 2xx and skips it.
    deliveries_replay(deliveries=Delivery.objects.filter(id=delivery.id))
    again = deliver_now(delivery.id)
    assert again is not None
    assert again.response_status == 200
    assert '"duplicate"' in again.response_body
    assert again.request_headers["webhook-id"] == first.request_headers["webhook-id"]

    # The same signed headers over a changed body, sent straight to the receiver: refused.
    headers = {
        name: value
        for name, value in again.request_headers.items()
        if name.lower() not in ("user-agent", "content-length", "host")
    }
    tampered = _sent_body(event).replace(b"4200", b"1")
    response = requests.post(receiver.url, data=tampered, headers=headers, timeout=10)
    assert response.status_code == 401, response.text
    assert "no signature matches" in response.json()["error"]
    untouched = requests.post(receiver.url, data=_sent_body(event), headers=headers, timeout=10)
    assert untouched.status_code == 200  # the headers were good: the change made the 401
    assert requests.get(receiver.url, timeout=10).status_code == 405

    log = receiver.output()
    assert "webhook rejected with 401" in log
    assert secret.removeprefix("whsec_") not in log
    assert headers["webhook-signature"].removeprefix("v1,") not in log


def _sent_body(event: Event) -> bytes:
    """The bytes Hookline sent: built, as a worker builds them, from the event as stored."""
    return message(Event.objects.get(id=event.id), "order.paid").content


@pytest.mark.django_db(transaction=True)
def test_the_documented_receiver_answers_the_ownership_challenge_by_itself(
    start_receiver, settings
):
    """The copied decorator echoes Hookline's challenge without the view: the endpoint verifies,
    and the event held for it is then delivered to the view."""
    settings.WEBHOOKS_VERIFY_ENDPOINTS = True
    secret = generate_signing_secret()
    receiver = start_receiver(secret)
    EventTypeFactory(name="order.paid")
    tenant = TenantFactory()
    endpoint = endpoint_create(tenant=tenant, url=receiver.url, secret=secret)
    event = send_event(tenant, "order.paid", {"order_id": "ord_1002"})

    for _ in range(4):
        deliver_due_batch(limit=10)

    endpoint.refresh_from_db()
    assert endpoint.verified_at is not None, receiver.output()
    delivered = Delivery.objects.get(event=event)
    assert delivered.status == Delivery.Status.SUCCEEDED, receiver.output()
    assert '"accepted"' in delivered.attempts.get().response_body
    answered = Attempt.objects.get(
        delivery__endpoint=endpoint, delivery__event__payload_text__contains="challenge"
    )
    assert answered.response_body == json.dumps(
        {"challenge": answered.delivery.event.payload["challenge"]}
    )


def _bare_env() -> dict[str, str]:
    """No DJANGO_SETTINGS_MODULE, PYTHONPATH or Hookline settings from the test run."""
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")
    return {name: os.environ[name] for name in keep if name in os.environ} | {
        "PYTHONUNBUFFERED": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
    }


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_for_port(receiver: RunningReceiver, port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if receiver.process.poll() is not None:
            raise AssertionError(f"the fresh project's server exited:\n{receiver.output()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"the fresh project's server did not listen in {timeout} s")
