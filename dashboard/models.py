"""Portal links (the dashboard opened for one tenant without a Django account), and the audit
record of every showing of a signing secret."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from dashboard.portal_theme import (
    MAX_HOST_NAME,
    MAX_LOGO_URL,
    PortalTheme,
    validate_accent,
    validate_host_name,
    validate_logo_url,
)


class PortalLink(models.Model):
    """A single-use link that opens the dashboard for one tenant, without a Django account.

    The URL carries a random token; only its SHA-256 is stored, as for API keys. Opening the link
    sets `opened_at` once; the dashboard session it starts re-reads this row on every request, so
    `revoked_at` ends that session too.
    """

    class State(models.TextChoices):
        UNUSED = "unused"
        USED = "used"
        EXPIRED = "expired"
        REVOKED = "revoked"

    # Indexed by `portal_link_tenant_idx` below, which also serves the newest-first list.
    tenant = models.ForeignKey(
        "subscriptions.Tenant",
        on_delete=models.CASCADE,
        related_name="portal_links",
        db_index=False,
    )
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    capabilities = models.JSONField(default=list)
    issued_by = models.ForeignKey(
        "subscriptions.ApiKey",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="portal_links",
        help_text="The API key that asked for the link; empty for links issued from code.",
    )
    issued_by_org_key = models.ForeignKey(
        "subscriptions.OrganisationKey",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="portal_links",
        verbose_name="issued by organisation key",
        help_text="The organisation key that asked for the link through /api/v1/tenants/.",
    )
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    opened_at = models.DateTimeField(null=True, blank=True)
    opened_from = models.GenericIPAddressField(
        null=True, blank=True, help_text="The client address that opened the link."
    )
    revoked_at = models.DateTimeField(null=True, blank=True)
    # The host's look for the portal's pages (dashboard.portal_theme); blank keeps Hookline's.
    theme_host_name = models.CharField(
        max_length=MAX_HOST_NAME, blank=True, validators=[validate_host_name]
    )
    theme_logo_url = models.CharField(
        max_length=MAX_LOGO_URL, blank=True, validators=[validate_logo_url]
    )
    theme_accent = models.CharField(
        max_length=7,
        blank=True,
        validators=[validate_accent],
        help_text="The accent colour, #rrggbb.",
    )

    class Meta:
        db_table = "deliveries_portallink"  # its name from before the app split
        ordering = ["-id"]
        indexes = [models.Index(fields=["tenant", "-id"], name="portal_link_tenant_idx")]

    def __str__(self) -> str:
        return f"portal link {self.pk} ({self.state})"

    @property
    def state(self) -> PortalLink.State:
        """Revoked, used (opened once), expired (never opened) or unused (it would open now)."""
        if self.revoked_at is not None:
            return self.State.REVOKED
        if self.opened_at is not None:
            return self.State.USED
        if self.expires_at <= timezone.now():
            return self.State.EXPIRED
        return self.State.UNUSED

    @property
    def theme(self) -> PortalTheme:
        return PortalTheme(self.theme_host_name, self.theme_logo_url, self.theme_accent)


class SecretReveal(models.Model):
    """One showing of an endpoint's signing secret in the dashboard: who saw it, when, from where.

    Written before the secret leaves the server; kept when the endpoint is deleted (its id and URL
    are copied), so an operator can still answer "who could have leaked it".
    """

    class Kind(models.TextChoices):
        REVEAL = "reveal", "Revealed"
        CREATED = "created", "Shown on creation"
        ROTATED = "rotated", "Shown after a rotation"

    tenant = models.ForeignKey(
        "subscriptions.Tenant", on_delete=models.CASCADE, related_name="secret_reveals"
    )
    endpoint = models.ForeignKey(
        "subscriptions.Endpoint",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="secret_reveals",
    )
    endpoint_url = models.CharField(max_length=2048)
    kind = models.CharField(max_length=8, choices=Kind.choices)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        help_text="The signed-in user; empty for a portal-link session.",
    )
    portal_link = models.ForeignKey(
        PortalLink,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        help_text="The link whose session saw it; empty for a signed-in user.",
    )
    client_address = models.GenericIPAddressField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["tenant", "-id"], name="secret_reveal_tenant_idx")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.endpoint_url}"
