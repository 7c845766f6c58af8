"""Endpoint signing secrets encrypted at rest: Fernet, with key rotation through MultiFernet."""

from __future__ import annotations

import base64
import functools
import hashlib

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

    def from_db_value(self, value, expression, connection):  # noqa: ANN001
        if value in (None, ""):
            return value
        return decrypt(value)

    def get_prep_value(self, value):  # noqa: ANN001
        value = super().get_prep_value(value)
        if value in (None, ""):
            return value
        return encrypt(value)
