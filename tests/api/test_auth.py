"""API keys, rate limits, and the schema and docs that need no key."""

from __future__ import annotations

import json
import logging
import re

import pytest
import yaml
from django.contrib.staticfiles import finders
from django.utils import timezone
from rest_framework.test import APIClient

from subscriptions.models import ApiKey
from subscriptions.services import api_key_create
from subscriptions.throttling import ApiKeyRateThrottle
from tests.api.conftest import assert_error_body, client_for
from tests.factories import EndpointFactory

pytestmark = pytest.mark.django_db


def test_missing_authorization_header_is_401_with_json_body_and_www_authenticate(anon):
    response = anon.get("/api/v1/endpoints/")

    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert_error_body(response, "not_authenticated")


def test_unknown_key_is_401(tenant_a):
    response = client_for("hl_not-a-real-key").get("/api/v1/endpoints/")

    assert response.status_code == 401
    assert "WWW-Authenticate" in response
    assert_error_body(response)


@pytest.mark.parametrize(
    "header", ["Token hl_abc", "Bearer", "Bearer    ", "Basic dXNlcjpwYXNz", "hl_abc"]
)
def test_malformed_authorization_header_is_401(anon, key_a, header):
    anon.credentials(HTTP_AUTHORIZATION=header)

    response = anon.get("/api/v1/endpoints/")

    assert response.status_code == 401
    assert_error_body(response)


def test_valid_key_is_accepted(api):
    assert api.get("/api/v1/endpoints/").status_code == 200


def test_revoked_key_is_401(api, key_a):
    ApiKey.objects.filter(id=key_a[0].id).update(revoked_at=timezone.now())

    response = api.get("/api/v1/endpoints/")

    assert response.status_code == 401
    assert_error_body(response)


def test_key_of_an_inactive_tenant_is_401(api, tenant_a):
    tenant_a.is_active = False
    tenant_a.save(update_fields=["is_active"])

    response = api.get("/api/v1/endpoints/")

    assert response.status_code == 401
    assert_error_body(response)


def test_last_used_at_is_set_when_the_key_is_used(api, key_a):
    assert key_a[0].last_used_at is None
    before = timezone.now()

    api.get("/api/v1/endpoints/")

    last_used_at = ApiKey.objects.get(id=key_a[0].id).last_used_at
    assert last_used_at is not None
    assert before <= last_used_at <= timezone.now()


def test_a_refused_key_is_not_marked_as_used(api, key_a):
    ApiKey.objects.filter(id=key_a[0].id).update(revoked_at=timezone.now())

    api.get("/api/v1/endpoints/")

    assert ApiKey.objects.get(id=key_a[0].id).last_used_at is None


def test_a_key_sees_only_its_own_tenants_objects(api, other_api, tenant_a, tenant_b):
    mine = EndpointFactory(tenant=tenant_a, url="http://127.0.0.1:9/mine")
    EndpointFactory(tenant=tenant_b, url="http://127.0.0.1:9/theirs")

    listed = api.get("/api/v1/endpoints/").json()["results"]

    assert [endpoint["id"] for endpoint in listed] == [mine.id]


# --- Rate limit -----------------------------------------------------------------------------------


@pytest.fixture
def three_per_minute(monkeypatch):
    monkeypatch.setattr(ApiKeyRateThrottle, "THROTTLE_RATES", {"api_key": "3/min"})


def test_requests_over_the_rate_limit_get_429_with_retry_after(api, three_per_minute):
    statuses = [api.get("/api/v1/endpoints/").status_code for _ in range(3)]

    response = api.get("/api/v1/endpoints/")

    assert statuses == [200, 200, 200]
    assert response.status_code == 429
    assert 0 < int(response["Retry-After"]) <= 60
    assert_error_body(response, "throttled")


def test_rate_limit_is_counted_per_key(api, tenant_a, other_api, three_per_minute):
    for _ in range(4):
        api.get("/api/v1/endpoints/")
    same_tenant_other_key = client_for(api_key_create(tenant=tenant_a, name="second")[1])

    assert api.get("/api/v1/endpoints/").status_code == 429
    assert same_tenant_other_key.get("/api/v1/endpoints/").status_code == 200
    assert other_api.get("/api/v1/endpoints/").status_code == 200


# --- Refused keys, per client address -------------------------------------------------------------


