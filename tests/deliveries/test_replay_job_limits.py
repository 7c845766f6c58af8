"""Replay jobs: the start time every entry point accepts, jobs that fail, and rows that no page
may choke on, whatever an older version stored."""

from __future__ import annotations

import io
import time
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from deliveries import services
from deliveries.models import Delivery, ReplayJob
from deliveries.services import replay_job_run, replay_job_start
from subscriptions.services import api_key_create
from tests.factories import EndpointFactory, EventTypeFactory, TenantFactory
from webhooks.models import Event

pytestmark = pytest.mark.django_db

# Fits a datetime as written, but falls before the year 1 once converted to UTC.
BEFORE_YEAR_ONE_IN_UTC = "0001-01-01T00:00:00+14:00"
PAST_9999_IN_UTC = "9999-12-31T23:00:00-14:00"


@pytest.fixture
def tenant():
    EventTypeFactory(name="order.paid")
    return TenantFactory(slug="acme")


@pytest.fixture
def endpoint(tenant):
    return EndpointFactory(tenant=tenant, url="http://127.0.0.1:9/acme")


@pytest.fixture
def member(client, tenant):
    user = get_user_model().objects.create_user("ana", password="pw-123456789")
    tenant.members.add(user)
    client.force_login(user)
    return client


@pytest.fixture
def staff(tenant):
    from django.test import Client

    user = get_user_model().objects.create_superuser("root", password="pw-123456789")
    staff_client = Client()
    staff_client.force_login(user)
    return staff_client


@pytest.fixture
def api(tenant):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_create(tenant=tenant, name='k')[1]}")
    return client


def dead_letter(endpoint, *, ago: timedelta = timedelta(minutes=5)) -> Delivery:
    created = timezone.now() - ago
    event = Event.objects.create(
        tenant=endpoint.tenant,
        event_type_id=EventTypeFactory(name="order.paid").id,
        payload={"order_id": "o-1"},
        created_at=created,
    )
    return Delivery.objects.create(
        event=event,
        endpoint=endpoint,
        status=Delivery.Status.FAILED,
        attempt_count=1,
        finished_at=timezone.now(),
        created_at=created,
    )


def in_an_hour() -> str:
    return (timezone.now() + timedelta(hours=1)).isoformat()


# --- Every entry point refuses a start time it could not store and read back, or the future ------


@pytest.mark.parametrize(
    "since", [BEFORE_YEAR_ONE_IN_UTC, PAST_9999_IN_UTC, "in an hour"], ids=["y0", "y10k", "future"]
)
def test_dashboard_recover_refuses_a_start_out_of_range_or_in_the_future(member, endpoint, since):
    since = in_an_hour() if since == "in an hour" else since
    dead_letter(endpoint)

    response = member.post(
        f"/dashboard/endpoints/{endpoint.id}/recover/", {"since": since}, follow=True
    )

    assert response.status_code == 200
    text = response.content.decode()
    assert "Nothing replayed: The start time is" in text
    assert not ReplayJob.objects.exists()
    assert member.get("/dashboard/dead-letters/").status_code == 200


def test_dashboard_recover_from_the_earliest_time_in_utc_replays_everything(member, endpoint):
    dead = dead_letter(endpoint)

    response = member.post(
        f"/dashboard/endpoints/{endpoint.id}/recover/", {"since": "0001-01-02T00:00:00+00:00"}
    )

    job = ReplayJob.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/dashboard/replays/{job.id}/"
    assert job.total == 1
    replay_job_run(job_id=job.id)
    dead.refresh_from_db()
    assert dead.status == Delivery.Status.PENDING


@pytest.mark.parametrize("since", [BEFORE_YEAR_ONE_IN_UTC, PAST_9999_IN_UTC, "in an hour"])
def test_api_recover_refuses_a_start_out_of_range_or_in_the_future_with_a_json_400(
    api, endpoint, since
):
    since = in_an_hour() if since == "in an hour" else since

    response = api.post(
        f"/api/v1/endpoints/{endpoint.id}/recover/", {"since": since}, format="json"
    )

    assert response.status_code == 400
    assert response.json()["code"] == "invalid"
    assert "since" in response.json()["fields"]
    assert not ReplayJob.objects.exists()


@pytest.mark.parametrize("since", [BEFORE_YEAR_ONE_IN_UTC, "in an hour"])
def test_replay_command_refuses_a_start_out_of_range_or_in_the_future(endpoint, since):
    since = in_an_hour() if since == "in an hour" else since
    dead = dead_letter(endpoint)

    with pytest.raises(CommandError, match="The start time is"):
        call_command(
            "replay", "--all-failed", "--since", since, stdout=io.StringIO(), stderr=io.StringIO()
        )

    dead.refresh_from_db()
    assert dead.status == Delivery.Status.FAILED


def test_replay_job_start_refuses_what_the_validator_refuses(endpoint):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError):
        replay_job_start(endpoint=endpoint, since=timezone.now() + timedelta(days=1))
    assert not ReplayJob.objects.exists()


# --- A job that fails says so, and why -----------------------------------------------------------


