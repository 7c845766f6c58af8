"""The broker comparison: the same measurement with Redis and with RabbitMQ as the broker, one
after the other in one run, each in a scratch database of its own, and their ratios.

Each broker is one the benchmark may empty: Redis's database 12 on the server of
CELERY_BROKER_URL (or REDIS_URL), and RabbitMQ's virtual host `hookline_bench`.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import kombu

BROKERS = ("redis", "amqp")
BENCH_REDIS_DB = 12
BENCH_VHOST = "hookline_bench"
LOCAL_RABBITMQ = "amqp://guest:guest@127.0.0.1:5672"
# The figures compared, each as amqp's share of redis's: throughput, the emit's cost under load,
# latency at a steady rate, the workers' CPU, and the wake-ups it took end to end.
COMPARED = (
    "backlog_per_s",
    "end_to_end_per_s",
    "end_to_end_batch_per_s",
    "burst_emit_ms_per_event",
    "steady_latency_ms_p50",
    "steady_latency_ms_p99",
    "worker_cpu_s_per_1000",
    "per_1000_end_to_end_broker_messages",
)


class BrokerUnavailable(Exception):
    """A broker the benchmark was asked for is not configured or cannot be reached."""


def bench_broker_urls(
    choice: str, *, broker_url: str, redis_url: str, amqp_url: str
) -> dict[str, str]:
    """The URL of each broker measured, by name (`choice`: redis, amqp or both).

    Redis is the server of `broker_url` when it is Redis, else of `redis_url`; RabbitMQ is
    `amqp_url` when given, else `hookline_bench` on the server of `broker_url` when it is
    RabbitMQ, else on this machine's.
    """
    names = BROKERS if choice == "both" else (choice,)
    urls = {}
    if "redis" in names:
        server = broker_url if broker_url.startswith("redis") else redis_url
        if not server:
            raise BrokerUnavailable("Redis: set CELERY_BROKER_URL or REDIS_URL to a redis:// URL.")
        urls["redis"] = _with_path(server, f"/{BENCH_REDIS_DB}")
    if "amqp" in names:
        server = broker_url if broker_url.startswith("amqp") else LOCAL_RABBITMQ
        urls["amqp"] = amqp_url or _with_path(server, f"/{BENCH_VHOST}")
    return urls


def _with_path(url: str, path: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=path))


def broker_checked(name: str, url: str) -> None:
    """Raise BrokerUnavailable, saying what to do, unless the broker accepts a connection."""
    try:
        with kombu.Connection(url, connect_timeout=2) as connection:
            connection.ensure_connection(max_retries=0)
    except Exception as error:  # each transport raises its own errors
        parts = urlsplit(url)
        where = f"{parts.hostname}:{parts.port or ''}{parts.path}"
        advice = ""
        if name == "amqp":
            vhost = parts.path.lstrip("/") or "/"
            advice = (f" If the server runs, give the benchmark its virtual host: rabbitmqctl "
                      f"add_vhost {vhost} && rabbitmqctl set_permissions -p {vhost} "
                      f"{parts.username or 'guest'} '.*' '.*' '.*'")  # fmt: skip
        raise BrokerUnavailable(f"{name} at {where}: {type(error).__name__}.{advice}") from None


def broker_comparison(runs: dict[str, dict]) -> dict:
    """Each compared figure of both runs, and amqp's as a percentage of redis's."""
    comparison: dict = {"benchmark": "delivery-brokers"}
    for name in COMPARED:
        redis, amqp = runs["redis"].get(name), runs["amqp"].get(name)
        comparison[f"redis_{name}"] = redis
        comparison[f"amqp_{name}"] = amqp
        comparison[f"amqp_vs_redis_{name}_pct"] = (
            round(100 * amqp / redis, 1) if redis and amqp is not None else None
        )
    for broker in BROKERS:
        for name in ("lost", "duplicated", "unverified"):
            comparison[f"{broker}_{name}"] = runs[broker][name]
    return comparison


def comparison_report(comparison: dict) -> list[str]:
    """The comparison's lines for a reader."""
    lines = [f"{'brokers, same run':<38}{'redis':>12}{'amqp':>12}{'amqp/redis':>12}"]
    for name in COMPARED:
        redis, amqp = comparison[f"redis_{name}"], comparison[f"amqp_{name}"]
        pct = comparison[f"amqp_vs_redis_{name}_pct"]
        lines.append(f"{name:<38}{_figure(redis):>12}{_figure(amqp):>12}"
                     f"{'-' if pct is None else f'{pct:.1f} %':>12}")  # fmt: skip
    lost = ", ".join(
        f"{broker} {comparison[f'{broker}_lost']} lost, "
        f"{comparison[f'{broker}_duplicated']} duplicated"
        for broker in BROKERS
    )
    lines.append(f"{'exactly once':<38}{lost}")
    return lines


def _figure(value: float | None) -> str:
    return "-" if value is None else f"{value:,}"
