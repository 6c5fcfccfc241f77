"""The static page in a real browser: headless Chromium (Debian's `chromium`) opens
paper_artifacts/<config>/index.html from the file system and takes a screenshot; skipped where no
Chromium is installed (`nox -s page` installs it with apt-get when it can)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from repro.facts.config import load_config
from repro.plan import build_plan
from repro.report.render_all import render_all
from repro.results import ResultsStore

sys.path.insert(0, str(Path(__file__).parent))
from synthetic_results import write_synthetic_results  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def _browser() -> str | None:
    return next((path for path in map(shutil.which, BROWSERS) if path), None)


def screenshot(page: Path, out: Path, browser: str, *, size=(1280, 3000)) -> subprocess.CompletedProcess:
    """Headless screenshot of a local page (no network: the page has no remote resources)."""
    args = [browser, "--headless", "--disable-gpu", "--no-sandbox", "--hide-scrollbars", "--allow-file-access-from-files",
            f"--window-size={size[0]},{size[1]}", f"--screenshot={out}", page.resolve().as_uri()]
    env = {**os.environ, "HOME": str(out.parent)}  # Chromium writes its profile under HOME
    return subprocess.run(args, capture_output=True, text=True, timeout=180, env=env)


def test_index_html_renders_in_headless_chromium(tmp_path):
    browser = _browser()
    if browser is None:
        pytest.skip("no Chromium installed (apt-get install chromium, or run `nox -s page`)")
    loaded = load_config(ROOT / "configs/smoke_appendix.yaml")
    runs = tmp_path / "runs"
    write_synthetic_results(loaded, runs)
    render_all(loaded, build_plan(loaded), ResultsStore(runs), tmp_path / "site")
    shot = Path(os.environ.get("REPRO_SCREENSHOT", tmp_path / "page.png"))
    proc = screenshot(tmp_path / "site" / "index.html", shot, browser)
    assert proc.returncode == 0 and shot.is_file(), proc.stderr[-2000:]
    from PIL import Image

    image = Image.open(shot).convert("L")
    assert image.size == (1280, 3000)
    low, high = image.getextrema()
    assert high - low > 100  # text and figures drawn, not a blank page
    # The figures were loaded from the file system: a broken image would leave the page mostly white.
    histogram = image.histogram()
    assert sum(histogram[:200]) > 0.02 * image.size[0] * image.size[1]