def test_a_replay_job_that_raises_is_marked_failed_with_its_reason(
    api, member, endpoint, monkeypatch
):
    for minutes in (1, 2, 3):
        dead_letter(endpoint, ago=timedelta(minutes=minutes))
    job = replay_job_start(endpoint=endpoint, since=timezone.now() - timedelta(hours=1))
    monkeypatch.setattr(services, "REPLAY_CHUNK", 1)
    real_replay = services.deliveries_replay
    calls = []

    def replay_then_break(**kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("the database went away")
        return real_replay(**kwargs)

    monkeypatch.setattr(services, "deliveries_replay", replay_then_break)

    ran = replay_job_run(job_id=job.id)

    assert ran.status == ReplayJob.Status.FAILED
    assert ran.failure_reason == "RuntimeError: the database went away"
    assert ran.finished_at is not None
    assert ran.replayed == 1  # the chunk queued before the failure stays queued
    body = api.get(f"/api/v1/replay-jobs/{job.id}/").json()
    assert (body["status"], body["failure_reason"]) == ("failed", ran.failure_reason)
    page = member.get(f"/dashboard/replays/{job.id}/")
    assert page.status_code == 200
    assert "Failed" in page.content.decode()
    assert "The replay stopped: RuntimeError: the database went away" in page.content.decode()
    # The progress panel stops polling a failed job.
    polled = member.get(f"/dashboard/replays/{job.id}/", HTTP_HX_REQUEST="true")
    assert polled.status_code == 286


# --- Rows an older version stored never break a page ---------------------------------------------


def stored_as_an_old_version_did(endpoint, since_sql: str, status: str) -> int:
    """Insert a job row directly, with a `since` no datetime can hold (columns added since the
    row's time get their default)."""
    table = ReplayJob._meta.db_table
    with connection.cursor() as cursor:
        columns = {c.name for c in connection.introspection.get_table_description(cursor, table)}
        extra = ", failure_reason" if "failure_reason" in columns else ""
        cursor.execute(
            f"INSERT INTO {table} (tenant_id, endpoint_id, since, requested_by, status, total,"
            f" replayed, created_at{extra}) VALUES (%s, %s, {since_sql}, 'old', %s, 0, 0, now()"
            f"{', %s' if extra else ''}) RETURNING id",
            [endpoint.tenant_id, endpoint.id, status, *([""] if extra else [])],
        )
        return cursor.fetchone()[0]


@pytest.mark.services
def test_stored_jobs_out_of_range_or_stuck_running_leave_every_page_that_shows_jobs_at_200(
    api, member, staff, endpoint
):
    dead = dead_letter(endpoint)
    # The earliest time PostgreSQL stores, the latest, and jobs an error left running.
    rows = [
        ("'4714-11-24 00:00:00+00 BC'", "queued"),
        ("'294276-12-31 23:59:59+00'", "queued"),
        ("'-infinity'", "running"),
        ("'0001-01-01 00:00:00+14'", "running"),
    ]
    jobs = [
        stored_as_an_old_version_did(endpoint, f"{since}::timestamptz", status)
        for since, status in rows
    ]
    Delivery.objects.filter(id=dead.id).update(replay_job_id=jobs[0])

    pages = [
        (member, "/dashboard/dead-letters/"),
        (staff, "/dashboard/dead-letters/"),
        (staff, "/admin/deliveries/replayjob/"),
        (staff, f"/admin/deliveries/delivery/{dead.id}/change/"),
        (staff, f"/admin/deliveries/deadletter/{dead.id}/change/"),
    ]
    for job_id in jobs:
        pages += [
            (member, f"/dashboard/replays/{job_id}/"),
            (api, f"/api/v1/replay-jobs/{job_id}/"),
            (staff, f"/admin/deliveries/replayjob/{job_id}/change/"),
        ]
    for client, path in pages:
        assert client.get(path).status_code == 200, path
    assert member.get(f"/dashboard/replays/{jobs[0]}/", HTTP_HX_REQUEST="true").status_code in (
        200,
        286,
    )
    earliest = api.get(f"/api/v1/replay-jobs/{jobs[0]}/").json()
    assert earliest["since"].startswith("0001-01-02")
    latest = api.get(f"/api/v1/replay-jobs/{jobs[1]}/").json()
    assert latest["since"].startswith("9999-12-30")


@pytest.mark.services
def test_a_worker_runs_a_stored_job_whose_start_no_datetime_can_hold(transactional_db, worker):
    EventTypeFactory(name="order.paid")
    endpoint = EndpointFactory(tenant=TenantFactory(slug="acme"), url="http://127.0.0.1:9/acme")
    dead = dead_letter(endpoint)
    job_id = stored_as_an_old_version_did(
        endpoint, "'0001-01-01 00:00:00+14'::timestamptz", "queued"
    )

    from deliveries.dispatch import dispatch_replay_job

    dispatch_replay_job(job_id)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        job = ReplayJob.objects.get(id=job_id)
        if job.status in (ReplayJob.Status.DONE, ReplayJob.Status.FAILED):
            break
        time.sleep(0.1)

    assert (job.status, job.replayed, job.failure_reason) == (ReplayJob.Status.DONE, 1, "")
    dead.refresh_from_db()
    assert dead.replay_job_id == job_id
