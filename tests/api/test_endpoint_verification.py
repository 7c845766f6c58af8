"""Ownership verification through the API: the endpoint's state, a URL change, retrying the
challenge, test sends, the tenant's setting, other tenants' ids and hostile input."""

from __future__ import annotations

import json

import pytest
from django.utils import timezone

from deliveries.models import Delivery
from subscriptions.models import VERIFICATION_EVENT_TYPE, Endpoint
from subscriptions.services import api_key_create
from tests.api.conftest import assert_error_body, client_for, db_state

pytestmark = pytest.mark.django_db


@pytest.fixture
def verifying(settings):
    settings.WEBHOOKS_VERIFY_ENDPOINTS = True


def challenges(endpoint_id: int) -> list[Delivery]:
    return list(
        Delivery.objects.filter(
            endpoint_id=endpoint_id, event__event_type__name=VERIFICATION_EVENT_TYPE
        ).order_by("id")
    )


def create(api, url: str = "http://127.0.0.1:9/hook") -> dict:
    response = api.post("/api/v1/endpoints/", {"url": url}, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def test_a_new_endpoint_is_unverified_and_sent_a_challenge(api, verifying):
    body = create(api)

    assert body["verification"] == "unverified"
    assert body["verified_at"] is None
    [challenge] = challenges(body["id"])
    endpoint = Endpoint.objects.get(id=body["id"])
    assert challenge.event.payload == {"challenge": endpoint.verification_challenge}
    assert "challenge" not in json.dumps(api.get(f"/api/v1/endpoints/{body['id']}/").json())


def test_with_verification_off_a_new_endpoint_is_verified(api):
    body = create(api)

    assert body["verification"] == "verified"
    assert body["verified_at"] is not None
    assert challenges(body["id"]) == []


def test_changing_the_url_resets_verification_and_other_changes_do_not(api, endpoint_a, verifying):
    url = f"/api/v1/endpoints/{endpoint_a.id}/"

    response = api.patch(url, {"description": "renamed"}, format="json")
    assert response.json()["verification"] == "verified"
    response = api.patch(url, {"url": endpoint_a.url}, format="json")
    assert response.json()["verification"] == "verified"
    assert challenges(endpoint_a.id) == []

    response = api.patch(url, {"url": "http://127.0.0.1:9/moved"}, format="json")

    assert response.status_code == 200, response.content
    assert response.json()["verification"] == "unverified"
    assert response.json()["verified_at"] is None
    assert len(challenges(endpoint_a.id)) == 1
    assert api.get(url).json()["verification"] == "unverified"


def test_a_put_with_a_new_url_resets_verification_too(api, endpoint_a, verifying):
    response = api.put(
        f"/api/v1/endpoints/{endpoint_a.id}/", {"url": "http://127.0.0.1:9/put"}, format="json"
    )

    assert response.status_code == 200, response.content
    assert response.json()["verification"] == "unverified"


def test_verify_sends_a_fresh_challenge_to_follow(api, verifying):
    endpoint_id = create(api)["id"]
    first = Endpoint.objects.get(id=endpoint_id).verification_challenge

    response = api.post(f"/api/v1/endpoints/{endpoint_id}/verify/")

    assert response.status_code == 202, response.content
    body = response.json()
    old, new = challenges(endpoint_id)
    assert body == {
        "verification": "unverified",
        "delivery_id": new.id,
        "url": f"/api/v1/deliveries/{new.id}/",
    }
    assert old.status == Delivery.Status.FAILED
    assert (
        new.event.payload["challenge"]
        == Endpoint.objects.get(id=endpoint_id).verification_challenge
    )
    assert new.event.payload["challenge"] != first
    assert api.get(body["url"]).json()["event_type"] == VERIFICATION_EVENT_TYPE


def test_verify_on_a_verified_endpoint_is_a_conflict_and_changes_nothing(api, endpoint_a):
    before = db_state()

    response = api.post(f"/api/v1/endpoints/{endpoint_a.id}/verify/")

    assert response.status_code == 409
    assert "verified already" in assert_error_body(response, "conflict")["detail"]
    assert db_state() == before


def test_verify_with_verification_off_trusts_the_endpoint(api, settings, verifying):
    endpoint_id = create(api)["id"]
    settings.WEBHOOKS_VERIFY_ENDPOINTS = False

    response = api.post(f"/api/v1/endpoints/{endpoint_id}/verify/")

    assert response.status_code == 200, response.content
    assert response.json() == {"verification": "verified", "delivery_id": None, "url": None}
    assert Endpoint.objects.get(id=endpoint_id).verified_at is not None


def test_another_tenants_endpoint_cannot_be_verified_or_seen(api, other_api, verifying):
    endpoint_id = create(api)["id"]
    before = db_state()

    response = other_api.post(f"/api/v1/endpoints/{endpoint_id}/verify/")

    assert response.status_code == 404
    assert_error_body(response, "not_found")
    assert db_state() == before


@pytest.mark.parametrize("pk", ["0", "-1", "abc", "9" * 30, "1%00", "%ED%A0%80"])
def test_verify_of_a_nonsense_id_is_a_404(api, pk):
    assert api.post(f"/api/v1/endpoints/{pk}/verify/").status_code == 404


def test_a_body_sent_to_verify_is_ignored(api, verifying):
    endpoint_id = create(api)["id"]

    response = api.post(
        f"/api/v1/endpoints/{endpoint_id}/verify/",
        '{"challenge": "\\u0000\\ud800", "verified_at": "2020-01-01T00:00:00Z"}',
        content_type="application/json",
    )

    assert response.status_code == 202
    assert Endpoint.objects.get(id=endpoint_id).verified_at is None


def test_verified_at_and_verification_cannot_be_written(api, verifying):
    endpoint_id = create(api)["id"]

    api.patch(
        f"/api/v1/endpoints/{endpoint_id}/",
        {"verified_at": timezone.now().isoformat(), "verification": "verified"},
        format="json",
    )

    assert Endpoint.objects.get(id=endpoint_id).verified_at is None


def test_a_test_event_to_an_unverified_endpoint_is_a_conflict(api, verifying, test_event_type):
    endpoint_id = create(api)["id"]
    before = db_state()

    response = api.post(f"/api/v1/endpoints/{endpoint_id}/test/", {}, format="json")

    assert response.status_code == 409
    assert "ownership challenge" in assert_error_body(response, "conflict")["detail"]
    assert db_state() == before


def test_emitting_the_challenge_type_is_refused(api, endpoint_a):
    before = db_state()

    response = api.post(
        "/api/v1/events/",
        {"event_type": VERIFICATION_EVENT_TYPE, "payload": {"challenge": "forged"}},
        format="json",
    )

    assert response.status_code == 400
    assert "event_type" in assert_error_body(response, "invalid")["fields"]
    assert db_state() == before


# --- The tenant's setting -------------------------------------------------------------------------


@pytest.fixture
def staff(tenant_a):
    return client_for(api_key_create(tenant=tenant_a, name="ops", is_staff=True)[1])


@pytest.mark.parametrize("value", [True, False, None])
def test_a_staff_key_sets_whether_a_tenant_verifies_its_endpoints(staff, tenant_b, value):
    response = staff.patch(
        f"/api/v1/tenants/{tenant_b.slug}/", {"verify_endpoints": value}, format="json"
    )

    assert response.status_code == 200, response.content
    assert response.json()["verify_endpoints"] is value
    tenant_b.refresh_from_db()
    assert tenant_b.verify_endpoints is value


@pytest.mark.parametrize(
    "value", ['"yes"', "1", "0", '"true"', "[true]", '{"a": 1}', '"\\u0000"', '"x\\u0000"']
)
def test_a_tenants_setting_must_be_a_boolean_or_null(staff, tenant_b, value):
    response = staff.patch(
        f"/api/v1/tenants/{tenant_b.slug}/",
        f'{{"verify_endpoints": {value}}}',
        content_type="application/json",
    )

    assert response.status_code == 400, response.content
    assert "verify_endpoints" in assert_error_body(response, "invalid")["fields"]
    tenant_b.refresh_from_db()
    assert tenant_b.verify_endpoints is None


def test_a_tenant_that_verifies_gets_unverified_endpoints_whatever_the_setting(
    staff, api, tenant_a
):
    staff.patch(f"/api/v1/tenants/{tenant_a.slug}/", {"verify_endpoints": True}, format="json")

    assert create(api)["verification"] == "unverified"


def test_a_tenants_own_key_cannot_change_its_setting(api, tenant_a):
    response = api.patch(
        f"/api/v1/tenants/{tenant_a.slug}/", {"verify_endpoints": False}, format="json"
    )

    assert response.status_code == 403


# --- The schema ---------------------------------------------------------------------------------


def test_the_schema_describes_verification(anon):
    schema = anon.get("/api/schema/?format=json").json()

    operation = schema["paths"]["/api/v1/endpoints/{id}/verify/"]["post"]
    assert {"200", "202", "404", "409"} <= set(operation["responses"])
    endpoint = schema["components"]["schemas"]["Endpoint"]
    assert endpoint["properties"]["verified_at"]["readOnly"] is True
    assert endpoint["properties"]["verified_at"]["nullable"] is True
    assert {"verification", "verified_at"} <= set(endpoint["required"])
    tenant = schema["components"]["schemas"]["PatchedTenantRequest"]["properties"]
    assert tenant["verify_endpoints"]["nullable"] is True
