"""The ``zoofit`` command: parses options, calls the library, prints. Nothing else lives here.

The library parts that load torch and timm (about 5 s) are imported inside the commands that use them, after
the data is read, so ``zoofit --help`` and a bad ``--data`` answer at once."""

from __future__ import annotations

import functools
import inspect
import logging
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import fields, replace
from json import dumps
from pathlib import Path
from typing import Annotated, Any, NoReturn, get_args, get_origin, get_type_hints

import numpy as np
import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.text import Text

try:  # typer 0.2x runs commands in its own copy of click, whose context the click package does not see
    from typer._click.globals import get_current_context
except ImportError:  # older typers run them in click
    from click import get_current_context

from zoofit.data import DataConfig, image_files, load_data, load_domains, parse_domains
from zoofit.data.skips import Skipped, skipped_line
from zoofit.data.sources import SOURCES
from zoofit.ensemble.greedy import SELECTIONS
from zoofit.errors import ParameterError, ZoofitError
from zoofit.estimator import Machine, ZooSelection
from zoofit.execute import EXECUTORS
from zoofit.export_formats import FORMATS
from zoofit.labelling.strategies import STRATEGIES, check_choice
from zoofit.layout import MANIFEST, RANKING, RANKING_CSV, REPORT, STUDENT, SUMMARY, TRIALS
from zoofit.members import KINDS
from zoofit.rank.config import RankConfig
from zoofit.rank.proxies import PROXIES
from zoofit.replay import RunConfig, SuiteSettings, other_versions
from zoofit.report import (
    RichProgress,
    html_report,
    prediction_rows,
    predictions_table,
    ranking_table,
    run_tables,
    suggestions_table,
    zoo_table,
)
from zoofit.result import RunResult
from zoofit.settings import option_fields
from zoofit.sweep_config import GROUPS, PRESETS, DistillSettings, default_preset, parse_duration, setting_names
from zoofit.sweep_config import preset as sweep_preset

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Turn a small labelled image dataset and a zoo of pre-trained models into the best classifier.",
)
zoo_app = typer.Typer(no_args_is_help=True, help="Inspect zoos (built-in presets or YAML files).")
app.add_typer(zoo_app, name="zoo")

# No markup: paths, class names and model ids are printed as they are, square brackets included.
console = Console(stderr=True, markup=False)
# Tables go to stdout; when it is a file or pipe, keep them wide enough not to truncate model names.
stdout = Console(width=None if sys.stdout.isatty() else 160, markup=False)


def _option(help: str, *names: str) -> typer.models.OptionInfo:
    return typer.Option(*names, help=help)


def _help(kind: type, setting: str) -> str:
    """The help of the config class ``kind``'s ``setting``, declared with it."""
    return next(f.metadata["help"] for f in fields(kind) if f.name == setting)


# Options shared by several commands, declared once; what a registry holds is said by its entries.
Data = Annotated[str, _option(f"The images, one of: {SOURCES.describe()}", "--data")]
ReplayedData = Annotated[
    str | None, _option(f"The images, one of: {SOURCES.describe()} (Default with --config: the file's.)", "--data")
]
ConfigFile = Annotated[
    Path | None,
    _option("A config.yaml that a run or bench wrote: replay it (the options given change its settings).", "--config"),
]
# the preset zoos' files, read by path: importing zoofit.zoo (zoofile.preset_names) would load torch
_ZOO_PRESETS = ", ".join(sorted(path.stem for path in (Path(__file__).parent / "zoo" / "presets").glob("*.yaml")))
ZooName = Annotated[
    str,
    _option(
        f"Comma-separated presets ({_ZOO_PRESETS}), YAML zoo files and timm:<name> or timm:<pattern> "
        "(shell wildcards over timm's pretrained tags, e.g. 'timm:vit_*dinov2*').",
        "--zoo",
    ),
]
Exclude = Annotated[str | None, _option(_help(ZooSelection, "exclude"))]
Licenses = Annotated[str | None, _option(_help(ZooSelection, "licenses"))]
Device = Annotated[str, _option(_help(Machine, "device"))]
Precision = Annotated[str, _option(_help(Machine, "precision"))]
Seed = Annotated[int, _option("Seed of the data draws and of every trial.")]
Preset = Annotated[str | None, _option(f"The sweep's preset, which the options below change: {PRESETS.describe()}")]
Workers = Annotated[
    int | None,
    _option("Trials trained at once, each in a worker process; 1: here (default: CPU cores up to 4; 4 on a GPU)."),
]
_CLUSTER = "Where units run (a model's features, a trial)"
#: Where units run: one group of options, handed to a command together as ``cluster`` (see :func:`_grouped`).
CLUSTER_OPTIONS = {
    "executor": (str, "local", EXECUTORS.describe()),
    "ray_address": (str | None, None, "Ray cluster to join (default $RAY_ADDRESS, else one started here by "
                    "'ray start', else a local Ray for the run)."),
    "unit_gpus": (float | None, None, "GPUs per unit on Ray (default 0.25 where the cluster has GPUs, else 0)."),
    "unit_cpus": (float | None, None, "CPUs per unit on Ray (default 1)."),
    "ray_timeout": (float | None, None, "Seconds to wait for the Ray cluster to answer, when joining it and when "
                    "it falls silent during a run (default 30)."),
}  # fmt: skip


