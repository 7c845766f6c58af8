"""Operational state: the alerts operators were told about."""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class OperationalAlert(models.Model):
    """A condition operators were told about; it stays open, and is not told again, until it clears.

    Raising one is an insert that the constraint on open alerts lets through once, however many
    workers see the condition at the same moment, and across restarts. Clearing re-arms it.
    """

    class Kind(models.TextChoices):
        DEAD_LETTERS_OVER_THRESHOLD = "dead_letters_over_threshold", "dead letters over threshold"
        DELIVERIES_OVERDUE = "deliveries_overdue", "deliveries overdue"

    kind = models.CharField(max_length=64, choices=Kind.choices)
    # What it is about: the endpoint's id for dead letters; empty for overdue deliveries.
    subject = models.CharField(max_length=64, blank=True, default="")
    details = models.JSONField(default=dict, blank=True, help_text="What operators were told.")
    raised_at = models.DateTimeField(default=timezone.now)
    cleared_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "deliveries_operationalalert"  # its name from before the app split
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["kind", "subject"],
                condition=models.Q(cleared_at__isnull=True),
                name="operational_alert_open_once",
            ),
        ]

    def __str__(self) -> str:
        about = f" {self.subject}" if self.subject else ""
        state = "cleared" if self.cleared_at else "open"
        return f"{self.get_kind_display()}{about} ({state})"
