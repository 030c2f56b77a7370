"""The expansion runner: axes registry, the factor solver, the X3D dry run, bad input."""

from __future__ import annotations

import math

import pytest

from harness.cli import main
from harness.errors import SpecError
from harness.expansion import (
    X3D_ORDER,
    X3D_TARGETS,
    ExpansionConfig,
    KeyAxis,
    create_axis,
    expand_to_target,
    list_axes,
    solve_factor,
)
from harness.measure import precheck
from harness.spec import load_spec


# -- registry ----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list_axes())
def test_every_axis_grows_x2d_cost(name: str) -> None:
    if name == "frame_rate":
        pytest.skip("x2d samples at stride 1: its frame rate cannot rise (tested below)")
    config = ExpansionConfig(target=0.0413, order=(name,), tolerance=0.1)  # one ~2x step
    result = expand_to_target("x2d", config)
    step = result.path[1]
    assert step.axis == name and 1.5 < step.ratio < 2.7  # type: ignore[operator]


def test_aliases_and_key_axes() -> None:
    spec = load_spec("x2d")
    assert create_axis("gamma_t", spec).name == "frames"
    assert create_axis("gamma_tau", spec).name == "frame_rate"
    assert isinstance(create_axis("stages.2.depth", spec), KeyAxis)
    with pytest.raises(SpecError, match=r"axis 'stages\.0\.block\.type' is not a number"):
        create_axis("stages.0.block.type", spec)
    with pytest.raises(SpecError, match=r"axis 'widht' \(did you mean 'width'\?\) is not a key"):
        create_axis("widht", spec)


def test_key_axis_dry_run() -> None:
    result = expand_to_target("x2d", ExpansionConfig(target=0.03, order=("stages.2.depth",)))
    assert result.final.params["stages.2.depth"] > 5


def test_frame_rate_divides_stride() -> None:
    config = ExpansionConfig(target=1.2, order=("frame_rate",))
    result = expand_to_target("x3d_xs", config)
    real = load_spec("x3d_xs", **result.final.params)
    from harness.spec import realise

    clip = realise(real).clip
    assert (clip.frames, clip.stride) == (8, 6)  # the same 48 source frames, twice the rate


# -- solver --------------------------------------------------------------------------------------
def test_solver_picks_closest_step_of_a_staircase() -> None:
    def cost(f: float) -> float:  # doubles at f = 2, 4, ...: a discrete axis
        return 2.0 ** math.floor(math.log2(f) + 1e-9)

    assert solve_factor(cost, 2.0, high=100.0) == (2.0, 2.0)
    factor, value = solve_factor(cost, 3.5, high=100.0)
    assert value == 4.0 and 4.0 <= factor < 4.01
    assert solve_factor(lambda f: f**2, 4.0, high=100.0)[0] == pytest.approx(2.0, abs=1e-3)
    assert solve_factor(lambda f: f, 50.0, high=3.0) == (3.0, 3.0)  # unreachable: the caller


# -- the X3D family from X2D -------------------------------------------------------------------
@pytest.mark.parametrize("name", list(X3D_TARGETS))
def test_dry_run_reproduces_x3d_family(name: str) -> None:
    result = expand_to_target("x2d", ExpansionConfig(target=X3D_TARGETS[name], order=X3D_ORDER))
    zoo = precheck(name)
    final = result.final
    assert final.cost == pytest.approx(zoo.gflops, rel=0.02)
    assert final.frames == zoo.input_shape[1]
    assert final.size == pytest.approx(zoo.input_shape[2], rel=0.02)
    zoo_spec = load_spec(name)
    assert final.factors["bottleneck"] == pytest.approx(zoo_spec.expansion.bottleneck)
    assert final.factors["depth"] == pytest.approx(zoo_spec.expansion.depth, abs=1e-3)
    ratios = [s.ratio for s in result.path[1:] if not s.contracted]
    assert all(1.8 <= r <= 2.2 for r in ratios), ratios  # type: ignore[operator]


# -- bad input: one line, exit 2 -----------------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--axes", "frames,foo"], "--axes: axis 'foo' is not a key of spec 'x2d'"),
        (["--order", "frames,stages.0.block.type"], "axis 'stages.0.block.type' is not a number"),
        (["--target-gflops", "0.01"], "--target-gflops: target 0.01 is not above the cost"),
        (["--step-ratio", "1.0"], "--step-ratio: step ratio must be above 1, got 1"),
        (["--order", "frame_rate"], "step 1: axis 'frame_rate' cannot grow: clip.stride is 1"),
        (["--order", "frames", "--max-frames", "1"], "axis 'frames' cannot grow: the clip span"),
        (["--order", "frames"], "--order: after 1 steps the cost is"),
        (
            ["--cost", "flops"],
            "--cost: unknown cost 'flops'; known: gflops, gflops_all, train_gflops, params",
        ),
        (["--target-params", "1e6"], "give exactly one of --target-gflops, --target-params"),
        (["--latency-threads", "0"], "--latency-threads: must be at least 1, got 0"),
    ],
)
def test_bad_input_exits_2_with_one_line(
    args: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["expand", "x2d", "--dry-run", *args]
    if "--target-gflops" not in args:
        argv += ["--target-gflops", "0.6"]
    if "--order" not in args:
        argv += ["--order", "frames,size"]
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and expected in err, err
