"""Endpoint secrets encrypted at rest (signing secrets, replaced ones, custom headers): Fernet,
with key rotation through MultiFernet."""

from __future__ import annotations

import base64
import functools
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.signals import setting_changed
from django.db import models
from django.dispatch import receiver


@functools.cache
def _cipher() -> MultiFernet:
    keys = list(settings.WEBHOOKS_ENCRYPTION_KEYS) or [secret_key_derived_key()]
    return MultiFernet([Fernet(key) for key in keys])


def secret_key_derived_key() -> str:
    """The Fernet key used while WEBHOOKS_ENCRYPTION_KEYS is unset: a hash of SECRET_KEY.

    Whoever holds the settings holds this key, hence the deploy check `hookline.W001`. Listing
    it after a new key in WEBHOOKS_ENCRYPTION_KEYS lets `reencrypt_secrets` move away from it.
    """
    digest = hashlib.sha256(b"hookline-secrets:" + settings.SECRET_KEY.encode()).digest()
    return base64.urlsafe_b64encode(digest).decode()


@receiver(setting_changed)
def _forget_cipher(setting: str, **_: object) -> None:
    if setting in ("WEBHOOKS_ENCRYPTION_KEYS", "SECRET_KEY"):
        _cipher.cache_clear()


def encrypt(plaintext: str) -> str:
    return _cipher().encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _cipher().decrypt(token.encode()).decode()
    except InvalidToken:
        raise ValueError(
            "An endpoint secret could not be decrypted: WEBHOOKS_ENCRYPTION_KEYS (or SECRET_KEY) "
            "no longer holds the key it was encrypted with."
        ) from None


class EncryptedTextField(models.TextField):
    """Stores Fernet ciphertext; the model attribute holds the plaintext."""

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> Any:
        if value in (None, ""):
            return value
        return decrypt(value)

    def get_prep_value(self, value: Any) -> Any:
        value = super().get_prep_value(value)
        if value in (None, ""):
            return value
        return encrypt(value)


class EncryptedJSONField(models.JSONField):
    """Any JSON value, stored as one Fernet token (a JSON string); read back as the value.

    Custom endpoint headers carry receivers' credentials, so they are encrypted like secrets.
    Rows written before encryption hold the plain value (not a string) until migrated.
    """

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> Any:
        value = super().from_db_value(value, expression, connection)
        if not isinstance(value, str):
            return value
        return json.loads(decrypt(value)) if value else self.get_default()

    def get_prep_value(self, value: Any) -> Any:
        if value is None or hasattr(value, "as_sql"):
            return super().get_prep_value(value)
        return super().get_prep_value(encrypt(json.dumps(value, separators=(",", ":"))))


@dataclass(frozen=True)
class PreviousSecret:
    """A replaced signing secret that keeps signing until `expires_at`."""

    secret: str
    expires_at: datetime


class PreviousSecretsField(models.JSONField):
    """A list of PreviousSecret: each secret a Fernet token, its expiry in clear (ISO 8601)."""

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> Any:
        return self.to_python(super().from_db_value(value, expression, connection))

    def to_python(self, value: Any) -> Any:
        if not isinstance(value, list):
            return value
        return [
            entry
            if isinstance(entry, PreviousSecret)
            else PreviousSecret(
                secret=decrypt(entry["secret"]),
                expires_at=datetime.fromisoformat(entry["expires_at"]),
            )
            for entry in value
        ]

    def get_prep_value(self, value: Any) -> Any:
        return super().get_prep_value(self._stored_form(value))

    def validate(self, value: Any, model_instance: models.Model | None) -> None:
        # The JSON check of the parent would choke on the dataclasses; the stored form is JSON.
        super().validate(self._stored_form(value), model_instance)

    def value_to_string(self, obj: models.Model) -> Any:
        # dumpdata writes the secrets encrypted, as stored; loaddata reads them back (to_python).
        return self._stored_form(self.value_from_object(obj))

    def _stored_form(self, value: Any) -> Any:
        if not isinstance(value, list):
            return value
        return [
            {"secret": encrypt(entry.secret), "expires_at": entry.expires_at.isoformat()}
            if isinstance(entry, PreviousSecret)
            else entry
            for entry in value
        ]
