"""Sign-in throttling: after repeated failures, refuse sign-ins for a while.

Covers the dashboard's sign-in and the admin's, with two counts (config.throttle):
- per user name and client address: MAX_FAILURES failures lock that name from that address;
- per client address, across all names: ADDRESS_MAX_FAILURES failures lock every sign-in from
  that address, so that trying many user names from one address is slowed as well.

A user name is counted the way authentication reads it. Django's sign-in form NFKC-normalises
it, so `ａdmin` (fullwidth a) signs in as `admin`: counting the raw text would give every
look-alike spelling five fresh tries. The count also folds case, so that it errs towards one name.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable

from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.core.cache import cache
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse

from config.throttle import client_group, failure_count_add, failure_count_get, throttle_key

MAX_FAILURES = 5
ADDRESS_MAX_FAILURES = 20
WINDOW_SECONDS = 15 * 60
LOGIN_PATHS = ("/accounts/login/", "/admin/login/")


def normalised_username(username: str) -> str:
    """The name as authentication matches it (NFKC), case-folded, without surrounding spaces."""
    folded = unicodedata.normalize("NFKC", username).casefold()
    return unicodedata.normalize("NFKC", folded).strip()


def _name_key(request: HttpRequest, username: str) -> str:
    return throttle_key("login-failures", client_group(request), normalised_username(username))


def _address_key(request: HttpRequest) -> str:
    return throttle_key("login-failures-address", client_group(request))


@receiver(user_login_failed)
def count_failure(
    sender: object, credentials: dict, request: HttpRequest | None = None, **_: object
) -> None:
    if request is None:
        return
    username = str(credentials.get("username") or "")
    failure_count_add(key=_name_key(request, username), window=WINDOW_SECONDS)
    failure_count_add(key=_address_key(request), window=WINDOW_SECONDS)


@receiver(user_logged_in)
def forget_failures(
    sender: object, request: HttpRequest | None, user: AbstractBaseUser, **_: object
) -> None:
    # Only the name's count: clearing the address's would let anyone with one account reset it
    # by signing in between two rounds of guesses.
    if request is not None:
        cache.delete(_name_key(request, user.get_username()))


class LoginThrottleMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.method == "POST" and request.path in LOGIN_PATHS:
            refusal = _refusal(request)
            if refusal is not None:
                return refusal
        return self.get_response(request)


def _refusal(request: HttpRequest) -> HttpResponse | None:
    """A 429 when the address, or this user name from it, has too many recent failures."""
    by_address = failure_count_get(key=_address_key(request), window=WINDOW_SECONDS)
    if by_address.count >= ADDRESS_MAX_FAILURES:
        return _too_many("Too many failed sign-ins from your address.", by_address.retry_after)
    username = request.POST.get("username", "")
    by_name = failure_count_get(key=_name_key(request, username), window=WINDOW_SECONDS)
    if by_name.count >= MAX_FAILURES:
        return _too_many(
            "Too many failed sign-ins for this user from your address.", by_name.retry_after
        )
    return None


def _too_many(reason: str, retry_after: int) -> HttpResponse:
    minutes = -(-retry_after // 60)
    response = HttpResponse(
        f"{reason} Try again in {minutes} minute{'s' if minutes != 1 else ''}.",
        status=429,
        content_type="text/plain; charset=utf-8",
    )
    response["Retry-After"] = str(retry_after)
    return response
