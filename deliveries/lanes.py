"""The slow lane: a worker's side threads for endpoints that answer slowly or not at all.

A worker sends its batch one request after another on one keep-alive session, which is the
fastest way on a CPU. One endpoint that takes the whole timeout to answer would stall that loop
for everyone, so deliveries to endpoints marked slow go to a small thread pool instead, one
endpoint per thread at a time. A waiting thread costs no CPU; the main loop goes on.
"""

from __future__ import annotations

import contextvars
import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from django.db import close_old_connections, connection

logger = logging.getLogger(__name__)


class SlowLane:
    def __init__(self, threads: int) -> None:
        self._executor = ThreadPoolExecutor(threads, thread_name_prefix="hookline-slow-lane")
        self._lock = threading.Lock()
        self._busy: set[int] = set()

    def busy_endpoint_ids(self) -> frozenset[int]:
        """Endpoints this lane is sending to, or about to: the main loop claims none of theirs."""
        with self._lock:
            return frozenset(self._busy)

    def hold(self, endpoint_id: int) -> None:
        """Claim nothing more for this endpoint until `let_go`: a send to it is still waiting."""
        with self._lock:
            self._busy.add(endpoint_id)

    def let_go(self, endpoint_id: int) -> None:
        with self._lock:
            self._busy.discard(endpoint_id)

    def submit(self, endpoint_id: int, work: Callable[[], object]) -> None:
        """Run `work` (the sends to one endpoint, and their bookkeeping) on a side thread, in
        the caller's context (its trace's span, when tracing is on)."""
        with self._lock:
            self._busy.add(endpoint_id)
        self._executor.submit(contextvars.copy_context().run, self._run, endpoint_id, work)

    def _run(self, endpoint_id: int, work: Callable[[], object]) -> None:
        close_old_connections()
        try:
            work()
        except Exception:
            # Its deliveries stay leased and go again once the lease expires.
            logger.exception("Slow-lane sends to endpoint=%s failed", endpoint_id)
        finally:
            # A pooled thread may idle for long: it keeps no database connection meanwhile.
            connection.close()
            with self._lock:
                self._busy.discard(endpoint_id)


_lane: SlowLane | None = None
_lane_pid: int | None = None


def slow_lane() -> SlowLane:
    """This process's slow lane (a forked child gets its own)."""
    global _lane, _lane_pid
    if _lane is None or _lane_pid != os.getpid():
        _lane = SlowLane(settings.WEBHOOKS_SLOW_LANE_THREADS)
        _lane_pid = os.getpid()
    return _lane
