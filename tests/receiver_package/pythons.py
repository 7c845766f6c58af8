"""The Pythons the receiver package is tested on, and throwaway virtual environments for them.

The package supports Python 3.9 and newer; its tests run on the oldest and the newest CPython 3
this machine has, found as `python3.N` on the PATH or among pyenv's versions. A venv made here
holds nothing but what a test installs into it (it is made without pip; the interpreter's own pip
installs into it from outside).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RECEIVER = ROOT / "receiver"
OLDEST_SUPPORTED = (3, 9)
NEWEST_LOOKED_FOR = (3, 20)
_VERSION = re.compile(r"^3\.(\d+)\.\d+$")


@dataclass(frozen=True)
class Python:
    executable: Path
    version: tuple[int, int]

    @property
    def name(self) -> str:
        return f"Python {self.version[0]}.{self.version[1]}"


def unavailable(reason: str) -> None:
    """Skip, or fail under REQUIRE_SERVICES=1 or in CI's two passes: CI runs on a machine that
    has these Pythons, so a missing one there is a broken machine, not a reason to test less."""
    if "1" in (os.environ.get("REQUIRE_SERVICES"), os.environ.get("HOOKLINE_CI_TWO_PASSES")):
        pytest.fail(f"CI needs these Pythons, but {reason}")
    pytest.skip(reason)


def installed_pythons() -> list[Python]:
    """Every CPython 3.9+ found, one per minor version, oldest first."""
    found: dict[tuple[int, int], Python] = {}
    for candidate in _candidates():
        version = _version_of(candidate)
        if version is not None and version >= OLDEST_SUPPORTED:
            found.setdefault(version, Python(candidate, version))
    return [found[version] for version in sorted(found)]


def _candidates() -> list[Path]:
    on_path = [
        shutil.which(f"python3.{minor}")
        for minor in range(OLDEST_SUPPORTED[1], NEWEST_LOOKED_FOR[1] + 1)
    ]
    candidates = [Path(path) for path in on_path if path]
    root = _pyenv_root()
    if root is not None:
        versions = sorted((root / "versions").glob("3.*"))
        candidates += [v / "bin" / "python3" for v in versions if _VERSION.match(v.name)]
    return candidates


def _pyenv_root() -> Path | None:
    if os.environ.get("PYENV_ROOT"):
        return Path(os.environ["PYENV_ROOT"])
    pyenv = shutil.which("pyenv")
    if pyenv is None:
        return None
    answer = subprocess.run([pyenv, "root"], capture_output=True, text=True, timeout=30)
    return Path(answer.stdout.strip()) if answer.returncode == 0 else None


def _version_of(executable: Path) -> tuple[int, int] | None:
    """None for what does not run (a pyenv shim for a version not selected fails, for one)."""
    try:
        answer = subprocess.run(
            [str(executable), "-c", "import sys; print(*sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except OSError:
        return None
    if answer.returncode != 0:
        return None
    major, minor = answer.stdout.split()
    return int(major), int(minor)


def new_venv(python: Python, where: Path) -> Path:
    """A venv without pip (nothing installed at all); returns its interpreter."""
    subprocess.run(
        [str(python.executable), "-m", "venv", "--without-pip", str(where)],
        check=True,
        timeout=120,
    )
    return where / "bin" / "python"


def pip_install(python: Python, venv_python: Path, *arguments: str) -> subprocess.CompletedProcess:
    """`pip install` into the venv with the base interpreter's own pip (`pip --python`), through
    the machine's pip configuration (its indexes, for the `django` extra)."""
    return subprocess.run(
        [str(python.executable), "-m", "pip", "--python", str(venv_python), "install", "--quiet"]
        + list(arguments),
        capture_output=True,
        text=True,
        timeout=600,
        env=bare_env(),
    )


def bare_env() -> dict[str, str]:
    """No DJANGO_SETTINGS_MODULE, PYTHONPATH or Hookline settings from the test run."""
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "PIP_CONFIG_FILE")
    kept = {name: os.environ[name] for name in keep if name in os.environ}
    pip_settings = {name: value for name, value in os.environ.items() if name.startswith("PIP_")}
    return kept | pip_settings | {"PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1"}


def build_receiver_wheel(work: Path) -> Path:
    """hookline-receiver's wheel, built by `pip wheel` from a copy of receiver/ (a build writes
    into its source folder)."""
    source = work / "receiver"
    shutil.copytree(
        RECEIVER, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__")
    )
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(work / "dist")]
        + [str(source)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    [wheel] = (work / "dist").glob("*.whl")
    return wheel
