"""Docker cannot run here, so the stack's shape is checked by reading the file."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import yaml

ROOT = Path(__file__).resolve().parent.parent


def load_services() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]


def test_compose_runs_postgres_redis_web_worker_and_beat():
    assert set(load_services()) == {"postgres", "redis", "web", "worker", "beat"}


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
        assert set(services[name]["depends_on"]) == {"postgres", "redis"}


def test_processes_are_the_documented_ones():
    services = load_services()
    assert "gunicorn config.wsgi" in services["web"]["command"]
    assert services["worker"]["command"][:4] == ["celery", "-A", "config", "worker"]
    assert services["beat"]["command"][:4] == ["celery", "-A", "config", "beat"]


def test_redis_is_configured_as_a_broker_that_keeps_messages():
    command = load_services()["redis"]["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    assert command[command.index("--maxmemory-policy") + 1] == "noeviction"
