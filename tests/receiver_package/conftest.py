"""The Pythons the receiver package is tested on, and venvs that hold its wheel."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from .pythons import Python, installed_pythons, new_venv, pip_install, unavailable


@pytest.fixture(scope="session")
def pythons() -> list[Python]:
    return installed_pythons()


@pytest.fixture(params=["oldest", "newest"])
def python(request: pytest.FixtureRequest, pythons: list[Python]) -> Python:
    """The oldest supported Python (3.9, or the test is skipped/failed), then the newest found."""
    if not pythons or pythons[0].version != (3, 9):
        unavailable("Python 3.9, the oldest the receiver package supports, was not found")
    return pythons[0] if request.param == "oldest" else pythons[-1]


@pytest.fixture
def receiver_venv(python: Python, receiver_wheel: Path, tmp_path: Path) -> Callable[..., Path]:
    """make(extra=None): a new venv of `python` holding the installed wheel (with its extra's
    dependencies, resolved through the machine's package indexes); returns its interpreter."""

    def make(*, extra: str | None = None) -> Path:
        venv_python = new_venv(python, tmp_path / f"venv-{extra or 'bare'}")
        if extra is None:
            arguments = ["--no-index", "--no-deps", str(receiver_wheel)]
        else:
            arguments = ["--find-links", str(receiver_wheel.parent), f"hookline-receiver[{extra}]"]
        installed = pip_install(python, venv_python, *arguments)
        if installed.returncode != 0 and extra is not None:
            # Django comes from a package index, which a machine may not reach.
            unavailable(f"pip could not install {arguments[-1]}:\n{installed.stderr[-2000:]}")
        assert installed.returncode == 0, installed.stderr
        return venv_python

    return make
