"""Axes that stop growing: the clip span (frames x stride) against the video length."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from harness.cli import _expand, main
from harness.errors import SpecError
from harness.expansion import ExpansionConfig, Step, expand_to_target
from harness.measure import precheck

TINY = str(Path(__file__).with_name("tiny_x2d.yaml"))  # 2 frames x stride 4 = span 8
VIDEO = 16  # frames of a synthetic:ci video


@dataclass
class Prefer:
    """An evaluator that trains nothing: the listed axes score best, in that order."""

    axes: Sequence[str]
    proposed: list[list[str]] = field(default_factory=list)  # axes of every step

    def evaluate(self, steps: Sequence[Step]) -> list[tuple[float | None, int | None]]:
        self.proposed.append([s.axis for s in steps])
        rank = {a: len(self.axes) - i for i, a in enumerate(self.axes)}
        return [(float(rank.get(s.axis, 0)), None) for s in steps]

    def keep(self, path: Sequence[Step]) -> None:
        del path


def _config(ratio: float, axes: tuple[str, ...]) -> ExpansionConfig:
    target = precheck(TINY).gflops * ratio
    return ExpansionConfig(target=target, axes=axes, max_span=VIDEO, span_source="test videos")


def test_frames_stop_at_the_video_length_and_are_dropped() -> None:
    evaluator = Prefer(["frames", "width"])
    result = expand_to_target(TINY, _config(6.0, ("frames", "width")), evaluator=evaluator)
    first, second = result.path[1], result.path[2]
    assert (first.axis, first.frames * first.stride) == ("frames", VIDEO)
    assert second.axis == "width" and list(second.dropped) == ["frames"]
    assert "would pass 16 frames (test videos)" in second.dropped["frames"]
    assert "(frames x stride, now 4 x 4 = 16)" in second.dropped["frames"]
    assert all(axes == ["width"] for axes in evaluator.proposed[2:])  # never tried again
    assert all(s.frames * s.stride <= VIDEO for s in result.path)


def test_no_axis_left_names_each_axis_and_its_limit() -> None:
    evaluator = Prefer(["frames", "frame_rate"])
    with pytest.raises(SpecError) as exc:
        expand_to_target(TINY, _config(32.0, ("frames", "frame_rate")), evaluator=evaluator)
    text = str(exc.value)
    assert "--axes: step 4: no axis can grow gflops x2 before the target" in text
    assert "frames: the clip span (frames x stride, now 4 x 4 = 16)" in text
    assert "frame_rate: clip.stride is 1" in text
    # frames 2 -> 4 (span 16), then the frame rate x2 twice: 16 frames at stride 1
    assert [axes[0] for axes in evaluator.proposed[1:]] == ["frames", "frame_rate", "frame_rate"]


def test_cli_blocked_axes_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(_expand, "_evaluator", lambda *a, **k: Prefer(["frames"]))
    target = f"{precheck(TINY).gflops * 32:.6f}"
    argv = ["expand", TINY, "--target-gflops", target, "--axes", "frames,frame_rate"]
    with pytest.raises(SystemExit) as exc:
        main([*argv, "--data", "synthetic:ci"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert "no axis can grow" in err and "frame_rate: clip.stride is 1" in err
    assert "would pass 16 frames (the video length of synthetic:ci)" in err


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--data", "synthetic:ci"], "would pass 16 frames (the video length of synthetic:ci)"),
        (["--max-frames", "12"], "would pass 12 frames (--max-frames)"),
    ],
)
def test_cli_dry_run_span_limit(
    extra: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["expand", TINY, "--dry-run", "--target-gflops", "0.01", "--order", "frames,frames"]
    with pytest.raises(SystemExit) as exc:
        main([*argv, *extra])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--order: step 2: axis 'frames' cannot grow" in err, err
    assert expected in err, err
