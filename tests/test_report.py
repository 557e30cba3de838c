"""The report's charts: inline SVG with real axes, named members and readable values, nothing fetched."""

from __future__ import annotations

import re
from dataclasses import replace
from html import unescape
from xml.etree import ElementTree

from zoofit.report.charts import bar_chart, growth_chart, reliability_chart, scatter_chart
from zoofit.report.html import _overview
from zoofit.report.rows import result_rows
from zoofit.result import RunResult, SafeguardResult

SVG = "{http://www.w3.org/2000/svg}"


def _texts(svg: str) -> list[str]:
    root = ElementTree.fromstring(svg)  # well-formed on its own, as it sits in the page
    return ["".join(node.itertext()).strip() for node in root.iter(f"{SVG}text")]


def test_the_growth_curve_names_each_step_s_model_and_marks_the_kept_prefix() -> None:
    svg = growth_chart(["resnet", "vit", "resnet"], [0.5, 0.4, 0.45], [0.80, 0.85, 0.84])
    texts = _texts(svg)
    assert {"1  resnet", "2  vit", "3  resnet"} <= set(texts)  # members named on the axis
    assert "0.4000" in texts and "0.8500" in texts  # the kept step's values, written out
    assert any("first 2 steps" in t for t in texts)
    assert len([t for t in texts if re.fullmatch(r"0\.\d+", t)]) >= 4  # tick labels on the value axes


def test_charts_have_ticks_values_and_no_outside_references() -> None:
    reliability = reliability_chart([("ensemble", [0.3, 0.9], [0.25, 0.92], [10, 90])])
    assert {"0.0", "0.5", "1.0", "ensemble", "calibrated"} <= set(_texts(reliability))
    bars = bar_chart(["cat", "dog"], [("ensemble", [0.9, None]), ("best single", [0.8, 0.7])], "accuracy",
                     unit_range=True)  # fmt: skip
    assert {"cat", "dog", "0.900", "0.800", "0.700", "best single"} <= set(_texts(bars))
    scatter = scatter_chart([(0.7, 0.85, "resnet lr=0.01")], "kNN accuracy", "test accuracy")
    assert "resnet lr=0.01 (0.8500)" in _texts(scatter)
    for svg in (reliability, bars, scatter):
        assert not re.search(r"""(?:href|src)=["'](?!#)""", svg)  # only references inside the svg itself
    assert growth_chart(["a"], [0.5], [0.8]) == growth_chart(["a"], [0.5], [0.8])  # the same page every time


def test_an_ensemble_the_safeguard_replaced_is_named_for_what_was_delivered(run) -> None:
    result = RunResult.read(run)
    assert result_rows(result)[0][0] == f"{result.sweep.ensemble.selection} ensemble"
    fell_back = SafeguardResult(best="t", gain=-0.01, low=-0.05, high=0.02, level=0.9, fell_back=True)
    replaced = replace(result, ensemble=replace(result.ensemble, safeguard=fell_back))
    assert result_rows(replaced)[0][0] == "single best candidate (safeguard)"
    assert fell_back.describe() in unescape(_overview(replaced))  # the page says it, as the console does
    assert "safeguard" not in _overview(replace(result, ensemble=replace(result.ensemble, safeguard=None)))
