"""Dashboard: the test inbox, a receiver Hookline serves itself, and what it has received."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl
from xml.etree import ElementTree

from defusedxml import ElementTree as SafeElementTree
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.views.decorators.http import require_POST

from config.ids import whole_number
from dashboard.access import dashboard_login_required, viewer_for
from dashboard.pages import htmx_of, render_page
from inbox.models import Inbox, InboxRequest
from inbox.views import headers_without_credentials
from subscriptions.models import Endpoint, Tenant
from subscriptions.services import endpoint_create

SHOWN_REQUESTS = 100
SHOWN_INBOXES = 20
# Bodies longer than this are cut in the page (the receiver stores up to 256 KiB).
BODY_PREVIEW_CHARS = 64 * 1024
PARTIAL = "dashboard/_inbox_requests.html"


@dataclass(frozen=True)
class ReceivedRow:
    request: InboxRequest
    event_type: str
    size: int
    body: str
    body_note: str  # how the body is shown when it is not shown as received
    headers: list[tuple[str, str]]


@dashboard_login_required
def inbox(request: HttpRequest) -> HttpResponse:
    """The tenant's inbox URL and the last requests it received; htmx polls the list every 3 s."""
    viewer = viewer_for(request)
    if viewer.tenant is None:
        context: dict[str, Any] = {"need_tenant": True}
        return render_page(request, viewer, "dashboard/inbox.html", context, section="inbox")
    inboxes = _inboxes(viewer.tenant)
    current = _chosen(inboxes, request.GET.get("inbox", ""))
    if htmx_of(request) and current is not None and not _has_news(current, request.GET):
        return HttpResponse(status=204)  # htmx leaves the list as it is
    context = {"inboxes": inboxes[:SHOWN_INBOXES], "current": current}
    if current is not None:
        context.update(_inbox_context(request, viewer.endpoints(), current))
    return render_page(
        request, viewer, "dashboard/inbox.html", context, section="inbox", partial=PARTIAL
    )


@dashboard_login_required
@require_POST
def inbox_create(request: HttpRequest) -> HttpResponse:
    """Give the tenant a new inbox URL; the old ones keep receiving."""
    viewer = viewer_for(request)
    viewer.require("manage_endpoints")
    if viewer.tenant is None:
        messages.error(request, "Pick a tenant in the top bar first.")
        return redirect("dashboard:inbox")
    created = Inbox.objects.create(tenant=viewer.tenant)
    messages.success(request, "New inbox URL ready. Older URLs keep receiving.")
    return redirect(f"{reverse('dashboard:inbox')}?inbox={created.pk}")


@dashboard_login_required
@require_POST
def inbox_endpoint(request: HttpRequest) -> HttpResponse:
    """Create an endpoint for the tenant pointing at its inbox (making an inbox if it has none)."""
    viewer = viewer_for(request)
    viewer.require("manage_endpoints")
    back = _safe_next(request)
    if viewer.tenant is None:
        messages.error(request, "Pick a tenant in the top bar first.")
        return redirect(back)
    target = _chosen(_inboxes(viewer.tenant), request.POST.get("inbox", ""))
    target = target or Inbox.objects.create(tenant=viewer.tenant)
    url = _inbox_url(request, target)
    existing = viewer.endpoints().filter(tenant=viewer.tenant, url=url).first()
    if existing is not None:
        messages.info(request, "An endpoint already points at this inbox.")
        return redirect("dashboard:endpoint", endpoint_id=existing.pk)
    try:
        endpoint = endpoint_create(tenant=viewer.tenant, url=url, description="Test inbox")
    except ValidationError as error:
        messages.error(request, f"Could not create the endpoint: {' '.join(error.messages)}")
        return redirect(back)
    if endpoint.verified_at is None:
        messages.success(
            request,
            "Endpoint created for the test inbox. It proves its ownership first: the inbox "
            "echoes Hookline's challenge by itself, so reload in a moment and send a test event.",
        )
    else:
        messages.success(request, "Endpoint created for the test inbox. Send it a test event.")
    return redirect(reverse("dashboard:endpoint", args=[endpoint.pk]) + "#test")


def _inboxes(tenant: Tenant) -> QuerySet[Inbox]:
    return Inbox.objects.filter(tenant=tenant).order_by("-id")


