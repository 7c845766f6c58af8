"""GET /healthz against the real database and broker, and against ones that are down or hang."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest
from django.db import connection

pytestmark = [pytest.mark.services, pytest.mark.django_db]


def closed_port() -> int:
    """A local port with nothing listening: connections to it are refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A local port that accepts connections and never says a word."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield listener.getsockname()[1]


def healthz(client) -> tuple[int, dict, float]:
    started = time.monotonic()
    response = client.get("/healthz")
    return response.status_code, response.json(), time.monotonic() - started


def test_healthy_database_and_broker_answer_200_ok(client):
    status, body, _ = healthz(client)

    assert status == 200
    assert body == {"status": "ok", "database": "ok", "broker": "ok"}


def test_healthz_needs_no_login_and_is_never_cached(client):
    response = client.get("/healthz")

    assert response.status_code == 200
    assert "no-cache" in response["Cache-Control"]


def test_unreachable_broker_answers_503_naming_it_without_its_password(client, settings):
    settings.CELERY_BROKER_URL = f"redis://:broker-pass-7@127.0.0.1:{closed_port()}/0"

    status, body, _ = healthz(client)

    assert status == 503
    assert body["status"] == "error"
    assert (body["database"], body["broker"]) == ("ok", "error")
    assert "refused" in body["errors"]["broker"].lower()
    assert "broker-pass-7" not in str(body)


def test_unreachable_database_answers_503_naming_it(client, monkeypatch):
    # New connections go to a port where no server listens; the test's own stays open.
    monkeypatch.setitem(connection.settings_dict, "PORT", str(closed_port()))

    status, body, _ = healthz(client)

    assert status == 503
    assert (body["database"], body["broker"]) == ("error", "ok")
    assert "refused" in body["errors"]["database"].lower()


def test_broker_that_never_answers_fails_the_check_within_its_deadline(
    client, settings, silent_port
):
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{silent_port}/0"

    status, body, took = healthz(client)

    assert status == 503
    assert body["broker"] == "error"
    assert took < 2.5


def test_database_that_never_answers_fails_the_check_within_its_deadline(
    client, monkeypatch, silent_port
):
    monkeypatch.setitem(connection.settings_dict, "PORT", str(silent_port))

    status, body, took = healthz(client)

    assert status == 503
    assert (body["database"], body["broker"]) == ("error", "ok")
    assert "no answer within" in body["errors"]["database"]
    assert took < 2.5


def test_embedded_broker_is_healthy_while_its_folder_takes_files(client, settings, tmp_path):
    settings.CELERY_BROKER_URL = "filesystem://"
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {"data_folder_in": str(tmp_path)}
    assert healthz(client)[:2] == (200, {"status": "ok", "database": "ok", "broker": "ok"})

    tmp_path.rmdir()
    status, body, _ = healthz(client)

    assert status == 503
    assert body["broker"] == "error"
    assert "does not exist" in body["errors"]["broker"]


def test_malformed_broker_url_is_a_failed_check_not_a_server_error(client, settings):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:not-a-port/0"

    status, body, _ = healthz(client)

    assert status == 503
    assert body["broker"] == "error"
