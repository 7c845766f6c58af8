"""A stalled send does not hold up its batch: another sender takes over the rest.

A worker sends its batch one request after another, the fastest way on a CPU. The first time an
endpoint stops answering, nothing yet marks it slow, and one hanging request would stall the
batch, and the worker, for the whole timeout. So the batch is sent from a sender thread that the
worker's thread watches. When a send has taken WEBHOOKS_SLOW_ATTEMPT_SECONDS, that sender is left
to finish its one delivery and record it alone, the endpoint's other deliveries wait for later,
and a fresh sender goes on with the rest. Only one sender is ever busy on the CPU: the others
are waiting on a socket.
"""

from __future__ import annotations

import contextvars
import dataclasses
import threading
import time
from datetime import datetime
from typing import Protocol

from django.conf import settings
from django.db import connection

from deliveries.claims import Claim, Outcome
from deliveries.lanes import SlowLane
from deliveries.models import Delivery
from deliveries.services import deliveries_record


class Sends(Protocol):
    """The sends of one claim (deliveries.batch.Sends), as the sender threads share them."""

    claim: Claim
    lease_ends: datetime
    lock: threading.Lock

    def next(self) -> Delivery | None: ...
    def send(self, delivery: Delivery) -> Outcome: ...
    def add(self, outcome: Outcome) -> None: ...
    def hand_off(self, delivery: Delivery) -> None: ...
    def keep_up(self) -> None: ...
    def stop(self) -> None: ...


WATCH_INTERVAL = 0.05


class Sender(threading.Thread):
    def __init__(self, sends: Sends, lane: SlowLane) -> None:
        super().__init__(name="hookline-sender", daemon=True)
        self.sends, self.lane = sends, lane
        self.finished = threading.Event()
        self.current: Delivery | None = None
        self.started_at = 0.0
        self.detached = False
        # The watching thread's context, so each send is in its batch's trace (tracing on).
        self._context = contextvars.copy_context()

    def run(self) -> None:
        self._context.run(self._send_all)

    def _send_all(self) -> None:
        sends = self.sends
        try:
            while not self.detached:
                delivery = sends.next()
                if delivery is None:
                    break
                with sends.lock:
                    self.current, self.started_at = delivery, time.monotonic()
                outcome = sends.send(delivery)
                with sends.lock:
                    self.current = None
                    if not self.detached:
                        sends.add(outcome)
                        continue
                self._record_alone(outcome)
        finally:
            self.finished.set()

    def stalled(self, after: float) -> Delivery | None:
        """The delivery this sender has been waiting on for `after` seconds, if any (lock held)."""
        if self.current is not None and time.monotonic() - self.started_at >= after:
            return self.current
        return None

    def _record_alone(self, outcome: Outcome) -> None:
        delivery = outcome.delivery
        try:
            alone = dataclasses.replace(self.sends.claim, deliveries=[delivery])
            deliveries_record(claim=alone, outcomes=[outcome], lease_ends=self.sends.lease_ends)
        finally:
            connection.close()  # this thread ends here: its database connection must not leak
            self.lane.let_go(delivery.endpoint_id)


def send_with_takeover(sends: Sends, lane: SlowLane) -> None:
    """Send the batch from sender threads, replacing any that stalls; returns when it is sent.

    Meanwhile this thread, which owns the claim's database connection, records what was sent
    and renews the lease (`Sends.keep_up`).
    """
    slow = settings.WEBHOOKS_SLOW_ATTEMPT_SECONDS
    sender = Sender(sends, lane)
    sender.start()
    try:
        while not sender.finished.wait(WATCH_INTERVAL):
            sends.keep_up()
            with sends.lock:
                stalled = sender.stalled(after=slow)
                if stalled is None:
                    continue
                sender.detached = True
                sends.hand_off(stalled)
                lane.hold(stalled.endpoint_id)
            sender = Sender(sends, lane)
            sender.start()
    except BaseException:
        sends.stop()  # nothing would record what the sender goes on to send
        raise
