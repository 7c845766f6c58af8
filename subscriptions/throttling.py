"""API throttles: requests per API key, and refused API keys per client address."""

from __future__ import annotations

import logging
import re
from typing import Any

from rest_framework import exceptions
from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle

from config.throttle import client_address, client_group, failure_count_add, throttle_key
from subscriptions.models import OrganisationKey
from subscriptions.services import API_KEY_PREFIX, ORGANISATION_KEY_PREFIX, SHOWN_KEY_CHARACTERS

# Refused keys per client address: past the limit, further refused keys get 429 until the
# window ends. Valid keys are never counted nor held back (docs/security.md, "Throttles").
API_KEY_FAILURE_LIMIT = 20
API_KEY_FAILURE_WINDOW = 60
# What a log line may show of a presented key: the part that ApiKey.prefix shows to people.
_KEY_PREFIX = re.compile(
    f"(?:{re.escape(ORGANISATION_KEY_PREFIX)}|{re.escape(API_KEY_PREFIX)})"
    f"[A-Za-z0-9_-]{{{SHOWN_KEY_CHARACTERS}}}"
)

logger = logging.getLogger(__name__)


class ApiKeyRateThrottle(SimpleRateThrottle):
    """WEBHOOKS_API_RATE_LIMIT requests per API key (or organisation key), counted in the shared
    cache."""

    scope = "api_key"

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        if request.auth is None:
            return None
        # The two kinds of key number their rows apart: each counts under a name of its own.
        kind = "org-" if isinstance(request.auth, OrganisationKey) else ""
        return self.cache_format % {"scope": self.scope, "ident": f"{kind}{request.auth.pk}"}


def api_key_failure_record(*, request: Request, key: str) -> None:
    """Count a refused API key against the client's address, and log it by its prefix alone.

    Raises Throttled (429 with Retry-After) once the address has refused keys beyond
    API_KEY_FAILURE_LIMIT in its window.
    """
    failures = failure_count_add(
        key=throttle_key("api-key-failures", client_group(request)),
        window=API_KEY_FAILURE_WINDOW,
    )
    throttled = failures.count > API_KEY_FAILURE_LIMIT
    logger.warning(
        "API key refused: address=%s key_prefix=%s failures=%s throttled=%s",
        client_address(request),
        shown_key_prefix(key),
        failures.count,
        "yes" if throttled else "no",
    )
    if throttled:
        raise exceptions.Throttled(
            wait=failures.retry_after, detail="Too many refused API keys from your address."
        )


def shown_key_prefix(key: str) -> str:
    """The start of `key` that Hookline shows people, or "-" when it is not shaped like a key
    (then it may be some other secret pasted by mistake, and none of it is logged)."""
    match = _KEY_PREFIX.match(key)
    return match.group() if match else "-"
