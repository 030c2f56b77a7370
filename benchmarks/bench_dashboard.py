"""Dashboard benchmark: 10,000 trials must load and draw within 2 s.

Usage::

    python benchmarks/bench_dashboard.py [--trials N] [--repeats R] [--browser] [--json]

Writes a fixture store (``tests/dashboard/fixtures/make_store.py``) of N trials in a temp
directory, then times, in this process and without Streamlit's cache:

    load      dashboard.data.load_store (parquet read + type normalisation)
    pareto    filters, per-protocol Pareto set and knee point (get_pareto_front_info)
    figure    plot_pareto_front + Figure.to_json (what Streamlit ships to the browser)
    progress  the progress page's four views (hypervolume, states, importance, parallel)

"load + draw" = load + pareto + figure, the Pareto page's work on a cold cache. Reported:
median and spread over R repetitions. With ``--browser`` (needs /usr/bin/chromium and
playwright) it also serves the store with ``harness dashboard`` and times, in headless
Chromium, a page load until the chart holds every point (cold: first visit; warm: reload,
store cached; both include Streamlit's own start-up in the page) and a rerun (a toggle
that redraws every point, no reload). Progress goes to stderr, the table to stdout; exit
status 0 whatever the verdict.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dashboard import data, figures, views  # noqa: E402

TARGET_S = 2.0


def _make_store() -> Callable[..., Path]:
    path = ROOT / "tests" / "dashboard" / "fixtures" / "make_store.py"
    spec = importlib.util.spec_from_file_location("make_store", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.write_results_store


def _time(fn: Callable[[], object], repeats: int) -> tuple[list[float], object]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return times, result


def _pareto(store: data.Store) -> views.ParetoInfo:
    protocol = data.list_protocols(store.trials)[0]
    trials = data.apply_filters(store.trials, data.Filters(states=("complete", "infeasible")))
    info = views.get_pareto_front_info(
        trials, x="gflops", y="top1", protocol=protocol, zoo=store.zoo
    )
    return views.ParetoInfo(**{**info.__dict__, "picks": views.get_picks(info, mode="knee")})


def _progress(store: data.Store) -> None:
    one = store.trials[store.trials["protocol"] == data.list_protocols(store.trials)[0]]
    history, _ = views.get_hypervolume_history(one, x="gflops", y="top1")
    figures.plot_hypervolume_history(history).to_json()
    figures.plot_state_history(views.get_state_history(store.trials)).to_json()
    figures.plot_param_importance(views.get_importance_info(one, objective="top1")).to_json()
    axes = views.get_parallel_info(one, x="gflops", y="top1")
    figures.plot_parallel_coordinates(axes).to_json()


def _browser(results: Path, expected: int) -> dict[str, float]:
    sys.path.insert(0, str(ROOT / "tests" / "dashboard"))
    import test_dashboard_browser as tb  # the browser test's helpers
    from playwright.sync_api import sync_playwright

    port = tb._free_port()
    server = tb.subprocess.Popen(
        [
            sys.executable,
            "-m",
            "harness",
            "dashboard",
            "--results",
            str(results),
            "--port",
            str(port),
        ],
        stdout=tb.subprocess.DEVNULL,
        stderr=tb.subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    timings = {}
    try:
        tb._wait_healthy(url, server)
        with tempfile.TemporaryDirectory() as profile, sync_playwright() as pw:
            browser = pw.chromium.launch_persistent_context(
                profile, executable_path=tb.CHROMIUM, headless=True, args=tb.CHROMIUM_ARGS
            )
            page = browser.new_page()
            for label in ("browser cold", "browser warm"):
                start = time.perf_counter()
                page.goto(url, timeout=120_000)
                page.wait_for_function(
                    f"(() => {{ const c = ({tb.COUNT_POINTS})(); "
                    f"return c !== null && c.trials === {expected}; }})()",
                    timeout=120_000,
                )
                timings[label] = time.perf_counter() - start
            # a rerun without reloading the page: the log-axis toggle redraws every point
            start = time.perf_counter()
            page.get_by_text("Log cost axis").click()
            page.wait_for_function(
                "document.querySelector('.js-plotly-plot')._fullLayout.xaxis.type === 'log'",
                timeout=120_000,
            )
            timings["browser rerun"] = time.perf_counter() - start
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--browser", action="store_true", help="also time headless Chromium")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        print(f"writing a store of {args.trials:,} trials...", file=sys.stderr)
        results = _make_store()(Path(tmp) / "results", trials=args.trials)
        load, store = _time(lambda: data.load_store(results), args.repeats)
        assert isinstance(store, data.Store)
        pareto, info = _time(lambda: _pareto(store), args.repeats)
        assert isinstance(info, views.ParetoInfo)
        figure, _ = _time(lambda: figures.plot_pareto_front(info).to_json(), args.repeats)
        progress, _ = _time(lambda: _progress(store), max(1, args.repeats // 2))
        total = [a + b + c for a, b, c in zip(load, pareto, figure, strict=True)]
        rows = {
            "load": load,
            "pareto": pareto,
            "figure": figure,
            "load + draw": total,
            "progress page": progress,
        }
        medians = {k: statistics.median(v) for k, v in rows.items()}
        if args.browser:
            print("timing headless Chromium...", file=sys.stderr)
            medians.update(_browser(results, len(info.points)))

    print(f"{len(store.trials):,} trials ({len(info.points):,} drawn), {args.repeats} repeats")
    print(f"{'step':<16}{'median s':>10}{'min s':>10}{'max s':>10}")
    for key, median in medians.items():
        spread = rows.get(key, [median])
        print(f"{key:<16}{median:>10.3f}{min(spread):>10.3f}{max(spread):>10.3f}")
    verdict = "PASS" if medians["load + draw"] < TARGET_S else "FAIL"
    print(f"load + draw {medians['load + draw']:.3f} s, target < {TARGET_S} s: {verdict}")
    if args.json:
        print(json.dumps({"trials": len(store.trials), "median_s": medians, "verdict": verdict}))


if __name__ == "__main__":
    main()