def test_refused_keys_from_one_address_get_429_with_retry_after_yet_a_valid_key_still_works(
    api, tenant_a
):
    guesses = [client_for(f"hl_guess-{n:04d}").get("/api/v1/endpoints/") for n in range(20)]

    throttled = client_for("hl_guess-9999").get("/api/v1/endpoints/")
    malformed = APIClient().get("/api/v1/endpoints/", HTTP_AUTHORIZATION="Basic Zm9vOmJhcg==")

    assert [response.status_code for response in guesses] == [401] * 20
    assert throttled.status_code == 429
    assert 0 < int(throttled["Retry-After"]) <= 60
    assert_error_body(throttled, "throttled")
    assert malformed.status_code == 429
    # Keys carry 256 random bits: a guess's answer is worthless, and one stale key on a shared
    # address must not cut off the valid keys used from there.
    assert api.get("/api/v1/endpoints/").status_code == 200


def test_refused_keys_are_counted_per_client_address(tenant_a):
    for n in range(21):
        client_for(f"hl_guess-{n:04d}").get("/api/v1/endpoints/", REMOTE_ADDR="198.51.100.1")

    elsewhere = client_for("hl_guess-other").get("/api/v1/endpoints/", REMOTE_ADDR="198.51.100.2")

    assert elsewhere.status_code == 401


def test_behind_a_proxy_refused_keys_are_counted_per_forwarded_address(tenant_a, settings):
    settings.WEBHOOKS_TRUSTED_PROXY_HEADER = "X-Forwarded-For"
    for n in range(20):
        client_for(f"hl_guess-{n:04d}").get(
            "/api/v1/endpoints/", HTTP_X_FORWARDED_FOR=f"10.0.0.{n}, 203.0.113.7"
        )

    same = client_for("hl_guess-a").get(
        "/api/v1/endpoints/", HTTP_X_FORWARDED_FOR="10.1.1.1, 203.0.113.7"
    )
    other = client_for("hl_guess-b").get("/api/v1/endpoints/", HTTP_X_FORWARDED_FOR="203.0.113.8")

    assert same.status_code == 429
    assert other.status_code == 401


def test_a_refused_key_is_logged_with_its_prefix_only(api, key_a, caplog):
    ApiKey.objects.filter(id=key_a[0].id).update(revoked_at=timezone.now())
    pasted_secret = "s3cr3t-password-pasted-by-mistake"

    with caplog.at_level(logging.WARNING, logger="subscriptions.throttling"):
        api.get("/api/v1/endpoints/")
        client_for(pasted_secret).get("/api/v1/endpoints/")

    logged = caplog.text
    assert f"key_prefix={key_a[0].prefix}" in logged
    assert key_a[1] not in logged
    assert key_a[1][len(key_a[0].prefix) :] not in logged
    assert "s3cr3t" not in logged
    assert logged.count("API key refused") == 2


# --- Schema and docs --------------------------------------------------------------------------


def test_openapi_schema_is_readable_without_a_key(anon):
    response = anon.get("/api/schema/", {"format": "json"})

    assert response.status_code == 200
    schema = json.loads(response.content)
    assert schema["openapi"].startswith("3.")
    assert "/api/v1/endpoints/{id}/rotate-secret/" in schema["paths"]
    assert "/api/v1/events/" in schema["paths"]
    assert {"type": "http", "scheme": "bearer"}.items() <= next(
        iter(schema["components"]["securitySchemes"].values())
    ).items()


def test_openapi_schema_in_the_default_format_is_readable_without_a_key(anon):
    response = anon.get("/api/schema/")

    assert response.status_code == 200
    schema = yaml.safe_load(response.content)  # YAML, or JSON, which YAML reads too
    assert str(schema["openapi"]).startswith("3.")
    assert schema["info"]["title"] == "Hookline API"


def test_api_docs_render_without_a_key_and_without_any_cdn(anon):
    response = anon.get("/api/docs/")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    html = response.content.decode()
    assert "swagger" in html.lower()
    assert "/api/schema/" in html
    # Every asset the page loads is the app's own. (Matching "cdn" anywhere in the page would
    # also match the random CSP nonce or CSRF token now and then.)
    loaded = re.findall(r"""(?:src|href|url)\s*[=(]\s*["']([^"']+)""", html)
    assert loaded
    assert all(url.startswith("/") and not url.startswith("//") for url in loaded), loaded


def test_api_docs_assets_are_shipped_with_the_app():
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "swagger-ui-standalone-preset.js"):
        assert finders.find(f"drf_spectacular_sidecar/swagger-ui-dist/{asset}"), asset
