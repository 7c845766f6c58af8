"""Fair claims (WEBHOOKS_FAIR_CLAIMS) with a real worker: no tenant waits behind another's backlog.

The claim's own rules (shares, weights, turns over endpoints) are tested on both databases in
test_bulk; this is what a tenant sees.
"""

from __future__ import annotations

import pytest
from django.db import transaction

from tests.factories import EndpointFactory, EventTypeFactory, TenantFactory
from webhooks import send_event

pytestmark = [pytest.mark.services]

BACKLOG = 300


def test_a_tenants_event_is_not_held_behind_another_tenants_backlog(start_worker, receiver):
    receiver.delay = 0.005  # the backlog takes at least 1.5 s to drain, one answer at a time
    noisy, quiet = TenantFactory(), TenantFactory()
    EventTypeFactory(name="order.paid")
    EndpointFactory(tenant=noisy, url=receiver.url("/noisy"))
    EndpointFactory(tenant=quiet, url=receiver.url("/quiet"))
    start_worker(concurrency=1, WEBHOOKS_FAIR_CLAIMS="true", WEBHOOKS_BATCH_SIZE="20")
    with transaction.atomic():
        for n in range(BACKLOG):
            send_event(noisy, "order.paid", {"n": n})
    receiver.wait_for(5, "/noisy")  # the backlog is draining

    send_event(quiet, "order.paid", {"n": 0})
    receiver.wait_for(1, "/quiet")

    # In due order it would have waited for all 300; shared out, it goes in the next batch.
    assert len(receiver.requests("/noisy")) < BACKLOG / 2


def test_tenants_with_weights_1_and_3_get_deliveries_in_a_1_to_3_ratio(start_worker, receiver):
    light, heavy = TenantFactory(delivery_weight=1), TenantFactory(delivery_weight=3)
    EventTypeFactory(name="order.paid")
    EndpointFactory(tenant=light, url=receiver.url("/light"))
    EndpointFactory(tenant=heavy, url=receiver.url("/heavy"))
    with transaction.atomic():  # equal backlogs, interleaved: due order alone would give 1:1
        for n in range(BACKLOG):
            send_event(light, "order.paid", {"n": n})
            send_event(heavy, "order.paid", {"n": n})
    receiver.delay = 0.002
    start_worker(concurrency=2, WEBHOOKS_FAIR_CLAIMS="true", WEBHOOKS_BATCH_SIZE="40")

    def counts() -> tuple[int, int]:
        return len(receiver.requests("/light")), len(receiver.requests("/heavy"))

    # Each worker's first claim is in due order (nothing says there is contention yet): the
    # rate is measured from after those, while both backlogs last.
    receiver.wait_for(120, timeout=60)
    light_before, heavy_before = counts()
    receiver.wait_for(BACKLOG, timeout=60)
    light_after, heavy_after = counts()
    assert heavy_after < BACKLOG, "the heavy tenant's backlog ran out before the measure"
    light_rate, heavy_rate = light_after - light_before, heavy_after - heavy_before
    assert 3 * 0.8 <= heavy_rate / light_rate <= 3 * 1.2, (light_rate, heavy_rate)
