"""A Python client generated from Hookline's OpenAPI schema by openapi-python-client walks through
the API against a live server: every field it reads is typed as always there, and pages chain
through `cursor`."""

from __future__ import annotations

import importlib
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from django.core.management import call_command

from deliveries.batch import deliver_due_batch
from subscriptions.services import api_key_create, organisation_key_create
from tests.factories import EventTypeFactory, TenantFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def client_package(tmp_path_factory):
    """Generate the client from the schema the server serves, and import it."""
    where = tmp_path_factory.mktemp("generated")
    schema = where / "openapi.json"
    call_command("spectacular", "--file", str(schema), "--format", "openapi-json")
    generator = Path(sys.executable).parent / "openapi-python-client"
    subprocess.run(
        [generator, "generate", "--path", schema, "--meta", "none", "--output-path",
         where / "hookline_client"],
        check=True, capture_output=True, cwd=where,
    )  # fmt: skip
    sys.path.insert(0, str(where))
    try:
        yield importlib.import_module("hookline_client")
    finally:
        sys.path.remove(str(where))
        for name in [name for name in sys.modules if name.startswith("hookline_client")]:
            del sys.modules[name]


def api(name: str):
    return importlib.import_module(f"hookline_client.api.v1.{name}")


def models():
    return importlib.import_module("hookline_client.models")


@pytest.fixture
def hookline(client_package, live_server):
    TenantFactory(slug="acme")
    EventTypeFactory(name="order.paid")
    _, key = api_key_create(tenant=TenantFactory(slug="walk"), name="generated client")
    return client_package.AuthenticatedClient(base_url=live_server.url, token=key)


def test_generated_client_creates_an_endpoint_and_reads_its_secret(hookline, receiver):
    body = models().EndpointCreateRequest(url=receiver.url("/hook"), description="orders")

    created = api("v1_endpoints_create").sync(client=hookline, body=body)

    assert isinstance(created, models().EndpointCreate), created
    assert created.secret.startswith("whsec_")
    assert created.is_active is True
    assert created.event_types == []
    assert isinstance(created.headers, models().EndpointCreateHeaders)


def test_generated_client_sends_an_event_and_follows_its_delivery(hookline, receiver):
    api("v1_endpoints_create").sync(
        client=hookline, body=models().EndpointCreateRequest(url=receiver.url("/hook"))
    )
    payload = models().EventCreateRequestPayload.from_dict({"order_id": "ord_1", "total": 12})

    event = api("v1_events_create").sync(
        client=hookline, body=models().EventCreateRequest(event_type="order.paid", payload=payload)
    )
    assert isinstance(event, models().EventCreated), event
    assert event.deliveries == 1
    assert deliver_due_batch(limit=10) == 1

    [delivery] = api("v1_deliveries_list").sync(client=hookline).results
    assert delivery.status == models().DeliveryStatusEnum.SUCCEEDED
    detail = api("v1_deliveries_retrieve").sync(client=hookline, id=delivery.id)
    [attempt] = detail.attempts
    assert attempt.response_status == 200
    assert attempt.request_headers["webhook-id"] == event.id
    assert detail.payload.to_dict() == {"order_id": "ord_1", "total": 12}
    replayed = api("v1_deliveries_replay_create").sync(client=hookline, id=delivery.id)
    assert replayed.status == models().DeliveryStatusEnum.PENDING


def test_generated_client_pages_through_deliveries_with_the_cursor(hookline, receiver):
    api("v1_endpoints_create").sync(
        client=hookline, body=models().EndpointCreateRequest(url=receiver.url("/hook"))
    )
    for number in range(5):
        payload = models().EventCreateRequestPayload.from_dict({"n": number})
        api("v1_events_create").sync(
            client=hookline,
            body=models().EventCreateRequest(event_type="order.paid", payload=payload),
        )

    seen, cursor, pages = [], None, 0
    while True:
        page = api("v1_deliveries_list").sync(client=hookline, limit=2, cursor=cursor or UNSET())
        seen += [delivery.id for delivery in page.results]
        pages += 1
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert pages == 3
    assert len(seen) == len(set(seen)) == 5
    assert seen == sorted(seen, reverse=True)


def test_generated_client_gets_a_typed_error(hookline):
    error = api("v1_events_create").sync(
        client=hookline,
        body=models().EventCreateRequest(
            event_type="no.such.type", payload=models().EventCreateRequestPayload()
        ),
    )

    assert isinstance(error, models().Error)
    assert "Unknown event type" in error.detail


