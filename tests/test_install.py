"""The install step's disk check: a disk too full for torch is refused in one line, before pip starts."""

import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "check-disk.sh"


def check_disk(venv: Path, need_gib: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), str(venv), need_gib], capture_output=True, text=True)


def test_a_disk_with_room_passes_silently(tmp_path):
    done = check_disk(tmp_path / "venv", "0.001")
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


def test_a_full_disk_is_one_line_naming_the_folder_and_the_fix(tmp_path):
    done = check_disk(tmp_path / "venv", "1000000")
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("error: ")
    assert str(tmp_path / "venv") in done.stderr and "VENV=" in done.stderr
    assert not (tmp_path / "venv").exists()  # nothing left behind
