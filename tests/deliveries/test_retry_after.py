"""A receiver's `Retry-After` sets the next attempt: a real worker, broker and receiver."""

from __future__ import annotations

import math
import threading
import time
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from deliveries.models import Attempt, Delivery
from tests.factories import EndpointFactory, EventTypeFactory, TenantFactory
from webhooks import send_event

pytestmark = [pytest.mark.services]

# The test settings retry after 0.2 s; the receiver asks for this many seconds more.
ASKED_SECONDS = 4


class BusyReceiver:
    """Answers its first POST 503 with `Retry-After` as an HTTP-date, then 200; keeps the times."""

    def __init__(self) -> None:
        self.arrivals: list[float] = []
        self.retry_at: float | None = None
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/hook"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length", 0)))
                now = time.time()
                receiver.arrivals.append(now)
                self.send_response(200 if receiver.retry_at else 503)
                if receiver.retry_at is None:
                    # A whole second, as an HTTP-date can only say.
                    receiver.retry_at = math.ceil(now) + ASKED_SECONDS
                    self.send_header("Retry-After", formatdate(receiver.retry_at, usegmt=True))
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler


@pytest.fixture
def busy_receiver():
    receiver = BusyReceiver()
    yield receiver
    receiver.close()


def test_a_503_with_an_http_date_retry_after_is_retried_at_that_date(worker, busy_receiver):
    EventTypeFactory(name="order.paid")
    tenant = TenantFactory()
    EndpointFactory(tenant=tenant, url=busy_receiver.url())

    event = send_event(tenant, "order.paid", {"n": 1})

    deadline = time.monotonic() + ASKED_SECONDS + 20
    while len(busy_receiver.arrivals) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(busy_receiver.arrivals) == 2, busy_receiver.arrivals
    first, second = busy_receiver.arrivals
    # Not after the 0.2 s of the schedule, but once the date has come (the sweeper looks
    # twice a second).
    assert second >= busy_receiver.retry_at, (second - first, busy_receiver.retry_at - first)
    assert second < busy_receiver.retry_at + 3
    delivery = Delivery.objects.get(event=event)
    deadline = time.monotonic() + 10
    while delivery.status == Delivery.Status.PENDING and time.monotonic() < deadline:
        time.sleep(0.05)
        delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.SUCCEEDED
    statuses = list(delivery.attempts.order_by("number").values_list("response_status", flat=True))
    assert statuses == [503, 200]
    assert Attempt.objects.filter(delivery=delivery).count() == 2
