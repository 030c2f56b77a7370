"""Every zoo model reproduces its published figures at the published input.

Parameters within 0.5% and GFLOPs within 2% (or within the rounding of the printed figure,
when that is coarser), in the convention the YAML states. Full-size traces: marked slow.
"""

from __future__ import annotations

import pytest

import harness
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
def test_zoo_reproduces_published_figures(name: str) -> None:
    spec = load_spec(name)
    published = spec.published
    assert published is not None
    report = describe_model(
        spec, frames=published.frames, size=published.size, classes=published.classes
    )
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
