"""Through PgBouncer in transaction mode: the PgBouncer pass really goes through it, and what
transaction pooling breaks in Django does not break Hookline (tests.pooling)."""

from __future__ import annotations

import time

import psycopg
import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client

from benchmarks import pgbouncer as pgbouncer_module
from benchmarks.pgbouncer import PgBouncer, PgBouncerError
from deliveries.models import Delivery
from tests.factories import EndpointFactory, EventTypeFactory, TenantFactory
from tests.pooling import TEST_PROCESS_NAME, WORKER_NAME, direct_settings, require_pgbouncer
from webhooks import send_event

CLIENT_PORTS_SQL = """
SELECT client_port FROM pg_stat_activity
WHERE datname = current_database() AND backend_type = 'client backend'
"""


def wait_delivered(delivery: Delivery, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        delivery.refresh_from_db()
        if delivery.status == Delivery.Status.SUCCEEDED:
            return
        time.sleep(0.05)
    raise AssertionError(f"delivery {delivery.id} is {delivery.status} after {timeout} s")


@pytest.mark.pgbouncer
def test_the_tests_and_their_workers_reach_the_database_only_through_pgbouncer(
    pgbouncer, worker, receiver
):
    tenant = TenantFactory()
    EventTypeFactory(name="order.paid")
    EndpointFactory(tenant=tenant, url=receiver.url("/hook"))
    event = send_event(tenant, "order.paid", {"order_id": "o1"})
    wait_delivered(event.deliveries.get())
    with connection.cursor() as cursor:
        cursor.execute(CLIENT_PORTS_SQL)
        backend_ports = {row[0] for row in cursor.fetchall()}

    database = connection.settings_dict["NAME"]
    server_ports = {s["local_port"] for s in pgbouncer.show("SERVERS") if s["database"] == database}
    clients = {
        c["application_name"] for c in pgbouncer.show("CLIENTS") if c["database"] == database
    }
    # Every backend serving the test database is one of PgBouncer's server connections: nothing
    # connects directly, the worker included, and the worker is a client of PgBouncer.
    assert backend_ports
    assert backend_ports <= server_ports
    assert {TEST_PROCESS_NAME, WORKER_NAME} <= clients
    [stats] = [s for s in pgbouncer.show("STATS") if s["database"] == database]
    assert stats["total_xact_count"] > 0


@pytest.mark.pgbouncer
def test_an_admin_form_rendered_after_its_transaction_lists_its_choices_through_pgbouncer(
    pgbouncer, transactional_db
):
    """The admin renders a page after the view's transaction has ended, and a form field lists
    its choices with QuerySet.iterator(): a server-side cursor, were they not turned off, would
    be declared in one transaction and read in the next, on another server connection."""
    tenant = TenantFactory(slug="acme-pooled")
    client = Client()
    client.force_login(get_user_model().objects.create_superuser("ops", password="pw-123456789"))
    pgbouncer.warm(connection.settings_dict["NAME"])

    for _ in range(3):
        response = client.get("/admin/subscriptions/endpoint/add/")
        assert response.status_code == 200
        assert f'<option value="{tenant.pk}">acme-pooled</option>' in response.text


@pytest.mark.services
@pytest.mark.django_db
def test_a_pgbouncer_given_a_password_asks_clients_for_it():
    require_pgbouncer()
    direct = direct_settings()
    with PgBouncer(
        host=direct["HOST"], port=int(direct["PORT"] or 5432), user=direct["USER"],
        password='pass "word"',
    ) as bouncer:  # fmt: skip
        with pytest.raises(psycopg.OperationalError, match="authentication failed"):
            psycopg.connect(
                host="127.0.0.1", port=bouncer.port, dbname=direct["NAME"], user=direct["USER"],
                password="wrong",
            )  # fmt: skip
        with psycopg.connect(bouncer.url(direct["NAME"])) as client:
            assert client.execute("SELECT 1").fetchone() == (1,)


def test_pgbouncer_missing_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setattr(pgbouncer_module, "SEARCH_PATH", str(tmp_path))

    with (
        pytest.raises(PgBouncerError, match="apt-get install pgbouncer"),
        PgBouncer(host="127.0.0.1", port=5432, user="postgres"),
    ):
        pass


def test_the_admin_console_runs_only_show_commands():
    bouncer = PgBouncer(host="127.0.0.1", port=5432, user="postgres")

    with pytest.raises(ValueError, match="Not a SHOW command"):
        bouncer.show("CLIENTS; SHUTDOWN")
