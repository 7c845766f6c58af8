"""`make run`'s command, run for real: SQLite, the embedded broker, web, worker and beat."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def children_of(pid: int) -> list[int]:
    result = subprocess.run(["pgrep", "-s", str(pid)], capture_output=True, text=True, check=False)
    return [int(line) for line in result.stdout.split()]


@pytest.fixture
def demo_env(tmp_path):
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(
            (
                "DATABASE_URL",
                "CELERY_",
                "WEBHOOKS_",
                "DJANGO_SETTINGS",
                "PROMETHEUS_",
                "ALLOWED_HOSTS",
            )
        )
    }
    env.update(
        HOOKLINE_VAR_DIR=str(tmp_path / "var"),
        WEBHOOKS_REQUIRE_HTTPS="false",
        WEBHOOKS_PRIVATE_NETWORK_ALLOWLIST="127.0.0.0/8",
        PYTHONUNBUFFERED="1",
    )
    return env


def test_demo_delivers_the_sample_event_and_ctrl_c_stops_everything(demo_env, tmp_path):
    log_path = tmp_path / "demo.log"
    port = free_port()
    with log_path.open("wb") as log:
        demo = subprocess.Popen(
            [sys.executable, "manage.py", "demo", "--port", str(port)],
            cwd=ROOT, env=demo_env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        output = wait_for_line(log_path, demo, "Hookline is running", timeout=60)
        key = re.search(r"key for tenant 'demo': (hl_\S+)", output).group(1)
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/v1/endpoints/", headers={"Authorization": f"Bearer {key}"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            endpoints = json.load(response)["results"]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
            metrics = response.read().decode()
        started = {
            pid for session in demo_children_sessions(demo.pid) for pid in children_of(session)
        }
    finally:
        demo.send_signal(signal.SIGINT)
        demo.wait(timeout=30)

    assert re.search(r"Admin: http://127\.0\.0\.1:\d+/admin/  user 'admin', password '\S+'", output)
    assert re.search(r"Delivery \d+: succeeded after 1 attempt\(s\), HTTP 200", output)
    assert "/admin/deliveries/delivery/" in output
    assert f"Dashboard: http://127.0.0.1:{port}/dashboard/" in output
    assert endpoints[0]["url"].startswith(f"http://127.0.0.1:{port}/inbox/ibx_")
    # The worker's attempt, counted in the worker, shows in the web's /metrics.
    assert 'hookline_attempts_total{result="2xx"} 1.0' in metrics
    assert 'hookline_deliveries_total{outcome="succeeded"} 1.0' in metrics
    assert started, "web, worker and beat should have been running"
    time.sleep(0.5)
    assert [pid for pid in started if pid_alive(pid)] == []


def test_with_verification_on_the_demo_inbox_answers_its_challenge(demo_env, tmp_path):
    log_path = tmp_path / "demo.log"
    port = free_port()
    with log_path.open("wb") as log:
        demo = subprocess.Popen(
            [sys.executable, "manage.py", "demo", "--port", str(port)],
            cwd=ROOT, env=demo_env | {"WEBHOOKS_VERIFY_ENDPOINTS": "true"}, stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        output = wait_for_line(log_path, demo, "Hookline is running", timeout=60)
        key = re.search(r"key for tenant 'demo': (hl_\S+)", output).group(1)
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/v1/endpoints/", headers={"Authorization": f"Bearer {key}"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            [endpoint] = json.load(response)["results"]
    finally:
        demo.send_signal(signal.SIGINT)
        demo.wait(timeout=30)

    assert re.search(r"Delivery \d+: succeeded after 1 attempt\(s\), HTTP 200", output), output
    assert endpoint["verification"] == "verified"


def wait_for_line(path: Path, process: subprocess.Popen, text: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        output = path.read_text(errors="replace")
        if text in output:
            return output
        if process.poll() is not None:
            break
        time.sleep(0.2)
    raise AssertionError(f"{text!r} not printed:\n{path.read_text(errors='replace')}")


def demo_children_sessions(pid: int) -> list[int]:
    result = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False)
    return [int(line) for line in result.stdout.split()]


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").exists() and " Z " not in Path(f"/proc/{pid}/stat").read_text()
