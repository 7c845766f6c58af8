"""`@verify_webhook` for Django views, under the name Hookline has always given it.

The decorator lives in the `hookline_receiver` package (`hookline_receiver.django`), which
receivers install on its own; see docs/receiving.md.
"""

from __future__ import annotations

from hookline_receiver.django import SecretSource, VerifiedMessage, verify_webhook

__all__ = ["SecretSource", "VerifiedMessage", "verify_webhook"]
