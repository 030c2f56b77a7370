"""Every zoo model reproduces its published figures at the published input.

Parameters within 0.5% and GFLOPs within 2% (or within the rounding of the printed figure,
when that is coarser), in the convention the YAML states. The full-size figures are counted
on meta tensors (exact, and nothing of the network's size allocated); that count is
fvcore's for every zoo model, traced at a small clip below. Full-size counts: marked slow.
"""

from __future__ import annotations

import pytest

import harness
from harness.compiler import min_clip
from harness.measure import MEMORY_ENV
from harness.report import describe_model
from harness.spec import load_spec, parse_figure

ZOO = harness.list_zoo()
REQUIRED = {
    "c3d",
    "r3d_18",
    "mc3_18",
    "r2plus1d_18",
    "s3d",
    "i3d_r50",
    "c2d_r50",
    "slowonly_r50_8x8",
    "x3d_xs",
    "x3d_s",
    "x3d_m",
    "x3d_l",
    "x3d_xl",
    "ir_csn_152",
    "ip_csn_152",
    "tsm_r50",
    "x2d",
}


def test_zoo_has_the_required_models() -> None:
    assert set(ZOO) >= REQUIRED


@pytest.mark.parametrize("name", ZOO)
def test_zoo_spec_cites_a_source(name: str) -> None:
    published = load_spec(name).published
    assert published is not None and published.source.strip()
    assert published.params is not None and published.gflops is not None


@pytest.mark.slow
@pytest.mark.parametrize("name", ZOO)
def test_zoo_reproduces_published_figures(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = load_spec(name)
    published = spec.published
    assert published is not None
    if published.gflops_convention == "compute":  # the meta count (fvcore's total needs it)
        monkeypatch.setenv(MEMORY_ENV, "0.001")  # 1 kB: no trace fits
    report = describe_model(
        spec, frames=published.frames, size=published.size, classes=published.classes
    )
    if published.gflops_convention == "compute":
        assert report.count_method == "meta_simulation"
    else:
        assert report.unsupported_ops == {}

    params = report.params if published.params_convention == "all" else report.params_no_norm
    value, half_unit = parse_figure(published.params)
    assert abs(params - value) <= max(0.005 * value, half_unit), (params, value)

    gflops = report.gflops if published.gflops_convention == "compute" else report.gflops_all
    value, half_unit = parse_figure(published.gflops)
    assert abs(gflops - value) <= max(0.02 * value, half_unit), (gflops, value)


@pytest.mark.parametrize(
    ("name", "params"),
    [("r3d_18", 33371472), ("mc3_18", 11695440), ("r2plus1d_18", 31505325), ("s3d", 8320048)],
)
def test_exact_published_parameter_counts(name: str, params: int) -> None:
    """Where the source prints an exact count, ours is exact."""
    from harness import build_model
    from harness.measure import count_params

    assert count_params(build_model(name)) == params


@pytest.mark.parametrize("name", ZOO)
def test_zoo_counts_on_meta_are_fvcore_s_with_nothing_uncounted(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """fvcore traces every zoo model (at a small crop): no operator it does not count, and
    the meta count the published figures are checked with is its count, row by row."""
    size = 64 if min_clip(load_spec(name))[1] <= 64 else None
    monkeypatch.delenv(MEMORY_ENV, raising=False)
    traced = describe_model(name, size=size)
    assert traced.count_method == "fvcore" and traced.unsupported_ops == {}
    monkeypatch.setenv(MEMORY_ENV, "0.001")  # 1 kB: fvcore's trace would not fit
    counted = describe_model(name, size=size)
    assert counted.count_method == "meta_simulation"
    assert (counted.params, counted.params_no_norm) == (traced.params, traced.params_no_norm)
    assert [(r.name, r.params, r.gflops) for r in counted.stages] == [
        (r.name, r.params, r.gflops) for r in traced.stages
    ]
