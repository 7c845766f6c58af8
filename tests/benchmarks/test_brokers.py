"""The benchmark's broker comparison: which broker it measures where, its ratios and its report,
and one small run on RabbitMQ (its speed is not asserted)."""

from __future__ import annotations

import json
import socket

import pytest

from benchmarks.brokers import (
    COMPARED,
    BrokerUnavailable,
    bench_broker_urls,
    broker_checked,
    broker_comparison,
    comparison_report,
)
from tests.benchmarks.test_benchmark import BATCH, benchmark_output


def test_both_brokers_are_measured_in_their_own_redis_database_and_virtual_host():
    urls = bench_broker_urls(
        "both", broker_url="redis://:pw@cache:6379/0", redis_url="", amqp_url=""
    )
    assert urls == {
        "redis": "redis://:pw@cache:6379/12",
        "amqp": "amqp://guest:guest@127.0.0.1:5672/hookline_bench",
    }


def test_with_a_rabbitmq_broker_redis_comes_from_redis_url_and_rabbitmq_from_the_broker():
    urls = bench_broker_urls(
        "both", broker_url="amqp://u:p@mq:5672/prod", redis_url="redis://r:6379/3", amqp_url=""
    )
    assert urls == {"redis": "redis://r:6379/12", "amqp": "amqp://u:p@mq:5672/hookline_bench"}


def test_an_amqp_url_given_is_used_as_it_is():
    urls = bench_broker_urls(
        "amqp", broker_url="redis://cache/0", redis_url="", amqp_url="amqp://u:p@mq:5672/mine"
    )
    assert urls == {"amqp": "amqp://u:p@mq:5672/mine"}


def test_redis_asked_for_without_a_redis_is_refused_saying_what_to_set():
    with pytest.raises(BrokerUnavailable, match="CELERY_BROKER_URL or REDIS_URL"):
        bench_broker_urls("both", broker_url="amqp://mq//", redis_url="", amqp_url="")


def test_an_unreachable_rabbitmq_is_refused_with_how_to_give_the_benchmark_its_vhost():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"amqp://guest:secret-pw@127.0.0.1:{port}/hookline_bench"
    with pytest.raises(BrokerUnavailable) as raised:
        broker_checked("amqp", url)
    assert "rabbitmqctl add_vhost hookline_bench" in str(raised.value)
    assert "secret-pw" not in str(raised.value)


def figures(**values: float) -> dict:
    return {**dict.fromkeys(COMPARED, 1.0), "lost": 0, "duplicated": 0, "unverified": 0, **values}


def test_the_comparison_gives_amqp_as_a_share_of_redis_and_says_so():
    runs = {
        "redis": figures(backlog_per_s=2000.0, steady_latency_ms_p99=20.0),
        "amqp": figures(backlog_per_s=1500.0, steady_latency_ms_p99=None, duplicated=2),
    }

    comparison = broker_comparison(runs)
    lines = comparison_report(comparison)

    assert comparison["benchmark"] == "delivery-brokers"
    assert (comparison["redis_backlog_per_s"], comparison["amqp_backlog_per_s"]) == (2000, 1500)
    assert comparison["amqp_vs_redis_backlog_per_s_pct"] == 75.0
    assert comparison["amqp_vs_redis_steady_latency_ms_p99_pct"] is None
    assert comparison["amqp_duplicated"] == 2
    assert "backlog_per_s" + " " * 30 + "2,000.0     1,500.0      75.0 %" in lines
    assert lines[-1].endswith("redis 0 lost, 0 duplicated, amqp 0 lost, 2 duplicated")


@pytest.mark.services
@pytest.mark.django_db
def test_benchmark_on_rabbitmq_delivers_every_event_once_and_counts_the_wake_ups_taken(
    rabbitmq_url,
):
    # One broker, not both: `both` runs this and the Redis run of test_benchmark.py one after
    # the other, and compares them with broker_comparison, tested above.
    output = benchmark_output(
        "--broker", "amqp", "--amqp-url", rabbitmq_url, "--events", "20", "--workers", "1",
        "--steady-rate", "20", "--steady-seconds", "1",
    )  # fmt: skip

    figures = json.loads(output.strip().splitlines()[-1])
    assert figures["broker"] == "amqp"
    assert figures["expected"] == 20 * 4 + 20 + BATCH
    assert (figures["received"], figures["lost"], figures["duplicated"]) == (
        figures["expected"], 0, 0,
    )  # fmt: skip
    assert figures["per_1000_end_to_end_broker_messages"] > 0  # the emits woke the workers
