"""A seconds-long smoke run of the CPU benchmark suite, so the benchmarks keep working (they are not timed here)."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))

pytestmark = pytest.mark.integration


def test_cpu_suite_smoke(capsys) -> None:
    import cpu_suite

    cpu_suite.main(smoke=True)
    printed = capsys.readouterr().out
    assert "zoofit_images_per_s" in printed and "ratio" in printed
