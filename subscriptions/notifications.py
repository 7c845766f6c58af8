"""Telling people about endpoint trouble: the `endpoint_disabled` signal, an email and the
operational webhook."""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.mail import send_mail

from deliveries.operational_webhook import endpoint_summary, iso_time, operational_webhook_send
from subscriptions.models import Endpoint
from subscriptions.signals import endpoint_disabled

logger = logging.getLogger(__name__)


def notify_endpoint_disabled(endpoint: Endpoint) -> None:
    """Fire the signal, email the tenant's members and the operators, and send the operational
    webhook `operations.endpoint_disabled`. Never raises."""
    try:
        endpoint_disabled.send(sender=Endpoint, endpoint=endpoint, reason=endpoint.disabled_reason)
    except Exception:
        logger.exception("An endpoint_disabled receiver failed for endpoint=%s", endpoint.id)
    _email_disabled(endpoint)
    operational_webhook_send(
        event_type="operations.endpoint_disabled",
        data={
            **endpoint_summary(endpoint),
            "reason": endpoint.disabled_reason,
            "disabled_at": iso_time(endpoint.disabled_at) if endpoint.disabled_at else None,
        },
    )


def _email_disabled(endpoint: Endpoint) -> None:
    recipients = endpoint_recipients(endpoint)
    if not recipients:
        return
    try:
        send_mail(
            subject=f"[Hookline] Endpoint disabled: {endpoint.url}",
            message=_message(endpoint),
            from_email=None,
            recipient_list=recipients,
        )
    except Exception:
        logger.exception("Could not email the disabling of endpoint=%s", endpoint.id)


def endpoint_recipients(endpoint: Endpoint) -> list[str]:
    """Who hears about an endpoint's trouble: its tenant's members and the operators."""
    members = endpoint.tenant.members.exclude(email="").values_list("email", flat=True)
    return sorted(set(members) | set(settings.WEBHOOKS_OPERATOR_EMAILS))


def _message(endpoint: Endpoint) -> str:
    return (
        f"Hookline stopped delivering to {endpoint.url} (tenant {endpoint.tenant.slug}).\n\n"
        f"Reason: {endpoint.disabled_reason}\n\n"
        "Its pending deliveries wait; nothing is lost. Fix the receiver, then enable the endpoint "
        "again in the admin (or the dashboard) and replay its failed deliveries."
    )
