"""`validate_endpoint_url`: what an endpoint URL may be, with messages a tenant can act on."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.test import override_settings

from subscriptions.validators import MAX_URL_LENGTH, url_points_at_hookline, validate_endpoint_url

LOOPBACK_SPELLINGS = [
    "http://127.0.0.1/",
    "http://localhost/",
    "http://2130706433/",  # 127.0.0.1 as one decimal number
    "http://127.1/",  # short form
    "http://0x7f.0.0.1/",  # hexadecimal first octet
    "http://0177.0.0.1/",  # octal first octet
    "http://[::1]/",
    "http://[::ffff:127.0.0.1]/",  # IPv4-mapped IPv6
    "http://127.0.0.1:8000/hook",
    "https://127.0.0.1/hook",
]


def message_of(url: str) -> str:
    with pytest.raises(ValidationError) as info:
        validate_endpoint_url(url)
    return " ".join(info.value.messages)


def test_loopback_url_is_accepted_under_the_test_settings_allowlist():
    validate_endpoint_url("http://127.0.0.1:8000/hook")


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/hook", "file:///etc/passwd", "gopher://x/"])
def test_url_with_other_scheme_is_rejected(url):
    assert "must start with https://" in message_of(url)


@pytest.mark.parametrize("url", ["127.0.0.1:8000/hook", "//127.0.0.1/hook"])
def test_url_without_scheme_is_rejected(url):
    assert "must start with https://" in message_of(url)


@pytest.mark.parametrize("url", ["https://", "https:///hook", "http://:8000/hook"])
def test_url_without_host_is_rejected(url):
    assert "has no host" in message_of(url)


@pytest.mark.parametrize(
    "url",
    [
        "https://public@127.0.0.1/",
        "https://user:secret@127.0.0.1/hook",
        "https://:secret@127.0.0.1/hook",
        "http://hooks.example.com@127.0.0.1:8000/hook",
    ],
)
def test_url_with_user_name_or_password_is_rejected(url):
    assert "must not contain a user name or password" in message_of(url)


@override_settings(WEBHOOKS_REQUIRE_HTTPS=True)
def test_plain_http_is_rejected_when_https_is_required():
    assert "must use https://" in message_of("http://127.0.0.1:8000/hook")


@override_settings(WEBHOOKS_REQUIRE_HTTPS=True)
def test_https_is_accepted_when_https_is_required():
    validate_endpoint_url("https://127.0.0.1:8443/hook")


def test_url_longer_than_the_limit_is_rejected():
    url = "http://127.0.0.1:8000/" + "a" * MAX_URL_LENGTH
    assert f"longer than {MAX_URL_LENGTH} characters" in message_of(url)


def test_url_of_exactly_the_limit_is_accepted():
    prefix = "http://127.0.0.1:8000/"
    url = prefix + "a" * (MAX_URL_LENGTH - len(prefix))
    assert len(url) == MAX_URL_LENGTH
    validate_endpoint_url(url)


@pytest.mark.parametrize("url", ["http://127.0.0.1:99999/hook", "http://127.0.0.1:port/hook"])
def test_url_with_invalid_port_is_rejected(url):
    assert "Not a valid URL" in message_of(url)


@pytest.mark.parametrize("url", LOOPBACK_SPELLINGS)
@override_settings(WEBHOOKS_PRIVATE_NETWORK_ALLOWLIST=())
def test_every_loopback_spelling_is_refused_without_allowlist(url):
    message = message_of(url)
    assert "URL is not allowed" in message
    assert "private or reserved address" in message


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://[fd00:ec2::254]/",
        "http://10.0.0.1/",
        "http://0.0.0.0:8000/",
        "http://0/",
    ],
)
@override_settings(WEBHOOKS_PRIVATE_NETWORK_ALLOWLIST=())
def test_private_targets_are_refused_without_allowlist(url):
    assert "private or reserved address" in message_of(url)


def test_private_address_outside_the_allowlist_is_refused_and_names_the_setting():
    message = message_of("http://169.254.169.254/latest/meta-data/")
    assert "169.254.169.254" in message
    assert "WEBHOOKS_PRIVATE_NETWORK_ALLOWLIST" in message


def test_host_that_does_not_resolve_is_rejected():
    assert "does not resolve" in message_of("https://no-such-host.invalid/hook")


@override_settings(WEBHOOKS_PRIVATE_NETWORK_ALLOWLIST=())
def test_backslash_smuggling_a_loopback_host_before_a_public_one_is_rejected():
    # urlsplit sees host 8.8.8.8; requests would connect to 127.0.0.1 (the part before the "\").
    with pytest.raises(ValidationError):
        validate_endpoint_url("http://127.0.0.1:8000\\@8.8.8.8/hook")


# --- Hookline's own hosts ------------------------------------------------------------------------

OWN_HOSTS = ["hookline.example.com", ".hooks.example.org", "127.0.0.1", "[::1]", "*"]


@pytest.mark.parametrize(
    "url",
    [
        "https://hookline.example.com/api/v1/endpoints/1/test/",
        "https://HOOKLINE.example.com./api/v1/events/",  # case and a trailing dot: the same host
        "https://hookline.example.com:8443/anything",  # ALLOWED_HOSTS has no ports
        "https://hooks.example.org/",
        "https://eu.hooks.example.org/dashboard/",
        "http://127.0.0.1:8000/api/v1/endpoints/",
        "http://[::1]:8000/",
        "https://hookline.example.com/inbox/ibx_a/../../api/v1/events/",  # sent as /api/v1/events/
        "https://hookline.example.com/inbox/ibx_a%2F..%2F..%2Fapi/",
        "https://hookline.example.com/inbox/ibx_a/extra/",
        "https://hookline.example.com/inbox/",
    ],
)
def test_a_url_on_one_of_hooklines_own_hosts_is_refused(url, settings):
    settings.ALLOWED_HOSTS = OWN_HOSTS

    assert "URL points at Hookline itself" in message_of(url)


@pytest.mark.parametrize(
    "url",
    [
        "https://hookline.example.com/inbox/ibx_Ab-9_z/",
        "https://hookline.example.com/inbox/ibx_Ab-9_z/?source=test",
        "http://127.0.0.1:8000/inbox/ibx_Ab-9_z/",
    ],
)
def test_the_test_inbox_on_hooklines_own_host_is_allowed(url, settings):
    settings.ALLOWED_HOSTS = OWN_HOSTS

    assert not url_points_at_hookline(url)


@pytest.mark.parametrize(
    "url",
    [
        "https://receiver.example.net/api/v1/events/",  # "*" says nothing about Hookline's hosts
        "https://example.org/",  # .hooks.example.org covers its subdomains, not its parent
        "https://hookline.example.com.evil.example/",
        "http://127.0.0.2:8000/",
    ],
)
def test_a_url_on_another_host_is_not_taken_for_hooklines_own(url, settings):
    settings.ALLOWED_HOSTS = OWN_HOSTS

    assert not url_points_at_hookline(url)
