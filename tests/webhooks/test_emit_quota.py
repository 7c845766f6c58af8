"""The emit quota: `Tenant.max_events_per_second`, counted over every process, in Redis or, with
no Redis, in the database; beyond it emits are refused (429 with Retry-After through the API)."""

from __future__ import annotations

import math
import multiprocessing
import threading
import time

import pytest
import redis
from django.conf import settings
from django.db import connection, connections

from deliveries.models import Delivery
from subscriptions.models import EmitQuota, Tenant
from subscriptions.services import api_key_create
from tests.api.conftest import assert_error_body, client_for
from tests.factories import EndpointFactory, EventTypeFactory, TenantFactory
from webhooks import send_event, send_events
from webhooks.emit_quota import emit_quota_take
from webhooks.errors import EmitQuotaExceededError
from webhooks.models import Event

pytestmark = pytest.mark.django_db(transaction=True)


def _redis_url() -> str:
    broker = settings.CELERY_BROKER_URL
    return settings.REDIS_URL or (broker if broker.startswith("redis") else "")


@pytest.fixture(params=["redis", "database"])
def store(request, settings):
    """Each test runs against both stores: Redis (when the suite has one) and the database."""
    if request.param == "database":
        settings.REDIS_URL, settings.CELERY_BROKER_URL = "", "filesystem://"
        yield "database"
        return
    url = _redis_url()
    if not url:
        pytest.skip("the Redis store needs the suite's Redis")
    client = redis.Redis.from_url(url)
    pattern = f"hookline:emit-quota:{connection.settings_dict['NAME']}:*"
    for key in client.scan_iter(pattern):
        client.delete(key)
    yield "redis"
    for key in client.scan_iter(pattern):
        client.delete(key)


@pytest.fixture
def limited(store):
    """A tenant that may emit 2 events a second: slow enough that no test refills it by
    accident, however slow the machine."""
    EventTypeFactory(name="order.paid")
    tenant = TenantFactory(slug="limited", max_events_per_second=2)
    EndpointFactory(tenant=tenant, url="http://127.0.0.1:9/limited")
    return tenant


def test_a_tenant_emits_its_quota_at_once_and_the_next_event_is_refused(limited):
    for number in range(2):
        send_event(limited, "order.paid", {"order_id": str(number)})

    with pytest.raises(EmitQuotaExceededError, match="2 events a second") as refused:
        send_event(limited, "order.paid", {"order_id": "over"})

    assert refused.value.retry_after == 1
    assert Event.objects.count() == 2
    assert Delivery.objects.count() == 2


def test_the_quota_comes_back_at_the_tenants_rate(limited):
    for _ in range(2):
        emit_quota_take(tenant=limited, events=1)
    with pytest.raises(EmitQuotaExceededError):
        emit_quota_take(tenant=limited, events=1)

    time.sleep(0.55)  # 2 a second: one more event is paid for

    emit_quota_take(tenant=limited, events=1)
    with pytest.raises(EmitQuotaExceededError):
        emit_quota_take(tenant=limited, events=1)


def test_a_refused_emit_costs_nothing(limited):
    for _ in range(2):
        emit_quota_take(tenant=limited, events=1)
    for _ in range(20):
        with pytest.raises(EmitQuotaExceededError):
            emit_quota_take(tenant=limited, events=1)

    time.sleep(0.55)

    emit_quota_take(tenant=limited, events=1)


def test_a_batch_counts_each_of_its_events(limited):
    assert len(send_events(limited, [("order.paid", {"order_id": "first"})])) == 1

    with pytest.raises(EmitQuotaExceededError):
        send_events(limited, [("order.paid", {"order_id": "a"}), ("order.paid", {"order_id": "b"})])

    send_event(limited, "order.paid", {"order_id": "last"})
    assert Event.objects.count() == 2


def test_a_batch_bigger_than_a_seconds_quota_passes_once_and_the_tenant_then_waits(limited):
    send_events(limited, [("order.paid", {"order_id": str(n)}) for n in range(6)])

    with pytest.raises(EmitQuotaExceededError) as refused:
        send_event(limited, "order.paid", {"order_id": "after"})

    # 6 events at 2 a second are paid for in 3 s; this one adds 0.5 s, and one second's worth
    # may be owed: it could pass in 2.5 s.
    assert refused.value.retry_after == 3
    assert Event.objects.count() == 6


