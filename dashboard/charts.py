"""Server-drawn SVG charts: pure functions of counts to markup, no JavaScript needed."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

SUCCEEDED_COLOUR = "#1d7a46"  # --green in dashboard.css
FAILED_COLOUR = "#b42318"  # --red
GRID_COLOUR = "#e2e6ec"  # --line
TEXT_COLOUR = "#5d6778"  # --muted

WIDTH = 720
HEIGHT = 160
TOP = 14  # room for the maximum's label
BOTTOM = 20  # room for the hour labels
LEFT = 34  # room for the y-axis labels
LABEL_EVERY = 3  # hours between x-axis labels


def stacked_hour_bars(
    buckets: Sequence[tuple[datetime, int, int]], *, title: str = "Attempts per hour"
) -> SafeString:
    """An inline `<svg>` of stacked bars, one per (hour, succeeded, failed) bucket.

    Succeeded is drawn at the bottom in green, failed on top in red; every bar has a `<title>`
    with its exact counts, and the figure an accessible summary.
    """
    peak = max((ok + failed for _, ok, failed in buckets), default=0)
    scale = _nice_ceiling(peak)
    plot_height = HEIGHT - TOP - BOTTOM
    slot = (WIDTH - LEFT) / max(len(buckets), 1)
    parts = [_axis(scale, plot_height)]
    for index, (hour, ok, failed) in enumerate(buckets):
        x = LEFT + index * slot
        parts.append(_bar(x, slot, hour, ok, failed, scale, plot_height))
        if index % LABEL_EVERY == 0:
            parts.append(_text(x + slot / 2, HEIGHT - 5, f"{hour:%H:%M}", anchor="middle"))
    total_ok = sum(ok for _, ok, _ in buckets)
    total_failed = sum(failed for _, _, failed in buckets)
    label = f"{title}: {total_ok} succeeded, {total_failed} failed"
    # Safe: every interpolated value is a number, a constant or escaped text.
    return mark_safe(
        f'<svg class="hourly-chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(label)}" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{escape(label)}</title>{''.join(parts)}</svg>"
    )


def _nice_ceiling(peak: int) -> int:
    """The y-axis maximum: the peak rounded up to 1, 2 or 5 times a power of ten (at least 1)."""
    if peak <= 1:
        return 1
    magnitude = 1
    while True:
        for step in (1, 2, 5):
            if step * magnitude >= peak:
                return step * magnitude
        magnitude *= 10


def _axis(scale: int, plot_height: float) -> str:
    baseline = TOP + plot_height
    middle = TOP + plot_height / 2
    lines = [
        f'<line x1="{LEFT}" y1="{TOP}" x2="{WIDTH}" y2="{TOP}" stroke="{GRID_COLOUR}"/>',
        f'<line x1="{LEFT}" y1="{baseline:.1f}" x2="{WIDTH}" y2="{baseline:.1f}" '
        f'stroke="{TEXT_COLOUR}"/>',
        _text(LEFT - 4, TOP + 4, _short(scale), anchor="end"),
        _text(LEFT - 4, baseline, "0", anchor="end"),
    ]
    if scale % 2 == 0:  # a whole-number midline only
        lines.append(
            f'<line x1="{LEFT}" y1="{middle:.1f}" x2="{WIDTH}" y2="{middle:.1f}" '
            f'stroke="{GRID_COLOUR}" stroke-dasharray="3 3"/>'
        )
        lines.append(_text(LEFT - 4, middle + 4, _short(scale // 2), anchor="end"))
    return "".join(lines)


def _bar(
    x: float, slot: float, hour: datetime, ok: int, failed: int, scale: int, plot_height: float
) -> str:
    width = slot * 0.72
    left = x + (slot - width) / 2
    baseline = TOP + plot_height
    ok_height = plot_height * ok / scale
    failed_height = plot_height * failed / scale
    tip = escape(f"{hour:%Y-%m-%d %H:%M %Z}: {ok} succeeded, {failed} failed")
    rects = []
    if ok:
        rects.append(_rect(left, baseline - ok_height, width, ok_height, SUCCEEDED_COLOUR))
    if failed:
        top = baseline - ok_height - failed_height
        rects.append(_rect(left, top, width, failed_height, FAILED_COLOUR))
    # A transparent full-height target keeps the tooltip reachable on empty hours too.
    target = (
        f'<rect x="{x:.1f}" y="{TOP}" width="{slot:.1f}" height="{plot_height:.1f}" '
        'fill="none" pointer-events="all"/>'
    )
    return f"<g><title>{tip}</title>{target}{''.join(rects)}</g>"


def _rect(x: float, y: float, width: float, height: float, colour: str) -> str:
    return (
        f'<rect x="{x:.1f}" y="{y:.1f}" width="{width:.1f}" height="{max(height, 1):.1f}" '
        f'fill="{colour}"/>'
    )


def _text(x: float, y: float, text: str, *, anchor: str) -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" font-size="10" '
        f'fill="{TEXT_COLOUR}">{escape(text)}</text>'
    )


def _short(value: int) -> str:
    """10 → "10", 25000 → "25k"."""
    if value >= 1000 and value % 1000 == 0:
        return f"{value // 1000}k"
    return str(value)
