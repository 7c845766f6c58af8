"""Deliveries (one event to one endpoint), their attempts, dead letters and replay jobs."""

from __future__ import annotations

from typing import Any, ClassVar

from django.db import models
from django.utils import timezone

from deliveries.validators import EARLIEST_SINCE, LATEST_STORABLE, validate_replay_since
from webhooks.ordering_keys import ORDERING_KEY_MAX_LENGTH


class Delivery(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending"
        SUCCEEDED = "succeeded"
        FAILED = "failed"  # retries exhausted: the dead-letter queue

    event = models.ForeignKey("webhooks.Event", on_delete=models.CASCADE, related_name="deliveries")
    endpoint = models.ForeignKey(
        "subscriptions.Endpoint",
        on_delete=models.CASCADE,
        related_name="deliveries",
        # delivery_endpoint_idx below starts with endpoint_id: a second index only slows inserts.
        db_index=False,
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempt_count = models.PositiveIntegerField(default=0)
    # When a pending delivery may go: pushed to the end of its endpoint's circuit pause, and NULL
    # while its endpoint is disabled (see deliveries.holds).
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    next_trigger = models.CharField(max_length=16, default="scheduled", editable=False)
    # A worker holds a delivery while it attempts it; an expired lease frees it for another.
    leased_by = models.CharField(max_length=64, blank=True, default="")
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    last_response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Deliveries to one endpoint that share a key go one at a time, in id (emission) order; the
    # others of the key wait, pending but never due, until the one ahead of them is finished
    # (deliveries.ordering).
    # Defaults in the database too: rows inserted by SQL that names neither column (an older
    # process during a rolling upgrade, an operator's script) are unordered.
    ordering_key = models.CharField(
        max_length=ORDERING_KEY_MAX_LENGTH, blank=True, default="", db_default=""
    )
    waiting_on_key = models.BooleanField(default=False, db_default=False, editable=False)
    # The bulk replay that last queued this delivery, for its progress counts.
    replay_job = models.ForeignKey(
        "deliveries.ReplayJob", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        verbose_name_plural = "deliveries"
        ordering = ["-id"]
        indexes = [
            # The claim scans only due rows, however many finished rows pile up.
            models.Index(
                fields=["next_attempt_at"],
                condition=models.Q(status="pending"),
                name="delivery_due_idx",
            ),
            # Lists page newest first by id, per endpoint or per status, without sorting.
            models.Index(fields=["endpoint", "-id"], name="delivery_endpoint_idx"),
            # The fair claim finds each endpoint's pending deliveries, oldest due first
            # (deliveries.fair). The dashboard counts them by what they wait for from this index
            # alone, hence the two columns it carries.
            models.Index(
                fields=["endpoint", "next_attempt_at", "id"],
                include=["attempt_count", "waiting_on_key"],
                condition=models.Q(status="pending"),
                name="delivery_endpoint_due_idx",
            ),
            models.Index(fields=["status", "-id"], name="delivery_status_idx"),
            # The pending deliveries of one ordering key, oldest first: who is at its head, and
            # whether a new one must wait (deliveries.ordering). Unkeyed deliveries stay out.
            models.Index(
                fields=["endpoint", "ordering_key", "id"],
                condition=models.Q(status="pending") & ~models.Q(ordering_key=""),
                name="delivery_ordering_idx",
            ),
            # The one delivery of a key that is going (due, retrying or in flight): whether the
            # key may advance, without reading the deliveries that wait behind it.
            models.Index(
                fields=["endpoint", "ordering_key", "id"],
                condition=models.Q(status="pending", waiting_on_key=False)
                & ~models.Q(ordering_key=""),
                name="delivery_ordering_going_idx",
            ),
            # An endpoint's dead letters are counted (up to a cap) when new ones arrive, for the
            # dead-letter alert: without this, counting three failures among a million
            # successes would read all of the endpoint's rows.
            models.Index(
                fields=["endpoint"],
                condition=models.Q(status="failed"),
                name="delivery_dead_letter_idx",
            ),
            # Test sends still to be attempted, counted for each tenant's limit: a handful of
            # rows, however long the backlog of other pending deliveries.
            models.Index(
                fields=["endpoint"],
                condition=models.Q(status="pending", next_trigger="test"),
                name="delivery_test_pending_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"delivery {self.pk} ({self.status})"


class DeadLetterManager(models.Manager["DeadLetter"]):
    def get_queryset(self) -> models.QuerySet[DeadLetter]:
        return super().get_queryset().filter(status=Delivery.Status.FAILED)


class DeadLetter(Delivery):
    """Deliveries whose retries ran out: the dead-letter queue, for the admin's own list."""

    objects: ClassVar[DeadLetterManager] = DeadLetterManager()

    class Meta:
        proxy = True
        verbose_name = "dead letter"


class Attempt(models.Model):
    class Trigger(models.TextChoices):
        SCHEDULED = "scheduled"
        REPLAY = "replay"
        MANUAL = "manual"
        TEST = "test"

    class ErrorKind(models.TextChoices):
        NONE = "", "none"
        HTTP_STATUS = "http_status"
        TIMEOUT = "timeout"
        CONNECTION = "connection"
        TLS = "tls"
        BLOCKED = "blocked"
        INVALID_RESPONSE = "invalid_response"
        INVALID_REQUEST = "invalid_request"
        INTERNAL = "internal"
        TRANSFORM = "transform"

    # No constraint in the database: on PostgreSQL the attempts are partitioned by day
    # (deliveries.attempt_partitions), and a constraint would make each deleted delivery probe
    # every partition. Django still deletes a delivery's attempts with it. No index of its own:
    # attempt_delivery_idx starts with it.
    delivery = models.ForeignKey(
        Delivery,
        on_delete=models.CASCADE,
        related_name="attempts",
        db_constraint=False,
        db_index=False,
    )
    number = models.PositiveIntegerField()
    trigger = models.CharField(max_length=16, choices=Trigger.choices, default=Trigger.SCHEDULED)
    started_at = models.DateTimeField()
    duration_ms = models.FloatField()
    url = models.URLField(max_length=2048)
    request_headers = models.JSONField(default=dict)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_headers = models.JSONField(default=dict, blank=True)
    response_body = models.TextField(blank=True, default="", help_text="The start of the body.")
    error_kind = models.CharField(max_length=32, choices=ErrorKind.choices, blank=True, default="")
    error_message = models.TextField(blank=True, default="")
    # Kept past the retention window for its delivery's timeline, with its captured headers and
    # body blanked (operations.retention). On PostgreSQL this moves it out of its day's partition
    # into the archive, so that the day can be dropped whole.
    archived = models.BooleanField(default=False, db_default=False, editable=False)

    class Meta:
        ordering = ["delivery", "number"]
        indexes = [
            models.Index(fields=["delivery", "number"], name="attempt_delivery_idx"),
            # The dashboard's windows ("last 24 h") and retention purge by time.
            models.Index(fields=["started_at"], name="attempt_started_idx"),
        ]

    def __str__(self) -> str:
        return f"attempt {self.number} of delivery {self.delivery_id}"

    @property
    def succeeded(self) -> bool:
        # A 2xx with an error kind was still a failure: a challenge answered without its echo.
        ok = self.response_status is not None and 200 <= self.response_status < 300
        return ok and not self.error_kind


class HourlyStat(models.Model):
    """One endpoint's attempts in one hour, counted as they are recorded
    (deliveries.hourly_stats): the dashboard's figures and charts and the stats API read these,
    never the attempts themselves, however many are stored."""

    endpoint = models.ForeignKey(
        "subscriptions.Endpoint", on_delete=models.CASCADE, related_name="hourly_stats"
    )
    hour = models.DateTimeField(help_text="The hour's start, in UTC.")
    succeeded = models.PositiveIntegerField(default=0, help_text="Attempts answered 2xx.")
    dead = models.PositiveIntegerField(default=0, help_text="Deliveries given up on.")
    status_1xx = models.PositiveIntegerField(default=0)
    status_2xx = models.PositiveIntegerField(
        default=0, help_text="Succeeded, plus the 2xx that were not (a challenge not echoed)."
    )
    status_3xx = models.PositiveIntegerField(default=0)
    status_4xx = models.PositiveIntegerField(default=0)
    status_5xx = models.PositiveIntegerField(default=0)
    no_response = models.PositiveIntegerField(
        default=0, help_text="Attempts without an answer: timeouts, refused, TLS, blocked."
    )
    latency = models.JSONField(
        default=dict, help_text="Attempt durations as a histogram: bucket number to count."
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["endpoint", "hour"], name="hourly_stat_endpoint_hour")
        ]
        # Every tenant's hours, for staff, and retention.
        indexes = [models.Index(fields=["hour"], name="hourly_stat_hour_idx")]

    def __str__(self) -> str:
        return f"endpoint {self.endpoint_id} at {self.hour:%Y-%m-%d %H:00}"

    @property
    def attempts(self) -> int:
        return (
            self.status_1xx + self.status_2xx + self.status_3xx + self.status_4xx
            + self.status_5xx + self.no_response
        )  # fmt: skip


class ReadableDateTimeField(models.DateTimeField):
    """A DateTimeField that every read can turn into a datetime, whatever the row holds.

    PostgreSQL stores times Python cannot hold (before the year 1 in UTC, past 9999, infinity),
    and a row holding one makes every query that reads it fail. Such a row may have been stored
    before its input was checked; reads clamp it, in SQL, to the range a datetime holds.
    """

    def select_format(self, compiler: Any, sql: str, params: Any) -> tuple[str, tuple]:
        sql, params = super().select_format(compiler, sql, params)
        adapt = compiler.connection.ops.adapt_datetimefield_value
        low, high = adapt(EARLIEST_SINCE), adapt(LATEST_STORABLE)
        clamped = f"CASE WHEN {sql} < %s THEN %s WHEN {sql} > %s THEN %s ELSE {sql} END"
        return clamped, (*params, low, low, *params, high, high, *params)


class ReplayJob(models.Model):
    """A bulk replay running in the background: "every failed delivery of this endpoint since T".

    It ends `done`, or `failed` with its `failure_reason` when the replay raised: never left
    `running` by an error.
    """

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    tenant = models.ForeignKey("subscriptions.Tenant", on_delete=models.CASCADE)
    endpoint = models.ForeignKey(
        "subscriptions.Endpoint", on_delete=models.CASCADE, related_name="replay_jobs"
    )
    since = ReadableDateTimeField(validators=[validate_replay_since])
    requested_by = models.CharField(max_length=200, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    total = models.PositiveIntegerField(
        default=0, help_text="Failed deliveries found at the start."
    )
    replayed = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    failure_reason = models.TextField(blank=True, default="", help_text="Why a failed job stopped.")

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"replay job {self.pk} ({self.status}, {self.replayed}/{self.total})"


class WakeFlag(models.Model):
    """A wake-up flag (deliveries.dispatch) where no Redis holds it: one row per flag.

    Written only by deliveries.wake_flags, one statement at a time, with its expiry in
    milliseconds since the epoch by the database's clock. On PostgreSQL the table is UNLOGGED: a
    flag lives two seconds and may be lost in a crash, so its writes need no WAL, nor a flush to
    disk at commit.
    """

    name = models.CharField(primary_key=True, max_length=32)
    holder = models.CharField(max_length=200)
    expires_at_ms = models.BigIntegerField()

    def __str__(self) -> str:
        return f"wake-up flag {self.name} ({self.holder}, until {self.expires_at_ms} ms)"
