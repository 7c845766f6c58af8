"""The transformation variant's pieces, without the benchmark's workers and Redis."""

from __future__ import annotations

import json

import pytest

from benchmarks.delivery import Options
from benchmarks.management.commands.benchmark import Command
from benchmarks.transformed import (
    BENCH_TRANSFORMATION,
    body_build_us,
    transformed_backlog,
)
from subscriptions.models import Endpoint
from tests.factories import EndpointFactory
from webhooks.transformations import transform


def test_a_transformed_body_and_a_plain_one_take_measurable_time():
    transformed_us, plain_us = body_build_us(count=200)

    assert 0 < transformed_us < 10_000
    assert 0 < plain_us < 10_000


def test_the_benchmarks_transformation_keeps_sent_at_for_the_receiver():
    body = transform(BENCH_TRANSFORMATION, {"data": {"n": 7, "sent_at": 1767323045.123456}})

    assert body == {"text": "Order 7 paid", "sent_at": 1767323045.123456}
    assert '"sent_at": 1767323045.123456' in json.dumps(body)


@pytest.mark.django_db
def test_the_variant_drains_plain_then_transformed_and_leaves_no_transformation():
    endpoints = [EndpointFactory(), EndpointFactory()]
    ids = [endpoint.id for endpoint in endpoints]
    seen: list[tuple[str, set[str]]] = []

    def backlog(name: str) -> float:
        shapes = set(Endpoint.objects.filter(id__in=ids).values_list("transformation", flat=True))
        seen.append((name, shapes))
        return {"backlog_plain": 200.0, "backlog_transformed": 180.0}[name]

    figures: dict = {}
    transformed_backlog(ids, backlog, figures)

    assert seen == [("backlog_plain", {""}), ("backlog_transformed", {BENCH_TRANSFORMATION})]
    assert figures["backlog_transformed_vs_plain_pct"] == 90.0
    assert figures["transformed_body_us"] > 0
    assert set(Endpoint.objects.values_list("transformation", flat=True)) == {""}


def test_the_transform_flag_reaches_the_inner_process():
    options = Options(events=1, endpoints=1, workers=1, steady_rate=1.0, steady_seconds=1.0)

    assert "--transform" not in Command()._flags(options)
    options.transform = True
    assert Command()._flags(options)[-1] == "--transform"
