"""Real browser: serve the dashboard with ``harness dashboard`` and look at it in Chromium.

Needs Debian's Chromium at /usr/bin/chromium (or ``$HARNESS_CHROMIUM``) and the playwright
package; skipped otherwise (scripts/test.sh installs Chromium). Nothing is downloaded at
test time. The screenshot goes to the test's tmp dir; with ``HARNESS_UPDATE_DOCS=1`` it
is also copied to docs/dashboard.png.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from dashboard import data, views

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("HARNESS_CHROMIUM", "/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[2]
E100 = "kinetics400/val|16x160|center|1x1|e100"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
COUNT_POINTS = """() => {
  const gd = document.querySelector('.js-plotly-plot');
  if (!gd || !gd._fullData) return null;
  const counts = {};
  for (const t of gd._fullData) {
    const kind = (t.meta && t.meta.kind) || 'other';
    counts[kind] = (counts[kind] || 0) + t._length;
  }
  return counts;
}"""
POINT_PIXEL = """([kind, i]) => {
  const gd = document.querySelector('.js-plotly-plot');
  const t = gd._fullData.find(t => t.meta && t.meta.kind === kind);
  const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis, box = gd.getBoundingClientRect();
  const x = gd.calcdata[t.index][i].x, y = gd.calcdata[t.index][i].y;
  return [box.left + xa._offset + xa.l2p(x), box.top + ya._offset + ya.l2p(y)];
}"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_healthy(url: str, server: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert server.poll() is None, "the dashboard exited early"
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise AssertionError("the dashboard did not come up")


@pytest.fixture
def served(results_store: Path, tmp_path: Path):
    """URL of ``harness dashboard`` serving the fixture store."""
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    pytest.importorskip("playwright")
    port = _free_port()
    log = (tmp_path / "server.log").open("w")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "harness",
            "dashboard",
            "--results",
            str(results_store),
            "--port",
            str(port),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=tmp_path,  # the dashboard must not depend on the working directory
    )
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_healthy(url, server)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def test_pareto_chart_renders_every_point(served: str, results_store: Path, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    store = data.load_store(results_store)
    info = views.get_pareto_front_info(
        store.trials, x="gflops", y="top1", protocol=E100, zoo=store.zoo
    )
    expected = {"trials": len(info.points), "front": len(info.fronts[E100]), "zoo": 3}
    with sync_playwright() as pw:
        browser = pw.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 1000},
        )
        try:
            page = browser.new_page()
            page.goto(served, timeout=90_000)
            page.wait_for_selector(".js-plotly-plot .main-svg", timeout=90_000)
            page.wait_for_function(f"({COUNT_POINTS})() !== null", timeout=30_000)
            assert page.evaluate(COUNT_POINTS) == expected
            assert page.locator("text=Traceback").count() == 0
            page.wait_for_timeout(1000)  # let WebGL paint before the screenshot
            shot = tmp_path / "dashboard.png"
            page.screenshot(path=str(shot))
            assert shot.stat().st_size > 10_000
            if os.environ.get("HARNESS_UPDATE_DOCS") == "1":
                shutil.copyfile(shot, ROOT / "docs" / "dashboard.png")

            # clicking a Pareto point opens that trial's detail under the chart
            x, y = page.evaluate(POINT_PIXEL, ["front", 0])
            page.mouse.click(x, y)
            page.wait_for_selector("text=Selected: 1 trial(s)", timeout=30_000)
            first = info.fronts[E100].iloc[0]
            page.wait_for_selector(f"text={first['study']} #{int(first['trial'])}", timeout=30_000)
            page.screenshot(path=str(tmp_path / "dashboard_detail.png"), full_page=True)
        finally:
            browser.close()
