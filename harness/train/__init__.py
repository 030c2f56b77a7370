"""Training and evaluation: the accuracy side of every trade-off.

``train(spec, data, config=, fidelity=)`` builds the spec for the data's clips, trains it
(SGD or AdamW, warm-up + cosine, label smoothing, mixed precision, gradient accumulation,
DDP under torchrun), evaluates top-1 / top-5 / mean class accuracy (single- and
multi-view) and returns a :class:`TrainResult`. The search calls it with a low
:class:`Fidelity` and a ``callback`` that sees every epoch's metrics row.
"""

from harness.train._run import audio_settings
from harness.train.checkpoint import load_checkpoint, save_checkpoint, weights_digest
from harness.train.config import Fidelity, RunStart, TrainConfig, TrainResult
from harness.train.evaluate import EvalResult, compute_metrics, evaluate
from harness.train.optim import create_optimizer, get_lr, list_optimizers, register_optimizer
from harness.train.trainer import train

__all__ = [
    "EvalResult",
    "Fidelity",
    "RunStart",
    "TrainConfig",
    "TrainResult",
    "audio_settings",
    "compute_metrics",
    "create_optimizer",
    "evaluate",
    "get_lr",
    "list_optimizers",
    "load_checkpoint",
    "register_optimizer",
    "save_checkpoint",
    "train",
    "weights_digest",
]
