"""A transformation is checked wherever an endpoint is saved: the model and the admin."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from subscriptions.models import Endpoint
from tests.factories import EndpointFactory, TenantFactory

pytestmark = pytest.mark.django_db

CHAT = '{"text": "Order " & data.order_id & " paid"}'


def _form(tenant, **fields):
    return {
        "tenant": tenant.pk,
        "url": "http://127.0.0.1:8000/hook",
        "is_active": "on",
        "headers": "{}",
        "payload_format": "json",
        "created_at_0": "2026-11-29",
        "created_at_1": "10:00:00",
        **fields,
    }


def test_the_model_refuses_a_bad_transformation_naming_the_field():
    endpoint = EndpointFactory.build(tenant=TenantFactory(), transformation='{"text": }')

    with pytest.raises(ValidationError) as error:
        endpoint.full_clean()

    [problem] = error.value.message_dict["transformation"]
    assert problem.startswith("Not a valid JSONata expression: ")
    assert "(at position 10)" in problem


def test_the_model_accepts_a_good_transformation_and_none():
    tenant = TenantFactory()
    for transformation in (CHAT, ""):
        EndpointFactory.build(tenant=tenant, transformation=transformation).full_clean()


def test_the_admin_saves_a_transformation(admin_client):
    tenant = TenantFactory()

    response = admin_client.post(
        "/admin/subscriptions/endpoint/add/", _form(tenant, transformation=CHAT)
    )

    assert response.status_code == 200, response.content  # the page that shows the secret once
    assert Endpoint.objects.get(tenant=tenant).transformation == CHAT


@pytest.mark.parametrize(
    ("transformation", "problem"),
    [
        ("data[", "Expected ] before end of expression (at position 5)."),
        ("$replace(data.x, /a/, 'b')", "Regular expressions are not available"),
        ("x" * 10_001, "at most 10,000 characters"),
    ],
)
def test_the_admin_refuses_a_bad_transformation_and_says_why(admin_client, transformation, problem):
    tenant = TenantFactory()

    response = admin_client.post(
        "/admin/subscriptions/endpoint/add/", _form(tenant, transformation=transformation)
    )

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert list(errors) == ["transformation"]
    assert problem in errors["transformation"][0]
    assert not Endpoint.objects.exists()


def test_the_admin_refuses_a_bad_change_and_keeps_the_saved_transformation(admin_client):
    endpoint = EndpointFactory(url="http://127.0.0.1:8000/hook", transformation=CHAT)

    response = admin_client.post(
        f"/admin/subscriptions/endpoint/{endpoint.pk}/change/",
        _form(endpoint.tenant, transformation="$eval("),
    )

    assert response.status_code == 200
    assert "transformation" in response.context["adminform"].form.errors
    endpoint.refresh_from_db()
    assert endpoint.transformation == CHAT
