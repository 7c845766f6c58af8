"""A per-process watchdog that cuts sockets off at a wall-clock deadline.

Socket timeouts bound each read, not the whole response: a receiver that drips a byte of its
status line or headers every few seconds would hold a worker indefinitely. The watchdog shuts
such a socket down when its deadline passes, which ends the blocked read at once.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import os
import socket
import threading
import time

# An alarm may fire this much late: nothing next to a timeout of seconds.
WAKE_GRANULARITY = 0.05


class Alarm:
    __slots__ = ("deadline", "fired", "sock")

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self.sock: socket.socket | None = sock
        self.deadline, self.fired = deadline, False


class Watchdog:
    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._heap: list[tuple[float, int, Alarm]] = []
        self._order = itertools.count()
        self._pid: int | None = None

    def arm(self, sock: socket.socket, deadline: float) -> Alarm:
        """Shut `sock` down at `deadline` (monotonic seconds) unless disarmed first."""
        alarm = Alarm(sock, deadline)
        with self._condition:
            self._ensure_thread()
            # Deadlines mostly come in increasing order: wake the thread only for an earlier one.
            earliest = self._heap[0][0] if self._heap else None
            heapq.heappush(self._heap, (deadline, next(self._order), alarm))
            if earliest is None or deadline < earliest:
                self._condition.notify()
        return alarm

    def disarm(self, alarm: Alarm) -> None:
        alarm.sock = None  # the entry stays in the heap and is skipped when it comes due

    def _ensure_thread(self) -> None:
        # A thread does not survive fork(): each worker process starts its own.
        if self._pid != os.getpid():
            self._pid = os.getpid()
            self._heap.clear()
            threading.Thread(target=self._run, name="hookline-watchdog", daemon=True).start()

    def _run(self) -> None:
        while True:
            with self._condition:
                while not self._heap:
                    self._condition.wait()
                deadline, _, alarm = self._heap[0]
                delay = deadline - time.monotonic()
                if delay > 0:
                    # Disarmed alarms stay queued until due; waking for each of them, a thousand
                    # times a second under load, would take the GIL from the senders.
                    self._condition.wait(max(delay, WAKE_GRANULARITY))
                    continue
                heapq.heappop(self._heap)
            self._fire(alarm)

    @staticmethod
    def _fire(alarm: Alarm) -> None:
        sock = alarm.sock
        if sock is None:
            return
        alarm.fired = True
        with contextlib.suppress(OSError):  # already closed by its owner
            sock.shutdown(socket.SHUT_RDWR)


watchdog = Watchdog()
