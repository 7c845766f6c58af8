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


def same_json(first: object, second: object) -> bool:
    """Whether two parsed JSON documents are the same, key order and number spelling aside.

    Python's `==` alone takes `true` for `1` and `false` for `0`, which JSON does not. A loop,
    not recursion: a payload may be nested as deeply as the parser allowed.
    """
    pending = [(first, second)]
    while pending:
        left, right = pending.pop()
        if isinstance(left, dict) and isinstance(right, dict):
            if left.keys() != right.keys():
                return False
            pending.extend((value, right[key]) for key, value in left.items())
        elif isinstance(left, list) and isinstance(right, list):
            if len(left) != len(right):
                return False
            pending.extend(zip(left, right, strict=True))
        elif isinstance(left, dict | list) or isinstance(right, dict | list):
            return False
        elif isinstance(left, bool) or isinstance(right, bool):
            if type(left) is not type(right) or left != right:
                return False
        elif left != right:
            return False
    return True