@contextmanager
def command() -> Iterator[None]:
    """Run a command's body: log lines to stderr; a :class:`ZoofitError`, or an ``OSError`` (a path the machine
    refuses, a full disk), becomes one line and exit 2; Ctrl-C exits 130 quietly."""
    _setup_logging()
    try:
        yield
    except ParameterError as error:
        _fail(error.spelled(_option_name))
    except ZoofitError as error:
        _fail(str(error))
    except KeyboardInterrupt:
        console.print("interrupted; finished work is kept (rerun the same command to resume)")
        raise typer.Exit(130) from None
    except OSError as error:  # what the machine refused: a path that cannot be written, a full disk
        where = f"'{error.filename}': " if error.filename else ""
        _fail(f"{where}{error.strerror or error}; check the path, its permissions and the free disk space")


#: Library parameters that this CLI sets through an option of another name.
_OPTION_OF = {"source": "data", "address": "ray_address", "timeout": "ray_timeout"}


def _option_name(parameter: str) -> str:
    """How the running command spells a library ``parameter``: its option (``top_k`` -> ``--top-k``), or the
    parameter's own name where no option sets it."""
    context = get_current_context(silent=True)
    options = {param.name: param.opts[0] for param in context.command.params if param.opts} if context else {}
    return options.get(_OPTION_OF.get(parameter, parameter)) or options.get(parameter, parameter)


def _fail(message: str) -> NoReturn:
    console.print(Text.assemble(("error:", "bold red"), f" {message}"), highlight=False, soft_wrap=True)
    raise typer.Exit(2) from None


def _setup_logging() -> None:
    handler = RichHandler(console=console, show_time=False, show_path=False, markup=False)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger("zoofit")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False


def _check_writable(path: Path, option: str, *, folder: bool) -> None:
    """Refuse the path of ``option`` before any work where it cannot be written: a file where a folder is
    needed (or the reverse), or a path beneath a file."""
    existing = next(p for p in (path, *path.parents) if p.exists())
    if existing == path and path.is_dir() != folder:
        raise ZoofitError(f"{option} '{path}' is a {'file' if folder else 'folder'}; give another path")
    if existing != path and not existing.is_dir():
        raise ZoofitError(f"{option} '{path}' lies beneath '{existing}', which is a file; give another path")


def _executor(cluster: dict[str, Any], workers: int | None = None) -> Any:
    """The executor the ``cluster`` options name: ``"local"`` as it is (its workers follow the device), else
    built with the options given (a missing Ray is one line, before any image is read)."""
    name, address = cluster["executor"], cluster["ray_address"]
    given = {"address": address, "unit_gpus": cluster["unit_gpus"], "unit_cpus": cluster["unit_cpus"],
             "timeout": cluster["ray_timeout"]}  # fmt: skip
    given = {option: value for option, value in given.items() if value is not None}
    if name == "local" and not given:
        return name
    from zoofit.execute import named

    return named(name, workers, **given)


def _ids(models: str | None) -> list[str] | None:
    return [m.strip() for m in models.split(",") if m.strip()] if models else None


def _data_config(data: str, data_settings: dict[str, Any], machine: dict[str, Any]) -> DataConfig:
    """The data the options describe, checked before torch loads: a bad ``--data`` is one line at once."""
    config = DataConfig(data, **data_settings, seed=machine["seed"])
    config.validate()
    return config


def _shared(selection: dict[str, Any], machine: dict[str, Any]) -> dict[str, Any]:
    """The ``selection`` and ``machine`` options as :class:`~zoofit.Ranker` and :class:`~zoofit.ZooFit` take them
    (the seed goes to the data and the trials)."""
    where = {name: value for name, value in machine.items() if name != "seed"}
    return {"selection": ZooSelection(**_settings(ZooSelection, selection)), "machine": Machine(**where)}


def _grouped(target: str, options: dict[str, tuple[Any, Any]]) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """A command with the ``options`` (name -> its annotated type and default) after its own parameters, handed to
    it together as the dict ``target``: one declaration for a group that several commands share."""

    def decorate(command: Callable[..., None]) -> Callable[..., None]:
        own = [p for p in inspect.signature(command, eval_str=True).parameters.values() if p.name != target]
        extra = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=kind)
                 for name, (kind, default) in options.items()]  # fmt: skip

        @functools.wraps(command)
        def with_group(**values: Any) -> None:
            group = {name: values.pop(name) for name in options}
            command(**values, **{target: group})

        with_group.__signature__ = inspect.Signature([*own, *extra])  # type: ignore[attr-defined]
        return with_group

    return decorate


#: Settings that name an entry of a registry: their option's help lists the entries with theirs.
_NAMED_BY = {registry.parameter: registry for registry in (PROXIES, SELECTIONS, KINDS)}


