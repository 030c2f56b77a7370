"""One AppTest per page, plus the messages for missing, empty and corrupt stores."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from dashboard import data

APP = str(Path(__file__).resolve().parents[2] / "dashboard" / "app.py")
E100 = "kinetics400|frames=16|size=160|views=1|epochs=100|subset=1.0"
E10 = "kinetics400|frames=16|size=160|views=1|epochs=10|subset=1.0"


def open_app(results: Path, monkeypatch: pytest.MonkeyPatch, page: str | None = None) -> AppTest:
    monkeypatch.setenv("HARNESS_RESULTS", str(results))
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    if page is not None:
        at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def charts(at: AppTest) -> list[dict]:
    return [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]


def points_by_kind(figure: dict) -> dict[str, int]:
    counts: dict[str, int] = {}
    for trace in figure["data"]:
        x = trace.get("x", [])
        n = len(x) if isinstance(x, list) else _bdata_length(x)
        counts[trace["meta"]["kind"]] = counts.get(trace["meta"]["kind"], 0) + n
    return counts


def _bdata_length(x: dict) -> int:  # plotly >= 6 ships numpy arrays base64-encoded
    import base64

    import numpy as np

    return len(np.frombuffer(base64.b64decode(x["bdata"]), dtype=np.dtype(x["dtype"])))


def expected_points(results: Path, protocol: str, *, trained: bool = True) -> int:
    """Trials drawn at their accuracy (``trained``), or infeasible ones never trained."""
    df = data.load_store(results).trials
    if trained:
        drawn = df["state"].isin(["complete", "infeasible"]) & df["top1"].notna()
    else:
        drawn = df["state"].eq("infeasible") & df["top1"].isna()
    return int((drawn & df["gflops"].notna() & (df["protocol"] == protocol)).sum())


def test_pareto_page(results_store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_app(results_store, monkeypatch)
    assert at.title[0].value == "Pareto fronts"
    (figure,) = charts(at)
    counts = points_by_kind(figure)
    assert counts["trials"] == expected_points(results_store, E100)
    assert counts["untrained"] == expected_points(results_store, E100, trained=False)
    assert counts["zoo"] == 3 and counts["front"] > 3
    # the Pareto set's table says what each network is, not only its hash
    (front_table,) = [d.value for d in at.dataframe if "architecture" in d.value.columns]
    assert front_table["architecture"].str.startswith("x3d_s: stem 24 | ").all()
    assert len(front_table) == counts["front"]
    at.radio(key="pick_mode").set_value("knee point").run()
    assert points_by_kind(charts(at)[0])["pick"] == 1
    assert len([d for d in at.dataframe if "architecture" in d.value.columns]) == 2  # + picked


def test_all_protocols_view(results_store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARNESS_RESULTS", str(results_store))
    at = AppTest.from_file(APP, default_timeout=120)
    at.session_state["f_protocol"] = "all protocols (separate fronts)"
    at.run()
    assert not at.exception
    figure = charts(at)[0]
    shown = [t["name"] for t in figure["data"] if t.get("showlegend") is not False]
    assert shown[:2] == ["epochs=10", "epochs=100"]  # one legend entry per protocol
    assert "x3d_expand · expansion path" in shown and len(shown) == 7
    assert points_by_kind(figure)["path"] == 7  # the expansion run: one path
    budgets = sorted(a["text"] for a in figure["layout"]["annotations"])
    assert budgets == ["budget GFLOPs ≤ 2 (tpe_x3d)", "budget GFLOPs ≤ 2.5 (tpe_short)"]
    at.toggle(key="per_study").set_value(True).run()
    fronts = [t for t in charts(at)[0]["data"] if t["meta"]["kind"] == "front"]
    assert len(fronts) == 2  # tpe_x3d under e100, tpe_short under e10: none per step


def test_switching_the_protocol_switches_the_front(
    results_store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # NOTE: under st.navigation, AppTest ignores set_value on the entry script's sidebar
    # widgets (and drops them from its tree after a rerun); presetting their state works.
    monkeypatch.setenv("HARNESS_RESULTS", str(results_store))
    at = AppTest.from_file(APP, default_timeout=120)
    at.session_state["f_protocol"] = E10
    at.run()
    assert not at.exception
    fronts = [t for t in charts(at)[0]["data"] if t["meta"]["kind"] == "front"]
    assert [(t["name"], t["meta"]["protocol"]) for t in fronts] == [("Pareto front", E10)]
    counts = points_by_kind(charts(at)[0])
    assert counts["trials"] == expected_points(results_store, E10)
    assert "zoo" not in counts  # no published figure under the short protocol
    # accuracies within two points: ticks need a decimal ("13%, 14%, 14%" otherwise)
    assert charts(at)[0]["layout"]["yaxis"]["tickformat"] == ".1%"


def test_a_localization_study_is_map_against_cost(
    localization_store: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    store, protocol = localization_store
    monkeypatch.setenv("HARNESS_RESULTS", str(store))
    at = AppTest.from_file(APP, default_timeout=120)
    at.session_state["f_protocol"] = protocol
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    (figure,) = charts(at)
    assert figure["layout"]["yaxis"]["title"]["text"] == "average mAP"
    assert figure["layout"]["xaxis"]["title"]["text"].startswith("GFLOPs")
    df = data.load_store(store).trials
    mine = df[df["protocol"] == protocol]
    counts = points_by_kind(figure)
    assert counts["trials"] == int(mine["average_mAP"].notna().sum())
    assert counts["untrained"] == int(mine["average_mAP"].isna().sum()) > 0
    # the trial page shows what the localizer measured, and its curves per epoch
    at.switch_page("app_pages/trial.py").run()
    at.selectbox(key="detail_study").set_value("tad_search").run()
    trained = int(mine.loc[mine["average_mAP"].notna(), "trial"].iloc[0])
    at.selectbox(key="detail_trial").set_value(trained).run()
    assert [m.label for m in at.metric] == ["average mAP", "mAP@0.5"]
    names = {t["name"] for t in charts(at)[0]["data"]}
    assert {"average mAP", "mAP@0.5"} <= names


def test_trial_page(results_store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_app(results_store, monkeypatch, "app_pages/trial.py")
    assert at.title[0].value == "Trial detail"
    assert at.code[0].language == "yaml" and "name: x3d_s" in at.code[0].value
    assert len(at.get("download_button")) == 1
    assert len(at.dataframe) == 3  # costs, fidelity, per-stage table
    assert len(charts(at)) == 1  # training curves
    at.selectbox(key="detail_study").set_value("x3d_expand").run()
    at.selectbox(key="detail_trial").set_value(3).run()
    assert "x3d_expand #3" in at.subheader[0].value


def test_expansion_page(results_store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_app(results_store, monkeypatch, "app_pages/expansion.py")
    assert at.title[0].value == "X3D expansion"
    counts = points_by_kind(charts(at)[0])
    assert counts == {"candidates": 31, "path": 7}
    kept = at.dataframe[0].value
    assert len(kept) == 7 and kept["architecture"].str.startswith("x3d_s: ").all()


def test_progress_page(results_store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_app(results_store, monkeypatch, "app_pages/progress.py")
    assert at.title[0].value == "Search progress"
    kinds = [fig["data"][0]["meta"]["kind"] for fig in charts(at)]
    assert kinds == ["hypervolume", "states", "importance", "parallel"]
    assert any("ε²" in c.value for c in at.caption)  # the importance method is stated


def test_trials_page(results_store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_app(results_store, monkeypatch, "app_pages/trials.py")
    assert at.title[0].value == "Trials table"
    df = data.load_store(results_store).trials
    wanted = df["state"].isin(["complete", "infeasible"]) & (df["protocol"] == E100)
    table = at.dataframe[0].value
    assert len(table) == int(wanted.sum())
    assert len(at.get("download_button")) == 1
    # the search parameters are offered, by their short names, those that vary shown
    offered = at.multiselect(key="trials_params")
    assert offered.options == [
        "expansion.depth",
        "expansion.width",
        "s1.temporal_kernel",
        "s1.block",
        "s2.width",
    ]
    assert "param.stages.1.block.type" in offered.value
    assert {"s1.block", "s2.width", "expansion.width"} <= set(table.columns)
    offered.set_value(["param.stages.2.width"]).run()
    table = at.dataframe[0].value
    assert "s2.width" in table.columns and "s1.block" not in table.columns


def test_missing_directory_is_a_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_app(tmp_path / "nowhere", monkeypatch)
    assert "does not exist" in at.error[0].value
    assert not at.get("plotly_chart")


def test_empty_directory_is_a_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_app(tmp_path, monkeypatch)
    assert "No trials yet" in at.info[0].value


def test_partly_corrupt_store_still_draws(
    fresh_store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (fresh_store / "tpe_x3d" / "trials.parquet").write_bytes(b"corrupt")
    (fresh_store / "tpe_x3d" / "trials.csv").write_bytes(b"\x00garbage")
    before = sorted(p.name for p in fresh_store.rglob("*"))
    at = open_app(fresh_store, monkeypatch)
    assert any("tpe_x3d" in w.value for w in at.warning)
    assert len(charts(at)) == 1
    assert sorted(p.name for p in fresh_store.rglob("*")) == before  # nothing written


def test_dashboard_imports_neither_torch_nor_optuna(results_store: Path) -> None:
    script = textwrap.dedent(
        f"""
        import os, sys
        sys.path.insert(0, {str(Path(APP).parents[1])!r})
        os.environ["HARNESS_RESULTS"] = {str(results_store)!r}
        from streamlit.testing.v1 import AppTest
        at = AppTest.from_file({APP!r}, default_timeout=120)
        at.run()
        for page in ("app_pages/trial.py", "app_pages/expansion.py", "app_pages/progress.py"):
            at.switch_page(page).run()
        assert not at.exception
        print(sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "optuna")))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"
