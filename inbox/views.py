"""The test inbox: a receiver Hookline serves itself, which records what arrives and checks it.

Its URL is public and its owner, a tenant, reads every request it keeps. So it never keeps
credentials that a browser or a client adds on its own: a signed-in operator who opens an inbox
URL must not hand their session to the tenant (docs/decisions/0010).

Like Hookline's receiver helpers, it answers an ownership challenge that an endpoint aimed at it
signed by echoing it (200, whatever status it is set to answer), so that an endpoint pointing at
the inbox verifies itself when verification is on.
"""

from __future__ import annotations

from collections.abc import Mapping

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.shortcuts import get_object_or_404
from django.views.decorators.csrf import csrf_exempt

from inbox.models import Inbox, InboxRequest
from subscriptions.models import Endpoint
from webhooks.signing import VerificationError, VerifiedMessage, verify

MAX_STORED_BODY = 256 * 1024
KEEP_REQUESTS = 100
# Lower-case names of headers the inbox never keeps nor shows, besides any naming a CSRF token.
CREDENTIAL_HEADERS = frozenset({"cookie", "cookie2", "authorization", "proxy-authorization"})


@csrf_exempt
def receive(request: HttpRequest, token: str) -> JsonResponse:
    inbox = get_object_or_404(Inbox, token=token)
    body = request.body[:MAX_STORED_BODY]
    headers = dict(request.headers)
    signature_valid, message = _signature_check(inbox, headers, body)
    challenge = message.challenge() if message is not None else None
    status = inbox.respond_status if challenge is None else 200
    InboxRequest.objects.create(
        inbox=inbox,
        method=request.method or "",
        headers=headers_without_credentials(headers),
        body=body.decode("utf-8", errors="replace"),
        webhook_id=request.headers.get("webhook-id", "")[:64],
        signature_valid=signature_valid,
        response_status=status,
    )
    _keep_latest(inbox)
    if challenge is not None:
        return JsonResponse({"challenge": challenge})
    return JsonResponse({"received": True}, status=status)


def headers_without_credentials(headers: Mapping[str, object]) -> dict[str, object]:
    """`headers` less cookies, authorization and CSRF tokens: what the inbox may keep and show."""
    return {name: value for name, value in headers.items() if not _is_credential(str(name))}


def _is_credential(name: str) -> bool:
    lowered = name.lower()
    configured_csrf = settings.CSRF_HEADER_NAME.removeprefix("HTTP_").replace("_", "-").lower()
    return (
        lowered in CREDENTIAL_HEADERS
        or lowered == configured_csrf
        or "csrf" in lowered
        or "xsrf" in lowered
    )


def _keep_latest(inbox: Inbox) -> None:
    """An inbox keeps its latest KEEP_REQUESTS requests: a public URL must not grow the database."""
    oldest_kept = (
        InboxRequest.objects.filter(inbox=inbox).order_by("-id").values_list("id", flat=True)
    )[KEEP_REQUESTS - 1 : KEEP_REQUESTS]
    if oldest_kept:
        InboxRequest.objects.filter(inbox=inbox, id__lt=oldest_kept[0]).delete()


def _signature_check(
    inbox: Inbox, headers: dict[str, str], body: bytes
) -> tuple[bool | None, VerifiedMessage | None]:
    """Whether a secret of an endpoint aimed at this inbox signed the request (None if no
    endpoint is), and the message when one did."""
    endpoints = Endpoint.objects.filter(
        tenant=inbox.tenant_id, url__contains=f"/inbox/{inbox.token}/"
    )
    secrets = [secret for endpoint in endpoints for secret in endpoint.signing_secrets()]
    if not secrets:
        return None, None
    try:
        return True, verify(secrets, headers, body)
    except VerificationError:
        return False, None