def _settings_options(
    kind: type, panel: str | None, *, changes: bool = False, skip: tuple[str, ...] = (), note: str = ""
) -> dict[str, tuple[Any, Any]]:
    """One option per setting of the config class ``kind`` (its name, type and help from the field; a tuple is
    given comma-separated, and :func:`_settings` reads it within the command, so that a bad one is one line),
    under the help's ``panel``, the help followed by ``note`` (``{default}``: the setting's default). Where
    ``changes``, every default is None: an option changes a preset's value."""
    hints = get_type_hints(kind)
    return {
        name: (
            Annotated[
                _option_type(hints[name], f.metadata),
                _setting_option(name, hints[name], f.metadata, panel, note.format(default=f.default)),
            ],
            None if changes else f.default,
        )
        for name, f in option_fields(kind)
        if name not in skip
    }


def _option_type(kind: Any, metadata: Any) -> Any:
    """The type an option of a setting of type ``kind`` takes: text for a tuple (comma-separated, or None) or a
    setting that parses its text (``metadata["parse"]``), else ``kind`` or None."""
    tuples = get_origin(kind) is tuple or any(get_origin(part) is tuple for part in get_args(kind))
    return str | None if tuples or metadata["parse"] else (kind | None if type(None) not in get_args(kind) else kind)


def _setting_option(name: str, kind: Any, metadata: Any, panel: str | None, note: str = "") -> typer.models.OptionInfo:
    flag = "--" + name.replace("_", "-")
    decls = f"{flag}/--no-{flag[2:]}" if kind is bool else flag
    entries = _NAMED_BY[name].describe() if name in _NAMED_BY else ""
    return typer.Option(decls, help=" ".join(filter(None, (metadata["help"], entries, note))), rich_help_panel=panel)


def _proxy_options(panel: str) -> dict[str, tuple[Any, Any]]:
    """One option per setting of each registered proxy, declared on the proxy (``None``: the proxy's default)."""
    options: dict[str, tuple[Any, Any]] = {}
    for name, kind in PROXIES.items():
        options.update(_settings_options(kind, panel, changes=True, note=f"(proxy {name}; default {{default}})"))
    return options


def _rank_config(options: dict[str, Any]) -> RankConfig:
    """The ranking the ``options`` describe: :class:`RankConfig`'s settings, and the proxy's own that are given."""
    own = {name for name, _ in option_fields(RankConfig)}
    config = RankConfig(**_settings(RankConfig, {name: value for name, value in options.items() if name in own}))
    return config.override(**{name: value for name, value in options.items() if name not in own})


def _settings(kind: type, options: dict[str, Any]) -> dict[str, Any]:
    """The settings of the config class ``kind`` that the ``options`` give, as it takes them (other options are
    left out)."""
    hints = get_type_hints(kind)
    parsers = {f.name: f.metadata.get("parse") for f in fields(kind)}
    return {name: _parsed(name, hints[name], value, parsers[name]) for name, value in options.items() if name in hints}


def _sweep_settings(options: dict[str, Any]) -> dict[str, Any]:
    """The sweep's settings that the ``options`` give, each as its group takes it."""
    return {name: value for kind, _ in GROUPS.values() for name, value in _settings(kind, options).items()}


def _given() -> set[str]:
    """The parameters of the running command that its command line (or the environment) gave, by name."""
    context = get_current_context()
    sources = {name: context.get_parameter_source(name) for name in context.params}
    return {name for name, source in sources.items() if source is not None and "DEFAULT" not in source.name}


def _parsed(name: str, kind: Any, value: Any, parse: Callable[[str], Any] | None = None) -> Any:
    """An option's ``value`` as the setting ``name`` of type ``kind`` takes it (a tuple from comma-separated text,
    the setting's own ``parse`` where it has one)."""
    if value is not None and parse is not None:
        try:
            return parse(value)
        except ValueError as error:
            raise ParameterError.of(name, str(error)) from None
    if value is None or get_origin(kind) is not tuple:
        return value
    item = get_args(kind)[0]
    try:
        values = tuple(item(part.strip()) for part in value.split(",") if part.strip())
    except ValueError:
        values = ()
    if not values:
        raise ParameterError.of(name, f"'{value}' is not a comma-separated list of {item.__name__} values")
    return values


#: Which of the zoo's models, and where and how they compute: two groups of options that rank, run and bench share.
_with_selection_options = _grouped("selection", _settings_options(ZooSelection, None))
_with_machine_options = _grouped("machine", {**_settings_options(Machine, None), "seed": (Seed, 0)})
_with_data_options = _grouped("data_settings", _settings_options(DataConfig, "The data"))
_with_rank_options = _grouped(
    "rank_settings", {**_settings_options(RankConfig, "The ranking"), **_proxy_options("The ranking")}
)
#: run and bench: the sweep's --image-size sizes the ranking too
_with_method_rank_options = _grouped(
    "rank_settings",
    {**_settings_options(RankConfig, "The ranking", skip=("image_size",)), **_proxy_options("The ranking")},
)
#: run and bench: one panel per group of the sweep's settings, each option changing the preset's value
_with_sweep_options = _grouped(
    "sweep_changes",
    {
        name: option
        for kind, title in GROUPS.values()
        for name, option in _settings_options(kind, f"{title} (each changes the preset's value)", changes=True).items()
    },
)
_CLUSTER = "Where units run (a model's features, a trial)"
_with_cluster_options = _grouped(
    "cluster",
    {name: (Annotated[kind, typer.Option(help=help, rich_help_panel=_CLUSTER)], default)
     for name, (kind, default, help) in CLUSTER_OPTIONS.items()},
)  # fmt: skip


