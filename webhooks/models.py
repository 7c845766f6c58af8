"""Events emitted by the host application."""

from __future__ import annotations

from typing import Any

from django.db import models
from django.utils import timezone

from webhooks.formats import RawJSON
from webhooks.ids import new_message_id
from webhooks.ordering_keys import ORDERING_KEY_MAX_LENGTH

# Version 00 of W3C Trace Context: "00-" + 32 + "-" + 16 + "-" + 2 hexadecimal digits.
TRACEPARENT_MAX_LENGTH = 55


class Event(models.Model):
    public_id = models.CharField(max_length=40, unique=True, default=new_message_id, editable=False)
    tenant = models.ForeignKey(
        "subscriptions.Tenant", on_delete=models.CASCADE, related_name="events"
    )
    event_type = models.ForeignKey(
        "subscriptions.EventType", on_delete=models.PROTECT, related_name="events"
    )
    # The parsed payload, for queries, schema checks and the XML and form formats.
    payload = models.JSONField()
    # The payload as the host wrote it (compact JSON): what receivers get as `data`, byte for byte.
    # NULL for events stored before it was kept; those are sent from `payload`.
    payload_text = models.TextField(null=True, blank=True, editable=False)  # noqa: DJ001
    # NULL, not "", so that the unique constraint below skips events without a key.
    idempotency_key = models.CharField(max_length=255, null=True, blank=True)  # noqa: DJ001
    # Its deliveries to each endpoint go after the earlier events with the same key (blank: no
    # order). Kept here for reading back; each delivery carries it for the scheduler. Defaulted in
    # the database too, for rows inserted by SQL that does not name it.
    ordering_key = models.CharField(
        max_length=ORDERING_KEY_MAX_LENGTH, blank=True, default="", db_default=""
    )
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    # The W3C `traceparent` of the span that emitted it, when tracing is on ("" otherwise): each
    # attempt's span is that span's child, in whichever worker and however much later it runs
    # (config.spans). Defaulted in the database too, for rows inserted by SQL that does not name it.
    traceparent = models.CharField(
        max_length=TRACEPARENT_MAX_LENGTH, blank=True, default="", db_default="", editable=False
    )

    # The channels it was sent on ([] for none): it reached only the endpoints that share one
    # (subscriptions.channels). Defaulted in the database too, for rows inserted by SQL that does
    # not name it.
    channels = models.JSONField(
        default=list, db_default=models.Value([], output_field=models.JSONField()), blank=True
    )

    class Meta:
        ordering = ["-id"]
        # The API's list of a tenant's events, newest first, all of them or of one type. Created
        # concurrently on PostgreSQL (migration 0006), with a GIN index on the payload for its
        # payload search that only PostgreSQL has, and so is left out here.
        indexes = [
            models.Index(fields=["tenant", "created_at", "id"], name="event_tenant_created_idx"),
            models.Index(
                fields=["tenant", "event_type", "created_at", "id"], name="event_tenant_type_idx"
            ),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "idempotency_key"],
                condition=models.Q(idempotency_key__isnull=False),
                name="event_idempotency_key_unique_per_tenant",
            )
        ]

    def __str__(self) -> str:
        return self.public_id

    @property
    def payload_as_sent(self) -> dict[str, Any] | RawJSON:
        """The payload as receivers get it: its JSON text as sent, or the parsed payload."""
        if self.payload_text is None:
            return self.payload
        return RawJSON(self.payload_text)
