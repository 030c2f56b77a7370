"""Memory: the simulation against hand-derived figures and against profiled real steps."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import harness
from harness.compiler import VideoNet, min_clip
from harness.errors import SpecError
from harness.measure import (
    count_activations,
    estimate_inference_memory,
    estimate_train_memory,
    measure_inference_memory,
    measure_train_memory,
)
from harness.measure import memory as memory_module
from harness.measure._meta import SavedTensors
from harness.measure._runtime import (
    OPTIMIZERS,
    autocast,
    create_optimizer,
    example_batch,
    optimizer_state_like,
)
from harness.spec import load_spec, realise
from harness.zoo import list_zoo

requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

# What a step keeps alive: the simulation must reproduce these exactly.
KEPT = ("param_bytes", "buffer_bytes", "grad_bytes", "optimizer_bytes", "input_bytes")


def _pointwise_net() -> nn.Module:
    """1x1x1 conv (2 -> 16 channels) -> ReLU -> flatten -> linear to 3 classes."""
    return nn.Sequential(
        nn.Conv3d(2, 16, 1, bias=False),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(16 * 2 * 4 * 4, 3, bias=False),
    )


SHAPE = (2, 2, 4, 4)


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_simulated_step_by_hand(optimizer: str) -> None:
    batch = 4
    memory = estimate_train_memory(_pointwise_net(), SHAPE, batch=batch, optimizer=optimizer)
    act = batch * 16 * 2 * 4 * 4 * 4  # bytes of the conv's (and the ReLU's) output
    weights = (2 * 16 + 16 * 32 * 3) * 4
    assert memory.param_bytes == memory.grad_bytes == weights
    assert memory.input_bytes == batch * 2 * 2 * 4 * 4 * 4 + batch * 8  # clips, int64 targets
    # SGD keeps one momentum buffer per parameter; AdamW two moments and a step counter.
    moments = weights if optimizer == "sgd" else 2 * weights + 2 * 4
    assert memory.optimizer_bytes == moments
    # Saved for backward: the ReLU's output (the linear layer saves a view of the same).
    assert memory.saved_bytes == act
    # Peak: in the ReLU's backward the saved output, its gradient, the conv output's
    # gradient and the linear layer's weight gradient are alive at once (+ loss scalars).
    assert memory.peak_bytes is not None
    held = memory.param_bytes + memory.input_bytes + memory.optimizer_bytes
    assert 3 * act + 3 * 512 * 4 <= memory.peak_bytes - held <= 3 * act + 3 * 512 * 4 + 64
    assert memory.method == "meta_simulation" and not memory.oom


@pytest.mark.parametrize(("optimizer", "buffers"), [("sgd", 1), ("adamw", 2)])
def test_a_fused_update_adds_nothing_to_the_peak(optimizer: str, buffers: int) -> None:
    # Weights dominate. The optimizers run fused, in place, so the update allocates nothing
    # and the peak is the end of backward: every gradient, plus the hidden gradient (2000
    # floats) the first weight's gradient is computed from, plus the loss's two scalars.
    model = nn.Sequential(
        nn.Flatten(), nn.Linear(96, 2000, bias=False), nn.ReLU(), nn.Linear(2000, 3, bias=False)
    )
    shape = (3, 2, 4, 4)
    simulated = estimate_train_memory(model, shape, batch=1, optimizer=optimizer)
    measured = measure_train_memory(model, shape, batch=1, optimizer=optimizer)
    assert simulated.peak_bytes is not None and measured.peak_bytes is not None
    held = simulated.param_bytes + simulated.optimizer_bytes + simulated.input_bytes
    assert simulated.peak_bytes - held == simulated.grad_bytes + 2000 * 4 + 2 * 4
    steps = 4 * 2 if optimizer == "adamw" else 0  # AdamW's fused step counters
    assert simulated.optimizer_bytes == buffers * simulated.param_bytes + steps
    assert simulated.optimizer_bytes == measured.optimizer_bytes
    assert 0 <= measured.peak_bytes - simulated.peak_bytes <= 64  # a few CPU scalars


@pytest.mark.parametrize("name", OPTIMIZERS.names())
def test_recipe_state_is_what_a_real_step_keeps(name: str) -> None:
    params = [torch.randn(5, 3, requires_grad=True), torch.randn(7, requires_grad=True)]
    params.append(torch.randn(2, requires_grad=True))  # no gradient: no state
    for p in params[:2]:
        p.grad = torch.randn_like(p)
    optimizer = create_optimizer(name, params)
    optimizer.step()
    real = [
        (tuple(t.shape), t.dtype)
        for p in params
        for t in optimizer.state[p].values()
        if isinstance(t, torch.Tensor)
    ]
    like = [(tuple(t.shape), t.dtype) for t in optimizer_state_like(name, params)]
    assert sorted(like, key=str) == sorted(real, key=str)


def test_simulated_inference_by_hand() -> None:
    memory = estimate_inference_memory(_pointwise_net(), SHAPE, batch=4)
    # The conv's output and the ReLU's output coexist; then only small scores remain.
    assert memory.activation_bytes == 2 * 4 * 16 * 2 * 4 * 4 * 4
    assert memory.param_bytes == (2 * 16 + 16 * 32 * 3) * 4


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_accumulation_holds_the_gradients_through_the_next_micro_batch(optimizer: str) -> None:
    # A later micro-batch starts with every gradient held; its backward adds to them in
    # place, each new gradient alive only until it is added.
    model = nn.Sequential(
        nn.Flatten(), nn.Linear(96, 2000, bias=False), nn.ReLU(), nn.Linear(2000, 3, bias=False)
    )
    shape = (3, 2, 4, 4)
    plain = estimate_train_memory(model, shape, batch=1, optimizer=optimizer)
    simulated = estimate_train_memory(model, shape, batch=1, optimizer=optimizer, grad_accum=2)
    measured = measure_train_memory(model, shape, batch=1, optimizer=optimizer, grad_accum=2)
    assert simulated.peak_bytes is not None and measured.peak_bytes is not None
    assert plain.peak_bytes is not None and simulated.peak_bytes > plain.peak_bytes
    held = simulated.param_bytes + simulated.optimizer_bytes + simulated.input_bytes
    first = 96 * 2000 * 4  # the first layer's new weight gradient, before it is added
    assert simulated.peak_bytes - held - simulated.grad_bytes >= first
    assert simulated.grad_accum == measured.grad_accum == 2
    assert 0 <= measured.peak_bytes - simulated.peak_bytes <= 64  # a few CPU scalars


@pytest.mark.parametrize(
    ("optimizer", "precision", "grad_accum"),
    [("sgd", "fp32", 1), ("adamw", "bf16", 1), ("adamw", "fp32", 3)],
)
def test_simulation_keeps_what_a_real_step_keeps(
    tiny: VideoNet, optimizer: str, precision: str, grad_accum: int
) -> None:
    shape = tiny.plan.input_shape
    kwargs = dict(batch=8, optimizer=optimizer, precision=precision, grad_accum=grad_accum)
    measured = measure_train_memory(tiny, shape, **kwargs)  # type: ignore[arg-type]
    simulated = estimate_train_memory(tiny, shape, **kwargs)  # type: ignore[arg-type]
    assert measured.method == "profiler_cpu_peak"
    for name in (*KEPT, "saved_bytes"):
        assert getattr(simulated, name) == getattr(measured, name), name
    # The real peak adds what CPU kernels allocate inside themselves (a contiguous copy
    # of a gradient in convolution backward, here about 10%); the simulation does not.
    assert measured.peak_bytes is not None and simulated.peak_bytes is not None
    assert 0.85 * measured.peak_bytes <= simulated.peak_bytes <= measured.peak_bytes


def test_simulated_inference_matches_a_real_forward(tiny: VideoNet) -> None:
    shape = tiny.plan.input_shape
    measured = measure_inference_memory(tiny, shape, batch=8)
    simulated = estimate_inference_memory(tiny, shape, batch=8)
    assert measured.activation_bytes is not None and simulated.activation_bytes is not None
    assert simulated.activation_bytes == pytest.approx(measured.activation_bytes, rel=0.02)


def test_bf16_saves_half_width_activations(tiny: VideoNet) -> None:
    shape = tiny.plan.input_shape
    fp32 = estimate_train_memory(tiny, shape, batch=2)
    bf16 = estimate_train_memory(tiny, shape, batch=2, precision="bf16")
    assert bf16.saved_bytes < 0.75 * fp32.saved_bytes
    assert bf16.grad_bytes == fp32.grad_bytes  # gradients stay fp32 under autocast


def test_saved_activations_grow_linearly_with_the_batch(tiny: VideoNet) -> None:
    shape = tiny.plan.input_shape
    one, two, four = (estimate_train_memory(tiny, shape, batch=b).saved_bytes for b in (1, 2, 4))
    # Per-clip activations, plus per-channel norm statistics that do not depend on it.
    assert four - two == 2 * (two - one) > 0


def test_simulation_leaves_the_model_alone(tiny: VideoNet) -> None:
    tiny.eval()
    before = {k: v.clone() for k, v in tiny.state_dict().items()}
    estimate_train_memory(tiny, tiny.plan.input_shape, batch=2)
    after = tiny.state_dict()
    assert not tiny.training
    assert all(torch.equal(before[k], after[k]) and after[k].device.type == "cpu" for k in before)
    assert all(p.grad is None for p in tiny.parameters())


def test_count_activations_by_hand() -> None:
    # fvcore's definition: outputs of the conv (16 x 2 x 4 x 4) and of the linear (3).
    assert count_activations(_pointwise_net(), torch.randn(1, *SHAPE)) == 16 * 2 * 4 * 4 + 3


def test_out_of_memory_is_data_not_a_crash(tiny: VideoNet, monkeypatch: pytest.MonkeyPatch) -> None:
    def exhausted(*args: object) -> None:
        raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(memory_module, "_prepare", exhausted)
    result = measure_train_memory(tiny, tiny.plan.input_shape, batch=2)
    assert result.oom and result.peak_bytes is None and result.peak_mb is None
    assert result.param_bytes > 0


@pytest.mark.parametrize(
    ("kwargs", "path", "message"),
    [
        ({"batch": 0}, ("batch",), "batch must be a positive integer, got 0"),
        ({"batch": 2, "device": "tpu"}, ("device",), "unknown device 'tpu'; known: cpu, cuda"),
        ({"batch": 2, "precision": "fp8"}, ("precision",), "unknown precision 'fp8'"),
        ({"batch": 2, "optimizer": "adam"}, (), "unknown optimizer type 'adam'"),
    ],
)
def test_bad_settings_are_spec_errors(
    tiny: VideoNet, kwargs: dict[str, object], path: tuple[str, ...], message: str
) -> None:
    for measure in (estimate_train_memory, measure_train_memory):
        with pytest.raises(SpecError) as info:
            measure(tiny, tiny.plan.input_shape, **kwargs)  # type: ignore[arg-type]
        assert info.value.path == path
        assert message in info.value.message


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda_is_a_spec_error(tiny: VideoNet) -> None:
    with pytest.raises(SpecError, match="no CUDA device"):
        measure_train_memory(tiny, tiny.plan.input_shape, batch=2, device="cuda")
    # Simulating a CUDA step needs no CUDA device.
    simulated = estimate_train_memory(tiny, tiny.plan.input_shape, batch=2, device="cuda")
    assert simulated.device == "cuda" and simulated.peak_bytes


@pytest.mark.gpu
@requires_cuda
def test_cuda_peak_matches_the_simulation(tiny: VideoNet) -> None:
    shape = tiny.plan.input_shape
    measured = measure_train_memory(tiny, shape, batch=8, device="cuda")
    simulated = estimate_train_memory(tiny, shape, batch=8, device="cuda")
    assert measured.method == "cuda_peak_allocated"
    for name in (*KEPT, "saved_bytes"):
        assert getattr(simulated, name) == getattr(measured, name), name
    assert measured.peak_bytes is not None and simulated.peak_bytes is not None
    # cuDNN workspaces are measured, not simulated.
    assert 0.8 * measured.peak_bytes <= simulated.peak_bytes <= 1.01 * measured.peak_bytes


@pytest.mark.gpu
@requires_cuda
def test_cuda_out_of_memory_is_over_budget(tiny: VideoNet) -> None:
    free, _ = torch.cuda.mem_get_info()
    clip_bytes = 4 * 3 * 8 * 32 * 32
    result = measure_train_memory(
        tiny, tiny.plan.input_shape, batch=2 * free // clip_bytes + 1, device="cuda"
    )
    assert result.oom and result.peak_bytes is None


# Every zoo model under bf16 autocast (the casts are where a simulation can go wrong), and
# one of each kind of network at fp32.
SAVED_CASES = [(name, "bf16") for name in list_zoo()] + [
    (name, "fp32")
    for name in ("x3d_xs", "i3d_r50_two_stream", "slowfast_r50_8x8", "mvit_b_16x4", "vivit_b_fe")
    if name in list_zoo()
]


@pytest.mark.parametrize(("name", "precision"), SAVED_CASES)
def test_zoo_saved_activations_match_a_real_forward(name: str, precision: str) -> None:
    """Autograd saves the same tensors (count and bytes) in a real CPU forward."""
    spec = load_spec(name)
    frames, size = min_clip(realise(spec))
    model = harness.build_model(spec, frames=max(frames, 4), size=max(size, 32)).train()
    x, _ = example_batch(model.plan.input_shape, 2)
    saved = SavedTensors([*model.parameters(), *model.buffers(), x])
    with saved, autocast(torch.device("cpu"), precision):
        model(x)
    simulated = estimate_train_memory(model, model.plan.input_shape, batch=2, precision=precision)
    assert simulated.saved_bytes == saved.nbytes
