"""Telling people about endpoint trouble: when the `endpoint_disabled` signal fires, an email
and the operational webhook."""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.mail import send_mail

from operations.operational_webhook import endpoint_summary, operational_webhook_send
from subscriptions.models import Endpoint
from webhooks.wire import iso_time

logger = logging.getLogger(__name__)


def notify_endpoint_disabled(*, endpoint: Endpoint, **_: object) -> None:
    """Email the tenant's members and the operators, and send the operational webhook
    `operations.endpoint_disabled`; connected to `endpoint_disabled`. Never raises."""
    email_quietly(
        endpoint_recipients(endpoint),
        f"[Hookline] Endpoint disabled: {endpoint.url}",
        _message(endpoint),
    )
    operational_webhook_send(
        event_type="operations.endpoint_disabled",
        data={
            **endpoint_summary(endpoint),
            "reason": endpoint.disabled_reason,
            "disabled_at": iso_time(endpoint.disabled_at) if endpoint.disabled_at else None,
        },
    )


def email_quietly(recipients: list[str], subject: str, message: str) -> None:
    """Email `recipients`, if any; a mail server that fails is logged, never raised."""
    if not recipients:
        return
    try:
        send_mail(
            subject=subject, message=message, from_email=None, recipient_list=sorted(recipients)
        )
    except Exception:
        logger.exception("Could not send the email %r", subject)


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
