"""A run's report.html as a headless browser draws it: a PNG screenshot, to check the charts by eye.

    python scripts/screenshot_report.py --run runs/demo --out docs/report.png [--width 1000 --height 2600]

Needs Chromium (Debian: ``apt-get install -y chromium``); the page is rebuilt from the run first (as
``zoofit report`` does) and loaded from a file, with no network.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image

from zoofit.layout import REPORT
from zoofit.report import html_report
from zoofit.store.atomic import write_text


def screenshot(page: Path, out: Path, width: int, height: int) -> None:
    """Draw the HTML file ``page`` at ``width`` x ``height`` CSS pixels into the PNG ``out``."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        sys.exit("error: no Chromium found; install it (Debian: apt-get install -y chromium)")
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--no-first-run", "--hide-scrollbars", f"--user-data-dir={profile}",
             f"--screenshot={out.resolve()}", f"--window-size={width},{height}", page.resolve().as_uri()],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
    with Image.open(out) as image:  # a page of flat colours: a 64-colour palette keeps it small and sharp
        image.convert("RGB").quantize(64).save(out, optimize=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True, help="a finished run folder")
    parser.add_argument("--out", type=Path, default=Path("report.png"), help="the PNG to write")
    parser.add_argument("--width", type=int, default=1000)
    parser.add_argument("--height", type=int, default=2600)
    args = parser.parse_args()
    write_text(args.run / REPORT, html_report(args.run))
    screenshot(args.run / REPORT, args.out, args.width, args.height)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