@app.command()
@_with_cluster_options
@_with_data_options
@_with_rank_options
@_with_machine_options
@_with_selection_options
def rank(
    data: Data,
    zoo: ZooName = "demo",
    out: Annotated[Path, _option("Folder for ranking.json and ranking.csv.")] = Path("runs/rank"),
    *,
    selection: dict[str, Any],
    machine: dict[str, Any],
    data_settings: dict[str, Any],
    rank_settings: dict[str, Any],
    cluster: dict[str, Any],
) -> None:
    """Rank every model of a zoo by a proxy score of its frozen features (default: leave-one-out kNN accuracy)."""
    with command():
        start = time.perf_counter()
        _check_writable(out, "--out", folder=True)
        config = _data_config(data, data_settings, machine)
        from zoofit.rank import Ranker
        from zoofit.store import RunStore

        ranker = Ranker(
            zoo, _rank_config(rank_settings), **_shared(selection, machine),
            executor=_executor(cluster),
        )  # fmt: skip
        ranker.check()  # and every other setting before any image is read
        with RichProgress(console) as progress, RunStore(out).writer():
            splits = load_data(config, progress=progress)
            console.print(f"data: {splits.describe()} (ranking on {len(splits.ranking_set)} images)")
            _print_skipped(splits.skipped)
            ranker.fit(splits, progress=progress)
            ranker.save(out)
        stdout.print(ranking_table(ranker.ranking_, ranker.proxy_))
        skipped = f", {len(ranker.skipped_)} skipped" if ranker.skipped_ else ""
        console.print(f"wrote {out}/{RANKING} and {RANKING_CSV} in {time.perf_counter() - start:.1f} s{skipped}")


@app.command()
@_with_cluster_options
@_with_data_options
@_with_method_rank_options
@_with_sweep_options
@_with_machine_options
@_with_selection_options
def run(
    data: ReplayedData = None,
    zoo: ZooName = "demo",
    out: Annotated[Path, _option("Run folder (rerunning into it resumes and reuses finished work).")] = Path(
        "runs/run"
    ),
    preset: Preset = None,
    workers: Workers = None,
    shift_data: Annotated[
        list[str] | None,
        _option(
            "NAME=DATA: also evaluate on this shifted domain (any --data form; its test split), by class name. "
            "Repeatable."
        ),
    ] = None,
    config: ConfigFile = None,
    *,
    selection: dict[str, Any],
    machine: dict[str, Any],
    data_settings: dict[str, Any],
    rank_settings: dict[str, Any],
    sweep_changes: dict[str, Any],
    cluster: dict[str, Any],
) -> None:
    """Rank the zoo, fine-tune the best models, ensemble them greedily, evaluate on the test split and under shift.
    Every setting goes into the run folder's config.yaml, which --config replays."""
    with command():
        start = time.perf_counter()
        _check_writable(out, "--out", folder=True)
        values = {"source": data, "shift_data": parse_domains(shift_data or []), **_settings(DataConfig, data_settings)}
        values.update(_method_values(zoo, workers, selection, machine, rank_settings, sweep_changes, cluster))
        settings = _replayed(config, preset, values, check=functools.partial(_check_run, config))
        from zoofit.store import RunStore, write_text

        fit = _method(settings, machine, cluster)
        fit.check()  # and every other setting before any image is read
        RunStore(out).check_writer()
        with RichProgress(console) as progress:
            splits = load_data(settings.data, progress=progress)
            console.print(f"data: {splits.describe()}")
            _print_skipped(splits.skipped)
            domains = load_domains(settings.shift_data, splits.class_names, max_side=settings.data.max_side,
                                   progress=progress)  # fmt: skip
            _print_skipped([skip for domain in domains.values() for skip in domain.skipped])
            fit.fit(splits, out, data=settings.data, domains=domains, progress=progress, started=start)
        stdout.print(ranking_table(fit.ranker_.ranking_, fit.ranker_.proxy_))
        stdout.print(run_tables(fit.result_))
        if (safeguard := fit.result_.ensemble.safeguard) is not None:
            console.print(safeguard.describe(), highlight=False, soft_wrap=True)
        write_text(out / REPORT, html_report(out))
        units = fit.result_.units
        if failed := fit.result_.failed_trials:
            console.print(
                f"{len(failed)} candidates failed (recorded in {TRIALS} and {SUMMARY}; rerun to retry them): "
                + "; ".join(f"{f.model} ({f.kind} {f.settings.label()}): {f.reason}" for f in failed)
            )
        console.print(
            f"wrote {out}/{_written(fit.result_)} in {time.perf_counter() - start:.1f} s "
            f"({units.computed} units computed, {units.reused} reused)"
        )


