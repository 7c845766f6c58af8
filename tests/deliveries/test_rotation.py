"""Rotating twice within the overlap: every replaced secret signs until its own promised expiry.

Real deliveries to a real receiver, each checked by receivers holding one secret, through the
`standardwebhooks` package; the clock moves with time-machine.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
import standardwebhooks
import time_machine
from django.utils import timezone

from deliveries.batch import deliver_now
from deliveries.models import Delivery
from subscriptions.services import api_key_create
from tests.api.conftest import client_for
from tests.factories import EventTypeFactory, TenantFactory

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

HOUR, DAY = 3600, 24 * 3600


@pytest.fixture
def api():
    EventTypeFactory(name="order.paid")
    return client_for(api_key_create(tenant=TenantFactory())[1])


def accepts(secret: str, request) -> bool:  # noqa: ANN001
    """Whether a receiver holding only `secret` accepts the request, now."""
    try:
        standardwebhooks.Webhook(secret).verify(request.body, request.headers)
    except standardwebhooks.WebhookVerificationError:
        return False
    return True


def rotate(api, endpoint_id: int, overlap: int | None = None) -> dict:  # noqa: ANN001
    body = {} if overlap is None else {"overlap_seconds": overlap}
    response = api.post(f"/api/v1/endpoints/{endpoint_id}/rotate-secret/", body, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def delivered(api, receiver, path: str):  # noqa: ANN001, ANN201
    """Emit an event, attempt its delivery now, and return the request the receiver got."""
    emitted = api.post(
        "/api/v1/events/", {"event_type": "order.paid", "payload": {}}, format="json"
    )
    assert emitted.status_code == 202, emitted.content
    attempt = deliver_now(Delivery.objects.get(event__public_id=emitted.json()["id"]).id)
    assert attempt is not None
    assert attempt.response_status == 200
    return receiver.requests(path)[-1]


def test_a_second_rotation_keeps_the_first_secret_until_its_own_expiry(api, receiver):
    start = timezone.now() - timedelta(hours=3)
    with time_machine.travel(start, tick=True):
        created = api.post("/api/v1/endpoints/", {"url": receiver.url("/ab")}, format="json")
        endpoint_id, secret_a = created.json()["id"], created.json()["secret"]
        first = rotate(api, endpoint_id, overlap=2 * HOUR)  # A signs until start + 2 h
        secret_b = first["secret"]
    with time_machine.travel(start + timedelta(minutes=30), tick=True):
        second = rotate(api, endpoint_id)  # B signs for the default 24 h
        secret_c = second["secret"]
    # The response still says when the secret it replaced (B) stops signing.
    promised_b = datetime.fromisoformat(second["previous_secret_expires_at"])
    assert abs(promised_b - (start + timedelta(minutes=30, days=1))) < timedelta(minutes=1)

    with time_machine.travel(start + timedelta(hours=1), tick=True):
        request = delivered(api, receiver, "/ab")
        assert len(request.headers["webhook-signature"].split()) == 3
        assert [accepts(s, request) for s in (secret_a, secret_b, secret_c)] == [True] * 3

    with time_machine.travel(start + timedelta(hours=2, minutes=1), tick=True):
        request = delivered(api, receiver, "/ab")
        assert len(request.headers["webhook-signature"].split()) == 2
        assert [accepts(s, request) for s in (secret_a, secret_b, secret_c)] == [
            False,
            True,
            True,
        ]


def test_past_five_replaced_secrets_the_one_expiring_soonest_stops_signing(api, receiver):
    created = api.post("/api/v1/endpoints/", {"url": receiver.url("/cap")}, format="json").json()
    secrets = [created["secret"]]
    overlaps = [7 * DAY, HOUR, 6 * DAY, 2 * HOUR, 5 * DAY, 4 * DAY]
    for overlap in overlaps:
        secrets.append(rotate(api, created["id"], overlap)["secret"])

    request = delivered(api, receiver, "/cap")

    assert len(request.headers["webhook-signature"].split()) == 6  # the current one and 5
    accepted = [accepts(secret, request) for secret in secrets]
    # secrets[1] was promised an hour, the shortest of the six replaced: it went first.
    assert accepted == [True, False, True, True, True, True, True]


def test_an_overlap_of_zero_retires_the_replaced_secret_at_once_and_keeps_the_others(api, receiver):
    created = api.post("/api/v1/endpoints/", {"url": receiver.url("/leak")}, format="json").json()
    leaked = rotate(api, created["id"], overlap=DAY)["secret"]
    current = rotate(api, created["id"], overlap=0)["secret"]  # `leaked` must stop at once

    request = delivered(api, receiver, "/leak")

    assert accepts(created["secret"], request)  # replaced first, still within its day
    assert not accepts(leaked, request)
    assert accepts(current, request)


# Last in the module: the worker it starts sweeps the database until the module ends.
def test_the_worker_signs_with_all_three_secrets_after_two_rotations(api, receiver, worker):
    created = api.post("/api/v1/endpoints/", {"url": receiver.url("/worker")}, format="json")
    secret_a = created.json()["secret"]
    secret_b = rotate(api, created.json()["id"])["secret"]
    secret_c = rotate(api, created.json()["id"])["secret"]

    api.post("/api/v1/events/", {"event_type": "order.paid", "payload": {}}, format="json")

    [request] = receiver.wait_for(1, "/worker")
    assert [accepts(s, request) for s in (secret_a, secret_b, secret_c)] == [True] * 3