def test_generated_client_finds_events_by_a_payload_value_and_sends_channels(hookline, receiver):
    api("v1_endpoints_create").sync(
        client=hookline,
        body=models().EndpointCreateRequest(
            url=receiver.url("/hook"),
            channels=["eu"],
            metadata=models().EndpointCreateRequestMetadata.from_dict({"customer": "cus_1"}),
        ),
    )
    for order_id, channels in (("ord_1", ["eu"]), ("ord_2", ["us"])):
        payload = models().EventCreateRequestPayload.from_dict({"order_id": order_id})
        api("v1_events_create").sync(
            client=hookline,
            body=models().EventCreateRequest(
                event_type="order.paid", payload=payload, channels=channels
            ),
        )

    search = models().V1EventsListData.from_dict({"data.order_id": "ord_1"})
    page = api("v1_events_list").sync(client=hookline, data=search, event_type="order.paid")

    [event] = page.results
    assert event.payload.to_dict() == {"order_id": "ord_1"}
    assert event.channels == ["eu"]
    assert page.next_cursor is None
    [endpoint] = api("v1_endpoints_list").sync(client=hookline).results
    assert endpoint.metadata.to_dict() == {"customer": "cus_1"}
    assert deliver_due_batch(limit=10) == 1  # ord_2, sent on "us", reached no endpoint


def UNSET():  # noqa: N802 - the generated package's sentinel, imported once it exists
    return importlib.import_module("hookline_client.types").UNSET


def test_generated_client_creates_a_tenant_and_its_key_with_an_organisation_key(
    client_package, live_server, receiver
):
    EventTypeFactory(name="order.paid")
    organisation = client_package.AuthenticatedClient(
        base_url=live_server.url, token=organisation_key_create(name="generated client")[1]
    )
    body = models().TenantCreateRequest(slug="walk", name="Walk", max_events_per_second=100)

    tenant = api("v1_tenants_create").sync(client=organisation, body=body)
    assert isinstance(tenant, models().TenantCreate), tenant
    assert (tenant.slug, tenant.max_events_per_second, tenant.retention_days) == ("walk", 100, None)
    key = api("v1_tenants_api_keys_create").sync(
        "walk", client=organisation, body=models().TenantApiKeyRequest(name="shop")
    )
    assert isinstance(key, models().TenantApiKeyCreated), key

    as_tenant = client_package.AuthenticatedClient(base_url=live_server.url, token=key.key)
    created = api("v1_endpoints_create").sync(
        client=as_tenant, body=models().EndpointCreateRequest(url=receiver.url("/hook"))
    )
    assert isinstance(created, models().EndpointCreate), created
    page = api("v1_tenants_list").sync(client=organisation)
    assert [t.slug for t in page.results] == ["walk"]


def test_generated_client_walks_through_the_hosts_management_api(
    client_package, live_server, receiver
):
    """The issue's walk-through: a tenant created, an endpoint added, an event sent and found by
    a payload value, the endpoint's stats read, and a late endpoint sent what it missed."""
    EventTypeFactory(name="order.paid")
    organisation = client_package.AuthenticatedClient(
        base_url=live_server.url, token=organisation_key_create(name="host")[1]
    )
    api("v1_tenants_create").sync(
        client=organisation, body=models().TenantCreateRequest(slug="shop", name="Shop")
    )
    key = api("v1_tenants_api_keys_create").sync(
        "shop", client=organisation, body=models().TenantApiKeyRequest(name="backend")
    )
    shop = client_package.AuthenticatedClient(base_url=live_server.url, token=key.key)
    first = api("v1_endpoints_create").sync(
        client=shop, body=models().EndpointCreateRequest(url=receiver.url("/first"))
    )
    started = datetime.now(UTC)
    for order_id in ("ord_1001", "ord_1002"):
        payload = models().EventCreateRequestPayload.from_dict({"order_id": order_id})
        api("v1_events_create").sync(
            client=shop, body=models().EventCreateRequest(event_type="order.paid", payload=payload)
        )

    search = models().V1EventsListData.from_dict({"data.order_id": "ord_1001"})
    [found] = api("v1_events_list").sync(client=shop, data=search).results
    assert found.payload.to_dict() == {"order_id": "ord_1001"}

    assert deliver_due_batch(limit=10) == 2
    stats = api("v1_endpoints_stats_retrieve").sync(first.id, client=shop)
    assert isinstance(stats, models().EndpointStats), stats
    assert (stats.attempts, stats.succeeded, stats.success_rate) == (2, 2, 100.0)
    assert stats.backlog.total == 0

    late = api("v1_endpoints_create").sync(
        client=shop, body=models().EndpointCreateRequest(url=receiver.url("/late"))
    )
    missing = api("v1_endpoints_replay_missing_create").sync(
        late.id, client=shop, body=models().ReplayMissingRequest(since=started)
    )
    assert isinstance(missing, models().ReplayMissingResult), missing
    assert (missing.queued, missing.more) == (2, False)
    assert deliver_due_batch(limit=10) == 2
    assert sorted(receiver.webhook_ids("/late")) == sorted(receiver.webhook_ids("/first"))