def _written(result: RunResult) -> str:
    """The files a run wrote into its folder, as its last line names them."""
    return ", ".join([SUMMARY, TRIALS, MANIFEST, *[STUDENT] * (result.student is not None), REPORT])


def _print_skipped(skipped: Sequence[Skipped]) -> None:
    """One line of what the data's reading left out, where anything was."""
    if line := skipped_line(skipped):
        console.print(line, highlight=False, soft_wrap=True)


def _method_values(
    zoo: str,
    workers: int | None,
    selection: dict[str, Any],
    machine: dict[str, Any],
    rank_settings: dict[str, Any],
    sweep_changes: dict[str, Any],
    cluster: dict[str, Any],
) -> dict[str, Any]:
    """The settings of the method that ``run``'s options (and ``bench``'s, the same) give, by their names in a
    :class:`RunConfig` (a proxy's own settings by theirs)."""
    return {
        "zoo": zoo, "workers": workers, **{name: _ids(value) for name, value in selection.items()},
        "seed": machine["seed"], "device": machine["device"], "precision": machine["precision"],
        "executor": cluster["executor"], **rank_settings, **_settings(RankConfig, rank_settings),
        **_sweep_settings(sweep_changes),
    }  # fmt: skip


#: The help of predict's and export's --student.
_STUDENT_HELP = "{what} with the run's distilled student (zoofit distill) instead of its ensemble."

#: Options whose setting has another name in a :class:`RunConfig`.
_SETTING_OF = {"data": "source"}


def _check_run(file: Path | None, settings: RunConfig) -> None:
    """Refuse a run's ``settings`` without data, or those of a bench's config ``file``; check the data (no torch)."""
    if settings.suite is not None:
        raise ZoofitError(f"config file '{file}' is a bench's; replay it with 'zoofit bench --config'")
    if settings.data is None or not settings.data.source:
        raise ZoofitError("give --data (or --config with the config.yaml of a run)")
    settings.data.validate()


def _replayed(
    file: Path | None, preset: str | None, values: dict[str, Any], check: Callable[[RunConfig], None]
) -> RunConfig:
    """The settings of a run (or bench): those of the config ``file`` where given, changed by the options the
    command line gave; else the options' values, the sweep's being the ``preset``'s (the device's) changed by the
    sweep options given. ``check`` sees the settings before the device is looked at (torch loads then)."""
    given = {_SETTING_OF.get(name, name) for name in _given()}
    sweep = set(setting_names())
    base = RunConfig.read(file) if file is not None else RunConfig()
    if file is not None and (other := other_versions(base.versions)):
        logging.getLogger("zoofit").info("'%s' was written with %s: the figures may differ from its run's", file, other)
    changes = {name: value for name, value in values.items() if name in given or (file is None and name not in sweep)}
    config = base.changed(**{name: value for name, value in changes.items() if name not in sweep})
    check(config)
    if preset is not None or file is None:
        from zoofit.device import resolve_device

        config = replace(
            config, sweep=sweep_preset(preset or default_preset(resolve_device(config.device).type == "cuda"))
        )
    return config.changed(**{name: value for name, value in changes.items() if name in sweep})


def _check_bench(file: Path | None, settings: RunConfig) -> None:
    """Refuse the settings of a run's config ``file`` for a bench."""
    if file is not None and settings.suite is None:
        raise ZoofitError(f"config file '{file}' is a run's; replay it with 'zoofit run --config'")


def _bench_settings(file: Path | None, settings: RunConfig, options: dict[str, Any]) -> SuiteSettings:
    """A bench's own settings: those of the config ``file`` (``settings``) changed by the ``options`` given, or
    the options' values."""
    given = _given()
    changed = {name: value for name, value in options.items() if name in given or file is None}
    suite = replace(settings.suite or SuiteSettings(""), **changed)
    if not suite.suite:
        raise ZoofitError("give --suite (or --config with the config.yaml of a bench)")
    return suite


def _method(settings: RunConfig, machine: dict[str, Any], cluster: dict[str, Any]) -> Any:
    """The :class:`ZooFit` of the ``settings`` (the cache and the Ray cluster's address, resources and timeout are
    the ``machine``'s and ``cluster``'s options: they are no setting of a run)."""
    from zoofit.pipeline import ZooFit

    workers = settings.workers
    chosen = ZooSelection(settings.models, settings.exclude, settings.licenses)
    where = Machine(settings.device, settings.precision, machine["cache_dir"])
    return ZooFit(
        settings.zoo, sweep=settings.sweep, ranking=settings.ranking, selection=chosen, machine=where,
        seed=settings.seed, workers=workers, executor=_executor({**cluster, "executor": settings.executor}, workers),
    )  # fmt: skip


