"""Receiving webhooks in a Django project: `@verify_webhook` checks a view's requests.

    from hookline_receiver.django import verify_webhook

    @verify_webhook(secret=os.environ["WEBHOOK_SECRET"])
    def receive(request):
        message = request.webhook  # a hookline_receiver.VerifiedMessage
        ...

It needs Django (`pip install "hookline-receiver[django]"`, Django 4.2 or newer) and nothing
of Hookline's: no models, no settings.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable, Iterable
from typing import Any, Union

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from .signing import (
    DEFAULT_TOLERANCE,
    InvalidHeadersError,
    Secret,
    VerificationError,
    VerifiedMessage,
    verify,
)

__all__ = ["VerifiedMessage", "verify_webhook"]

logger = logging.getLogger(__name__)

# Union, not `|`: these aliases are evaluated at runtime, and Python 3.9 has no `|` on types.
Secrets = Union[Secret, Iterable[Secret]]
SecretSource = Union[Secrets, Callable[[HttpRequest], Secrets]]
View = Callable[..., HttpResponse]


def verify_webhook(
    *, secret: SecretSource, tolerance: float = DEFAULT_TOLERANCE
) -> Callable[[View], View]:
    """Let only authentic, fresh Standard Webhooks messages reach the decorated view.

    `secret` is the endpoint's `whsec_…` secret, a list of them (any may match), or a callable
    taking the request and returning either (per-tenant secrets; it may raise Http404). The view
    finds the verified message on `request.webhook`. Hookline's ownership check (a verified
    `hookline.verification` message) is answered here, 200 with `{"challenge": …}`, and never
    reaches the view. Other requests are answered with a short JSON `{"error": …}`: 405 unless
    POST, 400 for missing or malformed `webhook-*` headers, 401 for a signature that does not
    match or a timestamp more than `tolerance` seconds from now. The view is CSRF-exempt (the
    signature is what authenticates it). An unusable secret raises InvalidSecretError: a
    configuration error, answered 500 like any other.
    """

    def decorator(view: View) -> View:
        if inspect.iscoroutinefunction(view):
            raise TypeError("verify_webhook decorates synchronous views only")

        @functools.wraps(view)
        def verified_view(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if request.method != "POST":
                response = _reject(request, 405, f"{request.method} is not allowed; POST webhooks")
                response["Allow"] = "POST"
                return response
            secrets = secret(request) if callable(secret) else secret
            try:
                message = verify(secrets, request.headers, request.body, tolerance=tolerance)
            except VerificationError as error:
                status = 400 if isinstance(error, InvalidHeadersError) else 401
                return _reject(request, status, str(error))
            request.webhook = message  # type: ignore[attr-defined]
            challenge = message.challenge()
            if challenge is not None:
                return JsonResponse({"challenge": challenge})
            return view(request, *args, **kwargs)

        return csrf_exempt(verified_view)

    return decorator


def _reject(request: HttpRequest, status: int, reason: str) -> JsonResponse:
    # The id is the sender's, and not secret; the signature and the secret are never logged.
    logger.warning(
        "webhook rejected with %s: %s (path=%s webhook-id=%.64r remote=%s)",
        status,
        reason,
        request.path,
        request.headers.get("webhook-id", ""),
        request.META.get("REMOTE_ADDR", ""),
    )
    return JsonResponse({"error": reason}, status=status)
