"""Channels: labels that narrow which endpoints an event reaches, as Svix's channels do.

An endpoint lists the channels it listens on; an event may list channels too, and then reaches
only the subscribed endpoints that share at least one of them. An event without channels reaches
every subscribed endpoint, whatever channels they list. The emit statements apply the same rule
in SQL (deliveries.bulk, deliveries.batch_emit).
"""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Any

from django.core.exceptions import ValidationError
from rest_framework import serializers

MAX_CHANNELS = 10
MAX_CHANNEL_LENGTH = 128
CHANNEL_PATTERN = r"^[A-Za-z0-9_.:-]{1,128}$"
CHANNEL_RULE = (
    f"A channel is 1 to {MAX_CHANNEL_LENGTH} letters, digits, '_', '-', '.' or ':' "
    f"(such as project_42 or eu-west); at most {MAX_CHANNELS} channels."
)
_CHANNEL = re.compile(CHANNEL_PATTERN)


def channels_checked(value: Any) -> list[str]:
    """`value` as a list of channels, each once, in the order given; raises ValidationError
    (CHANNEL_RULE) for anything but a list of at most MAX_CHANNELS valid channel names."""
    if value is None:
        return []
    if not isinstance(value, list | tuple):
        raise ValidationError(f"Channels are a list of strings. {CHANNEL_RULE}")
    for channel in value:
        # fullmatch: `$` would also accept a name followed by a newline.
        if not isinstance(channel, str) or not _CHANNEL.fullmatch(channel):
            raise ValidationError(f"{str(channel)[:40]!r} is not a channel. {CHANNEL_RULE}")
    channels = list(dict.fromkeys(value))
    if len(channels) > MAX_CHANNELS:
        raise ValidationError(f"{len(channels)} channels given. {CHANNEL_RULE}")
    return channels


def validate_channels(value: Any) -> None:
    """Model and serializer validator: raises ValidationError unless `value` is valid."""
    channels_checked(value)


def channels_reach(event_channels: Collection[str], endpoint_channels: Collection[str]) -> bool:
    """Whether an event with `event_channels` reaches an endpoint listening on
    `endpoint_channels` (both already checked)."""
    return not event_channels or not set(event_channels).isdisjoint(endpoint_channels)


class ChannelsField(serializers.ListField):
    """Channels in the REST API, as its schema states them (CHANNEL_RULE); each kept once."""

    def to_internal_value(self, data: Any) -> list[str]:
        if isinstance(data, list) and self.max_length is not None and len(data) > self.max_length:
            # Counted as sent, as the schema's maxItems counts, before repeats are dropped.
            self.fail("max_length", max_length=self.max_length)
        return channels_checked(super().to_internal_value(data))


def channels_api_field(**kwargs: Any) -> ChannelsField:
    """The REST API's field for channels."""
    return ChannelsField(
        child=serializers.RegexField(
            CHANNEL_PATTERN, max_length=MAX_CHANNEL_LENGTH, trim_whitespace=False,
            error_messages={"invalid": CHANNEL_RULE},
        ),
        max_length=MAX_CHANNELS,
        validators=[validate_channels],  # `$` in the pattern lets a final newline through
        **kwargs,
    )  # fmt: skip
