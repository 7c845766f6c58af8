"""What the test-send tests share: ways to send a test event and to wait for its outcome."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request


def send_test(api, endpoint, body=None):
    return api.post(f"/api/v1/endpoints/{endpoint.id}/test/", body or {}, format="json")


def http_post(url: str, key: str) -> tuple[int, dict, float]:
    """A real HTTP POST with the tenant's key: status, JSON body, seconds it took."""
    request = urllib.request.Request(
        url, data=b"{}", method="POST",
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )  # fmt: skip
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, body = response.status, json.load(response)
    except urllib.error.HTTPError as error:
        status, body = error.code, json.load(error)
    return status, body, time.monotonic() - started


def wait_for(condition, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := condition():
            return found
        time.sleep(0.1)
    return condition()
