"""DDP on CPU: two processes under torchrun (gloo) train one model and agree on it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

WORKER = Path(__file__).with_name("_ddp_worker.py")


def test_two_processes_train_one_model(tmp_path: Path) -> None:
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        str(WORKER), str(tmp_path),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert all(r["status"] == "complete" and r["world_size"] == 2 for r in ranks)
    assert ranks[0]["weights_digest"] == ranks[1]["weights_digest"] != ""
    assert ranks[0]["history"][-1]["top1"] == ranks[1]["history"][-1]["top1"]
    # 32 clips split over two ranks: each trains 16 per epoch, 32 in all
    assert ranks[0]["history"][0]["clips"] == 32
    assert (tmp_path / "run" / "last.pt").is_file()
