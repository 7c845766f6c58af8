"""Refuse request bodies over their route's limit with a 413, before anything reads them.

One check for every route: the events route allows WEBHOOKS_MAX_PAYLOAD_BYTES plus room for
the envelope, the batch route WEBHOOKS_BATCH_MAX_BYTES, every other route Django's
DATA_UPLOAD_MAX_MEMORY_SIZE. The declared
Content-Length is checked first, so a refused body is never read. A body without one is bounded
too: under WSGI Django reads no more than Content-Length (none without it), and under ASGI the
server has spooled the body already, so its real size is measured.

The 413 is JSON under /api/ and on the test inbox (whose callers are programs), plain text on
pages.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from config.api_errors import error_response

# Room for the envelope around an event's payload ({"event_type": …, "idempotency_key": …}).
ENVELOPE_BYTES = 16 * 1024
EVENTS_PATH = "/api/v1/events/"
BATCH_PATH = "/api/v1/events/batch/"
JSON_PREFIXES = ("/api/", "/inbox/")


def body_limit(path: str) -> int | None:
    """The most bytes a request body to `path` may hold; None for no limit."""
    if path == EVENTS_PATH:
        return settings.WEBHOOKS_MAX_PAYLOAD_BYTES + ENVELOPE_BYTES
    if path == BATCH_PATH:
        return settings.WEBHOOKS_BATCH_MAX_BYTES
    return settings.DATA_UPLOAD_MAX_MEMORY_SIZE


def body_size(request: HttpRequest) -> int:
    """The declared Content-Length, or the spooled body's size when none is declared."""
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0  # as Django reads it: no body
    stream = getattr(request, "_stream", None)
    if declared or stream is None or not (hasattr(stream, "seekable") and stream.seekable()):
        return declared
    size = stream.seek(0, os.SEEK_END)
    stream.seek(0)
    return size


class BodyLimitMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        limit = body_limit(request.path)
        if limit is None:
            return self.get_response(request)
        size = body_size(request)
        if size > limit:
            return _too_large(request, size, limit)
        django_limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        if django_limit is not None and size > django_limit:
            # This route allows more than Django's own limit: read the body here, within the
            # route's limit, so that Django's check on `request.body` does not refuse it.
            request._body = request.read()
        return self.get_response(request)


def _too_large(request: HttpRequest, size: int, limit: int) -> HttpResponse:
    detail = f"The request body is {size} bytes; this URL accepts at most {limit} bytes."
    if request.path == EVENTS_PATH:
        payload_limit = settings.WEBHOOKS_MAX_PAYLOAD_BYTES
        detail = f"The request body is {size} bytes; payloads are limited to {payload_limit} bytes."
    if request.path == BATCH_PATH:
        detail = (
            f"The request body is {size} bytes; a batch is limited to {limit} bytes "
            "(WEBHOOKS_BATCH_MAX_BYTES): send fewer events per batch."
        )
    is_json = request.path.startswith(JSON_PREFIXES)
    return error_response(
        request, status=413, code="payload_too_large", detail=detail, json=is_json
    )
