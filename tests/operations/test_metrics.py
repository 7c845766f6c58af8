"""GET /metrics: counters that move with real attempts (in this process, and in a real worker's
pool processes through the shared multiprocess directory), and gauges that match the database."""

from __future__ import annotations

import socket
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from deliveries.batch import deliver_due_batch
from deliveries.models import Delivery
from deliveries.selectors import dead_letters_count, deliveries_backlog
from subscriptions.models import Endpoint
from tests.factories import EndpointFactory, EventTypeFactory, TenantFactory
from webhooks import send_event
from webhooks.models import Event

pytestmark = [pytest.mark.services]

Samples = dict[tuple[str, frozenset], float]


def scrape(client, **headers: str) -> Samples:
    response = client.get("/metrics", **headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def attempts(samples: Samples, result: str) -> float:
    return value(samples, "hookline_attempts_total", result=result)


def deliveries(samples: Samples, outcome: str) -> float:
    return value(samples, "hookline_deliveries_total", outcome=outcome)


def attempts_timed(samples: Samples) -> float:
    return value(samples, "hookline_attempt_duration_seconds_count")


@pytest.fixture
def tenant():
    EventTypeFactory(name="order.paid")
    return TenantFactory()


@pytest.mark.django_db
def test_metrics_lists_every_hookline_metric_with_its_series_from_zero(client):
    samples = scrape(client)

    names = {name for name, _ in samples}
    assert {
        "hookline_deliveries_total",
        "hookline_attempts_total",
        "hookline_attempt_duration_seconds_bucket",
        "hookline_attempt_duration_seconds_count",
        "hookline_backlog_deliveries",
        "hookline_backlog_oldest_seconds",
        "hookline_dead_letters",
        "hookline_endpoints_disabled",
    } <= names
    # Every outcome and the common results exist before their first attempt.
    for outcome in ("succeeded", "retry_scheduled", "failed"):
        assert ("hookline_deliveries_total", frozenset({("outcome", outcome)})) in samples
    for result in ("2xx", "3xx", "4xx", "5xx", "timeout", "connection", "tls", "blocked"):
        assert ("hookline_attempts_total", frozenset({("result", result)})) in samples
    buckets = {dict(labels)["le"] for name, labels in samples if name.endswith("_seconds_bucket")}
    assert {"0.005", "30.0", "+Inf"} <= buckets


@pytest.mark.django_db
def test_metrics_token_requires_the_bearer_header(client, settings):
    settings.WEBHOOKS_METRICS_TOKEN = "scrape-token-1"

    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Basic scrape-token-1").status_code == 401
    assert client.get("/metrics").headers["WWW-Authenticate"].startswith("Bearer")
    assert "hookline_attempts_total" in str(
        scrape(client, HTTP_AUTHORIZATION="Bearer scrape-token-1")
    )


@pytest.mark.django_db
def test_metrics_and_healthz_answer_plain_http_behind_the_https_redirect(client, settings):
    settings.SECURE_SSL_REDIRECT = True

    assert client.get("/metrics").status_code == 200
    assert client.get("/healthz").status_code == 200
    assert client.get("/dashboard/").status_code == 301  # everything else still moves to https


@pytest.mark.django_db
def test_gauges_match_the_database(client, tenant):
    live = EndpointFactory(tenant=tenant, url="http://127.0.0.1:9/live")
    for n in range(8):
        send_event(tenant, "order.paid", {"n": n})
    rows = list(Delivery.objects.filter(endpoint=live).order_by("id"))
    now = timezone.now()
    for row, waited in zip(rows[:3], (40, 10, 1), strict=True):
        Delivery.objects.filter(id=row.id).update(next_attempt_at=now - timedelta(seconds=waited))
    Delivery.objects.filter(id=rows[3].id).update(next_attempt_at=now + timedelta(hours=1))
    Delivery.objects.filter(id__in=[r.id for r in rows[4:6]]).update(
        status=Delivery.Status.FAILED, next_attempt_at=None, finished_at=now
    )
    Delivery.objects.filter(id__in=[r.id for r in rows[6:]]).update(
        status=Delivery.Status.SUCCEEDED, next_attempt_at=None, finished_at=now
    )
    EndpointFactory(tenant=tenant, is_active=False)

    samples = scrape(client)

    assert value(samples, "hookline_backlog_deliveries") == 3
    assert 40 <= value(samples, "hookline_backlog_oldest_seconds") < 45
    assert value(samples, "hookline_dead_letters") == 2
    assert value(samples, "hookline_endpoints_disabled") == 1


@pytest.mark.django_db
def test_backlog_age_is_zero_without_a_backlog(client):
    samples = scrape(client)

    assert value(samples, "hookline_backlog_deliveries") == 0
    assert value(samples, "hookline_backlog_oldest_seconds") == 0


@pytest.mark.django_db
def test_gauge_queries_walk_the_delivery_indexes_not_the_table(tenant):
    """A scrape stays cheap with millions of finished deliveries: each count reads an index."""
    # Rows and statistics, so that the planner weighs the indexes as on a live installation (on
    # empty tables every index costs the same).
    kind = EventTypeFactory(name="gauge.test")
    endpoints = [EndpointFactory(tenant=tenant) for _ in range(2)]
    for n in range(300):
        event = Event.objects.create(tenant=tenant, event_type=kind, payload={})
        Delivery.objects.create(event=event, endpoint=endpoints[n % 2],
                                next_attempt_at=timezone.now() + timedelta(seconds=n - 150),
                                status="pending" if n % 3 else "succeeded")  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {connection.ops.quote_name(Delivery._meta.db_table)}")
    with CaptureQueriesContext(connection) as queries:
        deliveries_backlog(at=timezone.now())
        dead_letters_count()
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # an empty table would be scanned
        plans = []
        for query in queries:
            cursor.execute("EXPLAIN " + query["sql"])
            plans.append("\n".join(row[0] for row in cursor.fetchall()))

    # An index-only scan, or a bitmap one where the visibility map is not yet set (rows written
    # in this test's transaction): either reads the index's due entries, never the whole table.
    assert "delivery_due_idx" in plans[0]
    assert "Index Only Scan using delivery_" in plans[1]  # the status or dead-letter index
    assert "Seq Scan" not in "".join(plans)


@pytest.mark.django_db(transaction=True)
def test_attempts_in_this_process_move_the_counters(client, tenant, receiver):
    EndpointFactory(tenant=tenant, url=receiver.url("/ok"))
    EndpointFactory(tenant=tenant, url=receiver.url("/fail"))
    receiver.script("/fail", [500])
    before = scrape(client)

    send_event(tenant, "order.paid", {"n": 1})
    assert deliver_due_batch(limit=10) == 2

    after = scrape(client)
    assert attempts(after, "2xx") - attempts(before, "2xx") == 1
    assert attempts(after, "5xx") - attempts(before, "5xx") == 1
    assert deliveries(after, "succeeded") - deliveries(before, "succeeded") == 1
    assert deliveries(after, "retry_scheduled") - deliveries(before, "retry_scheduled") == 1
    assert deliveries(after, "failed") == deliveries(before, "failed")
    assert attempts_timed(after) - attempts_timed(before) == 2


def test_worker_attempts_reach_the_web_scrape_through_the_shared_directory(
    client, settings, start_worker, receiver, tmp_path
):
    shared = tmp_path / "prometheus"
    shared.mkdir()
    settings.PROMETHEUS_MULTIPROC_DIR = str(shared)
    tenant = TenantFactory()
    EventTypeFactory(name="order.paid")
    EndpointFactory(tenant=tenant, url=receiver.url("/ok"))
    EndpointFactory(tenant=tenant, url=receiver.url("/fail"))
    receiver.script("/fail", [500] * 10)
    start_worker(PROMETHEUS_MULTIPROC_DIR=str(shared))
    before = scrape(client)
    assert attempts(before, "2xx") == attempts(before, "5xx") == 0

    send_event(tenant, "order.paid", {"n": 1})

    # Four attempts to /fail (WEBHOOKS_RETRY_SCHEDULE has three delays), then a dead letter.
    samples = wait_for_metrics(client, lambda s: deliveries(s, "failed") == 1)
    assert attempts(samples, "2xx") == 1
    assert attempts(samples, "5xx") == 4
    assert deliveries(samples, "succeeded") == 1
    assert deliveries(samples, "retry_scheduled") == 3
    assert attempts_timed(samples) == 5
    assert value(samples, "hookline_attempt_duration_seconds_bucket", le="+Inf") == 5
    assert len(receiver.requests("/fail")) == 4
    failed = Delivery.objects.filter(status=Delivery.Status.FAILED).count()
    due = Delivery.objects.filter(status="pending", next_attempt_at__lte=timezone.now()).count()
    assert value(samples, "hookline_dead_letters") == failed == 1
    assert value(samples, "hookline_backlog_deliveries") == due == 0
    assert (
        value(samples, "hookline_endpoints_disabled")
        == Endpoint.objects.filter(is_active=False).count()
    )
    # Files are named by host and process, so containers sharing the directory never collide.
    host = socket.gethostname().replace("_", "-")
    assert any(path.name.startswith(f"counter_{host}-") for path in shared.iterdir())


def wait_for_metrics(client, ready, timeout: float = 20) -> Samples:
    deadline = time.monotonic() + timeout
    while True:
        samples = scrape(client)
        if ready(samples) or time.monotonic() > deadline:
            return samples
        time.sleep(0.1)
