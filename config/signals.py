"""Sending a signal so that no receiver can stop the others, or the sender."""

from __future__ import annotations

import logging

from django.dispatch import Signal

logger = logging.getLogger(__name__)


def send_robustly(signal: Signal, **arguments: object) -> None:
    """Send `signal` to every receiver; one that raises is logged and stops no other."""
    for receiver, result in signal.send_robust(**arguments):
        if isinstance(result, Exception):
            logger.error("A signal receiver %r failed", receiver, exc_info=result)