@app.command()
@_with_cluster_options
@_with_method_rank_options
@_with_sweep_options
@_with_machine_options
@_with_selection_options
def bench(
    suite: Annotated[
        str | None,
        _option(
            "A built-in suite (offline, vtab-1k) or a suite YAML file (id, data, group, protocol per task); "
            "with --config, default the file's."
        ),
    ] = None,
    zoo: ZooName = "demo",
    out: Annotated[
        Path, _option("Bench folder: a run folder per task, bench.json/.csv/.html (rerunning resumes).")
    ] = Path("runs/bench"),
    tasks: Annotated[str | None, _option("Comma-separated task ids of the suite to run (default: all).")] = None,
    test_images: Annotated[
        int | None, _option("Test images per task at most (a seeded draw), for a quick look.")
    ] = None,
    audit: Annotated[
        bool, _option("Also fine-tune every zoo model on every task and measure each ranking proxy (tau, regret).")
    ] = False,
    preset: Preset = None,
    workers: Workers = None,
    config: ConfigFile = None,
    *,
    selection: dict[str, Any],
    machine: dict[str, Any],
    rank_settings: dict[str, Any],
    sweep_changes: dict[str, Any],
    cluster: dict[str, Any],
) -> None:
    """Run the whole method on every task of a suite (each task a run folder in OUT/<task>), and write one table of
    the ensemble against its baselines (per task, per group, mean): bench.json, bench.csv, bench.html. Every
    setting goes into OUT/config.yaml, which --config replays."""
    with command():
        start = time.perf_counter()
        _check_writable(out, "--out", folder=True)
        values = _method_values(zoo, workers, selection, machine, rank_settings, sweep_changes, cluster)
        settings = _replayed(config, preset, values, check=functools.partial(_check_bench, config))
        own = {"suite": suite, "tasks": _ids(tasks), "test_images": test_images, "audit": audit}
        suite_settings = _bench_settings(config, settings, own)
        from zoofit.bench import load_suite

        load_suite(suite_settings.suite).select(suite_settings.tasks)  # a bad suite or task is one line, at once
        fit = _method(settings, machine, cluster)
        from zoofit.bench import Bench
        from zoofit.store import RunStore

        runner = Bench(suite_settings.suite, fit, tasks=suite_settings.tasks, test_images=suite_settings.test_images,
                       audit=suite_settings.audit)  # fmt: skip
        runner.check()
        RunStore(out).check_writer()
        with RichProgress(console) as progress:
            runner.fit(out, progress=progress)
        _report_bench(runner.result_, out, start)


def _report_bench(result: Any, out: Path, start: float) -> None:
    """Write each done task's report.html and the bench's bench.html, and print the bench's tables."""
    from zoofit.bench import BENCH_HTML
    from zoofit.report.bench import bench_html, bench_tables
    from zoofit.store import write_text

    for task in result.tasks:
        if task.status == "done":
            write_text(out / task.run / REPORT, html_report(out / task.run))
    write_text(out / BENCH_HTML, bench_html(out))
    stdout.print(bench_tables(result))
    failed = sum(task.status == "failed" for task in result.tasks)
    console.print(
        f"wrote {out}/bench.json, bench.csv, {BENCH_HTML} and a run folder per task in "
        f"{time.perf_counter() - start:.1f} s ({len(result.tasks) - failed} tasks done, {failed} failed)"
    )


@app.command()
def predict(
    images: Annotated[list[Path], typer.Argument(help="Image files, or folders of them, to classify.")],
    run_dir: Annotated[Path, _option("Folder of a finished 'zoofit run'.", "--run")],
    top: Annotated[int, _option("Show this many classes per image, most probable first.", "--classes")] = 3,
    output: Annotated[Path | None, _option("Also write the predictions to this .csv or .json file.")] = None,
    student: Annotated[bool, _option(_STUDENT_HELP.format(what="Classify"))] = False,
    device: Device = "auto",
    precision: Precision = "auto",
) -> None:
    """Classify images with a finished run's ensemble, or its distilled student (no zoo or data needed)."""
    from zoofit.ensemble import EnsembleClassifier
    from zoofit.store import write_csv, write_json

    with command():
        if top < 1:
            raise ZoofitError(f"--classes must be at least 1, not {top}")
        if output is not None and output.suffix.lower() not in (".csv", ".json"):
            raise ZoofitError(f"--output '{output}' must end in .csv or .json")
        if output is not None:  # checked before predicting, so that no prediction is lost
            _check_writable(output, "--output", folder=False)
        files = image_files(images)
        classifier = EnsembleClassifier.load(run_dir, student=student, device=device, precision=precision)
        who = (
            f"student {classifier.members[0].model.spec.id}"
            if student
            else f"ensemble of {len(classifier.members)} members"
        )
        console.print(f"{who}, {classifier.gflops:.2f} GFLOPs per image")
        with RichProgress(console) as progress:
            probs = classifier.predict_proba(files, progress=progress, skip_unreadable=True)
        readable = ~np.isnan(probs).any(axis=1)  # the others were skipped with a warning naming them
        if not readable.any():
            raise ZoofitError(f"none of the {len(files)} images could be read (see the warnings)")
        if not readable.all():
            console.print(f"{(~readable).sum()} of {len(files)} images skipped: they could not be read")
        kept = [file for file, ok in zip(files, readable, strict=True) if ok]
        rows = prediction_rows(kept, probs[readable], classifier.class_names, top)
        stdout.print(predictions_table(rows))
        if output is not None:
            (write_json if output.suffix.lower() == ".json" else write_csv)(output, rows)
            console.print(f"wrote {output}")


