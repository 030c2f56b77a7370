"""I3D inflation: a constant clip through the inflated 3D net reproduces the 2D net."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch import nn

from harness.compiler import VideoNet, build_model
from harness.compiler.inflate import inflate_into, inflate_state_dict, load_2d_checkpoint
from harness.errors import SpecError
from harness.spec import load_yaml_text
from harness.spec.load import spec_from_document

# A tiny I3D-style ResNet: 3x7x7 stem (+ 1x3x3 pool), a stage of 3x3x3 basic blocks, then a
# stage of 1x3x3 ones with a strided 1x1x1 shortcut. Temporal receptive radius: 1 + 2 = 3.
TINY_I3D = """
name: tiny_i3d
clip: {frames: 8, size: 32}
classes: 5
stem:
  type: conv
  width: 8
  kernel: [3, 7, 7]
  stride: [1, 2, 2]
  pool: {type: max, kernel: [1, 3, 3], stride: [1, 2, 2], padding: [0, 1, 1]}
stages:
  - {block: {type: basic, temporal_kernel: 3}, depth: 1, width: 8}
  - {block: {type: basic, temporal_kernel: 1}, depth: 1, width: 16, spatial_stride: 2}
head: {type: classifier}
"""
FRAMES = 8
RADIUS = 3  # frames lost to zero temporal padding at each end of the clip
INTERIOR = slice(RADIUS, FRAMES - RADIUS)


class BasicBlock2d(nn.Module):
    """torchvision's ResNet basic block, with its parameter names."""

    def __init__(self, dim_in: int, dim_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(dim_in, dim_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(dim_out)
        self.conv2 = nn.Conv2d(dim_out, dim_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(dim_out)
        self.downsample: nn.Module | None = None
        if stride != 1 or dim_in != dim_out:
            self.downsample = nn.Sequential(
                nn.Conv2d(dim_in, dim_out, 1, stride, bias=False), nn.BatchNorm2d(dim_out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
        shortcut = x if self.downsample is None else self.downsample(x)
        return torch.relu(y + shortcut)


class TinyResNet2d(nn.Module):
    """The 2D counterpart of ``TINY_I3D``, named as torchvision names ResNets."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = nn.Sequential(BasicBlock2d(8, 8, 1))
        self.layer2 = nn.Sequential(BasicBlock2d(8, 16, 2))
        self.fc = nn.Linear(16, 5)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(torch.relu(self.bn1(self.conv1(x))))
        return self.layer2(self.layer1(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x).mean(dim=(2, 3)))


_RENAMES: list[tuple[str, str | Callable[[re.Match[str]], str]]] = [
    (r"^conv1\.", "stem.0.conv."),
    (r"^bn1\.", "stem.0.norm."),
    (r"^layer(\d)\.", lambda m: f"stages.{int(m[1]) - 1}."),
    (r"\.conv(\d)\.", lambda m: f".branch.{int(m[1]) - 1}.conv."),
    (r"\.bn(\d)\.", lambda m: f".branch.{int(m[1]) - 1}.norm."),
    (r"\.downsample\.0\.", ".shortcut.conv."),
    (r"\.downsample\.1\.", ".shortcut.norm."),
    (r"^fc\.", "head.2."),
]


def torchvision_to_harness(key: str) -> str:
    for pattern, replacement in _RENAMES:
        key = re.sub(pattern, replacement, key)
    return key


def _tiny_i3d() -> VideoNet:
    return build_model(spec_from_document(load_yaml_text(TINY_I3D, "tiny_i3d.yaml")))


def _randomised_2d() -> TinyResNet2d:
    """A 2D net in eval mode whose norms are far from identity, so every entry matters."""
    torch.manual_seed(0)
    net = TinyResNet2d()
    for module in net.modules():
        if isinstance(module, nn.BatchNorm2d):
            nn.init.uniform_(module.weight, 0.5, 1.5)
            nn.init.normal_(module.bias, std=0.2)
            module.running_mean.normal_(std=0.2)
            module.running_var.uniform_(0.5, 1.5)
    return net.eval()


def _constant_clip(frame: torch.Tensor, frames: int = FRAMES) -> torch.Tensor:
    return frame.unsqueeze(2).expand(-1, -1, frames, -1, -1).contiguous()


def test_constant_clip_reproduces_2d_network() -> None:
    net2d = _randomised_2d()
    model = _tiny_i3d()
    inflate_into(model, net2d.state_dict(), key_map=torchvision_to_harness)
    model.eval()
    frame = torch.randn(2, 3, 32, 32)

    features: list[torch.Tensor] = []
    model.stages[-1].register_forward_hook(lambda mod, inp, out: features.append(out))
    with torch.no_grad():
        model(_constant_clip(frame))
        want = net2d.features(frame)
        got = features[0][:, :, INTERIOR]
        assert got.shape[2] == 2
        for t in range(got.shape[2]):
            torch.testing.assert_close(got[:, :, t], want, atol=1e-4, rtol=1e-4)
        # the head on the frames that see no padding gives the 2D scores
        torch.testing.assert_close(model.head(got), net2d(frame), atol=1e-4, rtol=1e-4)
        # the border frames do see the zero padding: the temporal kernels are really 3 wide
        assert not torch.allclose(features[0][:, :, 0], want, atol=1e-2)


def test_kernels_repeat_over_time_divided_by_t() -> None:
    net2d = _randomised_2d()
    model = _tiny_i3d()
    state = inflate_state_dict(net2d.state_dict(), model, key_map=torchvision_to_harness)
    stem = state["stem.0.conv.weight"]
    assert stem.shape == (8, 3, 3, 7, 7)
    for t in range(3):
        torch.testing.assert_close(stem[:, :, t], net2d.conv1.weight.detach() / 3)
    flat = state["stages.1.0.branch.0.conv.weight"]  # 1x3x3: copied, divided by 1
    torch.testing.assert_close(flat[:, :, 0], net2d.layer2[0].conv1.weight.detach())
    torch.testing.assert_close(state["head.2.bias"], net2d.fc.bias.detach())
    assert state.keys() == model.state_dict().keys()


class _Temporal(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv3d(4, 6, (3, 1, 1), padding=(1, 0, 0))


@pytest.mark.parametrize("shape", [(6, 4, 1, 1), (6, 4)], ids=["conv1x1", "linear"])
def test_pointwise_2d_weight_inflates_into_temporal_conv(shape: tuple[int, ...]) -> None:
    weight = torch.randn(shape)
    bias = torch.randn(6)
    model = _Temporal()
    set_keys = inflate_into(model, {"conv.weight": weight, "conv.bias": bias})
    assert set_keys == ["conv.weight", "conv.bias"]
    want = weight.reshape(6, 4, 1, 1, 1).expand(6, 4, 3, 1, 1) / 3
    torch.testing.assert_close(model.conv.weight.detach(), want)
    torch.testing.assert_close(model.conv.bias.detach(), bias)


@pytest.mark.parametrize(
    ("shape", "key"),
    [((8, 4, 7, 7), "stem.0.conv.weight"), ((8, 3, 5, 5), "stem.0.conv.weight")],
    ids=["channels", "spatial"],
)
def test_shape_mismatch_names_key_and_shapes(shape: tuple[int, ...], key: str) -> None:
    state = _randomised_2d().state_dict()
    state["conv1.weight"] = torch.randn(shape)
    with pytest.raises(SpecError, match="cannot inflate") as info:
        inflate_state_dict(state, _tiny_i3d(), key_map=torchvision_to_harness)
    message = str(info.value)
    assert f"conv1.weight -> {key}" in message
    assert str(shape) in message and "(8, 3, 3, 7, 7)" in message


def test_two_keys_onto_one_target_is_an_error() -> None:
    state = {"a": torch.randn(6, 4, 1, 1), "b": torch.randn(6, 4, 1, 1)}
    with pytest.raises(SpecError, match=r"'a' and 'b' both map to 'conv\.weight'"):
        inflate_state_dict(state, _Temporal(), key_map={"a": "conv.weight", "b": "conv.weight"})


def _without_layer2(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v for k, v in state.items() if not k.startswith("layer2.")}


def test_strict_lists_missing_parameters_but_not_norm_statistics() -> None:
    state = _without_layer2(_randomised_2d().state_dict())
    with pytest.raises(SpecError, match="have no 2D source") as info:
        inflate_state_dict(state, _tiny_i3d(), key_map=torchvision_to_harness)
    message = str(info.value)
    assert "stages.1.0.branch.0.conv.weight" in message
    assert "stages.1.0.shortcut.norm.bias" in message
    assert "running_mean" not in message and "num_batches_tracked" not in message
    assert "stages.0." not in message and "stem." not in message


def test_strict_accepts_missing_norm_statistics() -> None:
    state = {k: v for k, v in _randomised_2d().state_dict().items() if "running" not in k}
    model = _tiny_i3d()
    init_stats = model.state_dict()["stem.0.norm.running_var"].clone()
    result = inflate_state_dict(state, model, key_map=torchvision_to_harness)
    torch.testing.assert_close(result["stem.0.norm.running_var"], init_stats)


def test_strict_lists_2d_keys_that_match_nothing() -> None:
    state = _randomised_2d().state_dict()
    state["aux.fc.weight"] = torch.randn(2, 2)
    with pytest.raises(SpecError, match=r"1 2D entries match no 3D name: aux\.fc\.weight"):
        inflate_state_dict(state, _tiny_i3d(), key_map=torchvision_to_harness)

    def drop_aux(key: str) -> str | None:  # a key map returning None drops the key instead
        return None if key.startswith("aux.") else torchvision_to_harness(key)

    inflate_state_dict(state, _tiny_i3d(), key_map=drop_aux)


def test_non_strict_fills_what_it_can_and_keeps_the_rest() -> None:
    net2d = _randomised_2d()
    state = _without_layer2(net2d.state_dict())
    model = _tiny_i3d()
    before = {k: v.clone() for k, v in model.state_dict().items()}

    partial = inflate_state_dict(state, model, key_map=torchvision_to_harness, strict=False)
    assert not any(k.startswith("stages.1.") for k in partial)
    assert {k for k in before if not k.startswith("stages.1.")} == partial.keys()

    set_keys = inflate_into(model, state, key_map=torchvision_to_harness, strict=False)
    assert set_keys == list(partial)
    after = model.state_dict()
    for key, value in before.items():
        if key.startswith("stages.1."):
            torch.testing.assert_close(after[key], value)  # kept its init
    torch.testing.assert_close(after["stem.0.norm.bias"], net2d.bn1.bias.detach())


def test_dict_key_map_renames_listed_keys_and_keeps_the_rest() -> None:
    weight = torch.randn(6, 4, 1, 1)
    model = _Temporal()
    set_keys = inflate_into(
        model, {"w": weight, "conv.bias": torch.zeros(6)}, key_map={"w": "conv.weight"}
    )
    assert set_keys == ["conv.weight", "conv.bias"]


@pytest.mark.parametrize("wrap", [None, "state_dict", "model"])
def test_load_2d_checkpoint_round_trips(tmp_path: Path, wrap: str | None) -> None:
    state = _randomised_2d().state_dict()
    saved = state if wrap is None else {wrap: state, "epoch": 3}
    path = tmp_path / "resnet2d.pt"
    torch.save(saved, path)
    loaded = load_2d_checkpoint(path)
    assert loaded.keys() == state.keys()
    for key, value in state.items():
        assert torch.equal(loaded[key], value)


def test_load_2d_checkpoint_rejects_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.pt"
    with pytest.raises(SpecError, match="no such file") as info:
        load_2d_checkpoint(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    "content",
    [[1, 2, 3], {"epoch": 3}, {"w": torch.zeros(1), "lr": 0.1}],
    ids=["list", "no-tensors", "mixed"],
)
def test_load_2d_checkpoint_rejects_non_state_dicts(tmp_path: Path, content: object) -> None:
    path = tmp_path / "odd.pt"
    torch.save(content, path)
    with pytest.raises(SpecError, match="not a state dict") as info:
        load_2d_checkpoint(path)
    assert "odd.pt" in str(info.value)


class _Payload:
    pass


@pytest.mark.parametrize("kind", ["garbage", "pickled-object"])
def test_load_2d_checkpoint_rejects_unloadable_files(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "bad.pt"
    if kind == "garbage":
        path.write_bytes(b"definitely not a checkpoint")
    else:
        torch.save({"w": _Payload()}, path)  # weights_only refuses arbitrary classes
    with pytest.raises(SpecError, match="cannot load checkpoint") as info:
        load_2d_checkpoint(path)
    assert "bad.pt" in str(info.value)
