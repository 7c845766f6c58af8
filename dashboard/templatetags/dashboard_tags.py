from __future__ import annotations

from datetime import timedelta

from django import template

from dashboard.stats import DEAD_COUNT_CAP
from webhooks.payloads import pretty_json

register = template.Library()
register.filter("pretty_json", pretty_json)


@register.filter
def short_duration(value: timedelta | None) -> str:
    """A gap between attempts as a person says it: `2 s`, `5 min`, `2 h 30 min`."""
    if value is None:
        return ""
    seconds = int(value.total_seconds())
    if seconds < 60:
        return f"{max(seconds, 0)} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min" + (f" {seconds} s" if seconds and minutes < 5 else "")
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h" + (f" {minutes} min" if minutes else "")


@register.filter
def capped_count(value: int) -> str:
    """A dead-letter count as the dashboard shows it: `142`, or `1,000+` once past the cap."""
    if value > DEAD_COUNT_CAP:
        return f"{DEAD_COUNT_CAP:,}+"
    return f"{value:,}"
