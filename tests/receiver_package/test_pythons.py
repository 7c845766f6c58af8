"""The receiver package's own tests (receiver/tests, unittest) pass on the oldest and the newest
Python, run against the installed wheel: alone, then with its `django` extra."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from .pythons import RECEIVER, Python, bare_env

# Neither PostgreSQL nor Redis counts here: CI runs these in its pass without services only.
pytestmark = pytest.mark.service_free

TESTS = RECEIVER / "tests"
DJANGO_TESTS = 9


def django_tests(output: str, outcome: str) -> int:
    """How many of the decorator's tests unittest's verbose output reports with that outcome."""
    line = re.compile(rf"^test_\w+ \(test_django\.VerifyWebhook[.\w]*\) \.\.\. {outcome}", re.M)
    return len(line.findall(output))


def run_receiver_tests(venv_python: Path, cwd: Path) -> subprocess.CompletedProcess:
    """unittest discovery in isolated mode (-I: neither the working folder nor PYTHONPATH is on
    the path), so `hookline_receiver` can only be the installed one; -B writes no bytecode into
    the repository."""
    return subprocess.run(
        [str(venv_python), "-I", "-B", "-m", "unittest", "discover", "-v"]
        + ["-s", str(TESTS), "-t", str(TESTS)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=bare_env(),
        timeout=300,
    )


def installed(venv_python: Path) -> dict:
    """What the venv's Python imports: the receiver's file, the distributions, Django's version."""
    probe = (
        "import json, importlib.metadata as m, hookline_receiver\n"
        "try:\n    import django; version = django.get_version()\n"
        "except ImportError:\n    version = None\n"
        "print(json.dumps({'file': hookline_receiver.__file__, 'django': version,\n"
        "    'distributions': sorted(d.metadata['Name'] for d in m.distributions())}))\n"
    )
    answer = subprocess.run(
        [str(venv_python), "-I", "-B", "-c", probe],
        capture_output=True,
        text=True,
        env=bare_env(),
        timeout=60,
        check=True,
    )
    return json.loads(answer.stdout)


def test_the_wheel_alone_passes_its_tests_with_nothing_else_installed(
    python: Python, receiver_venv, tmp_path
):
    venv_python = receiver_venv()

    found = installed(venv_python)
    result = run_receiver_tests(venv_python, tmp_path)

    assert found["distributions"] == ["hookline-receiver"]
    assert found["django"] is None
    assert found["file"].startswith(str(venv_python.parent.parent)), found
    output = result.stderr
    assert result.returncode == 0, output
    assert f"OK (skipped={DJANGO_TESTS})" in output, output
    assert django_tests(output, "skipped .Django is not installed") == DJANGO_TESTS, output
    print(f"{python.name}: {output.splitlines()[-3]}")


def test_with_the_django_extra_the_decorator_passes_its_tests_too(
    python: Python, receiver_venv, tmp_path
):
    venv_python = receiver_venv(extra="django")

    found = installed(venv_python)
    result = run_receiver_tests(venv_python, tmp_path)

    assert "Django" in found["distributions"]
    assert found["file"].startswith(str(venv_python.parent.parent)), found
    output = result.stderr
    assert result.returncode == 0, output
    assert output.rstrip().endswith("OK"), output  # no test skipped
    assert django_tests(output, "ok") == DJANGO_TESTS, output
    print(f"{python.name}, Django {found['django']}: {output.splitlines()[-3]}")
