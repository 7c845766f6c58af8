"""The typed environment readers of config/env.py: good values parse, malformed ones fail loudly."""

from __future__ import annotations

import ipaddress
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from config.env import (
    env_bool,
    env_float,
    env_header_name,
    env_int,
    env_list,
    env_networks,
    env_redis_url,
    env_seconds_list,
    env_signing_secret,
    env_str,
    env_url,
)

NAME = "HOOKLINE_TEST_SETTING"


@pytest.fixture
def setenv(monkeypatch):
    def set_value(value: str) -> None:
        monkeypatch.setenv(NAME, value)

    monkeypatch.delenv(NAME, raising=False)
    return set_value


def test_str_reads_the_value_or_the_default(setenv):
    assert env_str(NAME, "fallback") == "fallback"
    setenv("value with spaces ")
    assert env_str(NAME, "fallback") == "value with spaces "


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1", True),
        ("true", True),
        ("TRUE", True),
        ("Yes", True),
        (" on ", True),
        ("0", False),
        ("false", False),
        ("No", False),
        ("off", False),
        ("", False),
    ],
)
def test_bool_parses_the_usual_spellings(setenv, raw, expected):
    setenv(raw)
    assert env_bool(NAME, not expected) is expected


@pytest.mark.parametrize("default", [True, False])
def test_bool_unset_gives_the_default(setenv, default):
    assert env_bool(NAME, default) is default


@pytest.mark.parametrize("raw", ["maybe", "2", "y", "enabled"])
def test_bool_rejects_anything_else_naming_the_variable(setenv, raw):
    setenv(raw)
    with pytest.raises(ImproperlyConfigured, match=rf"{NAME} must be true or false.*{raw!r}"):
        env_bool(NAME, True)


@pytest.mark.parametrize(("raw", "expected"), [("10", 10), (" 42 ", 42), ("0", 0), ("-0", 0)])
def test_int_parses_integers(setenv, raw, expected):
    setenv(raw)
    assert env_int(NAME, 7) == expected


def test_int_unset_gives_the_default(setenv):
    assert env_int(NAME, 7) == 7


@pytest.mark.parametrize("raw", ["ten", "1.5", "", "1e3"])
def test_int_rejects_a_non_integer_naming_the_variable(setenv, raw):
    setenv(raw)
    with pytest.raises(ImproperlyConfigured, match=rf"{NAME} must be an integer"):
        env_int(NAME, 7)


def test_int_rejects_a_negative_value_under_the_default_minimum(setenv):
    setenv("-1")
    with pytest.raises(ImproperlyConfigured, match=rf"{NAME} must be at least 0, not -1"):
        env_int(NAME, 7)


def test_int_rejects_a_value_below_a_custom_minimum(setenv):
    setenv("0")
    with pytest.raises(ImproperlyConfigured, match=rf"{NAME} must be at least 1, not 0"):
        env_int(NAME, 7, minimum=1)


def test_int_accepts_the_minimum_itself(setenv):
    setenv("1")
    assert env_int(NAME, 7, minimum=1) == 1


@pytest.mark.parametrize(("raw", "expected"), [("2", 2.0), ("0.25", 0.25), ("1e1", 10.0)])
def test_float_parses_numbers(setenv, raw, expected):
    setenv(raw)
    assert env_float(NAME, 3.0) == expected


def test_float_unset_gives_the_default(setenv):
    assert env_float(NAME, 3.0) == 3.0


@pytest.mark.parametrize("raw", ["fast", "", "1,5"])
def test_float_rejects_a_non_number_naming_the_variable(setenv, raw):
    setenv(raw)
    with pytest.raises(ImproperlyConfigured, match=rf"{NAME} must be a number"):
        env_float(NAME, 3.0)


def test_float_rejects_a_value_below_the_minimum(setenv):
    setenv("0.05")
    with pytest.raises(ImproperlyConfigured, match=rf"{NAME} must be at least 0.1"):
        env_float(NAME, 3.0, minimum=0.1)


def test_float_rejects_a_negative_value_under_the_default_minimum(setenv):
    setenv("-0.5")
    with pytest.raises(ImproperlyConfigured, match=rf"{NAME} must be at least 0"):
        env_float(NAME, 3.0)


