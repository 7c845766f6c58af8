from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.conf import settings
from hypothesis import settings as hypothesis_settings

from benchmarks.pgbouncer import PgBouncer
from deliveries import fair
from tests import pooling, rabbitmq
from tests.brokers import SUITE_BROKER, lose_messages, using_broker
from tests.receiver import Receiver
from tests.receiver_package.pythons import build_receiver_wheel
from tests.worker import CeleryWorker

pytest_plugins: list[str] = []

# CI draws the same property-test examples on every run, so a red build is the code's doing and
# replays exactly; elsewhere each run explores anew (HOOKLINE_FUZZ_EXAMPLES searches deeper).
hypothesis_settings.register_profile("ci", derandomize=True)
if os.environ.get("CI"):
    hypothesis_settings.load_profile("ci")


@pytest.fixture(scope="session")
def receiver_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """hookline-receiver's wheel, built once a session from receiver/."""
    return build_receiver_wheel(tmp_path_factory.mktemp("receiver-wheel"))


def pytest_configure(config: pytest.Config) -> None:
    if settings.DATABASE_POOL_URL:
        raise pytest.UsageError(
            "DATABASE_POOL_URL is set: the suite connects to DATABASE_URL, and its PgBouncer pass "
            "(HOOKLINE_TEST_PGBOUNCER=1) starts a PgBouncer of its own. Unset it."
        )


def pytest_sessionstart(session: pytest.Session) -> None:
    test_database = settings.DATABASES["default"].get("TEST", {}).get("NAME")
    if settings.DATABASES["default"]["ENGINE"].endswith("sqlite3") and test_database:
        # Django replaces a test database file an interrupted run left behind, but not its
        # write-ahead log, which SQLite would then replay into the new database.
        for suffix in ("-wal", "-shm"):
            Path(test_database + suffix).unlink(missing_ok=True)


def pytest_report_header() -> list[str]:
    db = settings.DATABASES["default"]
    lines = [
        f"hookline: database {db['ENGINE'].rsplit('.', 1)[-1]}, broker {settings.CELERY_BROKER_URL}"
    ]
    if pooling.ENABLED:
        lines.append(
            "hookline: the PgBouncer pass: connecting through a PgBouncer in transaction mode"
        )
    if settings.SERVICES_MISSING:
        lines.append(
            "hookline: UNREACHABLE "
            + ", ".join(settings.SERVICES_MISSING)
            + ": tests marked 'services' are skipped"
        )
    return lines


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    _select_for_the_pgbouncer_pass(config, items)
    if os.environ.get("HOOKLINE_CI_TWO_PASSES") == "1" and not settings.SERVICES_MISSING:
        # CI runs the pass without services side by side: what needs no service runs there.
        elsewhere = [item for item in items if "service_free" in item.keywords]
        config.hook.pytest_deselected(items=elsewhere)
        items[:] = [item for item in items if item not in elsewhere]
    if not settings.SERVICES_MISSING:
        return
    skip = pytest.mark.skip(
        reason="needs PostgreSQL and Redis; unreachable: " + ", ".join(settings.SERVICES_MISSING)
    )
    for item in items:
        if "services" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def rabbitmq_url():
    """A virtual host of this test session's own on the machine's RabbitMQ, deleted after it."""
    if settings.SERVICES_MISSING:
        pytest.skip("the suite runs without services: RabbitMQ is left out too")
    try:
        url = rabbitmq.session_vhost_add(settings.RABBITMQ_TEST_URL)
    except rabbitmq.Unavailable as problem:
        if os.environ.get("REQUIRE_SERVICES") == "1":
            pytest.fail(str(problem))
        pytest.skip(str(problem))
    yield url
    rabbitmq.session_vhost_delete()


@pytest.fixture(params=[SUITE_BROKER, "rabbitmq"])
def broker(request):
    """The broker's URL: the test runs on the suite's broker, then on RabbitMQ, in this process
    and in the workers it starts."""
    if request.param != "rabbitmq":
        yield settings.CELERY_BROKER_URL
        return
    url = request.getfixturevalue("rabbitmq_url")
    lose_messages(url)  # what an earlier test left
    with using_broker(url):
        yield url


def _select_for_the_pgbouncer_pass(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Outside the pass, tests that need its PgBouncer are left out; in it, all of them skip, or
    fail the run under REQUIRE_SERVICES=1, where it cannot run."""
    if not pooling.ENABLED:
        left_out = [item for item in items if "pgbouncer" in getattr(item, "fixturenames", ())]
        if left_out:
            config.hook.pytest_deselected(items=left_out)
            items[:] = [item for item in items if item not in left_out]
        return
    reason = pooling.unavailable()
    if not reason:
        return
    if os.environ.get("REQUIRE_SERVICES", "") == "1":
        raise pytest.UsageError(f"REQUIRE_SERVICES=1, but {reason}")
    for item in items:
        item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup):
    """The test database, created directly; in the PgBouncer pass, every connection goes through
    a PgBouncer from here on, until just before the database is dropped (tests.pooling)."""
    if not pooling.ENABLED or pooling.unavailable():
        yield
        return
    with pooling.through_pgbouncer():
        yield


@pytest.fixture
def pgbouncer(django_db_setup) -> PgBouncer:
    """The PgBouncer pass's PgBouncer; tests that take it run in that pass only."""
    bouncer = pooling.running()
    assert bouncer is not None, "only in the PgBouncer pass (HOOKLINE_TEST_PGBOUNCER=1)"
    return bouncer


@pytest.fixture(autouse=True)
def fresh_claim_rotation(monkeypatch):
    """Each test starts as a fresh worker process would: no contention seen, and the fair claim's
    round-robin at its start (the state is per process, and tests share one)."""
    monkeypatch.setattr(fair, "_rotation", fair._Rotation())


@pytest.fixture
def receiver():
    """A real HTTP receiver on 127.0.0.1 that records what arrives and answers as scripted."""
    with Receiver() as server:
        yield server


@pytest.fixture
def traced(monkeypatch):
    """Tracing on in this process, its spans kept in memory (tests.tracing)."""
    from tests.tracing import traced_in_memory  # OpenTelemetry only for the tests that trace

    return traced_in_memory(monkeypatch)


@pytest.fixture(scope="module")
def celery_worker_process(django_db_setup, django_db_blocker):
    """A real `celery -A config worker` process (with beat) on the real broker and test database.

    Module-scoped: it sweeps the shared test database, so it must not outlive the module that
    asked for it and race with in-process tests elsewhere.
    """
    with CeleryWorker() as worker:
        yield worker


@pytest.fixture
def start_worker(transactional_db):
    """Start real Celery workers with extra environment; all are stopped after the test."""
    started: list[CeleryWorker] = []

    def start(concurrency: int = 2, beat: bool = True, **env: str) -> CeleryWorker:
        worker = CeleryWorker(concurrency=concurrency, env=env, flush=not started, beat=beat)
        started.append(worker.__enter__())
        return worker

    yield start
    for worker in started:
        worker.__exit__(None, None, None)
        # Shown by pytest only when the test failed.
        (Path(settings.VAR_DIR) / "last-worker.log").write_text(worker.last_log)
        lines = [line for line in worker.last_log.splitlines() if " attempt delivery=" not in line]
        print("--- worker log, attempts left out ---\n" + "\n".join(lines[-150:]))


@pytest.fixture
def worker(celery_worker_process, transactional_db):
    """A running worker, with a database whose commits the worker can see."""
    celery_worker_process.check_alive()
    return celery_worker_process
