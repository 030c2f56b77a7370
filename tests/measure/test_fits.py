"""A real build is refused when it would not fit; a count that fits nowhere is made on meta."""

from __future__ import annotations

import pytest

from harness.errors import SpecError
from harness.measure import MEMORY_ENV, check_fits, forward_on_meta, memory_limit
from harness.report import describe_model


def test_a_stated_limit_is_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MEMORY_ENV, "100")
    assert memory_limit().bytes == 100 * 2**20 and memory_limit().source == MEMORY_ENV
    check_fits(50 * 2**20, "a small run")
    with pytest.raises(SpecError) as error:
        check_fits(2**30, "a big run", path=("--size",), file="<command line>")
    message = str(error.value)
    assert message.startswith("<command line>: --size: a big run would need 1 GiB, more than")
    assert "100 MiB of HARNESS_MEMORY_LIMIT_MB" in message and "\n" not in message
    for bad in ("0", "-5", "nan", "lots"):
        monkeypatch.setenv(MEMORY_ENV, bad)
        with pytest.raises(SpecError, match="HARNESS_MEMORY_LIMIT_MB: must be a number"):
            memory_limit()


def test_without_a_stated_limit_the_machine_has_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MEMORY_ENV, raising=False)
    limit = memory_limit()
    assert 0 < limit.bytes < 2**50 and limit.source


_STEPS = ("stem", "stages.0", "stages.1", "stages.2", "stages.3")
ROWS = {  # the rows of the multi-pathway networks above
    "slowfast_r50_4x16": [
        *(row for at in _STEPS for row in (f"slow/{at}", f"fast/{at}", f"fast->slow/{at}")),
        "join",
    ],
    "i3d_r50_two_stream": [*(f"{p}/{at}" for at in _STEPS for p in ("rgb", "flow")), "join"],
}
ROWS["slowfast_r50_4x16"].remove("fast->slow/stages.3")  # laterals after stem, 0, 1 and 2


@pytest.mark.parametrize(
    ("spec", "size"),
    [("tiny_c2d", None), ("slowfast_r50_4x16", 64), ("i3d_r50_two_stream", 64),
     ("timesformer_base", 64), ("x3d_s", 64)],
)  # fmt: skip
def test_the_count_on_meta_is_fvcore_s_stage_by_stage(
    spec: str, size: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The contract between the two rooms: the meta simulation's per-stage multiply-adds and
    # parameters are fvcore's, over the same rows (VideoNet.rows(): with several pathways,
    # each pathway's stem and stages, the laterals and the join).
    monkeypatch.delenv(MEMORY_ENV, raising=False)
    traced = describe_model(spec, size=size)
    monkeypatch.setenv(MEMORY_ENV, "1")  # fvcore's trace would not fit in 1 MB
    counted = describe_model(spec, size=size)
    assert (traced.count_method, counted.count_method) == ("fvcore", "meta_simulation")
    assert counted.gflops_all is None and traced.gflops_all is not None
    assert (counted.params, counted.params_no_norm) == (traced.params, traced.params_no_norm)
    assert counted.gflops == pytest.approx(traced.gflops, rel=1e-12)
    assert [(r.name, r.output_shape, r.params) for r in counted.stages] == [
        (r.name, r.output_shape, r.params) for r in traced.stages
    ]
    for ours, theirs in zip(counted.stages, traced.stages, strict=True):
        assert ours.gflops == pytest.approx(theirs.gflops, rel=1e-12, abs=1e-15)
    assert [r.name for r in counted.stages] == ROWS.get(spec, [r.name for r in traced.stages])
    assert counted.inputs == traced.inputs
    assert sum(r.params for r in counted.stages) == counted.params


def test_a_count_of_any_size_allocates_nothing() -> None:
    # 3 x 8 x 4096 x 4096 at batch 1: 1.6 GB for the clip alone, 9.5 GiB for the pass
    ahead = forward_on_meta("tiny_c2d", size=4096)
    assert ahead.memory.peak_bytes is not None and ahead.memory.peak_bytes > 9 * 2**30
    assert ahead.flops == sum(ahead.scope_flops.values())
    assert all(p.is_meta for p in ahead.model.parameters())


def test_a_measured_step_that_would_not_fit_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MEMORY_ENV, "64")
    with pytest.raises(SpecError, match=r"--batch: measuring memory at batch 512 .* would need"):
        describe_model("tiny_c2d", batch=512, memory="measure")
    with pytest.raises(SpecError, match=r"--batch: measuring latency at batch 512"):
        from harness.report import LatencyOptions

        describe_model("tiny_c2d", batch=512, latency=LatencyOptions(1, False, False))
