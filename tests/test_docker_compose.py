"""Docker cannot run here, so the stack's shape is checked by reading the file."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import yaml

ROOT = Path(__file__).resolve().parent.parent


def load_services() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]


APPS = ("web", "worker", "beat")


def test_compose_runs_postgres_redis_web_worker_and_beat():
    services = load_services()
    assert set(services) == {"postgres", "redis", "migrate", "web", "worker", "beat", "pgbouncer"}
    assert [name for name in services if services[name].get("profiles")] == ["pgbouncer"]


def test_web_worker_and_beat_share_one_image_built_here():
    services = load_services()
    apps = [services[name] for name in ("web", "worker", "beat")]
    assert {app["image"] for app in apps} == {"hookline:latest"}
    assert all(app["build"] == "." for app in apps)
    assert (ROOT / "Dockerfile").exists()


def test_app_services_point_at_the_compose_postgres_and_redis():
    services = load_services()
    for name in ("web", "worker", "beat"):
        env = services[name]["environment"]
        assert urlsplit(env["DATABASE_URL"]).hostname == "postgres"
        assert urlsplit(env["CELERY_BROKER_URL"]).hostname == "redis"
        assert set(services[name]["depends_on"]) == {"postgres", "redis", "migrate", "pgbouncer"}


def test_an_optional_pgbouncer_in_transaction_mode_serves_the_apps_when_asked_for():
    services = load_services()
    pgbouncer = services["pgbouncer"]
    assert pgbouncer["profiles"] == ["pgbouncer"]
    assert pgbouncer["environment"]["POOL_MODE"] == "transaction"
    assert urlsplit(pgbouncer["environment"]["DATABASE_URL"]).hostname == "postgres"
    assert pgbouncer["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "pg_isready" in pgbouncer["healthcheck"]["test"]
    for name in APPS:
        # Through PgBouncer only when DATABASE_POOL_URL is set; started without it otherwise.
        assert services[name]["environment"]["DATABASE_POOL_URL"] == "${DATABASE_POOL_URL:-}"
        assert services[name]["depends_on"]["pgbouncer"] == {
            "condition": "service_healthy",
            "required": False,
        }
    # Migrations connect to PostgreSQL itself, and wait for it alone.
    assert set(services["migrate"]["depends_on"]) == {"postgres"}
    assert "manage.py migrate" in services["migrate"]["command"][-1]


def test_migrations_run_once_before_any_process_starts():
    services = load_services()
    migrate = services["migrate"]
    assert "python manage.py migrate --noinput" in migrate["command"][-1]
    assert migrate["restart"] == "no"
    for name in APPS:
        needs = services[name]["depends_on"]
        assert needs["migrate"]["condition"] == "service_completed_successfully"
        assert needs["postgres"]["condition"] == "service_healthy"
        assert needs["redis"]["condition"] == "service_healthy"
        assert "migrate" not in str(services[name]["command"])


def test_long_running_services_have_health_checks():
    services = load_services()
    for name in ("postgres", "redis", "web", "worker"):
        assert services[name]["healthcheck"]["test"], name
    assert "/healthz" in " ".join(services["web"]["healthcheck"]["test"])
    assert "inspect ping" in " ".join(services["worker"]["healthcheck"]["test"])


def test_web_health_check_host_is_allowed():
    hosts = load_services()["web"]["environment"]["ALLOWED_HOSTS"]
    assert "127.0.0.1" in hosts.split(",")


def test_settings_can_come_from_an_optional_env_file():
    for name in (*APPS, "migrate"):
        assert load_services()[name]["env_file"] == [{"path": ".env", "required": False}]


def test_a_stopping_worker_gets_longer_than_one_attempt_to_finish():
    grace = load_services()["worker"]["stop_grace_period"]
    assert grace.endswith("s")
    assert int(grace[:-1]) > 15  # WEBHOOKS_TIMEOUT's default


def test_processes_are_the_documented_ones():
    services = load_services()
    assert "gunicorn config.wsgi" in services["web"]["command"]
    assert services["worker"]["command"][:4] == ["celery", "-A", "config", "worker"]
    assert services["beat"]["command"][:4] == ["celery", "-A", "config", "beat"]


def test_redis_is_configured_as_a_broker_that_keeps_messages():
    command = load_services()["redis"]["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    assert command[command.index("--maxmemory-policy") + 1] == "noeviction"
    assert command[command.index("--appendfsync") + 1] in {"everysec", "always"}


def test_web_and_workers_share_one_metrics_directory_that_starts_empty():
    services = load_services()
    for name in ("web", "worker", "migrate"):
        directory = services[name]["environment"]["PROMETHEUS_MULTIPROC_DIR"]
        assert f"metrics:{directory}" in services[name]["volumes"]
    assert "metrics" in yaml.safe_load((ROOT / "docker-compose.yml").read_text())["volumes"]
    assert f"find {directory} -mindepth 1 -delete" in services["migrate"]["command"][-1]
    assert directory in (ROOT / "Dockerfile").read_text()  # created there, owned by the app user
