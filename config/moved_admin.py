"""Admin pages of models that moved app answer at their old addresses too, by a redirect.

Operators bookmark admin pages, and the demo printed some of them; they keep working.
"""

from __future__ import annotations

from urllib.parse import quote

from django.http import HttpRequest, HttpResponsePermanentRedirect
from django.urls import URLPattern, re_path

MOVED = {"inbox": "inbox", "inboxrequest": "inbox", "operationalalert": "operations",
         "portallink": "dashboard"}  # fmt: skip


def _moved(request: HttpRequest, model: str, rest: str) -> HttpResponsePermanentRedirect:
    target = f"/admin/{MOVED[model]}/{model}/{quote(rest)}"  # quoted: nothing but a path
    query = request.META.get("QUERY_STRING", "")
    return HttpResponsePermanentRedirect(f"{target}?{query}" if query else target)


# Mounted under admin/, before the admin's own URLs.
urlpatterns: list[URLPattern] = [
    re_path(rf"^deliveries/(?P<model>{'|'.join(MOVED)})/(?P<rest>.*)$", _moved),
]
