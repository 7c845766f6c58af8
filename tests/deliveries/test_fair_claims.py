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
