"""The operational webhook: operations.* events POSTed to the operators' own URL.

It tells the operators' tooling (an incident bot, a pager) what the emails tell people. It is
signed like every delivery (Standard Webhooks, with WEBHOOKS_OPERATIONAL_WEBHOOK_SECRET) and goes
through the one outbound HTTP module, so the network policy applies to it too. It is sent from
the process that saw the condition, not through the queue: an alert that the workers are down
must not wait for a worker.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import urllib3
from django.conf import settings
from django.utils import timezone

from deliveries import transport
from deliveries.transport import TransportResult
from subscriptions.models import Endpoint
from webhooks.formats import to_json
from webhooks.ids import new_message_id
from webhooks.signing import secret_key
from webhooks.wire import iso_time, signed_headers

logger = logging.getLogger(__name__)

# Short, so that a dead alerting URL holds up the worker or sweeper that saw the condition for
# seconds, not minutes: three tries at most, each within TIMEOUT_SECONDS.
TIMEOUT_SECONDS = 5.0
PAUSES_BEFORE_RETRY = (0.5, 2.0)


def operational_webhook_send(*, event_type: str, data: dict[str, Any]) -> bool:
    """POST `{"type": event_type, "timestamp", "data"}` to WEBHOOKS_OPERATIONAL_WEBHOOK_URL.

    Returns whether the receiver accepted it (2xx); False when no URL is set. Retries network
    errors, 5xx, 408 and 429 twice, with the same `webhook-id`. Never raises: failures are logged
    (with the URL's host only, since such URLs often carry a token).
    """
    url = settings.WEBHOOKS_OPERATIONAL_WEBHOOK_URL
    if not url:
        return False
    try:
        return _send(url, event_type, data)
    except Exception:
        logger.exception("Could not send the operational webhook %s", event_type)
        return False


def endpoint_summary(endpoint: Endpoint) -> dict[str, Any]:
    """What operational events say about an endpoint."""
    return {
        "endpoint_id": endpoint.id,
        "endpoint_url": endpoint.url,
        "tenant_id": endpoint.tenant_id,
        "tenant_slug": endpoint.tenant.slug,
    }


def _send(url: str, event_type: str, data: dict[str, Any]) -> bool:
    secret = settings.WEBHOOKS_OPERATIONAL_WEBHOOK_SECRET
    if not secret:
        logger.error(
            "Operational webhook %s not sent: WEBHOOKS_OPERATIONAL_WEBHOOK_SECRET is empty",
            event_type,
        )
        return False
    body = to_json(event_type=event_type, timestamp=iso_time(timezone.now()), data=data)
    msg_id = new_message_id()
    keys = [secret_key(secret)]
    timeout = min(settings.WEBHOOKS_TIMEOUT, TIMEOUT_SECONDS)
    for pause in (None, *PAUSES_BEFORE_RETRY):
        if pause is not None:
            time.sleep(pause)
        headers = signed_headers(
            msg_id=msg_id, timestamp=int(time.time()), body=body, keys=keys, extra={}
        )
        result = transport.post(url, body, headers, timeout=timeout)
        if result.status is not None and 200 <= result.status < 300:
            logger.info("Operational webhook %s sent as %s", event_type, msg_id)
            return True
        if not _worth_retrying(result):
            break
    logger.error(
        "Operational webhook %s (%s) not delivered to host %s: %s",
        event_type,
        msg_id,
        _host(url),
        result.error_message or result.error_kind,
    )
    return False


def _worth_retrying(result: TransportResult) -> bool:
    if result.error_kind in ("blocked", "invalid_request"):
        return False  # the network policy or the URL itself: the same answer every time
    status = result.status
    return status is None or status >= 500 or status in (408, 429)


def _host(url: str) -> str:
    try:
        return urllib3.util.parse_url(url).host or "?"
    except urllib3.exceptions.LocationParseError:
        return "?"
