"""A database from before the app split, full of rows, migrates forward and keeps every one.

The test inbox, operational alerts and portal links moved out of the deliveries app keeping their
tables; the migrations change only Django's state and the content types. This builds the schema
as it was before the split, fills every table of Hookline's apps through the models of that
schema, migrates forward, and compares every row, column by column.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission, User
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from dashboard.models import PortalLink
from inbox.models import Inbox, InboxRequest
from operations.models import OperationalAlert

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

BEFORE_THE_SPLIT = [
    ("subscriptions", "0008_secrets_and_header_encryption"),
    ("webhooks", "0002_event_payload_text"),
    ("deliveries", "0012_replayjob_failure"),
    ("dashboard", None),
    ("inbox", None),
    ("operations", None),
]
HOOKLINE_APPS = ("subscriptions", "webhooks", "deliveries", "dashboard", "inbox", "operations")


def _migrate(targets: list[tuple[str, str | None]] | None = None) -> MigrationExecutor:
    executor = MigrationExecutor(connection)
    executor.migrate(targets or executor.loader.graph.leaf_nodes())
    return MigrationExecutor(connection)  # a fresh loader sees what was applied


def _tables(apps) -> dict[str, list[str]]:  # noqa: ANN001
    """Each table of the old schema, with its columns then (later migrations may add more)."""
    tables = {}
    for model in apps.get_models(include_auto_created=True):
        if model._meta.app_label in HOOKLINE_APPS and not model._meta.proxy:
            tables[model._meta.db_table] = [f.column for f in model._meta.concrete_fields]
    return dict(sorted(tables.items()))


def _rows(tables: dict[str, list[str]]) -> dict[str, list[tuple]]:
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        found = {}
        for table, columns in tables.items():
            listed = ", ".join(quote(column) for column in columns)
            cursor.execute(f"SELECT {listed} FROM {quote(table)} ORDER BY 1")  # noqa: S608
            found[table] = cursor.fetchall()
    return found


def _fill(apps) -> None:  # noqa: ANN001, PLR0915
    """One row or more in every table of the old schema, through that schema's models."""
    now = timezone.now()
    get = apps.get_model
    user = get("auth", "User").objects.create(username="member", email="member@example.com")
    tenant = get("subscriptions", "Tenant").objects.create(slug="acme", name="Acme")
    tenant.members.add(user)
    api_key = get("subscriptions", "ApiKey").objects.create(
        tenant=tenant, name="ci", prefix="hl_abcdefg", key_hash="f" * 64, last_used_at=now
    )
    event_type = get("subscriptions", "EventType").objects.create(
        name="order.paid", description="An order was paid.", schema={"type": "object"}
    )
    endpoint = get("subscriptions", "Endpoint").objects.create(
        tenant=tenant,
        url="https://receiver.example.com/hooks",
        description="orders",
        secret="whsec_" + "A" * 43 + "=",
        headers={"X-Team": "payments"},
        rate_limit=5,
        circuit_open_until=now + timedelta(minutes=1),
    )
    endpoint.event_types.add(event_type)
    event = get("webhooks", "Event").objects.create(
        public_id="msg_before_split",
        tenant=tenant,
        event_type=event_type,
        payload={"order_id": "ord_1", "amount": 1.10},
        payload_text='{"order_id": "ord_1", "amount": 1.10}',
        idempotency_key="key-1",
    )
    job = get("deliveries", "ReplayJob").objects.create(
        tenant=tenant, endpoint=endpoint, since=now - timedelta(days=1), total=1, replayed=1
    )
    delivery = get("deliveries", "Delivery").objects.create(
        event=event,
        endpoint=endpoint,
        status="failed",
        attempt_count=1,
        last_response_status=500,
        last_error="Server error",
        finished_at=now,
        replay_job=job,
    )
    get("deliveries", "Attempt").objects.create(
        delivery=delivery,
        number=1,
        started_at=now,
        duration_ms=12.5,
        url=endpoint.url,
        request_headers={"webhook-id": event.public_id},
        response_status=500,
        response_headers={"content-type": "text/plain"},
        response_body="Server error",
        error_kind="http_status",
    )
    inbox = get("deliveries", "Inbox").objects.create(tenant=tenant, token="ibx_before_split")
    get("deliveries", "InboxRequest").objects.create(
        inbox=inbox,
        method="POST",
        headers={"webhook-id": event.public_id},
        body="{}",
        webhook_id=event.public_id,
        signature_valid=True,
        response_status=200,
    )
    get("deliveries", "OperationalAlert").objects.create(
        kind="dead_letters_over_threshold", subject=str(endpoint.id), details={"count": 1}
    )
    get("deliveries", "PortalLink").objects.create(
        tenant=tenant,
        token_hash="e" * 64,
        capabilities=["view", "replay"],
        issued_by=api_key,
        expires_at=now + timedelta(hours=1),
        opened_at=now,
        opened_from="127.0.0.1",
    )


def test_a_full_database_from_before_the_split_migrates_forward_keeping_every_row():
    # As a database of that time had them (another test's flush may have left none).
    portal_links = ContentType.objects.get_for_model(PortalLink)
    Permission.objects.get_or_create(
        content_type=portal_links,
        codename="change_portallink",
        defaults={"name": "Can change portal link"},
    )
    ContentType.objects.clear_cache()
    try:
        old = _migrate(BEFORE_THE_SPLIT)
        old_apps = old.loader.project_state([t for t in BEFORE_THE_SPLIT if t[1]]).apps
        _fill(old_apps)
        tables = _tables(old_apps)
        before = _rows(tables)
        # A permission granted on a model that moves follows it to its new app.
        portal_links = ContentType.objects.get(app_label="deliveries", model="portallink")
        operator = User.objects.create(username="operator", is_staff=True)
        operator.user_permissions.add(
            Permission.objects.get(content_type=portal_links, codename="change_portallink")
        )

        _migrate()

        assert _rows(tables) == before
        assert all(before[table] for table in tables), [t for t in tables if not before[t]]
    finally:
        _migrate()
    assert InboxRequest.objects.get().inbox == Inbox.objects.get(token="ibx_before_split")
    assert OperationalAlert.objects.get().cleared_at is None
    assert PortalLink.objects.get().issued_by.prefix == "hl_abcdefg"
    assert User.objects.get(username="operator").has_perm("dashboard.change_portallink")
    assert not ContentType.objects.filter(app_label="deliveries", model="portallink").exists()
