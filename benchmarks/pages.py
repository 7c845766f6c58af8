"""Timing a page as a logged-in browser loads it, for the benchmarks of lists and history."""

from __future__ import annotations

import time

from django.conf import settings
from django.contrib.auth.models import User
from django.core.management.base import CommandError
from django.test import Client


def client_of(user: User) -> Client:
    """A client logged in as `user`, on a host this server answers to."""
    hosts = [host for host in settings.ALLOWED_HOSTS if host[:1] not in ("*", ".")]
    client = Client(HTTP_HOST=hosts[0] if hosts else "localhost")
    client.force_login(user)
    return client


def time_page(client: Client, path: str, runs: int = 7) -> list[float]:
    """Milliseconds each of `runs` loads of `path` took, after one that warms the caches, as a
    running server's would be. Raises CommandError if the page does not answer 200."""
    client.get(path)
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        response = client.get(path)
        timings.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            raise CommandError(f"{path} answered {response.status_code}")
    return timings
