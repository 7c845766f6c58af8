"""Hookline's own `manage.py check` messages."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import checks


@checks.register(checks.Tags.security, deploy=True)
def check_encryption_keys(app_configs: Any = None, **_: Any) -> list[checks.CheckMessage]:
    """Production keeps endpoint secrets under a key of its own, not one derived from SECRET_KEY."""
    if settings.DEBUG or settings.WEBHOOKS_ENCRYPTION_KEYS:
        return []
    return [
        checks.Warning(
            "WEBHOOKS_ENCRYPTION_KEYS is not set, so endpoint signing secrets are encrypted "
            "with a key derived from SECRET_KEY: a database dump plus the settings decrypts "
            "every one of them.",
            hint="Generate a Fernet key, keep it apart from the settings and set it in "
            "WEBHOOKS_ENCRYPTION_KEYS; docs/security.md ('Encryption keys') shows how to move "
            "existing secrets to it.",
            id="hookline.W001",
        )
    ]