def test_list_splits_on_commas_and_drops_blanks(setenv):
    assert env_list(NAME, "a,b") == ["a", "b"]
    setenv(" x , y,,z , ")
    assert env_list(NAME, "a,b") == ["x", "y", "z"]
    setenv("")
    assert env_list(NAME, "a,b") == []


def test_seconds_list_parses_delays(setenv):
    assert env_seconds_list(NAME, "5,300") == (5.0, 300.0)
    setenv("0.2, 0.4 ,1800")
    assert env_seconds_list(NAME, "5,300") == (0.2, 0.4, 1800.0)
    setenv("")
    assert env_seconds_list(NAME, "5,300") == ()


def test_seconds_list_rejects_a_non_number_naming_the_variable(setenv):
    setenv("5,x")
    with pytest.raises(ImproperlyConfigured, match=rf"{NAME} must be comma-separated seconds"):
        env_seconds_list(NAME, "5")


def test_seconds_list_rejects_a_negative_delay_naming_the_variable(setenv):
    setenv("5,-1,30")
    with pytest.raises(ImproperlyConfigured, match=rf"{NAME} cannot hold negative delays"):
        env_seconds_list(NAME, "5")


def test_networks_parse_cidrs_and_single_addresses(setenv):
    assert env_networks(NAME, "") == ()
    setenv("10.0.0.0/8, 192.168.1.7, fd00::/8, 172.16.5.0/12")
    assert env_networks(NAME, "") == (
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("192.168.1.7/32"),
        ipaddress.ip_network("fd00::/8"),
        ipaddress.ip_network("172.16.0.0/12"),  # host bits are dropped, not an error
    )


@pytest.mark.parametrize("raw", ["10.0.0.0/33", "not-a-cidr", "10.0.0.0/8,300.1.2.3", "fd00::/129"])
def test_networks_reject_a_bad_cidr_naming_the_variable(setenv, raw):
    setenv(raw)
    with pytest.raises(ImproperlyConfigured, match=rf"{NAME} must be comma-separated CIDRs"):
        env_networks(NAME, "")


@pytest.mark.parametrize(
    "read",
    [
        pytest.param(lambda: env_float(NAME, 3.0, minimum=0.1), id="float"),
        pytest.param(lambda: env_seconds_list(NAME, "5"), id="seconds_list"),
    ],
)
def test_nan_is_rejected_as_malformed(setenv, read):
    setenv("nan")
    with pytest.raises(ImproperlyConfigured, match=NAME):
        read()


def test_url_accepts_http_and_https_with_a_host_and_is_empty_when_unset(setenv):
    assert env_url(NAME, require_https=True) == ""
    setenv(" https://alerts.example.com/hookline?token=abc ")
    assert env_url(NAME, require_https=True) == "https://alerts.example.com/hookline?token=abc"
    setenv("http://10.0.0.5:8080/hook")
    assert env_url(NAME, require_https=False) == "http://10.0.0.5:8080/hook"


@pytest.mark.parametrize(
    "raw", ["alerts.example.com", "ftp://example.com/x", "https://", "https://h:99999999/", "//h/"]
)
def test_url_rejects_a_malformed_value_without_echoing_it(setenv, raw):
    setenv(raw)
    with pytest.raises(ImproperlyConfigured, match=NAME) as raised:
        env_url(NAME, require_https=False)
    assert raw not in str(raised.value)


def test_url_must_be_https_while_https_is_required(setenv):
    setenv("http://alerts.example.com/")
    with pytest.raises(ImproperlyConfigured, match="https"):
        env_url(NAME, require_https=True)


def test_redis_url_accepts_redis_and_rediss_and_is_empty_when_unset(setenv):
    assert env_redis_url(NAME) == ""
    setenv(" redis://:pass@cache.internal:6379/3 ")
    assert env_redis_url(NAME) == "redis://:pass@cache.internal:6379/3"
    setenv("rediss://cache.internal")
    assert env_redis_url(NAME) == "rediss://cache.internal"


@pytest.mark.parametrize(
    "raw",
    ["cache.internal:6379", "amqp://u:secret@h//", "redis://", "redis://:secret@h:99999999/",
     "redis://u:secret@h/zero"],
)  # fmt: skip
def test_redis_url_rejects_a_malformed_value_without_echoing_it(setenv, raw):
    setenv(raw)
    with pytest.raises(ImproperlyConfigured, match=NAME) as raised:
        env_redis_url(NAME)
    assert "secret" not in str(raised.value)


