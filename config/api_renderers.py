"""The API's JSON renderer: DRF's, plus JSON text that must reach the client as it was written."""

from __future__ import annotations

import secrets
from typing import Any

from rest_framework import renderers

from webhooks.formats import RawJSON


class JSONRenderer(renderers.JSONRenderer):
    """DRF's JSON renderer; a `RawJSON` value (an event's payload as sent) is written verbatim.

    Re-rendering the parsed value would change what the host sent: `1.10` would read `1.1`,
    `1e308` a 309-digit integer. Each RawJSON is rendered as a placeholder string, unguessable
    for this response, then replaced by its text.
    """

    def render(
        self, data: Any, accepted_media_type: str | None = None, renderer_context: Any = None
    ) -> bytes:
        texts: list[str] = []
        marker = f"raw-json-{secrets.token_hex(16)}-"
        base = self.encoder_class

        class Encoder(base):  # type: ignore[misc, valid-type]
            def default(self, value: Any) -> Any:
                if isinstance(value, RawJSON):
                    texts.append(value.text)
                    return f"{marker}{len(texts) - 1}"
                return super().default(value)

        self.encoder_class = Encoder  # type: ignore[misc]  # DRF makes a renderer per request
        try:
            body = super().render(data, accepted_media_type, renderer_context)
        finally:
            self.encoder_class = base  # type: ignore[misc]
        for index, text in enumerate(texts):
            body = body.replace(f'"{marker}{index}"'.encode(), text.encode(), 1)
        return body
