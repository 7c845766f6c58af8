"""The transformation variant (`--transform`): the backlog drained again with a transformation on
every endpoint, against the same backlog without, and one transformation's cost in this process."""

from __future__ import annotations

import time
from collections.abc import Callable

from subscriptions.models import Endpoint
from webhooks.formats import JSON, RawJSON, render
from webhooks.transformations import body_of

# The chat example of the docs; the benchmark's version keeps `sent_at`, which the receiver reads
# for latency.
EXAMPLE = '{"text": "Order " & data.order_id & " paid"}'
BENCH_TRANSFORMATION = '{"text": "Order " & $string(data.n) & " paid", "sent_at": data.sent_at}'
_TIMESTAMP = "2026-01-02T03:04:05.678Z"
_MESSAGE = {
    "type": "order.paid",
    "timestamp": _TIMESTAMP,
    "data": {"order_id": "ord_1", "amount": 4200, "currency": "EUR"},
}


def body_build_us(count: int = 5000) -> tuple[float, float]:
    """Microseconds to build one delivery's body with the example transformation (transformed
    and encoded), and the plain body it replaces (the batch builds each once per event and
    endpoint shape). The first less the second is what the transformation adds: near nothing,
    or less than nothing, where the example is evaluated directly."""
    data = RawJSON('{"order_id":"ord_1","amount":4200,"currency":"EUR"}')
    body_of(EXAMPLE, _MESSAGE)  # compiled once, as a worker does on first use
    started = time.perf_counter()
    for _ in range(count):
        body_of(EXAMPLE, _MESSAGE, JSON)
    transformed = time.perf_counter() - started
    started = time.perf_counter()
    for _ in range(count):
        render(JSON, event_type="order.paid", timestamp=_TIMESTAMP, data=data)
    plain = time.perf_counter() - started
    return 1e6 * transformed / count, 1e6 * plain / count


def transformed_backlog(
    endpoint_ids: list[int], backlog: Callable[[str], float], figures: dict
) -> None:
    """Drain a backlog plain, then one with BENCH_TRANSFORMATION on every endpoint (`backlog`
    takes the phase's name and returns deliveries per second); both after the first backlog,
    so neither pays the workers' warm-up. The endpoints are left without a transformation."""
    endpoints = Endpoint.objects.filter(id__in=endpoint_ids)
    plain = backlog("backlog_plain")
    endpoints.update(transformation=BENCH_TRANSFORMATION)
    try:
        transformed = backlog("backlog_transformed")
    finally:
        endpoints.update(transformation="")
    figures["backlog_transformed_vs_plain_pct"] = round(100 * transformed / plain, 1)
    transformed_us, plain_us = body_build_us()
    figures["transform_us_per_delivery"] = round(transformed_us - plain_us, 1)
    figures["transformed_body_us"] = round(transformed_us, 1)
