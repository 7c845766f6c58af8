"""manage.py send_events: a JSON Lines file sent in batches, for backfills (both databases)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from deliveries.models import Delivery
from tests.factories import EndpointFactory, EventTypeFactory, TenantFactory
from tests.worker import worker_database_url
from webhooks.models import Event

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def tenant(db):
    EventTypeFactory(name="order.paid")
    tenant = TenantFactory(slug="acme")
    EndpointFactory(tenant=tenant)
    return tenant


def line(n: int, **fields) -> str:
    item = {"event_type": "order.paid", "payload": {"n": n}, "idempotency_key": f"k{n}"}
    return json.dumps({**item, **fields})


def write(tmp_path: Path, lines: list[str | bytes]) -> Path:
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"".join((x if isinstance(x, bytes) else x.encode()) + b"\n" for x in lines))
    return path


def run(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("send_events", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_every_line_is_sent_in_batches_and_summed_up(tenant, tmp_path):
    path = write(tmp_path, [line(n) for n in range(7)])

    out, err = run("--tenant", "acme", "--file", str(path), "--batch-size", "3")

    assert out.strip() == "Created 7, duplicates 0, rejected 0."
    assert "7/7" in err  # the progress bar
    payloads = Event.objects.order_by("id").values_list("payload", flat=True)
    assert list(payloads) == [{"n": n} for n in range(7)]
    assert Delivery.objects.count() == 7


def test_sending_the_file_again_sends_nothing_twice(tenant, tmp_path):
    path = write(tmp_path, [line(n) for n in range(5)])
    run("--tenant", "acme", "--file", str(path), "--batch-size", "2")

    out, _ = run("--tenant", "acme", "--file", str(path))

    assert out.strip() == "Created 0, duplicates 5, rejected 0."
    assert Event.objects.count() == 5


def test_bad_lines_are_listed_by_number_the_others_sent_and_the_command_fails(tenant, tmp_path):
    path = write(
        tmp_path,
        [
            line(1),
            "{not json",
            "",
            line(4, event_type="order.unknown"),
            '["a", "list"]',
            b'{"event_type": "order.paid", "payload": {"n": "\xff"}}',
            line(7, tenant="other"),
            json.dumps({"event_type": "order.paid"}),
            line(9, ordering_key="has space"),
            line(10, payload={"n": "a\u0000"}),
            line(11),
        ],
    )
    out, err = io.StringIO(), io.StringIO()

    with pytest.raises(CommandError, match="8 lines were rejected; the others were sent"):
        call_command("send_events", "--tenant", "acme", "--file", str(path), stdout=out, stderr=err)

    assert out.getvalue().strip() == "Created 2, duplicates 0, rejected 8."
    listed = [x for x in err.getvalue().splitlines() if x.startswith("line ")]
    assert [x.split(":")[0] for x in listed] == [
        "line 2", "line 4", "line 5", "line 6", "line 7", "line 8", "line 9", "line 10",
    ]  # fmt: skip
    assert listed[0].startswith("line 2: invalid_item: The line is not JSON")
    assert listed[1].startswith("line 4: unknown_event_type: Unknown event type 'order.unknown'")
    assert listed[3] == "line 6: invalid_item: The line is not UTF-8 text."
    assert listed[4] == "line 7: invalid_item: Unknown field 'tenant'."
    assert listed[5] == "line 8: invalid_item: payload is required."
    assert listed[6].startswith("line 9: invalid_ordering_key: ")
    assert listed[7].startswith("line 10: invalid_payload: ")
    assert sorted(e["n"] for e in Event.objects.values_list("payload", flat=True)) == [1, 11]


def test_ordering_keys_keep_the_files_order_across_batches(tenant, tmp_path):
    path = write(tmp_path, [line(n, ordering_key="ord_1") for n in range(5)])

    run("--tenant", "acme", "--file", str(path), "--batch-size", "2")

    deliveries = Delivery.objects.select_related("event").order_by("id")
    assert [d.event.payload["n"] for d in deliveries] == [0, 1, 2, 3, 4]
    assert [d.waiting_on_key for d in deliveries] == [False, True, True, True, True]


def test_payloads_are_sent_as_written_in_the_file(tenant, tmp_path):
    path = write(tmp_path, ['{"event_type": "order.paid", "payload": {"price": 1.10, "x": 1e308}}'])

    run("--tenant", "acme", "--file", str(path))

    assert Event.objects.get().payload_text == '{"price":1.10,"x":1e308}'


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tenant", "nobody", "--file", "{file}"], "No active tenant with slug 'nobody'"),
        (["--tenant", "acme", "--file", "/no/such/file.jsonl"], "Cannot read /no/such/file.jsonl"),
        (["--tenant", "acme", "--file", "{file}", "--batch-size", "0"], "from 1 to 500"),
        (["--tenant", "acme", "--file", "{file}", "--batch-size", "501"], "from 1 to 500"),
    ],
)
def test_a_bad_argument_is_refused_and_nothing_is_sent(tenant, tmp_path, args, message):
    path = write(tmp_path, [line(1)])

    with pytest.raises(CommandError, match=message):
        run(*[arg.format(file=path) for arg in args])

    assert not Event.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_as_a_process_it_exits_non_zero_when_a_line_was_rejected(tenant, tmp_path):
    good = write(tmp_path, [line(1), line(2)])
    bad = tmp_path / "bad.jsonl"
    bad.write_text(line(3) + "\n{oops\n")
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings",
           "DATABASE_URL": worker_database_url()}  # fmt: skip

    def send(path: Path) -> subprocess.CompletedProcess:
        command = [sys.executable, "manage.py", "send_events", "--tenant", "acme", "--file"]
        return subprocess.run([*command, str(path)], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=120, check=False)  # fmt: skip

    ok, failed = send(good), send(bad)

    assert (ok.returncode, ok.stdout.strip()) == (0, "Created 2, duplicates 0, rejected 0.")
    assert failed.returncode == 1
    assert failed.stdout.strip() == "Created 1, duplicates 0, rejected 1."
    assert "line 2: invalid_item: The line is not JSON" in failed.stderr
    assert Event.objects.count() == 3
