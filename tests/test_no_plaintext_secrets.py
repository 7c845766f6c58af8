"""After a full run, no signing secret, API key or custom header value is readable in the
database or the logs."""

from __future__ import annotations

import io
import logging
import shutil
import subprocess

import pytest
from django.core.management import call_command
from django.db import connection
from rest_framework.test import APIClient

from deliveries.batch import deliver_due_batch
from tests.factories import EventTypeFactory

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]
HEADER_NAMES = ["Authorization", "X-Shop-Auth", "X-Region"]


def database_dump() -> str:
    db = connection.settings_dict
    command = [
        shutil.which("pg_dump") or "pg_dump", "--data-only", "-h", db["HOST"],
        "-p", str(db["PORT"] or 5432), "-U", db["USER"] or "postgres", db["NAME"],
    ]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout


def test_secrets_and_keys_never_stored_or_logged_in_plain_text(receiver, caplog, settings):
    settings.WEBHOOKS_TEST_WAIT_SECONDS = 0.0  # no worker runs here: the batch below sends it
    caplog.set_level(logging.DEBUG)
    EventTypeFactory(name="order.paid")
    out = io.StringIO()
    call_command("createtenant", "acme", stdout=out)
    key = out.getvalue().splitlines()[-1]
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    header_values = ["Bearer sk_live_9f8e7d6c5b4a3210abcd", "shop-token-7a6b5c4d", "X-Tiny"]
    created = api.post(
        "/api/v1/endpoints/",
        {
            "url": receiver.url("/hook"),
            "headers": dict(zip(HEADER_NAMES, header_values, strict=True)),
        },
        format="json",
    ).json()
    first_secret = created["secret"]
    rotated = api.post(f"/api/v1/endpoints/{created['id']}/rotate-secret/", {}, format="json")
    second_secret = rotated.json()["secret"]
    third = api.post(f"/api/v1/endpoints/{created['id']}/rotate-secret/", {}, format="json")
    third_secret = third.json()["secret"]
    for n in range(3):
        api.post(
            "/api/v1/events/", {"event_type": "order.paid", "payload": {"n": n}}, format="json"
        )
    deliver_due_batch(limit=10)
    api.post(f"/api/v1/endpoints/{created['id']}/test/", {}, format="json")
    deliver_due_batch(limit=10)  # a worker's batch sends the test event
    assert len(receiver.requests("/hook")) == 4
    for request in receiver.requests("/hook"):  # sent in full, so the run is a real test
        assert [request.headers[name.lower()] for name in HEADER_NAMES] == header_values

    dump = database_dump()
    logs = caplog.text
    assert "INSERT" in dump or "COPY" in dump
    for secret in (key, first_secret, second_secret, third_secret, *header_values,
                   *(s.removeprefix("whsec_") for s in (first_secret, second_secret, third_secret))
                   ):  # fmt: skip
        assert secret not in dump
        assert secret not in logs
