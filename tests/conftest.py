from __future__ import annotations

import pytest
from django.conf import settings

from tests.receiver import Receiver
from tests.worker import CeleryWorker

pytest_plugins: list[str] = []


def pytest_report_header() -> list[str]:
    db = settings.DATABASES["default"]
    lines = [
        f"hookline: database {db['ENGINE'].rsplit('.', 1)[-1]}, broker {settings.CELERY_BROKER_URL}"
    ]
    if settings.SERVICES_MISSING:
        lines.append(
            "hookline: UNREACHABLE "
            + ", ".join(settings.SERVICES_MISSING)
            + ": tests marked 'services' are skipped"
        )
    return lines


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if not settings.SERVICES_MISSING:
        return
    skip = pytest.mark.skip(
        reason="needs PostgreSQL and Redis; unreachable: " + ", ".join(settings.SERVICES_MISSING)
    )
    for item in items:
        if "services" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def receiver():
    """A real HTTP receiver on 127.0.0.1 that records what arrives and answers as scripted."""
    with Receiver() as server:
        yield server


@pytest.fixture(scope="module")
def celery_worker_process(django_db_setup, django_db_blocker):
    """A real `celery -A config worker` process (with beat) on the real broker and test database.

    Module-scoped: it sweeps the shared test database, so it must not outlive the module that
    asked for it and race with in-process tests elsewhere.
    """
    with CeleryWorker() as worker:
        yield worker


@pytest.fixture
def worker(celery_worker_process, transactional_db):
    """A running worker, with a database whose commits the worker can see."""
    celery_worker_process.check_alive()
    return celery_worker_process
