"""The receiver's wheel holds one top-level package and requires nothing; Hookline's own wheel,
built from the repository's tracked files as a fresh clone has them, carries the same package."""

from __future__ import annotations

import email
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from .pythons import ROOT

# Neither PostgreSQL nor Redis counts here: CI runs these in its pass without services only.
pytestmark = pytest.mark.service_free


def top_level_names(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as archive:
        return {name.split("/", 1)[0] for name in archive.namelist()}


def metadata(wheel: Path) -> email.message.Message:
    with zipfile.ZipFile(wheel) as archive:
        [name] = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        return email.message_from_bytes(archive.read(name))


def test_the_receiver_wheel_holds_only_hookline_receiver(receiver_wheel):
    assert receiver_wheel.name.startswith("hookline_receiver-")
    assert receiver_wheel.name.endswith("-py3-none-any.whl")
    assert top_level_names(receiver_wheel) == {
        "hookline_receiver",
        receiver_wheel.name.removesuffix("-py3-none-any.whl") + ".dist-info",
    }
    with zipfile.ZipFile(receiver_wheel) as archive:
        packaged = {n for n in archive.namelist() if n.startswith("hookline_receiver/")}
    assert "hookline_receiver/py.typed" in packaged
    assert not any("tests" in name for name in packaged)


def test_the_receiver_wheel_requires_nothing_but_python_3_9_and_django_for_its_extra(
    receiver_wheel,
):
    fields = metadata(receiver_wheel)

    assert fields["Name"] == "hookline-receiver"
    assert fields["Requires-Python"] == ">=3.9"
    assert fields.get_all("Provides-Extra") == ["django"]
    requirements = fields.get_all("Requires-Dist")
    assert requirements == ['django>=4.2; extra == "django"']


def tracked_files() -> list[str]:
    """What a fresh clone holds."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True)
    names = [name.decode() for name in listed.stdout.split(b"\0") if name]
    return [name for name in names if (ROOT / name).is_file()]  # not deleted, uncommitted


def docker_copied_files() -> list[str]:
    """What the Dockerfile's COPY lines put in the image before `pip install .`."""
    copied = []
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY "):
            *sources, _destination = line.split()[1:]
            for source in sources:
                path = ROOT / source
                files = [path] if path.is_file() else [f for f in path.rglob("*") if f.is_file()]
                copied += [str(f.relative_to(ROOT)) for f in files if "__pycache__" not in f.parts]
    return copied


@pytest.mark.parametrize("files", [tracked_files, docker_copied_files], ids=["clone", "docker"])
def test_hooklines_wheel_carries_the_receiver_package(files, tmp_path):
    """What `pip install .` installs, from a fresh clone and in the Docker image: the package
    comes from receiver/, one copy for both."""
    tree = tmp_path / "tree"
    for name in files():
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, tree / name)
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(tmp_path / "d")]
        + [str(tree)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    [wheel] = (tmp_path / "d").glob("hookline-*.whl")

    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        receiver_signing = archive.read("hookline_receiver/signing.py")
    assert {"hookline_receiver/__init__.py", "hookline_receiver/django.py"} <= names
    assert "webhooks/signing.py" in names
    assert not any(name.startswith(("receiver/", "tests/")) for name in names)
    assert receiver_signing == (ROOT / "receiver" / "hookline_receiver" / "signing.py").read_bytes()
