"""Weights shipped inside PyPI wheels: download without dependencies, verify sha256, extract one file."""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from zoofit.errors import ModelError

#: Extra arguments for ``pip download`` (e.g. ``--no-index --find-links DIR`` for a local wheelhouse).
PIP_ARGS_ENV = "ZOOFIT_PIP_ARGS"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@contextmanager
def wheel_member(requirement: str, member: str, sha256: str) -> Iterator[Path]:
    """Within: ``member`` of the wheel ``requirement`` (``package==version``), extracted into a temporary folder
    of this process's own (removed on leaving, so no other process ever reads or removes it).

    The wheel is fetched with ``pip download --no-deps`` (so a package's wrong dependency pins never
    install), and refused unless its sha256 equals ``sha256``.
    """
    with tempfile.TemporaryDirectory(prefix="zoofit-wheel-") as folder:
        wheel = _pip_download(requirement, Path(folder))
        actual = sha256_of(wheel)
        if actual != sha256.lower():
            raise ModelError(f"checksum mismatch for {wheel.name}: expected sha256 {sha256}, got {actual}; refusing it")
        with zipfile.ZipFile(wheel) as archive:
            if member not in archive.namelist():
                raise ModelError(f"{wheel.name} has no file '{member}'; check 'member' in the zoo file")
            extracted = Path(folder) / "member" / Path(member).name
            extracted.parent.mkdir()
            with archive.open(member) as source, extracted.open("wb") as target:
                shutil.copyfileobj(source, target, 1 << 20)
        wheel.unlink()  # the member alone stays on the disk while it is converted
        yield extracted


def _pip_download(requirement: str, folder: Path) -> Path:
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "--quiet",
        "--dest",
        str(folder),
        *shlex.split(os.environ.get(PIP_ARGS_ENV, "")),
        requirement,
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    wheels = sorted(folder.glob("*.whl"))
    if result.returncode != 0 or len(wheels) != 1:
        reason = (result.stderr.strip().splitlines() or ["no wheel was downloaded"])[-1]
        raise ModelError(f"cannot download {requirement} with pip: {reason}")
    return wheels[0]
