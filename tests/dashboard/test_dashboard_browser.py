"""Real browser: serve the dashboard with ``harness dashboard`` and look at it in Chromium.

Needs Debian's Chromium at /usr/bin/chromium (or ``$HARNESS_CHROMIUM``) and the playwright
package; skipped otherwise (scripts/test.sh installs Chromium). Nothing is downloaded at
test time. Every page is visited, checked for what plotly drew (points per kind, legend
entries, tick labels that all differ, read from the SVG) and saved as a screenshot in the
test's tmp dir, or in ``$HARNESS_SCREENSHOTS`` if set (never in the repository). With
``HARNESS_UPDATE_DOCS=1`` the Pareto page's screenshot is also copied to docs/dashboard.png.
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
E100 = "kinetics400|frames=16|size=160|views=1|epochs=100|subset=1.0"
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
# Per chart of the page: its tick labels per axis (parallel coordinates: per dimension) and
# its legend entries, as plotly rendered them in the SVG.
DRAWN = """() => [...document.querySelectorAll('.js-plotly-plot')].map(gd => {
  const axes = {};
  gd.querySelectorAll('g[class$="tick"] > text').forEach(t => {
    if (t.closest('.parcoords')) return;
    const key = t.parentNode.getAttribute('class');
    (axes[key] = axes[key] || []).push(t.textContent);
  });
  gd.querySelectorAll('.parcoords .y-axis').forEach((axis, i) => {
    axes['dimension ' + i] = [...axis.querySelectorAll('.tick text')].map(t => t.textContent);
  });
  const legend = [...gd.querySelectorAll('.legend .traces .legendtext')].map(t => t.textContent);
  return {axes, legend};
})"""
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


def _settle(page, charts: int) -> None:
    """Wait until the script has rerun and ``charts`` plotly charts are drawn."""
    page.wait_for_timeout(500)
    page.wait_for_function(
        "!document.querySelector('[data-testid=stStatusWidget]')", timeout=90_000
    )
    page.wait_for_function(
        f"document.querySelectorAll('.js-plotly-plot .main-svg').length >= {charts}",
        timeout=90_000,
    )
    page.wait_for_timeout(1000)  # let WebGL paint before a screenshot


def _check_drawn(page) -> list[dict]:
    """Every chart's axes have distinct tick labels; no error on the page."""
    assert page.locator("text=Traceback").count() == 0
    assert page.locator("text=could not be drawn").count() == 0
    drawn = page.evaluate(DRAWN)
    for chart in drawn:
        for axis, labels in chart["axes"].items():
            assert labels, f"{axis}: no tick labels"
            assert len(set(labels)) == len(labels), f"{axis}: repeated tick labels {labels}"
    return drawn


def _open(page, title: str, charts: int) -> list[dict]:
    page.locator('[data-testid="stSidebarNav"] a').filter(has_text=title).first.click()
    page.wait_for_selector(f"h1:has-text('{title}')", timeout=90_000)
    _settle(page, charts)
    return _check_drawn(page)


def test_every_page_in_a_browser(served: str, results_store: Path, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    shots = Path(os.environ.get("HARNESS_SCREENSHOTS") or tmp_path / "screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    store = data.load_store(results_store)
    info = views.get_pareto_front_info(
        store.trials, x="gflops", y="top1", protocol=E100, zoo=store.zoo
    )
    expected = {
        "trials": len(info.points),
        "untrained": len(info.untrained),
        "front": len(info.fronts[E100]),
        "zoo": 3,
    }
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
            _settle(page, 1)
            (pareto,) = _check_drawn(page)
            assert pareto["legend"] == [
                "tpe_x3d",
                "infeasible (over budget)",
                "Pareto front",
                "zoo (published)",
                "infeasible (not trained)",
            ]
            assert pareto["axes"]["y2tick"] == ["not trained"]  # the strip of untrained trials
            assert all(label.endswith("%") for label in pareto["axes"]["ytick"])
            page.screenshot(path=str(shots / "pareto.png"))

            # clicking a Pareto point opens that trial's detail under the chart
            x, y = page.evaluate(POINT_PIXEL, ["front", 0])
            page.mouse.click(x, y)
            page.wait_for_selector("text=Selected: 1 trial(s)", timeout=30_000)
            first = info.fronts[E100].iloc[0]
            page.wait_for_selector(f"text={first['study']} #{int(first['trial'])}", timeout=30_000)
            page.set_viewport_size({"width": 1400, "height": 2400})  # whole pages from here
            page.get_by_text("Pareto set as a table").click()  # the architectures, in view
            _settle(page, 2)
            page.screenshot(path=str(shots / "pareto_selected.png"))

            # accuracies close together (the short protocol): tick labels still all differ
            page.get_by_role("combobox", name="Evaluation protocol").click()
            page.get_by_role("option").filter(has_text="epochs=10|").first.click()
            _settle(page, 1)
            page.wait_for_function(f"(({COUNT_POINTS})() || {{}}).zoo === undefined")
            ticks = _check_drawn(page)[0]["axes"]["ytick"]
            assert len(ticks) >= 4 and all("." in t for t in ticks), ticks
            page.screenshot(path=str(shots / "pareto_short_protocol.png"))

            # every protocol at once: one legend entry per protocol, the expansion as a path
            # (the README's screenshot: a screenful, as a reader's window shows it)
            page.set_viewport_size({"width": 1400, "height": 1000})
            page.get_by_role("combobox", name="Evaluation protocol").click()
            page.get_by_role("option").filter(has_text="all protocols").first.click()
            _settle(page, 1)
            page.wait_for_function(f"(({COUNT_POINTS})() || {{}}).path === 7", timeout=60_000)
            legend = _check_drawn(page)[0]["legend"]
            assert legend[:2] == ["epochs=10", "epochs=100"]
            assert "x3d_expand · expansion path" in legend and len(legend) == 7
            page.screenshot(path=str(shots / "dashboard.png"))
            if os.environ.get("HARNESS_UPDATE_DOCS") == "1":
                shutil.copyfile(shots / "dashboard.png", ROOT / "docs" / "dashboard.png")
            page.set_viewport_size({"width": 1400, "height": 2400})
            _settle(page, 1)
            # a log cost axis labels every tick in full (plotly's own: "2, 5, 1, 2, 5")
            page.get_by_text("Log cost axis").click()
            page.wait_for_function(
                "document.querySelector('.js-plotly-plot')._fullLayout.xaxis.type === 'log'",
                timeout=60_000,
            )
            _settle(page, 1)
            assert len(_check_drawn(page)[0]["axes"]["xtick"]) >= 4
            page.screenshot(path=str(shots / "pareto_log.png"))

            assert len(_open(page, "Trial detail", 1)) == 1
            page.screenshot(path=str(shots / "trial.png"))
            assert len(_open(page, "X3D expansion", 1)) == 1
            page.screenshot(path=str(shots / "expansion.png"))
            progress = _open(page, "Search progress", 4)
            assert len(progress) == 4
            parallel = progress[3]["axes"]
            assert ["bottleneck", "csn", "x3d"] in parallel.values()  # a categorical axis
            page.screenshot(path=str(shots / "progress.png"))
            _open(page, "Trials table", 0)
            assert page.get_by_text("s1.block").count() > 0  # the parameters, short names
            page.screenshot(path=str(shots / "trials.png"))
        finally:
            browser.close()
    pages = ("pareto", "pareto_selected", "pareto_short_protocol", "dashboard", "pareto_log")
    for name in (*pages, "trial", "expansion", "progress", "trials"):
        assert (shots / f"{name}.png").stat().st_size > 10_000