@app.command()
def suggest(
    run_dir: Annotated[Path, _option("Folder of a finished 'zoofit run'.", "--run")],
    pool: Annotated[str, _option("Unlabelled images: a folder (its labels, if any, ignored), or any --data form.")],
    count: Annotated[int, _option("How many images to suggest.")],
    out: Annotated[Path, _option("The .csv to write: path,label (empty, to fill in),predicted,probability,score,why.")],
    strategy: Annotated[str, _option(f"How to choose: {STRATEGIES.describe()}")] = (STRATEGIES.names()[0]),
    near_duplicate: Annotated[
        float, _option("Skip an image this cosine-similar to a labelled or an already suggested one (0-1].")
    ] = 0.98,
    seed: Annotated[int, _option("Seed of the random strategy.")] = 0,
    device: Device = "auto",
    precision: Precision = "auto",
) -> None:
    """Suggest the unlabelled images worth labelling next, chosen with a finished run's ensemble; write them to a
    CSV to label (then add them to the data and run 'zoofit run' again)."""
    with command():
        check_choice(count, strategy, near_duplicate)  # before torch loads
        if out.suffix.lower() != ".csv":
            raise ParameterError.of("out", f"'{out}' must end in .csv")
        _check_writable(out, "--out", folder=False)
        from zoofit.labelling import CSV_COLUMNS
        from zoofit.labelling import suggest as suggest_images
        from zoofit.store import write_csv

        with RichProgress(console) as progress:
            chosen = suggest_images(run_dir, pool, count, strategy=strategy, near_duplicate=near_duplicate, seed=seed,
                            device=device, precision=precision, progress=progress)  # fmt: skip
        stdout.print(suggestions_table(chosen.rows))  # the unreadable images were named as they were read
        write_csv(out, chosen.csv_rows(out.parent), columns=CSV_COLUMNS)
        console.print(chosen.describe())
        console.print(f"wrote {out}")


@app.command()
def evaluate(
    run_dir: Annotated[Path, _option("Folder of a finished 'zoofit run'.", "--run")],
    data: Annotated[str, _option("Labelled images to evaluate on (any --data form; its test split, else all).")],
    output: Annotated[Path | None, _option("Also write the result to this .json file.")] = None,
    device: Device = "auto",
    precision: Precision = "auto",
) -> None:
    """Evaluate a finished run's ensemble and best single trial on other labelled data (a shifted domain), its
    classes matched by name: accuracy, NLL, ECE and per-class accuracy. No zoo or training data needed."""
    from zoofit.report import domain_tables

    with command():
        if output is not None and output.suffix.lower() != ".json":
            raise ZoofitError(f"--output '{output}' must end in .json")
        if output is not None:
            _check_writable(output, "--output", folder=False)
        DataConfig(data).validate()  # before torch loads
        from zoofit.robustness import evaluate_run

        with RichProgress(console) as progress:
            result = evaluate_run(run_dir, data, device=device, precision=precision, progress=progress)
        _print_skipped(result.skipped)
        stdout.print(domain_tables(data, result))
        if output is not None:
            result.write(output)
            console.print(f"wrote {output}")


@app.command()
@_with_cluster_options
def distill(
    run_dir: Annotated[Path, _option("Folder of a finished 'zoofit run'.", "--run")],
    student: Annotated[str | None, _option(_help(DistillSettings, "student"))] = None,
    unlabelled: Annotated[str | None, _option(_help(DistillSettings, "unlabelled"))] = None,
    distill_steps: Annotated[
        int | None, _option("Training steps of the student (default: the run's --distill-steps).", "--steps")
    ] = None,
    time_limit: Annotated[
        str | None, _option("Refuse the student where it would not be done within this time (90s, 20m, 2h).")
    ] = None,
    device: Annotated[str | None, _option(_help(Machine, "device") + " (Default: the run's.)")] = None,
    precision: Annotated[str | None, _option(_help(Machine, "precision") + " (Default: the run's.)")] = None,
    *,
    cluster: dict[str, Any],
) -> None:
    """Distil a finished run's ensemble into one student network (function matching on the run's train +
    validation images and any unlabelled ones), stored in the run folder: predict and export take it with
    --student. Rerunning it trains nothing."""
    with command():
        limit = _parsed("time_limit", float, time_limit, parse_duration)
        from zoofit.distillation import distill as distil_run
        from zoofit.store import write_text

        with RichProgress(console) as progress:
            result = distil_run(
                run_dir, student=student, unlabelled=unlabelled, steps=distill_steps, time_limit=limit,
                device=device, precision=precision, executor=_executor(cluster), progress=progress,
            )  # fmt: skip
        _print_skipped(result.skipped)
        stdout.print(run_tables(RunResult.read(run_dir)))
        write_text(run_dir / REPORT, html_report(run_dir))
        console.print(
            f"wrote {run_dir}/{STUDENT}, {SUMMARY}, {REPORT}: student {result.model}, {result.gflops_per_image:.2f} "
            f"GFLOPs per image, agreeing with the ensemble on {result.agreement:.1%} of the test images; "
            f"{result.seconds:.0f} s, {result.teacher_seconds:.0f} s of them the teacher's"
        )


