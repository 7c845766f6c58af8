"""GET /metrics: Prometheus's scrape of every process's counters and the database's gauges."""

from __future__ import annotations

import hmac
from collections.abc import Iterator

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_safe
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from operations.metrics import DatabaseCollector


@require_safe
def metrics(request: HttpRequest) -> HttpResponse:
    """The exposition text; with WEBHOOKS_METRICS_TOKEN set, only for `Bearer <token>`."""
    if not _authorized(request):
        response = HttpResponse(
            "Send Authorization: Bearer <WEBHOOKS_METRICS_TOKEN>.\n",
            status=401,
            content_type="text/plain; charset=utf-8",
        )
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    scrape = _Scrape([_counters(), DatabaseCollector()])
    return HttpResponse(generate_latest(scrape), content_type=CONTENT_TYPE_LATEST)


def _authorized(request: HttpRequest) -> bool:
    token = settings.WEBHOOKS_METRICS_TOKEN
    if not token:
        return True
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode(), token.encode()
    )


def _counters() -> Collector:
    """Every process's counters from the shared directory, else this process's own registry.

    In multiprocess mode the registry must not be collected as well: its metrics are in the
    files already, and would be reported twice.
    """
    directory = settings.PROMETHEUS_MULTIPROC_DIR
    if directory:
        return MultiProcessCollector(None, path=directory)
    return REGISTRY


class _Scrape:
    """The collectors of one scrape, made per request so nothing is registered twice."""

    def __init__(self, collectors: list[Collector]) -> None:
        self.collectors = collectors

    def collect(self) -> Iterator[Metric]:
        for collector in self.collectors:
            yield from collector.collect()
