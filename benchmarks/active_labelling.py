"""Active labelling on Fashion-MNIST with the demo zoo: does labelling what ``zoofit suggest`` picks beat labelling
images at random?

The loop of a user, simulated: start from the usual 1,000 labelled training images (100 per class; the protocol
holds 20% out for validation), a pool of 20,000 other training images; each round, a run on the labelled images,
``suggest`` picks 200 of the pool, their labels are revealed from the dataset, and the next run trains on the grown
set. Three rounds per strategy, three seeds (the seed draws the initial images and the pool, and seeds the runs).
Each run's ensemble is scored on the same seeded 2,000 test images.

To fit a 2-core CPU (39 runs and 21 scorings of the 20,000-image pool), every run is a cheap sweep: 32 px (the
images are 28), the top 2 models, one learning rate (0.01), 100 steps at batch 32, a pool of fine-tuned trials only
(no soups, linear heads, robustness or seed baseline), the trials one after another in this process (no worker
processes to start). The first run of each seed
ranks the whole demo zoo; the later runs rank only its top 2 (the models they fine-tune). The pool is scored by the
run's ensemble; the first round's scores are shared by the strategies (they start from the same run); ``random``
draws among the pool's unlabelled images without scoring them (as ``--strategy random`` does, seeded). The
default and ``random`` take their turns on every seed before the other strategies (``GROUPS``).

    python benchmarks/active_labelling.py            # writes benchmarks/results/active_labelling-cpu.json
    python benchmarks/active_labelling.py --chart    # redraws docs/active_labelling.png from that file
    python benchmarks/active_labelling.py --linear   # runs of linear heads (LINEAR): ..._linear-cpu.json, .png
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import RESULTS, describe, save  # noqa: E402

from zoofit import ZooFit, preset  # noqa: E402
from zoofit.data import DataConfig, ImageSet, SourceData, load_source, make_splits  # noqa: E402
from zoofit.data.protocol import stratified_per_class  # noqa: E402
from zoofit.labelling.choose import DEFAULT_STRATEGY, choose, score_pool  # noqa: E402
from zoofit.labelling.strategies import STRATEGIES  # noqa: E402

NAME = "active_labelling"
DOCS = Path(__file__).parents[1] / "docs"


#: The strategies in turns: every seed of the default and its baseline first, then the others', so that a
#: benchmark stopped early still compares the two on every seed.
GROUPS = ((DEFAULT_STRATEGY, "random"), tuple(s for s in STRATEGIES.names() if s not in (DEFAULT_STRATEGY, "random")))
ORDER = tuple(strategy for group in GROUPS for strategy in group)


@dataclass(frozen=True)
class Settings:
    name: str = NAME  # of the results file and the chart
    groups: tuple[tuple[str, ...], ...] = GROUPS
    initial_per_class: int = 100
    pool: int = 20_000
    rounds: int = 3
    per_round: int = 200
    seeds: tuple[int, ...] = (0, 1, 2)
    test_images: int = 2_000
    top_k: int = 2
    sweep: tuple[tuple[str, Any], ...] = (
        ("image_size", 32), ("lrs", (0.01,)), ("steps", (100,)), ("batch_size", 32), ("shift_images", 0),
        ("members", ("trial",)), ("refit", False), ("seed_baseline", 0),
    )  # fmt: skip


#: The runs' pool is linear heads on the frozen features of the top 2 models (``--members linear``; the one
#: trial of 1 step that a run makes is not in it): deterministic, so that a strategy's gain is not lost in the
#: fine-tuning's run-to-run noise, and cheap enough for every strategy on every seed in turn.
LINEAR = Settings(
    name=f"{NAME}_linear", groups=(ORDER,),
    sweep=(("image_size", 32), ("top_k", 1), ("lrs", (0.01,)), ("steps", (1,)), ("batch_size", 32),
           ("shift_images", 0), ("members", ("linear",)), ("linear_heads", 2), ("refit", False), ("seed_baseline", 0)),
)  # fmt: skip

#: Seconds, not minutes: what the test runs, so that the benchmark keeps working.
SMOKE = Settings(
    initial_per_class=3, pool=60, rounds=1, per_round=5, seeds=(0,), test_images=40,
    sweep=(("image_size", 32), ("lrs", (0.01,)), ("steps", (3,)), ("batch_size", 8), ("shift_images", 0),
           ("members", ("trial",)), ("refit", False), ("seed_baseline", 0)),
)  # fmt: skip


def fit(labelled: ImageSet, test: ImageSet, out: Path, seed: int, settings: Settings, models: list[str] | None):
    """A run of the cheap sweep on ``labelled`` (20% held out for validation), scored on ``test``."""
    splits = make_splits(SourceData("fashion-mnist", labelled, test=test), DataConfig("fashion-mnist", seed=seed))
    sweep = preset("quick").override(**{"top_k": settings.top_k, **dict(settings.sweep)})
    return ZooFit("demo", sweep=sweep, seed=seed, models=models, workers=1).fit(splits, out)


def one_seed(
    seed: int,
    strategies: tuple[str, ...],
    settings: Settings,
    train: ImageSet,
    test: ImageSet,
    folder: Path,
    done: Callable[[list], None],
) -> list[dict[str, Any]]:
    """The rounds of ``strategies`` from one seed's initial images and pool, round by round: a row per run, each
    handed to ``done`` with the rows before it. The first run (round 0) resumes from ``folder`` where an earlier
    call trained it; its row comes with the first call only."""
    rng = np.random.default_rng(seed)
    initial = stratified_per_class(train, settings.initial_per_class, rng)
    pool_indices = np.sort(rng.choice(np.setdiff1d(np.arange(len(train)), initial), settings.pool, replace=False))
    pool = train.subset(pool_indices)
    first_run = folder / f"seed{seed}-round0"
    resumed = first_run.exists()
    started = time.perf_counter()
    first = fit(train.subset(initial), test, first_run, seed, settings, None)
    models = [row.model for row in first.ranker_.ranking_[: settings.top_k]]
    rows = [] if resumed else [row_of(seed, "all", 0, len(initial), first, time.perf_counter() - started, None)]
    done(rows)
    shared = score_pool(first_run, pool)
    state = {strategy: (initial, first_run) for strategy in strategies}
    draws = np.random.default_rng(seed)
    for round_ in range(1, settings.rounds + 1):
        for strategy in strategies:
            labelled, run = state[strategy]
            started = time.perf_counter()
            scored = None
            if strategy == "random":
                taken = np.flatnonzero(~np.isin(pool_indices, labelled))
                positions = np.sort(draws.choice(taken, settings.per_round, replace=False))
                chosen = None
            else:
                scored = shared if round_ == 1 else score_pool(run, pool)
                chosen = choose(scored, settings.per_round, strategy=strategy, seed=seed)
                positions = np.array([int(row.path.rsplit("/", 1)[1]) for row in chosen.rows])
                assert chosen.in_run == len(labelled) - len(initial), "the run's images must be left out"
            suggest_seconds = time.perf_counter() - started
            labelled = np.concatenate([labelled, pool_indices[positions]])
            run = folder / f"seed{seed}-{strategy}-round{round_}"
            fitted = fit(train.subset(labelled), test, run, seed, settings, models)
            state[strategy] = (labelled, run)
            rows.append(row_of(seed, strategy, round_, len(labelled), fitted, time.perf_counter() - started, chosen,
                               suggest_seconds, scored))  # fmt: skip
            print(json.dumps(rows[-1]), flush=True)
            done(rows)
    return rows


def row_of(seed, strategy, round_, labels, fitted, seconds, chosen, suggest_seconds=None, scored=None) -> dict:
    result = fitted.result_
    return {
        "seed": seed, "strategy": strategy, "round": round_, "labels": labels,
        "test_accuracy": result.ensemble.test.accuracy, "test_nll": result.ensemble.test.nll,
        "members": len(result.ensemble.members), "seconds": round(seconds, 1),
        "suggest_seconds": None if suggest_seconds is None else round(suggest_seconds, 1),
        "near_duplicates_skipped": None if chosen is None else chosen.near_duplicates,
        "pool_scoring_seconds": None if scored is None else round(scored.seconds, 1),
        "pool_scored": None if scored is None else len(scored.pool),
    }  # fmt: skip


def summarise(rows: list[dict[str, Any]], settings: Settings, default: str = DEFAULT_STRATEGY) -> dict[str, Any]:
    """Mean and spread over the seeds of each strategy's accuracy and NLL per round (round 0 shared; a round not
    run yet left out), and the goal: ``default`` beats random by a point at every round, or reaches random's last
    accuracy with 30% fewer added labels than random needed to reach it (None until every round of both ran)."""
    table: dict[str, list[dict[str, float]]] = {}
    shown = {default, "random"} | {r["strategy"] for r in rows}  # the two compared, and any other that took a turn
    for strategy in (s for s in ORDER if s in shown):
        table[strategy] = []
        for round_ in range(settings.rounds + 1):
            mine = [r for r in rows if r["round"] == round_ and r["strategy"] in (strategy, "all")]
            if not mine:
                continue
            accuracy, nll = np.array([r["test_accuracy"] for r in mine]), np.array([r["test_nll"] for r in mine])
            table[strategy].append({
                "round": round_, "labels": mine[0]["labels"], "seeds": len(mine), "accuracy": float(accuracy.mean()),
                "accuracy_std": float(accuracy.std()), "nll": float(nll.mean()), "nll_std": float(nll.std()),
            })  # fmt: skip
    pairs = list(zip(table[default], table["random"], strict=False))[1:]
    gains = [d["accuracy"] - r["accuracy"] for d, r in pairs]
    complete = len(pairs) == settings.rounds
    # labels added until random's last accuracy is first reached: by the default, and by random itself (random's
    # curve is not monotone in a noisy sweep: its own first arrival is the fair reference)
    target = table["random"][-1]["accuracy"]
    first = table["random"][0]["labels"]
    reached = next((d["labels"] - first for d in table[default][1:] if d["accuracy"] >= target), None)
    needed = next(r["labels"] - first for r in table["random"][1:] if r["accuracy"] >= target) if complete else None
    saved = None if reached is None or not complete else 1 - reached / needed
    return {
        "by_strategy": table, "default": default, "gain_over_random_by_round": gains,
        "paired_gain_over_random": {s: paired_gains(rows, s, settings.rounds) for s in table if s != "random"},
        "labels_saved_to_reach_random_last": saved,
        "goal_met": bool(min(gains) >= 0.01 or (saved is not None and saved >= 0.3)) if complete else None,
    }  # fmt: skip


def paired_gains(rows: list[dict[str, Any]], strategy: str, rounds: int) -> dict[str, Any]:
    """``strategy``'s accuracy less random's, seed by seed (the seeds both ran), per round and over the rounds."""
    accuracy = {(r["strategy"], r["seed"], r["round"]): r["test_accuracy"] for r in rows}
    by_round = []
    for round_ in range(1, rounds + 1):
        seeds = [s for (name, s, n) in accuracy if name == strategy and n == round_ and ("random", s, n) in accuracy]
        gains = [accuracy[strategy, s, round_] - accuracy["random", s, round_] for s in seeds]
        by_round.append({"round": round_, "seeds": len(seeds), "gain": float(np.mean(gains)) if gains else None})
    known = [r["gain"] for r in by_round if r["gain"] is not None]
    return {"by_round": by_round, "mean": float(np.mean(known)) if known else None}


def chart(figures: dict[str, Any], path: Path) -> None:
    """Test accuracy by round, one line per strategy (mean over the seeds, their spread as a band)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axis = plt.subplots(figsize=(6.4, 4.0), dpi=120)
    for strategy, points in figures["summary"]["by_strategy"].items():
        x = [p["round"] for p in points]
        y, spread = np.array([p["accuracy"] for p in points]), np.array([p["accuracy_std"] for p in points])
        axis.plot(x, 100 * y, marker="o", label=strategy)
        axis.fill_between(x, 100 * (y - spread), 100 * (y + spread), alpha=0.15)
    settings = figures["settings"]
    ticks = {p["round"]: p["labels"] for points in figures["summary"]["by_strategy"].values() for p in points}
    axis.set_xticks(list(ticks), [f"{r}\n{labels}" for r, labels in ticks.items()])
    axis.set_xlabel(f"round (labelled images; +{settings['per_round']} per round)")
    axis.set_ylabel(f"test accuracy, % ({settings['test_images']} images)")
    seeds = len(settings["seeds"])
    runs = "linear-head" if list(settings["sweep"].get("members", ())) == ["linear"] else "fine-tuned"
    axis.set_title(f"Fashion-MNIST, demo zoo, {runs} runs: {seeds} seed{'s' * (seeds > 1)} (band: ±1 std)")
    axis.grid(alpha=0.3)
    axis.legend(title="strategy")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def main(settings: Settings = Settings(), *, smoke: bool = False) -> dict[str, Any]:
    """Every seed's loop; unless ``smoke``, the figures so far saved (and the chart drawn) after each run, so a
    long benchmark that is stopped keeps what it finished."""
    source = load_source("fashion-mnist")
    test = source.test.subset(np.sort(np.random.default_rng(0).choice(len(source.test), settings.test_images, False)))
    started, finished, figures = time.perf_counter(), [], {}

    def done(rows: list[dict[str, Any]]) -> None:
        seeds = sorted({row["seed"] for row in finished + rows})
        figures.update({
            "machine": describe(),
            "settings": {**{k: v for k, v in vars(settings).items() if k != "sweep"}, "seeds": seeds,
                         "sweep": dict(settings.sweep), "order": ORDER},
            "wall_seconds": round(time.perf_counter() - started, 1),
            "runs": finished + rows,
            "summary": summarise(finished + rows, settings),
        })  # fmt: skip
        if not smoke:
            save(settings.name, figures)
            chart(figures, DOCS / f"{settings.name}.png")

    with tempfile.TemporaryDirectory(prefix="zoofit-active-") as folder:
        for group in settings.groups:
            for seed in settings.seeds:
                finished += one_seed(seed, group, settings, source.train, test, Path(folder), done)
    return figures


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chart", action="store_true", help="only redraw the chart from the saved results")
    parser.add_argument("--smoke", action="store_true", help="the seconds-long version (nothing saved)")
    parser.add_argument("--linear", action="store_true", help="runs of linear heads on frozen features (LINEAR)")
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 (default 3)")
    parser.add_argument("--pool", type=int, default=Settings.pool, help="pool images (default 20,000)")
    sweep = dict(Settings.sweep)
    parser.add_argument("--image-size", type=int, default=sweep["image_size"], help="the sweep's resolution")
    parser.add_argument("--steps", type=int, default=sweep["steps"][0], help="training steps of each trial")
    parser.add_argument("--test-images", type=int, default=Settings.test_images, help="(default 2,000)")
    arguments = parser.parse_args()
    base = LINEAR if arguments.linear else Settings()
    if arguments.chart:  # the summary made again from the runs (a benchmark stopped early), then the chart
        saved = json.loads((RESULTS / f"{base.name}-cpu.json").read_text())
        ran = {row["strategy"] for row in saved["runs"]}  # today's default where it ran, else the default of its day
        default = DEFAULT_STRATEGY if DEFAULT_STRATEGY in ran else saved["settings"]["order"][0]
        saved["summary"] = summarise(saved["runs"], replace(base, rounds=saved["settings"]["rounds"]), default)
        (RESULTS / f"{base.name}-cpu.json").write_text(json.dumps(saved, indent=2) + "\n")
        chart(saved, DOCS / f"{base.name}.png")
    elif arguments.smoke:
        print(json.dumps(main(SMOKE, smoke=True)["summary"], indent=2))
    else:
        sweep = {**dict(base.sweep), "image_size": arguments.image_size}
        sweep["steps"] = sweep["steps"] if arguments.linear else (arguments.steps,)
        main(replace(base, pool=arguments.pool, seeds=tuple(range(arguments.seeds)), sweep=tuple(sweep.items()),
                     test_images=arguments.test_images))  # fmt: skip
