"""Tenants through the API, for staff keys: each tenant's delivery weight."""

from __future__ import annotations

import pytest

from subscriptions.models import Tenant
from subscriptions.services import api_key_create
from tests.api.conftest import assert_error_body, client_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(tenant_a):
    return client_for(api_key_create(tenant=tenant_a, name="ops", is_staff=True)[1])


def test_a_staff_key_lists_every_tenant_with_its_weight(staff, tenant_a, tenant_b):
    body = staff.get("/api/v1/tenants/").json()
    assert [(t["slug"], t["delivery_weight"]) for t in body["results"]] == [
        (tenant_a.slug, 1),
        (tenant_b.slug, 1),
    ]


def test_a_staff_key_sets_a_tenants_weight(staff, tenant_b):
    response = staff.patch(
        f"/api/v1/tenants/{tenant_b.slug}/", {"delivery_weight": 3}, format="json"
    )
    assert response.status_code == 200, response.content
    assert response.json()["delivery_weight"] == 3
    tenant_b.refresh_from_db()
    assert tenant_b.delivery_weight == 3


@pytest.mark.parametrize("weight", [0, 101, -1, "many", None, 2**63, 1.5])
def test_a_weight_out_of_range_is_refused(staff, tenant_b, weight):
    response = staff.patch(
        f"/api/v1/tenants/{tenant_b.slug}/", {"delivery_weight": weight}, format="json"
    )
    assert response.status_code == 400, response.content
    assert "delivery_weight" in assert_error_body(response, "invalid")["fields"]
    tenant_b.refresh_from_db()
    assert tenant_b.delivery_weight == 1


def test_only_the_weight_can_be_changed(staff, tenant_b):
    staff.patch(
        f"/api/v1/tenants/{tenant_b.slug}/",
        {"slug": "renamed", "is_active": False, "name": "x"},
        format="json",
    )
    assert Tenant.objects.filter(slug=tenant_b.slug, is_active=True).exists()


def test_a_tenants_own_key_cannot_read_or_change_tenants(api, tenant_b):
    assert api.get("/api/v1/tenants/").status_code == 403
    response = api.patch(
        f"/api/v1/tenants/{tenant_b.slug}/", {"delivery_weight": 50}, format="json"
    )
    assert response.status_code == 403
    assert "staff API key" in assert_error_body(response)["detail"]
    tenant_b.refresh_from_db()
    assert tenant_b.delivery_weight == 1
