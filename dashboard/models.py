"""Portal links: the dashboard opened for one tenant without a Django account."""

from __future__ import annotations

from django.db import models
from django.utils import timezone


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
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    opened_at = models.DateTimeField(null=True, blank=True)
    opened_from = models.GenericIPAddressField(
        null=True, blank=True, help_text="The client address that opened the link."
    )
    revoked_at = models.DateTimeField(null=True, blank=True)

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
