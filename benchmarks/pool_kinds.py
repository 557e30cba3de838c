"""The pool by kind, after the fact: a finished run's own selection (the same function, settings and seed) again over
sub-pools of its stored candidates chosen by kind, beside the baselines it reports (``zoofit.bench.pools``).

Given a run folder, that run; given a bench folder, each finished task's run and each sub-pool's mean over them.
The default sub-pools: the trials alone (the pool before other kinds), the trials with each other part the run
holds (a kind of member, or ``replica``: the best trial's seed replicas), and every part at once; ``--pools``
names others (``trial+linear:1``: the linear head of the best-ranked model alone). For a bench, each sub-pool is
also judged as issue #32 asks: on every task and on the mean, test NLL at most every baseline's and accuracy at
least every baseline's minus half a point. Nothing is trained or loaded but the stored predictions and the labels (drawn again from the run's
config.yaml). Writes benchmarks/results/pool_kinds-<name>-<cpu|gpu>.json (name: the folder's, or ``--name``).

    zoofit run --data fashion-mnist --zoo demo --members trial,soup,linear --linear-heads 3 --out /tmp/pk-demo
    python benchmarks/pool_kinds.py /tmp/pk-demo --name demo --pools trial trial+soup trial+linear:1 trial+linear
    python benchmarks/pool_kinds.py runs/bench            # a bench: every finished task
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from common import describe, save  # noqa: E402

from zoofit.bench import BENCH, CLASSIFIERS, BenchResult  # noqa: E402
from zoofit.bench.pools import PoolComparison, SubPool, compare_bench, compare_pools, mean_pools, read_pool  # noqa: E402
from zoofit.bench.result import Row, row_of  # noqa: E402
from zoofit.errors import ParameterError, ZoofitError  # noqa: E402

#: Where a pool's ensemble may trail a baseline's test accuracy and still be counted as at least as good.
ACCURACY_SLACK = 0.005


def never_worse(ensemble: Row, baselines: dict[str, Row]) -> dict[str, Any]:
    """Is ``ensemble`` at least every baseline: test NLL at most each one's, accuracy at least each one's minus
    :data:`ACCURACY_SLACK`? With the baselines it is not, by name."""
    worse_nll = [name for name, row in baselines.items() if ensemble.nll > row.nll]
    worse_accuracy = [name for name, row in baselines.items() if ensemble.accuracy < row.accuracy - ACCURACY_SLACK]
    return {"never_worse": not worse_nll and not worse_accuracy, "higher_nll_than": worse_nll,
            "lower_accuracy_than": worse_accuracy}  # fmt: skip


def verdicts(runs: dict[str, PoolComparison], means: dict[str, Row], bench: BenchResult) -> dict[str, Any]:
    """Per sub-pool: :func:`never_worse` against the run's baselines on each task, and of its mean against the
    baselines' means over the same tasks."""
    found: dict[str, Any] = {}
    baseline_means = {name: row for name, row in bench.mean.classifiers.items() if name != "ensemble"}
    for pool, mean in means.items():
        tasks = {task: never_worse(row_of(measured), {n: r for n, r in c.reported.items() if n != "ensemble"})
                 for task, c in runs.items() for measured in c.pools if measured.pool == pool}  # fmt: skip
        found[pool] = {"tasks": tasks, "every_task": all(t["never_worse"] for t in tasks.values()),
                       "mean": never_worse(mean, baseline_means)}  # fmt: skip
    return found


def figures(folder: Path, pools: list[SubPool] | None) -> dict[str, Any]:
    """Each run's comparison (a bench: each finished task's, by task id, each sub-pool's mean over them, and
    whether each sub-pool is never worse than the baselines)."""
    if (folder / BENCH).is_file():
        runs = compare_bench(folder, pools)
        found: dict[str, Any] = {"bench": str(folder), "runs": {task: asdict(c) for task, c in runs.items()}}
        means = mean_pools(list(runs.values()))
        found["mean"] = {pool: asdict(row) for pool, row in means.items()}
        found["never_worse"] = verdicts(runs, means, BenchResult.read(folder))
        for pool, verdict in found["never_worse"].items():
            print(f"pool {pool}: never worse than a baseline on every task: {verdict['every_task']}; "
                  f"on the mean: {verdict['mean']['never_worse']}")  # fmt: skip
    else:
        runs = {folder.name: compare_pools(read_pool(folder), pools)}
        found = {"run": str(folder), "runs": {name: asdict(c) for name, c in runs.items()}}
    for name, comparison in runs.items():
        print(table(name, comparison))
    return found


def table(name: str, comparison: PoolComparison) -> str:
    """The run's sub-pools, then what it reports, one line each."""
    lines = [f"{name}: {comparison.data}", f"{'':42} {'acc':>7} {'NLL':>7} {'ECE':>7} {'GFLOPs':>7}  members"]
    for pool in comparison.pools:
        scores = pool.test
        lines.append(f"  pool {pool.pool:<35} {scores.accuracy:7.4f} {scores.nll:7.4f} {scores.ece:7.4f} "
                     f"{pool.gflops_per_image:7.3f}  {len(pool.members)} of {pool.candidates}: {pool.by_kind.line()}")  # fmt: skip
    reported = dict(comparison.reported)
    if comparison.before_refit is not None:
        reported["ensemble before refit"] = comparison.before_refit
    for classifier, row in reported.items():
        label = CLASSIFIERS.get(classifier, classifier)
        lines.append(f"  {label:<40} {row.accuracy:7.4f} {row.nll:7.4f} {row.ece:7.4f} {row.gflops_per_image:7.3f}")
    lines.append(f"  the pool of every kind chose the run's own members: {comparison.reproduced}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="a finished run folder, or a bench folder")
    parser.add_argument("--pools", nargs="+", help="sub-pools such as trial trial+linear:1 (default: by kind)")
    parser.add_argument("--name", help="the results file's name (default: the folder's)")
    args = parser.parse_args()
    try:
        found = figures(args.folder, [SubPool.parse(text) for text in args.pools] if args.pools else None)
    except ZoofitError as error:  # one line, each parameter named as its option
        message = error.spelled(lambda name: f"--{name}") if isinstance(error, ParameterError) else str(error)
        print(f"error: {message}", file=sys.stderr)
        sys.exit(2)
    save(f"pool_kinds-{args.name or args.folder.name}", {**found, "pools": args.pools, "machine": describe()})


if __name__ == "__main__":
    main()
