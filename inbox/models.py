"""The built-in test inbox: a URL Hookline serves itself, and what it received."""

from __future__ import annotations

import secrets

from django.db import models
from django.utils import timezone


def new_inbox_token() -> str:
    return "ibx_" + secrets.token_urlsafe(18)


class Inbox(models.Model):
    """A URL Hookline serves itself that captures what it receives: a receiver for trying things."""

    tenant = models.ForeignKey(
        "subscriptions.Tenant", on_delete=models.CASCADE, related_name="inboxes"
    )
    token = models.CharField(max_length=64, unique=True, default=new_inbox_token)
    respond_status = models.PositiveSmallIntegerField(default=200)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "deliveries_inbox"  # its name from before the app split
        verbose_name_plural = "inboxes"

    def __str__(self) -> str:
        return self.token


class InboxRequest(models.Model):
    inbox = models.ForeignKey(Inbox, on_delete=models.CASCADE, related_name="requests")
    received_at = models.DateTimeField(default=timezone.now)
    method = models.CharField(max_length=10)
    headers = models.JSONField(default=dict)
    body = models.TextField(blank=True)
    webhook_id = models.CharField(max_length=64, blank=True, db_index=True)
    signature_valid = models.BooleanField(null=True, help_text="Empty when no endpoint matched.")
    response_status = models.PositiveSmallIntegerField()

    class Meta:
        db_table = "deliveries_inboxrequest"  # its name from before the app split
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.method} {self.webhook_id or '(no webhook-id)'}"
