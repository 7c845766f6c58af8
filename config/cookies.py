"""Hookline's cookies go only to the pages that read them: /accounts/, /admin/ and /dashboard/.

Django gives the session, CSRF and messages cookies one path, `/`, so a browser sends them to
every URL of the host, the test inbox included, whose owner (a tenant) reads what arrives. No
single path covers the three sections that need the cookies and leaves the inbox out, so this
middleware sends each of those cookies once per section instead: `Path=/accounts/`,
`Path=/admin/`, `Path=/dashboard/`, and clears any copy still held under `Path=/`
(docs/decisions/0010).
"""

from __future__ import annotations

from collections.abc import Callable
from http.cookies import Morsel, SimpleCookie

from django.conf import settings
from django.contrib.messages.storage.cookie import CookieStorage
from django.http import HttpRequest, HttpResponse
from django.urls import get_script_prefix

# The sections of the site that use a session or post forms, under the script prefix.
COOKIE_SECTIONS = ("accounts/", "admin/", "dashboard/")
_UNSCOPED = ("", "/")


class CookiePathMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        names = {settings.SESSION_COOKIE_NAME, settings.CSRF_COOKIE_NAME, CookieStorage.cookie_name}
        unscoped = [
            morsel
            for name, morsel in response.cookies.items()
            if name in names and morsel["path"] in _UNSCOPED
        ]
        if unscoped:
            response.cookies = _scoped(response.cookies, unscoped, get_script_prefix())
        return response


class SectionCookies(SimpleCookie):
    """A response's cookies, some of which go out once per section.

    As a mapping it holds one morsel per name, which is what code that reads a response's
    cookies by name expects (Django's test client among it). values(), from which Django's WSGI
    and ASGI handlers write the Set-Cookie headers, also yields the copies for the other paths.
    """

    def __init__(self, cookies: SimpleCookie, copies: list[Morsel]) -> None:
        super().__init__()
        dict.update(self, cookies)  # the morsels as they are: SimpleCookie's setter would re-encode
        self.copies = copies

    def values(self) -> list[Morsel]:  # type: ignore[override]
        return [*super().values(), *self.copies]


def _scoped(cookies: SimpleCookie, unscoped: list[Morsel], prefix: str) -> SectionCookies:
    paths = [prefix + section for section in COOKIE_SECTIONS]
    copies: list[Morsel] = []
    for morsel in unscoped:
        copies += [_copy(morsel, path=path) for path in paths[1:]]
        copies.append(_expired(morsel, path="/"))  # a copy from before the cookies were scoped
        morsel["path"] = paths[0]
    return SectionCookies(cookies, copies)


def _copy(morsel: Morsel, *, path: str) -> Morsel:
    copy: Morsel = Morsel()
    copy.set(morsel.key, morsel.value, morsel.coded_value)
    copy.update(morsel)
    copy["path"] = path
    return copy


def _expired(morsel: Morsel, *, path: str) -> Morsel:
    expired = _copy(morsel, path=path)
    expired.set(morsel.key, "", '""')
    expired.update({"expires": "Thu, 01 Jan 1970 00:00:00 GMT", "max-age": "0"})
    return expired
