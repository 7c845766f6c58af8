"""A batch's record survives losing its database connection in the middle of storing the
attempts, directly and through PgBouncer, where the loss reaches psycopg in another shape."""

from __future__ import annotations

import psycopg
import pytest
from django.db import connection

from deliveries import bulk
from deliveries.batch import deliver_due_batch
from deliveries.models import Attempt, Delivery
from tests.factories import EndpointFactory, EventTypeFactory, TenantFactory
from webhooks import send_event

pytestmark = [pytest.mark.services, pytest.mark.pgbouncer, pytest.mark.django_db(transaction=True)]

# The backend that is storing attempts (the COPY waits for its rows), seen from another session.
TERMINATE_COPY_SQL = """
SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid()
  AND query LIKE 'COPY "deliveries_attempt"%'
"""


def terminate_the_copy() -> int:
    """End the backend that is running the attempts' COPY, as a restarted or failed-over server
    would, through a session of its own (the one storing is in the middle of a statement)."""
    db = connection.settings_dict
    with psycopg.connect(
        host=db["HOST"], port=db["PORT"] or 5432, dbname=db["NAME"], user=db["USER"],
        password=db["PASSWORD"] or None, autocommit=True,
    ) as killer:  # fmt: skip
        return killer.execute(TERMINATE_COPY_SQL).fetchone()[0]


def test_a_connection_lost_while_storing_attempts_is_recorded_again_and_nothing_resent(
    receiver, monkeypatch
):
    tenant = TenantFactory()
    EventTypeFactory(name="order.paid")
    EndpointFactory(tenant=tenant, url=receiver.url("/hook"))
    for n in range(5):
        send_event(tenant, "order.paid", {"n": n})
    terminated = []
    row_of = bulk._attempt_row

    def row_then_cut_once(attempt: Attempt) -> tuple:
        if not terminated:
            terminated.append(terminate_the_copy())
        return row_of(attempt)

    monkeypatch.setattr(bulk, "_attempt_row", row_then_cut_once)

    assert deliver_due_batch(limit=10) == 5

    assert terminated == [1]
    assert len(receiver.requests("/hook")) == 5
    assert Attempt.objects.count() == 5
    assert set(Delivery.objects.values_list("status", flat=True)) == {Delivery.Status.SUCCEEDED}