def test_signing_secret_accepts_a_generated_secret_and_is_empty_when_unset(setenv):
    from subscriptions.models import generate_signing_secret

    assert env_signing_secret(NAME) == ""
    secret = generate_signing_secret()
    setenv(secret)
    assert env_signing_secret(NAME) == secret


SHORT_KEY = "whsec_" + "QUJD" * 2  # 6 bytes
UNPREFIXED = "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@pytest.mark.parametrize(
    "raw", ["secret-value", "whsec_", "whsec_not base64!", SHORT_KEY, UNPREFIXED]
)
def test_signing_secret_rejects_a_malformed_value_without_echoing_it(setenv, raw):
    setenv(raw)
    with pytest.raises(ImproperlyConfigured, match=NAME) as raised:
        env_signing_secret(NAME)
    if raw != "whsec_":
        assert raw not in str(raised.value)


def test_header_name_accepts_a_header_and_is_empty_when_unset(setenv):
    assert env_header_name(NAME) == ""
    setenv(" X-Forwarded-For ")
    assert env_header_name(NAME) == "X-Forwarded-For"


@pytest.mark.parametrize("raw", ["HTTP_X_FORWARDED_FOR", "X-Forwarded-For:", "X Real IP", "-X"])
def test_header_name_rejects_anything_else_naming_the_variable(setenv, raw):
    setenv(raw)
    with pytest.raises(ImproperlyConfigured, match=NAME):
        env_header_name(NAME)


def settings_read(name: str = "WEBHOOKS_LEASE_SECONDS", **env: str) -> subprocess.CompletedProcess:
    """Import config.settings in a fresh process with these variables; print setting `name`."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "WEBHOOKS_"))}
    code = f"from config import settings; print(settings.{name})"
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=Path(__file__).resolve().parent.parent, env={**clean, **env},
        capture_output=True, text=True, check=False,
    )  # fmt: skip


@pytest.mark.parametrize(("timeout", "lease"), [(None, "20.0"), ("2", "7.0"), ("60", "65.0")])
def test_lease_defaults_to_the_timeout_plus_five_seconds(timeout, lease):
    result = settings_read(**({"WEBHOOKS_TIMEOUT": timeout} if timeout else {}))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == lease


def test_a_lease_that_cannot_outlast_an_attempt_with_room_to_renew_is_refused():
    assert settings_read(WEBHOOKS_TIMEOUT="15", WEBHOOKS_LEASE_SECONDS="17").returncode == 0
    result = settings_read(WEBHOOKS_TIMEOUT="15", WEBHOOKS_LEASE_SECONDS="16.9")
    assert result.returncode != 0
    assert (
        "WEBHOOKS_LEASE_SECONDS must be at least WEBHOOKS_TIMEOUT plus 2 seconds" in result.stderr
    )


@pytest.mark.parametrize(
    ("broker_url", "redis_url", "cache"),
    [
        ("redis://10.0.0.2:6379/15", "", "redis://10.0.0.2:6379/14"),
        ("amqp://guest:guest@10.0.0.3:5672//", "", "locmem://"),
        ("amqp://guest:guest@10.0.0.3:5672//", "redis://10.0.0.4:6379/2", "redis://10.0.0.4:6379/3"),
    ],
)  # fmt: skip
def test_the_cache_defaults_to_redis_url_else_a_redis_broker_else_memory(
    broker_url, redis_url, cache
):
    env = {"CELERY_BROKER_URL": broker_url, "REDIS_URL": redis_url}
    clean = {k: v for k, v in os.environ.items() if k != "CACHE_URL"}
    result = subprocess.run(
        [sys.executable, "-c", "from config import settings; print(settings.CACHE_URL)"],
        cwd=Path(__file__).resolve().parent.parent, env={**clean, **env},
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == cache


def test_a_malformed_redis_url_stops_the_settings_from_loading():
    result = settings_read(REDIS_URL="localhost:6379")
    assert result.returncode != 0
    assert "REDIS_URL must be a redis:// or rediss:// URL" in result.stderr
