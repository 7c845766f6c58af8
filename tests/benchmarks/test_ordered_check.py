"""The ordered variant's check of what the receiver got, on hand-made receipts."""

from __future__ import annotations

import json

from benchmarks.ordered import order_check, ordered_failed, ordered_report


def receipt(key: str, seq: int, *, webhook_id: str = "", path: str = "/o0") -> dict:
    body = {"type": "bench.event", "timestamp": "", "data": {"key": key, "seq": seq}}
    headers = {"webhook-id": webhook_id or f"msg_ordered{key}-{seq}"}
    return {"path": path, "headers": headers, "body": json.dumps(body)}


def test_keys_received_in_order_pass():
    records = [receipt("key-0", 0), receipt("key-1", 0), receipt("key-0", 1), receipt("key-1", 1)]

    assert order_check(records, expected=4) == {
        "order_violations": 0, "ordered_lost": 0, "ordered_duplicated": 0,
        "ordered_duplicated_other_id": 0,
    }  # fmt: skip


def test_a_sequence_number_below_one_received_is_a_violation():
    records = [receipt("key-0", 0), receipt("key-0", 2), receipt("key-0", 1)]

    assert order_check(records, expected=3)["order_violations"] == 1


def test_keys_are_ordered_per_endpoint():
    records = [receipt("key-0", 1, path="/o1"), receipt("key-0", 0, path="/o0")]

    assert order_check(records, expected=2)["order_violations"] == 0


def test_a_redelivery_with_its_webhook_id_is_a_duplicate_not_a_violation():
    records = [receipt("key-0", 0), receipt("key-0", 1), receipt("key-0", 0)]

    figures = order_check(records, expected=2)

    assert (figures["order_violations"], figures["ordered_duplicated"]) == (0, 1)
    assert figures["ordered_duplicated_other_id"] == 0
    assert not ordered_failed(figures)


def test_a_sequence_number_under_another_webhook_id_fails():
    records = [receipt("key-0", 0), receipt("key-0", 0, webhook_id="msg_other")]

    figures = order_check(records, expected=1)

    assert figures["ordered_duplicated_other_id"] == 1
    assert ordered_failed(figures)


def test_a_sequence_number_never_received_is_lost_and_fails():
    figures = order_check([receipt("key-0", 0), receipt("key-0", 2)], expected=3)

    assert figures["ordered_lost"] == 1
    assert ordered_failed(figures)


def test_unkeyed_and_other_receipts_are_left_out():
    records = [receipt("", 0), {"path": "/e0", "headers": {}, "body": "{}"}, receipt("key-0", 0)]

    assert order_check(records, expected=1)["ordered_lost"] == 0


def test_the_report_says_fail_when_a_key_broke():
    figures = {
        "ordered_keys": 100, "ordered_backlog": 20000, "unkeyed_backlog_per_s": 2000.0,
        "ordered_backlog_per_s": 1700.0, "ordered_vs_unkeyed_pct": 85.0,
        **order_check([receipt("key-0", 1), receipt("key-0", 0)], expected=2),
    }  # fmt: skip

    lines = ordered_report(figures)

    assert lines[0] == (
        "ordered backlog (K=100 keys): 1,700 deliveries/s = 85 % of the unkeyed backlog "
        "(2,000/s)   target with K=100: >= 80 %, met"
    )
    assert lines[1].startswith("order violations: 1, lost: 0, duplicates: 0 ")
    assert lines[2].startswith("FAIL: ")
