"""An endpoint's transformation tried on one of its tenant's recent events: the body before and
after, as the endpoint would receive it, or why there is no body after."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from config.ids import whole_number
from subscriptions.models import VERIFICATION_EVENT_TYPE, Endpoint
from webhooks.formats import JSON_CONTENT_TYPE, Body
from webhooks.models import Event
from webhooks.transformations import TransformError, transformation_problem
from webhooks.wire import message

RECENT_EVENTS = 20
# Past this, a body is cut for display (the dashboard shows payloads up to 64 KB).
SHOWN_CHARS = 64 * 1024


@dataclass(frozen=True)
class ShownBody:
    text: str
    content_type: str
    size: int  # bytes sent
    note: str  # how `text` shows the bytes
    cut: int  # characters left out of `text`


@dataclass(frozen=True)
class Preview:
    event: Event
    before: ShownBody
    after: ShownBody | None
    problem: str  # why there is no `after`
    transformed: bool  # False: no transformation, the body goes as Hookline builds it


def recent_events(endpoint: Endpoint) -> list[Event]:
    """The tenant's latest events, newest first (verification challenges, never transformed,
    left out)."""
    events = Event.objects.filter(tenant_id=endpoint.tenant_id).exclude(
        event_type__name=VERIFICATION_EVENT_TYPE
    )
    return list(events.select_related("event_type").order_by("-id")[:RECENT_EVENTS])


def recent_event(endpoint: Endpoint, event_id: str | None) -> Event | None:
    """One of the tenant's events by id, or its latest when `event_id` is None; None when the id
    is not a number or not an event of this tenant."""
    if event_id is None:
        latest = recent_events(endpoint)
        return latest[0] if latest else None
    if (number := whole_number(event_id)) is None:
        return None
    events = Event.objects.filter(tenant_id=endpoint.tenant_id).select_related("event_type")
    return events.filter(id=number).first()


def preview(endpoint: Endpoint, event: Event, expression: str) -> Preview:
    """`event` as `endpoint` receives it now, and with `expression` as its transformation."""
    name = event.event_type.name
    before = _shown(message(event, name, endpoint.payload_format))
    if not expression:
        return Preview(event=event, before=before, after=before, problem="", transformed=False)
    problem = transformation_problem(expression)
    if problem is None:
        try:
            after = _shown(message(event, name, endpoint.payload_format, expression))
        except TransformError as error:
            problem = str(error)
        else:
            return Preview(event=event, before=before, after=after, problem="", transformed=True)
    return Preview(event=event, before=before, after=None, problem=problem, transformed=True)


def _shown(body: Body) -> ShownBody:
    text = body.content.decode(errors="replace")
    note = "as sent"
    if body.content_type == JSON_CONTENT_TYPE:
        text, note = _pretty_json(text), "JSON, pretty-printed"
    cut = max(0, len(text) - SHOWN_CHARS)
    return ShownBody(
        text=text[:SHOWN_CHARS],
        content_type=body.content_type,
        size=len(body.content),
        note=note,
        cut=cut,
    )


def _pretty_json(text: str) -> str:
    try:
        parsed: Any = json.loads(text)
        return json.dumps(parsed, indent=2, ensure_ascii=False)
    except (ValueError, RecursionError):  # nested past what the parser takes: shown as sent
        return text
