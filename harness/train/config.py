"""What a training run is told (:class:`TrainConfig`, :class:`Fidelity`), what it is about to
do (:class:`RunStart`) and what it returns (:class:`TrainResult`).

``TrainConfig`` holds runtime settings only; the architecture stays in the model spec and
the data in the data spec. ``Fidelity`` says how much training a candidate gets, so that a
search can evaluate many candidates cheaply (fewer epochs, a subset of the training split,
shorter or smaller clips) before it trains the best ones fully.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["Fidelity", "RunStart", "TrainConfig", "TrainResult"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _default_device() -> Literal["cpu", "cuda"]:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


class Fidelity(_Frozen):
    """How much training a candidate gets (low-fidelity evaluation)."""

    epochs: int = Field(
        default=1, ge=1, le=10_000
    )  # passes over the (subset of the) training split
    subset: float = Field(
        default=1.0, gt=0, le=1
    )  # fraction of the training split (class-stratified)
    frames: int | None = Field(default=None, ge=1, le=4096)  # clip frames (None: the spec's)
    size: int | None = Field(default=None, ge=8, le=4096)  # crop size in pixels (None: the spec's)


class TrainConfig(_Frozen):
    """Runtime settings of a training run; defaults suit the synthetic benchmark on CPU."""

    optimizer: Literal["sgd", "adamw"] = "adamw"  # SGD (Nesterov momentum) or AdamW
    lr: float = Field(default=5e-3, gt=0)  # peak learning rate, for ``batch_size`` x ``grad_accum``
    weight_decay: float = Field(default=0.05, ge=0)  # on weights; never on norm layers or biases
    momentum: float = Field(default=0.9, ge=0, lt=1)  # SGD momentum (AdamW: beta1)
    warmup_epochs: float = Field(default=1.0, ge=0)  # linear warm-up, then cosine decay to zero
    label_smoothing: float = Field(default=0.1, ge=0, lt=1)  # of the cross-entropy loss
    batch_size: int = Field(default=16, ge=1, le=65536)  # clips per step per process
    grad_accum: int = Field(
        default=1, ge=1, le=1024
    )  # steps whose gradients add up before an update
    eval_batch_size: int | None = Field(default=None, ge=1)  # clips per eval step; None: batch_size
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"  # auto: bf16 on GPU, else fp32
    channels_last: bool | None = None  # channels_last_3d memory format; None: on GPU only
    precise_bn: bool = False  # recompute norm statistics with fixed weights after training
    precise_bn_batches: int = Field(default=50, ge=1)  # batches used by precise BN
    clip_grad_norm: float | None = Field(
        default=None, gt=0
    )  # max gradient norm (None: no clipping)
    seed: int = Field(default=0, ge=0)  # seeds the weights, the data order and every augmentation
    num_workers: int | None = Field(
        default=None, ge=0, le=64
    )  # loader processes; None: one per core
    # where to train; default: cuda when a GPU is available, else cpu
    device: Literal["cpu", "cuda"] = Field(default_factory=_default_device)
    # Final test: (temporal clips, spatial crops) per video, scores averaged. Evaluation
    # after every epoch is single-view (one centred clip).
    views: tuple[int, int] = (1, 1)
    checkpoint_every: int = Field(default=1, ge=1)  # epochs between checkpoints (the last always)

    @field_validator("views")
    @classmethod
    def _check_views(cls, views: tuple[int, int]) -> tuple[int, int]:
        clips, crops = views
        if clips < 1 or crops < 1:
            raise ValueError(
                f"views must be (temporal clips >= 1, spatial crops >= 1), got {clips}x{crops}"
            )
        return views

    def resolved_precision(self) -> Literal["fp32", "bf16", "fp16"]:
        """The precision actually used (``auto`` resolved for the device)."""
        if self.precision == "auto":
            return "bf16" if self.device == "cuda" else "fp32"
        return self.precision

    def resolved_channels_last(self) -> bool:
        """Whether the model and clips use the channels_last_3d memory format."""
        return self.device == "cuda" if self.channels_last is None else self.channels_last

    def identity(self) -> dict[str, Any]:
        """The settings that change the result: a resumed run must match them."""
        return self.model_dump(
            mode="json", exclude={"num_workers", "eval_batch_size", "checkpoint_every"}
        )


class RunStart(_Frozen):
    """What a run is about to do, once its data, model and output folder are ready (before
    its first step): the data it found, and what it took over from the output folder."""

    spec_hash: str  # hash of the realised architecture about to train
    layout: str  # synthetic, or the layout of real videos: folder, frames, kinetics, ...
    data: str  # the data set in words: "/data/ucf101 (ucf101 layout)"
    classes: int  # number of classes (the classifier's outputs)
    train_clips: int  # videos in the training split
    train_used: int  # of them trained on: the fidelity's class-stratified subset
    val_clips: int  # videos in the validation split
    clip: str  # C x T x H x W of one clip, as the model sees it
    epochs: int  # the epoch the run ends after
    resumed_epochs: int = 0  # epochs already trained by the checkpoint it continues (0: none)
    checkpoint: str | None = None  # the checkpoint it continues
    set_aside: tuple[str, ...] = ()  # files of an earlier run renamed out of its way

    @property
    def finished(self) -> bool:
        """True when the checkpoint it continues has trained every epoch: nothing to train."""
        return self.resumed_epochs >= self.epochs


class TrainResult(_Frozen):
    """What a run achieved, how long it took, and where its weights are."""

    top1: float  # fraction of validation videos whose top class is right (multi-view)
    top5: float  # fraction whose class is among the top five scores
    mean_class_acc: float  # top-1 averaged over classes
    top1_single_view: float  # top-1 from one centred clip per video (the last epoch's)
    per_class_acc: list[float]  # top-1 of each class (multi-view)
    classes: list[str]  # class names, in label order
    epochs: int  # epochs completed
    train_seconds: float  # wall time spent training (without evaluation)
    eval_seconds: float  # wall time spent evaluating
    train_clips_per_second: float  # training throughput (all processes)
    spec_hash: str  # hash of the realised architecture that was trained
    params: int  # parameters of the trained model
    history: list[dict[str, Any]]  # one row per epoch: epoch, train_loss, lr, top1, top5, ...
    checkpoint: str | None  # last good checkpoint file (None: nothing saved)
    status: Literal["complete", "nan"]  # nan: a non-finite loss stopped the run
    reason: str = ""  # why the run stopped early, in words
    world_size: int = 1  # processes that trained together
    weights_digest: str = ""  # sha256 of the final weights (every rank must agree)