def _chosen(inboxes: QuerySet[Inbox], raw_id: str) -> Inbox | None:
    """The inbox picked by id among the tenant's, else the newest; None when it has none."""
    wanted = whole_number(raw_id)
    if wanted is not None:
        picked = inboxes.filter(pk=wanted).first()
        if picked is not None:
            return picked
    return inboxes.first()


def _has_news(current: Inbox, params: Any) -> bool:
    """Whether the inbox received anything after the `latest` request id the page shows."""
    latest = whole_number(params.get("latest", ""))
    if latest is None:
        return True
    return current.requests.filter(id__gt=latest).exists()


def _inbox_context(
    request: HttpRequest, endpoints: QuerySet[Endpoint], current: Inbox
) -> dict[str, Any]:
    url = _inbox_url(request, current)
    received = list(current.requests.order_by("-id")[:SHOWN_REQUESTS])
    return {
        "inbox_url": url,
        "endpoints_here": list(endpoints.filter(url__contains=f"/inbox/{current.token}/")[:10]),
        "rows": [_row(item) for item in received],
        "latest_id": received[0].id if received else 0,
        "curl": f"curl -X POST '{url}' -H 'content-type: application/json' "
        '-d \'{"hello": "world"}\'',
    }


def _inbox_url(request: HttpRequest, target: Inbox) -> str:
    return request.build_absolute_uri(reverse("inbox-receive", args=[target.token]))


def _row(item: InboxRequest) -> ReceivedRow:
    # Rows stored before the receiver dropped credentials may still hold some: never show them.
    headers = headers_without_credentials(item.headers if isinstance(item.headers, dict) else {})
    body, note, kind = _readable(item.body, _content_type(headers))
    if len(body) > BODY_PREVIEW_CHARS:
        cut = len(body) - BODY_PREVIEW_CHARS
        body = f"{body[:BODY_PREVIEW_CHARS]}\n… ({cut:,} more characters)"
    return ReceivedRow(
        request=item,
        event_type=kind,
        size=_size(headers, item.body),
        body=body,
        body_note=note,
        headers=sorted((str(name), str(value)) for name, value in headers.items()),
    )


def _readable(body: str, content_type: str) -> tuple[str, str, str]:
    """The body as shown, a note on how, and the event type it names ("" when none)."""
    parsed = _json_or_none(body)
    if parsed is not None:
        kind = parsed.get("type") if isinstance(parsed, dict) else None
        text = json.dumps(parsed, indent=2, ensure_ascii=False)
        return text, "JSON, pretty-printed", kind if isinstance(kind, str) else ""
    if content_type.startswith("application/x-www-form-urlencoded"):
        fields = parse_qsl(body, keep_blank_values=True)
        kind = next((value for name, value in fields if name == "type"), "")
        lines = "\n".join(f"{name} = {value}" for name, value in fields)
        return lines, "form fields, decoded, one per line", kind
    if "xml" in content_type or body.lstrip().startswith("<"):
        return _readable_xml(body)
    return body, "", ""


def _readable_xml(body: str) -> tuple[str, str, str]:
    try:
        root = SafeElementTree.fromstring(body.encode(), forbid_dtd=True)
        ElementTree.indent(root)
        text = ElementTree.tostring(root, encoding="unicode")
    except (ValueError, SyntaxError, RecursionError):  # not XML, refused, or nested too deep
        return body, "", ""
    kind = root.findtext("type", default="") if root.tag == "webhook" else ""
    return text, "XML, indented", kind


def _content_type(headers: dict[str, Any]) -> str:
    for name, value in headers.items():
        if str(name).lower() == "content-type":
            return str(value).lower()
    return ""


def _json_or_none(body: str) -> Any:
    """The body parsed as JSON when it is an object or array; None otherwise."""
    if not body.lstrip().startswith(("{", "[")):
        return None
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        return None


def _size(headers: dict[str, Any], body: str) -> int:
    """Bytes received: Content-Length when sent, else the stored body's size."""
    for name, value in headers.items():
        length = whole_number(str(value)) if str(name).lower() == "content-length" else None
        if length is not None:
            return length
    return len(body.encode("utf-8", errors="replace"))


def _safe_next(request: HttpRequest) -> str:
    """Where to go back to: a dashboard path from the form, else the inbox page."""
    target = request.POST.get("next", "")
    if target.startswith("/dashboard/") and target.isprintable():
        return target
    return reverse("dashboard:inbox")
