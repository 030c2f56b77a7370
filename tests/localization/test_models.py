"""Localization networks: their counts by hand, meta against fvcore, NMS, and training."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from harness.errors import SpecError
from harness.localization import Detection, Instance, average_recall, evaluate_detections
from harness.localization.costs import count_localizer, load_localization_spec
from harness.localization.models import boundary_matching_mask, build_localizer
from harness.localization.post import suppress
from harness.localization.train import FeatureVideo, detect, train_localizer, window_offsets
from harness.measure import count_flops
from harness.spec.localization import LocalizationSpec, PostProcessSpec


def spec(**changes: object) -> LocalizationSpec:
    data: dict[str, object] = {
        "name": "small",
        "input": {"width": 8, "steps": 16},
        "neck": {"type": "pyramid", "width": 8, "levels": 2, "depth": 1},
        "head": {"type": "anchor_free", "width": 8, "depth": 1},
        "classes": 3,
    }
    data.update(changes)
    return LocalizationSpec.model_validate(data)


def test_bmn_counts_its_trainable_parameters_not_its_sampling_mask() -> None:
    costs = count_localizer(load_localization_spec("bmn"))
    assert costs.params == 4_978_564  # about 4.98M, as BMN's reference configuration
    assert costs.buffer_values == 100 * 32 * 100 * 100  # the mask: 36.98M if counted
    assert costs.params + costs.buffer_values == 36_978_564


def test_a_small_pyramid_by_hand() -> None:
    # embed 8->8 k3 on 16 steps; level 0 (16 steps): depthwise k3, 8->16, 16->8; level 1 (8
    # steps) the same; the head at each level: class 8->8 k3 + 8->3 k3, distances 8->8 k3 +
    # 8->2 k3.
    embed = 8 * 8 * 3 * 16
    block = 8 * 3 + 8 * 16 + 16 * 8  # per step
    head = 8 * 8 * 3 + 8 * 3 * 3 + 8 * 8 * 3 + 8 * 2 * 3  # per step
    hand = embed + block * (16 + 8) + head * (16 + 8)
    assert count_localizer(spec()).flops == hand == 21_888


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {
            "neck": {
                "type": "pyramid",
                "width": 8,
                "levels": 3,
                "depth": 2,
                "mixer": "attention",
                "window": 4,
                "heads": 2,
            }
        },
        {
            "neck": None,
            "head": {"type": "bmn", "width": 8, "width_3d": 16, "width_2d": 8, "samples": 4},
        },
    ],
)
def test_the_meta_count_is_fvcores(changes: dict) -> None:
    small = spec(**changes)
    model = build_localizer(small)
    traced = count_flops(model, torch.randn(1, 8, 16))
    assert traced.unsupported_ops == {}
    assert count_localizer(small).flops == traced.flops > 0


def test_outputs_have_the_documented_shapes() -> None:
    net = build_localizer(spec())
    out = net(torch.randn(2, 8, 16))
    assert out.shape == (2, 3 + 2, 16 + 8)
    assert net.centres().tolist() == [i + 0.5 for i in range(16)] + [2 * i + 1 for i in range(8)]
    assert (out[:, -2:] >= 0).all()  # distances
    bmn = build_localizer(spec(neck=None, head={"type": "bmn", "width": 8, "samples": 4}))
    confidence, boundaries = bmn(torch.randn(2, 8, 16))
    assert confidence.shape == (2, 2, 16, 16) and boundaries.shape == (2, 2, 16)


def test_the_sampling_mask_averages_inside_the_window() -> None:
    mask = boundary_matching_mask(10, 10, 4, 3, 0.5)
    assert np.allclose(mask.sum(axis=0)[:, 2, 4], 1.0)  # steps 4..6, widened: inside
    assert mask[:, :, 9, 1].sum() == 0.0  # 10 steps from step 1 run past the window


@pytest.mark.parametrize(
    ("changes", "path"),
    [
        ({"neck": {"type": "pyramid", "width": 8, "levels": 6}}, ("neck", "levels")),
        (
            {"neck": {"type": "pyramid", "width": 8, "mixer": "attention", "heads": 3}},
            ("neck", "heads"),
        ),
        ({"neck": None}, ("head",)),
        ({"head": {"type": "bmn", "width": 8}}, ("neck",)),
    ],
)
def test_what_cannot_be_built_names_its_key(changes: dict, path: tuple) -> None:
    with pytest.raises(SpecError) as caught:
        build_localizer(spec(**changes))
    assert caught.value.path == path


def test_hard_and_soft_nms_by_hand() -> None:
    segments = np.array([[0, 10], [1, 10], [20, 30]], dtype=float)
    scores = np.array([0.9, 0.8, 0.7])
    hard = suppress(segments, scores, PostProcessSpec(nms="hard", iou_threshold=0.5))
    assert hard[:, 0].tolist() == [0, 2]  # 1-10 overlaps 0-10 by 0.9
    soft = suppress(segments, scores, PostProcessSpec(nms="soft", sigma=0.5))
    assert soft[:, 0].tolist() == [0, 2, 1]
    assert soft[2, 1] == pytest.approx(0.8 * np.exp(-(0.9**2) / 0.5))


def test_window_offsets_cover_the_video() -> None:
    assert window_offsets(40, 16) == [0, 8, 16, 24]
    assert window_offsets(10, 16) == [0]


def _toy(videos: int, seed: int) -> list[FeatureVideo]:
    """Features that say the class inside each instance, plus noise."""
    rng = np.random.default_rng(seed)
    out = []
    for v in range(videos):
        features = rng.normal(0, 0.3, (48, 8)).astype(np.float32)
        instances = []
        for label, start, length in ((v % 3, 4, 6), ((v + 1) % 3, 20, 12)):
            features[start : start + length, label] += 2.0
            instances.append((label, float(start), float(start + length)))
        out.append(FeatureVideo(f"v{v}", features, tuple(instances)))
    return out


def test_training_finds_the_instances() -> None:
    small = spec()
    train, val = _toy(12, 0), _toy(6, 1)
    net = train_localizer(small, train, epochs=12, batch_size=12, lr=1e-2)
    truth = [Instance(v.name, str(lab), s, e) for v in val for lab, s, e in v.instances]
    found = [Detection(v.name, str(int(r[0])), r[1], r[2], r[3])
             for v in val for r in detect(net, small, v)]  # fmt: skip
    result = evaluate_detections(truth, found, [0.5])
    assert result.mAP[0] > 0.6, result


def test_bmn_learns_proposals_with_recall_above_an_untrained_one() -> None:
    bmn = spec(
        neck=None,
        head={"type": "bmn", "width": 16, "width_3d": 32, "width_2d": 16, "samples": 8},
        post={"nms": "soft", "sigma": 0.4, "max_segments": 10},
    )
    train, val = _toy(12, 0), _toy(6, 1)
    truth = [Instance(v.name, str(lab), s, e) for v in val for lab, s, e in v.instances]

    def recall(epochs: int, lr: float) -> float:
        net = train_localizer(bmn, train, epochs=epochs, batch_size=12, lr=lr)
        found = [Detection(v.name, "proposal", r[1], r[2], r[3])
                 for v in val for r in detect(net, bmn, v)]  # fmt: skip
        return average_recall(truth, found, proposals_per_video=(5,))[5]

    trained, untrained = recall(10, 1e-2), recall(1, 1e-9)
    assert trained > 0.5 and trained > untrained + 0.3, (trained, untrained)


def test_harness_compile_costs_a_localization_spec(tmp_path) -> None:
    import json
    import subprocess
    import sys

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "harness", "compile", *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=120)

    report = json.loads(run("bmn", "--json").stdout)
    assert (report["params"], report["buffer_values"]) == (4_978_564, 32_000_000)
    assert report["flops"] == count_localizer(load_localization_spec("bmn")).flops
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "task: localization\ninput: {width: 8, steps: 10}\n"
        "neck: {type: pyramid, width: 8, levels: 3}\nhead: {type: anchor_free, width: 8}\n"
    )
    result = run(str(bad))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip() == (
        f"harness: {bad}:3:33: neck.levels: 3 levels halve time 2 times: the window's 10 "
        "steps must be a multiple of 4"
    )
