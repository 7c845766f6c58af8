"""`GET /api/v1/endpoints/{id}/stats/`: an endpoint's figures over a window, the dashboard's."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from dashboard import stats
from deliveries.batch import deliver_due_batch
from deliveries.hourly_stats import hour_of, latency_bucket
from deliveries.models import Delivery, HourlyStat
from tests.api.conftest import assert_error_body
from tests.factories import EndpointFactory
from webhooks import send_event

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def one_retry(settings):
    settings.WEBHOOKS_RETRY_SCHEDULE = (600.0,)


def test_the_stats_count_what_the_workers_recorded_and_match_the_dashboard(
    api, tenant_a, order_paid, receiver
):
    endpoint = EndpointFactory(tenant=tenant_a, url=receiver.url("/hook"))
    receiver.script("/hook", [200, 503, 404, 200])  # then 200, the default
    for n in range(5):
        send_event(tenant_a, "order.paid", {"order_id": f"ord_{n}"})
    assert deliver_due_batch(limit=10) == 5

    body = api.get(f"/api/v1/endpoints/{endpoint.id}/stats/").json()

    assert body["window"] == "24h"
    assert (body["attempts"], body["succeeded"], body["failed"]) == (5, 3, 2)
    assert body["success_rate"] == 60.0
    assert body["attempts_by_status_class"] == {
        "status_1xx": 0, "status_2xx": 3, "status_3xx": 0, "status_4xx": 1, "status_5xx": 1,
        "no_response": 0,
    }  # fmt: skip
    assert body["latency_ms"]["p50"] > 0
    assert body["backlog"]["scheduled"] == 2  # the 503 and the 404, retried in 10 minutes
    assert body["backlog"]["retrying"] == 2
    assert body["backlog"]["total"] == 2
    dashboard = stats.endpoint_outcomes([endpoint.id], timezone.now())[endpoint.id]
    assert (body["delivered"], body["dead"], body["attempts"]) == (
        dashboard.delivered, dashboard.dead, dashboard.attempts,
    )  # fmt: skip
    assert body["latency_ms"] == {"p50": dashboard.latency.p50, "p95": dashboard.latency.p95}
    assert body["backlog"]["retrying"] == dashboard.retrying


def test_the_window_takes_whole_hours_back_from_now(api, tenant_a, order_paid):
    endpoint = EndpointFactory(tenant=tenant_a)
    now = hour_of(timezone.now())
    for hours_ago, succeeded in ((0, 1), (5, 10), (30, 100), (24 * 10, 1000)):
        HourlyStat.objects.create(
            endpoint=endpoint, hour=now - timedelta(hours=hours_ago), succeeded=succeeded,
            status_2xx=succeeded, latency={str(latency_bucket(20.0)): succeeded},
        )  # fmt: skip
    counts = {
        window: api.get(f"/api/v1/endpoints/{endpoint.id}/stats/?window={window}").json()
        for window in ("1h", "24h", "7d", "30d")
    }
    assert {window: body["succeeded"] for window, body in counts.items()} == {
        "1h": 1, "24h": 11, "7d": 111, "30d": 1111,
    }  # fmt: skip
    assert counts["30d"]["latency_ms"]["p95"] == pytest.approx(20.0, rel=0.045)


def test_an_endpoint_without_attempts_has_no_rate_and_no_latency(api, tenant_a):
    endpoint = EndpointFactory(tenant=tenant_a)

    body = api.get(f"/api/v1/endpoints/{endpoint.id}/stats/").json()

    assert body["attempts"] == 0
    assert body["success_rate"] is None
    assert body["latency_ms"] == {"p50": None, "p95": None}


# Lone surrogates reach every route through tests/test_hostile_input.py.
@pytest.mark.parametrize("window", ["2h", "", "24h\x00", "9" * 400, "24H", "-1"])
def test_an_unknown_window_is_refused(api, tenant_a, window):
    endpoint = EndpointFactory(tenant=tenant_a)

    response = api.get(f"/api/v1/endpoints/{endpoint.id}/stats/", {"window": window})

    assert response.status_code == 400
    assert_error_body(response)


def test_another_tenants_endpoint_has_no_stats(api, other_api, tenant_b, order_paid):
    theirs = EndpointFactory(tenant=tenant_b)
    send_event(tenant_b, "order.paid", {"order_id": "x"})

    assert api.get(f"/api/v1/endpoints/{theirs.id}/stats/").status_code == 404
    assert other_api.get(f"/api/v1/endpoints/{theirs.id}/stats/").status_code == 200
    assert Delivery.objects.count() == 1
