"""What the estimators share: the zoo selection and the machine declared once, and clone-style copies; the
registries that describe themselves, read by the CLI's help."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from zoofit import Bench, RankConfig, Ranker, ZooFit
from zoofit.cli import app
from zoofit.data.sources import SOURCES
from zoofit.ensemble.greedy import SELECTIONS
from zoofit.errors import ParameterError
from zoofit.estimator import Machine, ZooSelection, clone
from zoofit.execute import EXECUTORS
from zoofit.export_formats import FORMATS
from zoofit.members import KINDS
from zoofit.rank.proxies import PROXIES
from zoofit.registry import Registry
from zoofit.sweep_config import PRESETS


def test_ranker_and_zoofit_take_one_selection_and_one_machine_or_their_settings_by_keyword() -> None:
    selection, machine = ZooSelection(models="a, b", exclude=["*vit*"]), Machine(device="cpu", precision="fp32")
    for estimator in (Ranker("demo", selection=selection, machine=machine), ZooFit("demo", selection=selection,
                      machine=machine)):  # fmt: skip
        assert (estimator.selection.models, estimator.selection.exclude) == (("a", "b"), ("*vit*",))
        assert estimator.machine == machine
    by_keyword = ZooFit("demo", machine=machine, models=["a", "b"], exclude="*vit*", precision="bf16")
    assert by_keyword.selection == selection and by_keyword.machine == Machine(device="cpu", precision="bf16")
    ranker = Ranker("demo", device="cpu", proxy="knn", k=3)  # the selection's, machine's, ranking's and proxy's
    assert ranker.machine.device == "cpu" and ranker.config.make_proxy().k == 3


def test_a_clone_is_a_new_estimator_with_the_parameters_given_and_the_original_untouched() -> None:
    fit = ZooFit("demo", sweep="quick", device="cpu", models=["a"], seed=3)
    fit.ranker_ = "fitted"  # what a fit learns is not a parameter: a clone starts without it
    copy = clone(fit, executor="ray", precision="fp32")
    assert type(copy) is ZooFit and copy is not fit and not hasattr(copy, "ranker_")
    assert (copy.executor, copy.machine, copy.seed) == ("ray", Machine(device="cpu", precision="fp32"), 3)
    assert (fit.executor, fit.machine.precision) == ("local", "auto")
    assert copy.get_params().keys() == fit.get_params().keys() >= {"zoo", "sweep", "selection", "machine"}
    assert fit.set_params(sweep="paper", licenses="mit") is fit and fit.ranker_ == "fitted"
    assert (fit.sweep, fit.selection.licenses) == ("paper", ("mit",))
    ranker = clone(Ranker("demo", proxy="logme"), config=RankConfig(proxy="knn"))
    assert ranker.config.proxy == "knn"
    bench = Bench("offline", fit, tasks=["digits"])
    assert clone(bench, audit=True).get_params() == {**bench.get_params(), "audit": True}


@pytest.mark.parametrize("make", [lambda: ZooFit("demo", devise="cpu"), lambda: Ranker("demo", devise="cpu")])
def test_a_parameter_that_no_one_takes_is_one_line(make) -> None:
    with pytest.raises(ParameterError, match="devise is (not a parameter of ZooFit|neither a ranking setting)"):
        make()


def test_an_entry_must_say_what_it_is() -> None:
    registry = Registry("colour")
    with pytest.raises(ValueError, match="colour 'red' has no help"):
        registry.add("red", "#f00")
    registry.add("red", "#f00", help="the colour of stop signs.", form="red[:SHADE]")
    assert registry.describe() == "red[:SHADE]: the colour of stop signs." and registry.forms() == ["red[:SHADE]"]


@pytest.mark.parametrize(
    ("command", "registry"),
    [
        (["run"], SOURCES),
        (["rank"], SOURCES),
        (["run"], PRESETS),
        (["bench"], PRESETS),
        (["run"], EXECUTORS),
        (["rank"], EXECUTORS),
        (["run"], SELECTIONS),
        (["bench"], SELECTIONS),
        (["run"], KINDS),
        (["bench"], KINDS),
        (["rank"], PROXIES),
        (["run"], PROXIES),
        (["export"], FORMATS),
    ],
)
def test_the_help_lists_every_entry_of_a_registry_with_its_form_and_help(command: list[str], registry) -> None:
    output = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "300"}).output
    flat = " ".join(output.replace("│", " ").split())
    for name in registry:
        about = registry.about(name)
        assert f"{about.form}: {about.help}" in flat