@app.command()
def report(run_dir: Annotated[Path, _option("Folder of a finished 'zoofit run'.", "--run")]) -> None:
    """Write the run's report.html again (tables and charts of its ranking, trials, ensemble and robustness)."""
    from zoofit.store import write_text

    with command():
        write_text(run_dir / REPORT, html_report(run_dir))
        console.print(f"wrote {run_dir / REPORT}")


@app.command()
def export(
    run_dir: Annotated[Path, _option("Folder of a finished 'zoofit run'.", "--run")],
    out: Annotated[Path, _option("The file to write (.onnx, .pt2).", "--out")],
    format: Annotated[str, _option(FORMATS.describe(), "--format")] = "onnx",
    image_shape: Annotated[
        str | None,
        _option(
            "Image size to check the file at, H or HxW, with a smaller and a larger one (default: the run's images' "
            "size, where they had one). The file takes any size."
        ),
    ] = None,
    student: Annotated[bool, _option(_STUDENT_HELP.format(what="Export"))] = False,
) -> None:
    """Export a finished run's ensemble (resize, networks, average), or its distilled student, to one file that runs
    without zoofit on uint8 images of any size."""
    with command():
        FORMATS.get(format).check()  # before the path and the models: a missing extra is one line at once
        _check_writable(out, "--out", folder=False)
        start = time.perf_counter()
        from zoofit.export import export_run

        exported = export_run(run_dir, out, format=format, image_shape=_image_shape(image_shape), student=student)
        sizes = ", ".join(f"{height}x{width}" for height, width in exported.checked_shapes)
        what = "the student" if student else f"{exported.members} members"
        console.print(
            f"wrote {out}: {what}, uint8 N x H x W x 3 images of any size in, probabilities "
            f"out, within {exported.max_difference:.1g} of zoofit's at {sizes}, in {time.perf_counter() - start:.1f} s"
        )


def _image_shape(text: str | None) -> tuple[int, int] | None:
    """``H`` or ``HxW`` as (height, width)."""
    if text is None:
        return None
    parts = text.lower().split("x")
    if len(parts) > 2 or not all(part.strip().isdigit() and int(part) >= 1 for part in parts):
        raise ParameterError.of("image_shape", f"must be H or HxW in pixels, not '{text}'")
    return int(parts[0]), int(parts[-1])


@zoo_app.command("list")
def zoo_list(
    zoo: Annotated[
        str, typer.Argument(help="What --zoo takes: presets, YAML files, timm:<name> or timm:<pattern>.")
    ] = "demo",
    exclude: Exclude = None,
    licenses: Licenses = None,
    json: Annotated[bool, _option("Print the list as JSON (for scripts).")] = False,
) -> None:
    """List what a zoo expands to: each model's id, upstream, parameters, GFLOPs at its input size, licence.
    Nothing is downloaded."""
    from zoofit.zoo import load_zoo
    from zoofit.zoo.hub import model_facts

    with command():
        models = load_zoo(zoo, exclude=exclude, licenses=licenses)
        facts = [model_facts(spec) for spec in models.models]
        if json:
            print(dumps(facts, indent=1))
        else:
            stdout.print(zoo_table(models, facts))


@zoo_app.command("search")
def zoo_search(
    out: Annotated[Path, _option("The zoo file to write (.yaml), which --zoo then takes.", "--out")],
    task: Annotated[str, _option("image-classification or image-feature-extraction.")] = "image-classification",
    library: Annotated[str, _option("transformers or timm.")] = "transformers",
    license: Annotated[str | None, _option("Only models under this licence (e.g. apache-2.0).")] = None,
    max_params: Annotated[
        float | None, _option("Only models of at most this many million parameters (safetensors metadata).")
    ] = None,
    sort: Annotated[str, _option("downloads or likes (most first).")] = "downloads",
    limit: Annotated[int, _option("Ask the hub for this many models.")] = 50,
) -> None:
    """Write a zoo file from the Hugging Face hub's listing (HF_ENDPOINT, the token apply), each model with its
    upstream datasets, licence and parameters."""
    from zoofit.zoo.search import check_search, search_hub

    with command():
        check_search(task, library, sort, limit, max_params)
        _check_writable(out, "--out", folder=False)
        found = search_hub(task=task, library=library, license=license, max_params=max_params, sort=sort, limit=limit)
        found.write(out)
        skipped = f"; {len(found.skipped)} left out ({', '.join(sorted(set(found.skipped.values())))})"
        console.print(f"wrote {out}: {len(found.models)} models{skipped if found.skipped else ''}")


def main() -> None:
    app(prog_name="zoofit")


if __name__ == "__main__":
    sys.exit(main())
