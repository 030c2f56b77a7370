"""The generic compiler: spec -> ``torch.nn.Module``, with one bookkeeping loop."""

from harness.compiler.blocks import create_block, list_blocks
from harness.compiler.heads import create_head
from harness.compiler.inflate import inflate_into, inflate_state_dict, load_2d_checkpoint
from harness.compiler.network import VideoNet, build_model, init_weights, planned_input_shape
from harness.compiler.plan import NetworkPlan, min_clip, plan_network
from harness.compiler.stems import create_stem

__all__ = [
    "NetworkPlan",
    "VideoNet",
    "build_model",
    "create_block",
    "create_head",
    "create_stem",
    "inflate_into",
    "inflate_state_dict",
    "init_weights",
    "list_blocks",
    "load_2d_checkpoint",
    "min_clip",
    "plan_network",
    "planned_input_shape",
]
