"""The docs site builds strictly (a broken link or a missing API name fails it), fetches nothing, and the README
stays a short front page whose links lead somewhere."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def build(config: Path, site: Path) -> subprocess.CompletedProcess[str]:
    """``mkdocs build --strict`` of ``config`` into ``site``, as CI and a user run it."""
    command = [
        sys.executable,
        "-m",
        "mkdocs",
        "build",
        "--strict",
        "--config-file",
        str(config),
        "--site-dir",
        str(site),
    ]
    env = os.environ | {"NO_MKDOCS_2_WARNING": "1"}  # Material's notice about its successor, not a warning of ours
    return subprocess.run(command, cwd=site.parent, capture_output=True, text=True, env=env)  # any folder will do


def test_the_site_builds_strictly_with_the_api_reference_and_fetches_nothing(tmp_path):
    done = build(ROOT / "mkdocs.yml", tmp_path / "site")
    assert done.returncode == 0, done.stderr[-3000:]
    api = {
        page: (tmp_path / "site" / "api" / page / "index.html").read_text(encoding="utf-8")
        for page in ("pipeline", "rank", "settings", "bench")
    }
    for page, name in (
        ("pipeline", "zoofit.pipeline.ZooFit"),
        ("rank", "zoofit.rank.Ranker"),
        ("bench", "zoofit.bench.runner.Bench"),
    ):
        assert f'id="{name}"' in api[page]  # rendered from the docstrings, under the name the package exports
    assert ":class:" not in api["pipeline"]  # Sphinx roles became links or code
    assert 'href="../execute/#zoofit.execute.Executor"' in api["pipeline"]  # a role resolved to its page
    settings = api["settings"]
    assert "Fine-tune this many of the best-ranked models." in settings  # a setting's help, as the CLI shows it
    assert "setting(" not in settings  # its default shown as the value, not the declaring call
    pages = "".join(path.read_text(encoding="utf-8") for path in (tmp_path / "site").rglob("*.html"))
    assert "fonts.googleapis.com" not in pages and "fonts.gstatic.com" not in pages


class _Loader(yaml.SafeLoader):
    """Reads mkdocs.yml's ``!relative $config_dir/...`` as the path it stands for."""


_Loader.add_constructor(
    "!relative", lambda loader, node: str(ROOT / loader.construct_scalar(node).replace("$config_dir", "."))
)


def _one_page_site(tmp_path: Path, page: str, src: Path = ROOT / "src") -> Path:
    """The site's own configuration over a docs folder holding just ``page``, its API read from ``src``."""
    config = yaml.load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"), _Loader)
    python = next(p["mkdocstrings"] for p in config["plugins"] if isinstance(p, dict) and "mkdocstrings" in p)
    handler = python["handlers"]["python"]
    handler["paths"] = [str(src)]
    handler["options"]["extensions"] = [str(ROOT / path) for path in handler["options"]["extensions"]]
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "index.md").write_text(page, encoding="utf-8")
    config.update(docs_dir=str(docs), nav=["index.md"])
    path = tmp_path / "mkdocs.yml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def test_a_broken_link_fails_the_build(tmp_path):
    done = build(_one_page_site(tmp_path, "# Home\n\nSee [the options](no-such-page.md).\n"), tmp_path / "site")
    assert done.returncode != 0
    assert "no-such-page.md" in done.stderr


def test_a_missing_api_name_fails_the_build(tmp_path):
    done = build(_one_page_site(tmp_path, "# API\n\n::: zoofit.pipeline.NoSuchEstimator\n"), tmp_path / "site")
    assert done.returncode != 0
    assert "NoSuchEstimator" in done.stderr


def test_a_description_where_numpydoc_reads_a_type_fails_the_build(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "knobs.py").write_text(
        'class Knobs:\n    """Knobs.\n\n    Parameters\n    ----------\n    steps : the training steps.\n    """\n\n'
        "    def __init__(self, steps: int = 10) -> None:\n        self.steps = steps\n",
        encoding="utf-8",
    )
    done = build(_one_page_site(tmp_path, "# API\n\n::: knobs.Knobs\n", src=tmp_path / "src"), tmp_path / "site")
    assert done.returncode != 0
    assert "'steps : TYPE'" in done.stderr


def test_the_readme_is_a_short_front_page_whose_links_exist():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 250
    readme = re.sub(r"<!--.*?-->", "", readme, flags=re.DOTALL)  # what GitHub shows
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", readme) + re.findall(r'src="([^"]+)"', readme)
    local = [target for target in targets if "://" not in target]
    assert any(target.startswith("docs/") for target in local)
    missing = [target for target in local if not (ROOT / target).exists()]
    assert not missing, f"README links to files that do not exist: {missing}"
