"""The PgBouncer variant (`--pgbouncer`): the same run measured twice in one go, directly and
through a PgBouncer in transaction mode, each in a scratch database of its own, and compared."""

from __future__ import annotations

# The figures compared: throughput (more is better) and time (less is better).
COMPARED = (
    "backlog_per_s",
    "backlog_batch_per_s",
    "end_to_end_per_s",
    "end_to_end_batch_per_s",
    "emit_ms_per_event",
    "batch_emit_ms_per_event",
    "burst_latency_ms_p50",
    "burst_latency_ms_p99",
    "steady_latency_ms_p50",
    "steady_latency_ms_p99",
    "worker_cpu_s_per_1000",
    "queries_per_delivery",
    "per_1000_emit_host_cpu_s",
    "per_1000_deliver_worker_cpu_s",
    "per_1000_deliver_database_cpu_s",
    "per_1000_end_to_end_database_cpu_s",
)
# Neither run may lose or repeat a delivery.
COUNTERS = ("lost", "duplicated", "unverified")


def pooled_figures(direct: dict, pooled: dict) -> dict:
    """The direct run's figures; the pooled run's, each name prefixed `pgbouncer_`; and for each
    compared figure both runs have, the pooled one as a percentage of the direct one
    (`<name>_pgbouncer_vs_direct_pct`)."""
    figures = {name: value for name, value in direct.items() if name != "benchmark"}
    figures.update(
        {f"pgbouncer_{name}": value for name, value in pooled.items() if name != "benchmark"}
    )
    for name in COMPARED:
        before, after = direct.get(name), pooled.get(name)
        if before and after is not None:
            figures[f"{name}_pgbouncer_vs_direct_pct"] = round(100 * after / before, 1)
    return figures


def pooled_report(figures: dict) -> list[str]:
    """The comparison as lines of text: each compared figure direct, through PgBouncer, and the
    ratio; then what both runs lost or repeated."""
    lines = [
        "through PgBouncer (transaction mode) against direct, measured in the same run:",
        f"{'figure':<28}{'direct':>12}{'pgbouncer':>12}{'ratio':>9}",
    ]
    for name in COMPARED:
        ratio = figures.get(f"{name}_pgbouncer_vs_direct_pct")
        if ratio is not None:
            direct, pooled = figures[name], figures[f"pgbouncer_{name}"]
            lines.append(f"{name:<28}{direct:>12}{pooled:>12}{ratio:>8} %")
    if "pgbouncer_process_cpu_s_per_1000" in figures:
        own = figures["pgbouncer_process_cpu_s_per_1000"]
        lines.append(f"PgBouncer's own processor time: {own} s per 1,000 deliveries")
    counts = ", ".join(
        f"{name} {figures.get(name)} / {figures.get(f'pgbouncer_{name}')}" for name in COUNTERS
    )
    lines.append(f"direct / through PgBouncer: {counts}")
    return lines