def test_tenants_have_quotas_of_their_own(limited):
    other = TenantFactory(slug="other", max_events_per_second=2)
    for _ in range(2):
        emit_quota_take(tenant=limited, events=1)

    for _ in range(2):
        emit_quota_take(tenant=other, events=1)


def test_a_tenant_without_a_quota_is_never_refused(store):
    tenant = TenantFactory(slug="free")
    for _ in range(200):
        emit_quota_take(tenant=tenant, events=1)
    assert not EmitQuota.objects.exists()


def _take_in_a_process(tenant_id: int, rate: int, seconds: float, start, allowed) -> None:
    """Try an emit every 5 ms for `seconds`: both processes keep trying while the quota refills,
    however the machine schedules them."""
    connections.close_all()  # the parent's connections are not this process's to use
    tenant = Tenant(id=tenant_id, slug="shared", max_events_per_second=rate)
    start.wait()
    count = 0
    ends = time.monotonic() + seconds
    while time.monotonic() < ends:
        time.sleep(0.005)
        try:
            emit_quota_take(tenant=tenant, events=1)
            count += 1
        except EmitQuotaExceededError:
            pass
    allowed.put(count)
    connections.close_all()


def test_two_processes_share_one_quota(store):
    tenant = TenantFactory(slug="shared", max_events_per_second=40)
    context = multiprocessing.get_context("fork")
    start, allowed = context.Event(), context.Queue()
    connections.close_all()
    processes = [
        context.Process(target=_take_in_a_process, args=(tenant.id, 40, 1.5, start, allowed))
        for _ in range(2)
    ]
    for process in processes:
        process.start()
    began = time.monotonic()
    start.set()
    for process in processes:
        process.join(60)
    elapsed = time.monotonic() - began

    counts = [allowed.get(timeout=5) for _ in processes]
    # One second's worth at once, then 40 a second while they ran; each alone would take more.
    assert 40 <= sum(counts) <= 40 + math.ceil(elapsed * 40) + 1, (counts, elapsed)
    assert all(count > 0 for count in counts)


def test_threads_never_take_more_than_the_quota(store):
    tenant = TenantFactory(slug="threads", max_events_per_second=30)
    barrier = threading.Barrier(4)
    counts: list[int] = []

    def take() -> None:
        barrier.wait()
        count = 0
        try:
            for _ in range(60):
                try:
                    emit_quota_take(tenant=tenant, events=1)
                    count += 1
                except EmitQuotaExceededError:
                    pass
        finally:
            connection.close()
        counts.append(count)

    began = time.monotonic()
    threads = [threading.Thread(target=take) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    elapsed = time.monotonic() - began

    assert 30 <= sum(counts) <= 30 + math.ceil(elapsed * 30) + 1, (counts, elapsed)


def test_the_api_answers_429_with_retry_after_and_stores_nothing(limited):
    api = client_for(api_key_create(tenant=limited)[1])
    body = {"event_type": "order.paid", "payload": {"order_id": "1"}}
    for _ in range(2):
        assert api.post("/api/v1/events/", body, format="json").status_code == 202

    refused = api.post("/api/v1/events/", body, format="json")
    batch = api.post("/api/v1/events/batch/", {"events": [body]}, format="json")

    for response in (refused, batch):
        assert response.status_code == 429, response.content
        assert response["Retry-After"] == "1"
        assert "max_events_per_second" in assert_error_body(response, "throttled")["detail"]
    assert Event.objects.count() == 2


def test_the_database_store_is_one_row_per_limited_tenant(limited, store):
    if store != "database":
        pytest.skip("the row is the database store's")
    emit_quota_take(tenant=limited, events=3)
    row = EmitQuota.objects.get(tenant_id=limited.id)
    assert row.drained_at == pytest.approx(time.time() + 3 / 2, abs=0.5)


def test_an_unreachable_redis_lets_emits_through(limited, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    for _ in range(10):
        emit_quota_take(tenant=limited, events=1)
