"""The ``zoofit`` command: parses options, calls the library, prints. Nothing else lives here."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.logging import RichHandler

from zoofit.data import DataConfig, load_data
from zoofit.errors import ZoofitError
from zoofit.rank import Ranker
from zoofit.report import RichProgress, ranking_table, zoo_table
from zoofit.zoo import load_zoo

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Turn a small labelled image dataset and a zoo of pre-trained models into the best classifier.",
)
zoo_app = typer.Typer(no_args_is_help=True, help="Inspect zoos (built-in presets or YAML files).")
app.add_typer(zoo_app, name="zoo")

console = Console(stderr=True)
# Tables go to stdout; when it is a file or pipe, keep them wide enough not to truncate model names.
stdout = Console(width=None if sys.stdout.isatty() else 160)

DataOption = Annotated[
    str, typer.Option("--data", help="Image folder, CSV (csv:PATH or *.csv), *.npz, or 'fashion-mnist'.")
]
ZooOption = Annotated[str, typer.Option("--zoo", help="Preset name (demo), YAML zoo file, or timm:<name>[,...].")]


@contextmanager
def user_errors() -> Iterator[None]:
    """Show a :class:`ZoofitError` as one line on stderr and exit 2; Ctrl-C exits 130 quietly."""
    try:
        yield
    except ZoofitError as error:
        console.print(f"[bold red]error:[/] {error}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        console.print("interrupted; finished work is kept in the cache")
        raise typer.Exit(130) from None


def _setup_logging() -> None:
    handler = RichHandler(console=console, show_time=False, show_path=False, markup=False)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger("zoofit")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False


@app.command()
def rank(
    data: DataOption,
    zoo: ZooOption = "demo",
    out: Annotated[Path, typer.Option(help="Folder for ranking.json and ranking.csv.")] = Path("runs/rank"),
    models: Annotated[str | None, typer.Option(help="Comma-separated model ids of the zoo (default: all).")] = None,
    k: Annotated[int, typer.Option("--k", help="Neighbours in the leave-one-out kNN.")] = 1,
    metric: Annotated[str, typer.Option(help="kNN similarity: cosine or euclidean.")] = "cosine",
    image_size: Annotated[
        int | None, typer.Option(help="Input resolution for all models (default: each model's own).")
    ] = None,  # noqa: E501
    batch_size: Annotated[
        int | None, typer.Option(help="Images per forward pass (default: 16 on CPU, 256 on GPU).")
    ] = None,  # noqa: E501
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    precision: Annotated[str, typer.Option(help="auto (bf16 where native), fp32 or bf16.")] = "auto",
    train_per_class: Annotated[int | None, typer.Option(help="Draw this many training images per class.")] = None,
    train_size: Annotated[int | None, typer.Option(help="Draw this many training images (stratified).")] = None,
    val_fraction: Annotated[float, typer.Option(help="Share of training data held out for validation.")] = 0.2,
    seed: Annotated[int, typer.Option(help="Seed of the subset and split draws.")] = 0,
    cache_dir: Annotated[
        Path | None, typer.Option(help="Cache folder (default $ZOOFIT_CACHE_DIR or ~/.cache/zoofit).")
    ] = None,  # noqa: E501
) -> None:
    """Rank every model of a zoo by leave-one-out kNN accuracy of its frozen features."""
    _setup_logging()
    with user_errors():
        start = time.perf_counter()
        config = DataConfig(data, train_per_class, train_size, val_fraction, seed)
        ids = [m.strip() for m in models.split(",")] if models else None
        ranker = Ranker(
            zoo,
            k=k,
            metric=metric,
            image_size=image_size,
            batch_size=batch_size,
            device=device,
            precision=precision,
            models=ids,
            cache_dir=cache_dir,
        )
        with RichProgress(console) as progress:
            splits = load_data(config, progress=progress)
            console.print(f"data: {splits.describe()} (ranking on {len(splits.ranking_set)} images)")
            ranker.fit(splits, progress=progress)
        ranker.save(out)
        stdout.print(ranking_table(ranker.ranking_, k=k, metric=metric))
        skipped = f", {len(ranker.skipped_)} skipped" if ranker.skipped_ else ""
        console.print(f"wrote {out}/ranking.json and ranking.csv in {time.perf_counter() - start:.1f} s{skipped}")


@zoo_app.command("list")
def zoo_list(zoo: ZooOption = "demo") -> None:
    """List the models of a zoo."""
    with user_errors():
        stdout.print(zoo_table(load_zoo(zoo)))


def main() -> None:
    app(prog_name="zoofit")


if __name__ == "__main__":
    sys.exit(main())
