"""The receiver's wheel holds one top-level package and requires nothing; Hookline's own wheel,
built from the repository's tracked files as a fresh clone has them, carries the same package."""

from __future__ import annotations

import email
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from .pythons import ROOT


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
    assert requirements == ['django>=3.2; extra == "django"']


def test_hooklines_wheel_from_a_fresh_clone_carries_the_receiver_package(tmp_path):
    """What `pip install .` installs: the package comes from receiver/, one copy for both."""
    tracked = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.split(b"\0")
    clone = tmp_path / "clone"
    for name in filter(None, tracked):
        source = ROOT / name.decode()
        if source.is_file():  # a file deleted in the work tree but not yet in git is skipped
            (clone / name.decode()).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, clone / name.decode())
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(tmp_path / "d")]
        + [str(clone)],
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
