"""Seconds-long smoke runs of the benchmark suites (the GPU one on the CPU), so the benchmarks keep working; they are
not timed here."""

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


def test_gpu_suite_smoke_runs_every_section_on_the_cpu(capsys) -> None:
    import gpu_suite

    gpu_suite.main(smoke=True, note=None)  # exits with an error where a section broke
    printed = capsys.readouterr().out
    for section in ("features", "fine_tuning", "zoo_ranking", "paper_run", "scaling"):
        assert f"{section}: " in printed
    assert "naive_seconds" in printed and "fixed_seconds_per_model" in printed


def test_distill_smoke_compares_the_ensemble_the_best_single_and_both_students(capsys) -> None:
    import distill

    figures = distill.main(smoke=True)
    assert figures["student"]["steps"] == 3 and figures["student"]["unlabelled_images"] == 0
    assert figures["student_unlabelled"]["unlabelled_images"] == 40 == min(40, figures["unused_training_images"])
    for name in ("ensemble", "best_single", "student", "student_unlabelled"):
        assert {"accuracy", "nll", "ece", "gflops_per_image", "wall_seconds", "predict_ms_per_image"} <= set(
            figures[name]
        )
    assert '"goal"' in capsys.readouterr().out
