"""Rules every JSON payload must follow, whatever its event type."""

from __future__ import annotations


def contains_nul(value: object) -> bool:
    """Whether any string (key or value) in a JSON document holds the NUL character."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list | tuple):
            pending.extend(item)
    return False
