from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from django import template

from webhooks.formats import RawJSON
from webhooks.payloads import json_indented

register = template.Library()


@register.filter
def pretty_json(value: Any) -> str:
    """JSON indented for reading; a string that is JSON is re-indented, any other string kept.

    RawJSON (a payload as the host sent it) is indented with its tokens as they are.
    """
    if isinstance(value, RawJSON):
        return json_indented(value.text)
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return value
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False)


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
