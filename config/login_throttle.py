"""Login throttling: after repeated failures for one user name from one address, refuse for a while.

Covers the dashboard's sign-in and the admin's. Counts live in the cache (Redis in production, so
every web process shares them).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.core.cache import cache
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse

MAX_FAILURES = 5
WINDOW_SECONDS = 15 * 60
LOGIN_PATHS = ("/accounts/login/", "/admin/login/")


def _key(request: HttpRequest, username: str) -> str:
    who = f"{request.META.get('REMOTE_ADDR', '')}|{username.strip().lower()}"
    return "login-failures:" + hashlib.sha256(who.encode()).hexdigest()


@receiver(user_login_failed)
def count_failure(
    sender: object, credentials: dict, request: HttpRequest | None = None, **_: object
) -> None:
    if request is None:
        return
    key = _key(request, credentials.get("username", ""))
    cache.add(key, 0, WINDOW_SECONDS)
    cache.incr(key)


@receiver(user_logged_in)
def forget_failures(sender: object, request: HttpRequest | None, user: object, **_: object) -> None:
    if request is not None:
        cache.delete(_key(request, user.get_username()))


class LoginThrottleMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.method == "POST" and request.path in LOGIN_PATHS:
            failures = cache.get(_key(request, request.POST.get("username", ""))) or 0
            if failures >= MAX_FAILURES:
                return HttpResponse(
                    "Too many failed sign-ins for this user from your address. "
                    f"Try again in {WINDOW_SECONDS // 60} minutes.",
                    status=429,
                    content_type="text/plain; charset=utf-8",
                )
        return self.get_response(request)
