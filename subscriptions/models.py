"""Who wants which events, where, and with which secret."""

from __future__ import annotations

import base64
import secrets
from datetime import datetime

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.utils import timezone

from subscriptions.channels import validate_channels
from subscriptions.encryption import (
    EncryptedJSONField,
    EncryptedTextField,
    PreviousSecret,
    PreviousSecretsField,
)
from subscriptions.filters import filter_problem
from subscriptions.validators import (
    validate_endpoint_headers,
    validate_endpoint_metadata,
    validate_endpoint_url,
    validate_signing_secret,
)
from webhooks.payloads import contains_nul
from webhooks.schemas import schema_problem
from webhooks.transformations import transformation_problem

SECRET_PREFIX = "whsec_"
# Replaced secrets kept signing at once; past this, the one expiring soonest is dropped early.
MAX_PREVIOUS_SECRETS = 5
# Sent by "send test event"; created by a migration, delivered only to the endpoint under test.
TEST_EVENT_TYPE = "hookline.test"
VERIFICATION_EVENT_TYPE = "hookline.verification"
# Bounds of the per-tenant limits: far above any real use, small enough for every database.
MAX_EVENTS_PER_SECOND = 1_000_000
MAX_RETENTION_DAYS = 36_500


def generate_signing_secret() -> str:
    """A Standard Webhooks secret: `whsec_` + base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


class Tenant(models.Model):
    slug = models.SlugField(unique=True, max_length=64)
    name = models.CharField(max_length=200)
    is_active = models.BooleanField(default=True)
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="tenants")
    delivery_weight = models.PositiveSmallIntegerField(
        default=1,
        validators=[MinValueValidator(1), MaxValueValidator(100)],
        help_text="This tenant's share of delivery capacity when several tenants have backlogs "
        "(1 to 100: weight 3 gets three times the deliveries of weight 1).",
    )
    verify_endpoints = models.BooleanField(
        null=True,
        blank=True,
        help_text="Whether a new endpoint, or one whose URL changed, must answer an ownership "
        "challenge before it receives anything; empty follows WEBHOOKS_VERIFY_ENDPOINTS.",
    )
    max_events_per_second = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_EVENTS_PER_SECOND)],
        help_text="The most events this tenant may emit a second, over every process (a batch "
        "counts each of its events); beyond it emits are refused with 429. Empty: no limit.",
    )
    retention_days = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MaxValueValidator(MAX_RETENTION_DAYS)],
        help_text="Days this tenant's events, deliveries and attempts are kept, in place of "
        "WEBHOOKS_RETENTION_DAYS; 0 keeps them for good. Empty: the global setting.",
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug


class ApiKey(models.Model):
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=200, blank=True)
    prefix = models.CharField(max_length=16, help_text="The start of the key, to recognise it.")
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    is_staff = models.BooleanField(default=False, help_text="May change the event-type catalog.")
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    # An API key is the request's principal in the REST API.
    is_authenticated = True

    class Meta:
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.tenant.slug})"


class OrganisationKey(models.Model):
    """A key for the host's own code, acting across tenants: it manages tenants, their API keys
    and portal links through /api/v1/tenants/, and the event-type catalog. It belongs to no
    tenant and reads no tenant's data: tenant paths answer it 403. Stored as a SHA-256 hash,
    as API keys are; made by `manage.py createorgkey` or the admin, which show it once.
    """

    name = models.CharField(max_length=200)
    prefix = models.CharField(max_length=16, editable=False, help_text="The start of the key.")
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True)

    # An organisation key is the request's principal in the REST API, as an API key is.
    is_authenticated = True

    class Meta:
        verbose_name = "organisation key"

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.name})"


class EmitQuota(models.Model):
    """Where no Redis holds it, the emit quota's state of a tenant with `max_events_per_second`.

    Written only by subscriptions.emit_quota, one statement at a time. `drained_at` is the
    moment (seconds since the epoch, by the database's clock) at which the tenant's emits so far
    are paid for at its rate. On PostgreSQL the table is UNLOGGED: losing it in a crash only
    forgives a second of emits, so its writes need no WAL, nor a flush at commit.
    """

    tenant_id = models.BigIntegerField(primary_key=True)
    drained_at = models.FloatField()

    def __str__(self) -> str:
        return f"emit quota of tenant {self.tenant_id} (drained at {self.drained_at})"


event_type_name_validator = RegexValidator(
    r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$",
    "Use letters, digits, '_' and '-', in dot-separated parts, such as order.paid.",
)


class EventType(models.Model):
    name = models.CharField(max_length=200, unique=True, validators=[event_type_name_validator])
    description = models.TextField(blank=True)
    schema = models.JSONField(
        null=True, blank=True, help_text="JSON Schema that every payload of this type must match."
    )
    archived = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        if self.schema is None:
            return
        if contains_nul(self.schema):
            raise ValidationError({"schema": "The schema cannot contain the NUL character."})
        problem = schema_problem(self.schema)
        if problem is not None:
            raise ValidationError({"schema": f"The schema is not a valid JSON Schema: {problem}."})


class Endpoint(models.Model):
    class PayloadFormat(models.TextChoices):
        # The names webhooks.formats renders.
        JSON = "json", "JSON"
        XML = "xml", "XML"
        FORM = "form", "Form fields"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="endpoints")
    url = models.URLField(max_length=2048, validators=[validate_endpoint_url])
    description = models.CharField(max_length=500, blank=True)
    event_types = models.ManyToManyField(
        EventType,
        blank=True,
        related_name="endpoints",
        help_text="Leave empty to receive every event type.",
    )
    is_active = models.BooleanField(default=True)
    disabled_reason = models.CharField(max_length=500, blank=True)
    disabled_at = models.DateTimeField(null=True, blank=True)
    # Health: the start of the current run of failed attempts (None after a success).
    failing_since = models.DateTimeField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    # The circuit breaker: failed attempts in a row, and while the circuit is open, when the next
    # single probe may go (None: closed, deliveries flow).
    consecutive_failures = models.PositiveIntegerField(default=0, editable=False)
    circuit_open_until = models.DateTimeField(null=True, blank=True, editable=False)
    # Its last attempts were slow: workers send to it from a side thread, not their main loop.
    is_slow = models.BooleanField(default=False, editable=False)
    # With a rate limit: the earliest time the next send may start, shared by every worker.
    rate_slot_at = models.DateTimeField(null=True, blank=True, editable=False)
    secret = EncryptedTextField(
        default=generate_signing_secret, validators=[validate_signing_secret]
    )
    # Replaced secrets that still sign until their own expiry, latest expiry first (at most
    # MAX_PREVIOUS_SECRETS): a second rotation inside the overlap must not drop the first secret.
    previous_secrets = PreviousSecretsField(default=list, blank=True, editable=False)
    # Values are often receivers' credentials: encrypted at rest, masked wherever shown.
    headers = EncryptedJSONField(
        default=dict,
        blank=True,
        validators=[validate_endpoint_headers],
        help_text="Extra headers sent each time.",
    )
    rate_limit = models.PositiveIntegerField(
        null=True, blank=True, help_text="Most deliveries per second; empty for no limit."
    )
    payload_format = models.CharField(
        max_length=8,
        choices=PayloadFormat.choices,
        default=PayloadFormat.JSON,
        help_text="How the body is encoded: JSON, XML or form fields (see the README).",
    )
    filter = models.TextField(
        blank=True,
        help_text="A CEL expression over type, data, tenant and timestamp; only events for which "
        "it is true are delivered. Empty: every event of the chosen types.",
    )
    transformation = models.TextField(
        blank=True,
        help_text="A JSONata expression that reshapes the body before it is signed and sent. "
        "Empty: the body as Hookline builds it.",
    )
    metadata = models.JSONField(
        default=dict,
        blank=True,
        validators=[validate_endpoint_metadata],
        help_text="The host's own data about the endpoint (its ids): a JSON object of at most "
        "4 KB, never sent.",
    )
    # Defaulted in the database too, for rows inserted by SQL that does not name it.
    channels = models.JSONField(
        default=list,
        db_default=models.Value([], output_field=models.JSONField()),
        blank=True,
        validators=[validate_channels],
        help_text="Channels it listens on: an event sent with channels reaches only endpoints "
        "that share one of them. Events without channels reach it whatever it lists.",
    )
    # Ownership verification: when it applies, an endpoint receives nothing but its challenge
    # until it has echoed it (None: not yet). Endpoints saved while it does not apply are trusted
    # from the start.
    verified_at = models.DateTimeField(null=True, blank=True, default=timezone.now, editable=False)
    verification_challenge = models.CharField(max_length=64, blank=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["tenant", "is_active"]),
            # Each claim looks for circuits whose cooldown ended; few are ever open.
            models.Index(
                fields=["circuit_open_until"],
                condition=models.Q(circuit_open_until__isnull=False),
                name="endpoint_circuit_open_idx",
            ),
        ]

    def __str__(self) -> str:
        return self.url

    def clean(self) -> None:
        self.filter = (self.filter or "").strip()
        if isinstance(self.channels, list) and len(set(self.channels)) < len(self.channels):
            self.channels = list(dict.fromkeys(self.channels))  # each once, as the API keeps them
        problems = {
            "filter": filter_problem(self.filter),
            "transformation": transformation_problem(self.transformation),
        }
        errors = {field: problem for field, problem in problems.items() if problem is not None}
        if errors:
            raise ValidationError(errors)

    def signing_secrets(self, at: datetime | None = None) -> list[str]:
        """The secrets that sign a message now: the current one, then every replaced one whose
        overlap has not ended."""
        return [self.secret] + [previous.secret for previous in self.valid_previous_secrets(at)]

    def valid_previous_secrets(self, at: datetime | None = None) -> list[PreviousSecret]:
        """The replaced secrets still signing at `at` (default now), latest expiry first."""
        at = at or timezone.now()
        return [previous for previous in self.previous_secrets if at < previous.expires_at]
