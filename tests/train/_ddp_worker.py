"""One process of the DDP test: train the tiny benchmark and write this rank's result."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _fast import CONFIG, DATA, fidelity

from harness.train import train

torch.set_num_threads(1)
out = Path(sys.argv[1])
result = train("tiny_c2d", DATA, config=CONFIG, fidelity=fidelity(epochs=2), out_dir=out / "run")
(out / f"rank{os.environ['RANK']}.json").write_text(result.model_dump_json())
