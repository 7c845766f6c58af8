"""Every showing of a signing secret in the dashboard is written down before it happens."""

from __future__ import annotations

import logging

from django.http import HttpRequest

from dashboard.access import Viewer
from dashboard.models import SecretReveal
from dashboard.portal_views import client_address
from subscriptions.models import Endpoint

logger = logging.getLogger("hookline.audit")


def secret_shown(
    *, request: HttpRequest, viewer: Viewer, endpoint: Endpoint, kind: SecretReveal.Kind
) -> SecretReveal:
    """Record that `viewer` is being shown `endpoint`'s current secret (never the secret itself)."""
    user = request.user if request.user.is_authenticated and viewer.portal_link_id is None else None
    reveal = SecretReveal.objects.create(
        tenant_id=endpoint.tenant_id,
        endpoint=endpoint,
        endpoint_url=endpoint.url,
        kind=kind,
        user=user,
        portal_link_id=viewer.portal_link_id,
        client_address=client_address(request),
    )
    logger.info(
        "signing secret shown endpoint=%s tenant=%s kind=%s user=%s portal_link=%s reveal=%s",
        endpoint.id, endpoint.tenant_id, kind, user.pk if user else None,
        viewer.portal_link_id, reveal.id,
    )  # fmt: skip
    return reveal
