"""The corpus of bad inputs: one :class:`Case` per mistake a careless user or an attacker makes.

Each case writes the files it needs into a fresh folder and returns the command line (and
environment) that feeds them to ``harness``. ``expect`` is a regular expression the single
error line must match (``re.search``): the key path or option the mistake is at, and
``FILE:LINE:COL`` where the mistake is in a file. Inputs are small, so that a case whose
input is accepted by mistake still finishes in seconds (tiny specs, ``synthetic:ci``, a
small ``--subset``).
"""

from __future__ import annotations

import os
import pickle
import shlex
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["CASES", "Call", "Case"]


@dataclass(frozen=True)
class Call:
    """What a case runs: ``harness ARGV`` with extra environment variables."""

    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)


Setup = Callable[[Path], Call]
After = Callable[[Path], "str | None"]


@dataclass(frozen=True)
class Case:
    """One bad input and what its error line must say.

    Attributes:
        id: the test id.
        setup: writes the case's files under the folder it is given; returns the call.
        expect: regular expression the error line must match.
        forbid: regular expression the error line must not match (a misleading hint).
        codes: exit statuses that are right (0 too where counting the input is fine).
        root_ok: ``<root>`` is the right key path (the document as a whole is wrong).
        after: a check of the folder after the run; returns what is wrong, or None.
        timeout: seconds before the run counts as a hang (or as a server that started).
    """

    id: str
    setup: Setup
    expect: str = ""
    forbid: str = ""
    codes: tuple[int, ...] = (2,)
    root_ok: bool = False
    after: After | None = None
    timeout: int = 60


# ------------------------------------------------------------------------------ file makers
def write(tmp: Path, name: str, content: str | bytes) -> str:
    """Write ``content`` to ``tmp/name`` (folders created); returns the path as a string."""
    path = tmp / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(textwrap.dedent(content))
    return str(path)


TINY = "base: tiny_c2d\n"
TRAIN = "--data synthetic:ci --epochs 1 --subset 0.05"  # one short epoch if it runs

TWO_STREAM = """\
clip: {frames: 4, stride: 2, size: 32}
classes: 8
inputs: {rgb: {channels: 3}, flow: {channels: 2}}
pathways:
  - name: rgb
    input: rgb
    stem: &stem {type: conv, width: 8, kernel: [1, 3, 3], stride: [1, 2, 2]}
    stages: &stages
      - {block: {type: basic, temporal_kernel: 1}, depth: 1, width: 8}
  - name: flow
    input: flow
    stem: *stem
    stages: *stages
head: {type: classifier}
"""

SLOWFAST = """\
clip: {frames: 8, stride: 2, size: 32}
classes: 8
pathways:
  - name: slow
    input: rgb
    frame_stride: 4
    stem: {type: conv, width: 16, kernel: [1, 3, 3], stride: [1, 2, 2]}
    stages:
      - {block: {type: basic, temporal_kernel: 1}, depth: 1, width: 16}
  - name: fast
    input: rgb
    stem: {type: conv, width: 4, kernel: [3, 3, 3], stride: [1, 2, 2]}
    stages:
      - {block: {type: basic, temporal_kernel: 3}, depth: 1, width: 4}
join: {type: concat}
head: {type: classifier}
"""

# A tiny space whose trials take a second; keys are replaced or added per case.
SPACE: dict[str, str] = {
    "base": "tiny_c2d",
    "data": "synthetic:ci",
    "objectives": "{top1: maximize, gflops: minimize}",
    "fidelity": "{epochs: 1, subset: 0.05, frames: 4, size: 16}",
    "train": "{batch_size: 16, num_workers: 0}",
    "params": "\n  stages.1.width: {type: int, low: 16, high: 32, step: 16}",
}


def space(tmp: Path, name: str = "sp.yaml", **keys: str) -> str:
    """A space file: :data:`SPACE` with ``keys`` replaced or added (``""`` drops a key)."""
    merged = {**SPACE, **keys}
    return write(tmp, name, "".join(f"{k}: {v}\n" for k, v in merged.items() if v != ""))


def cli(line: str, env: dict[str, str] | None = None) -> Setup:
    """A case that only runs a command line."""
    return lambda tmp: Call(shlex.split(line), dict(env or {}))


def train(line: str) -> Setup:
    """``harness train tiny_c2d`` for one short epoch, with ``line`` added."""
    return cli(f"train tiny_c2d {TRAIN} {line}")


def dry(line: str) -> Setup:
    """A dry-run ``harness expand tiny_c2d`` of one width step, with ``line`` added."""
    return cli(f"expand tiny_c2d --dry-run --order width {line}")


def spec(text: str, command: str = "compile", args: str = "", name: str = "spec.yaml") -> Setup:
    """A case that writes one spec file and runs ``harness COMMAND FILE ARGS``."""
    return lambda tmp: Call([command, write(tmp, name, text), *shlex.split(args)])


def check(args: str = "", **keys: str) -> Setup:
    """``harness check`` of :data:`SPACE` with ``keys`` changed (no feasibility scan)."""
    return lambda tmp: Call(["check", space(tmp, **keys), "--draws", "0", *shlex.split(args)])


def search(args: str = "", env: dict[str, str] | None = None, **keys: str) -> Setup:
    """One short ``harness search`` of :data:`SPACE` with ``keys`` changed."""
    argv = ["--trials", "1", "--draws", "0", *shlex.split(args)]
    return lambda tmp: Call(["search", space(tmp, **keys), *argv], dict(env or {}))


def data(text: str, args: str = "") -> Setup:
    """``harness train tiny_c2d --data data.yaml`` (``afile.txt`` beside it)."""

    def setup(tmp: Path) -> Call:
        write(tmp, "afile.txt", "a file\n")
        return Call(["train", "tiny_c2d", "--data", write(tmp, "data.yaml", text), "--epochs", "1"])

    return setup


def missing(name: str) -> After:
    """An ``after`` check: ``name`` (relative to the case folder) must not exist."""
    return lambda tmp: f"{name} was created" if os.path.lexists(tmp / name) else None


def _videos(tmp: Path, content: bytes | None = None) -> Path:
    """A class-folder data set (``clips/{train,val}/{a,b}/x.mp4``): real videos, or
    ``content`` in each file."""
    import av
    import numpy as np

    for split in ("train", "val"):
        for label in "ab":
            path = tmp / "clips" / split / label / "x.mp4"
            path.parent.mkdir(parents=True, exist_ok=True)
            if content is not None:
                path.write_bytes(content)
                continue
            with av.open(str(path), "w") as container:
                stream = container.add_stream("mpeg4", rate=25)
                stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
                for i in range(16):
                    image = np.full((32, 32, 3), 8 * i, np.uint8)
                    container.mux(stream.encode(av.VideoFrame.from_ndarray(image, "rgb24")))
                container.mux(stream.encode())
    return tmp / "clips"


# ------------------------------------------------------------------------------ setups
def _cache_dir_is_file(tmp: Path) -> Call:
    return Call(["compile", "tiny_c2d"], {"HARNESS_CACHE_DIR": write(tmp, "cache", "not a dir")})


def _cost_cache(tmp: Path, content: bytes | None) -> Call:
    import sqlite3

    if content is not None:
        write(tmp, "cache/costs.sqlite", content)
    else:  # an SQLite file whose 'costs' table is another program's
        (tmp / "cache").mkdir()
        with sqlite3.connect(tmp / "cache" / "costs.sqlite") as db:
            db.execute("CREATE TABLE costs (digest TEXT PRIMARY KEY, junk TEXT)")
    return Call(["compile", "tiny_c2d"], {"HARNESS_CACHE_DIR": str(tmp / "cache")})


def _in_results(name: str, content: str | bytes) -> Setup:
    """One short search with ``content`` written at ``name`` beforehand."""

    def setup(tmp: Path) -> Call:
        write(tmp, name, content)
        return search()(tmp)

    return setup


def _base_loop(tmp: Path) -> Call:
    write(tmp, "a.yaml", "base: b.yaml\n")
    return Call(["compile", write(tmp, "b.yaml", "base: a.yaml\n")])


def _base_loop_symlink(tmp: Path) -> Call:
    write(tmp, "real.yaml", "base: link.yaml\nclip: {frames: 4}\n")
    (tmp / "link.yaml").symlink_to("real.yaml")
    return Call(["compile", str(tmp / "real.yaml")])


def _base_self_symlink(tmp: Path) -> Call:
    (tmp / "self.yaml").symlink_to("self.yaml")
    return Call(["compile", write(tmp, "spec.yaml", "base: self.yaml\n")])


def _space_base_self_symlink(tmp: Path) -> Call:
    (tmp / "self.yaml").symlink_to("self.yaml")
    return Call(["check", space(tmp, base="self.yaml"), "--draws", "0"])


def _base_loop_symlinked_dir(tmp: Path) -> Call:
    (tmp / "d").symlink_to(".")
    return Call(["compile", write(tmp, "spec.yaml", "base: d/d/d/spec.yaml\n")])


def _with_parent(parent: str, child: str) -> Setup:
    def setup(tmp: Path) -> Call:
        write(tmp, "parent.yaml", parent)
        return Call(["compile", write(tmp, "child.yaml", child)])

    return setup


def _kinetics(row: str) -> Setup:
    def setup(tmp: Path) -> Call:
        rows = [f"{c},vid{c}{i},0,10,{s}" for c in "ab" for i in range(2) for s in ("train", "val")]
        text = "\n".join(["label,youtube_id,time_start,time_end,split", *rows, row]) + "\n"
        write(tmp, "k400/videos/.keep", "")
        root = write(tmp, "k400/train.csv", text)
        return Call(["train", "tiny_c2d", "--data", f"kinetics:{root}", "--epochs", "1"])

    return setup


def _layout(layout: str, files: dict[str, str | bytes]) -> Setup:
    def setup(tmp: Path) -> Call:
        for name, text in files.items():
            write(tmp, f"set/{name}", text)
        return Call(["train", "tiny_c2d", "--data", f"{layout}:{tmp / 'set'}", "--epochs", "1"])

    return setup


def _out(checkpoint: Callable[[Path], object] | None) -> Setup:
    """``harness train --out out`` after ``checkpoint`` prepared ``out``."""

    def setup(tmp: Path) -> Call:
        if checkpoint is not None:
            checkpoint(tmp)
        return train(f"--out {tmp / 'out'}")(tmp)

    return setup


class _Hostile:
    """Unpickling it creates the file ``marker`` (as ``os.system`` would run a command)."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (self.marker, "w"))


def _hostile_pickle(tmp: Path) -> None:
    write(tmp, "out/last.pt", pickle.dumps({"model": _Hostile(str(tmp / "PWNED"))}, protocol=2))


def _hostile_torch_zip(tmp: Path) -> None:
    import torch

    (tmp / "out").mkdir()
    torch.save({"model": _Hostile(str(tmp / "PWNED"))}, tmp / "out" / "last.pt")


def _study_escape(tmp: Path) -> Call:
    return search("--study ../../elsewhere --results r/results")(tmp)


def _expand_study_escape(tmp: Path) -> Call:
    study = "--study ../../elsewhere --results r/results"
    return cli(f"expand tiny_c2d --target-gflops 0.03 {study} --epochs 1 --subset 0.05")(tmp)


def _empty_folder(tmp: Path) -> Call:
    (tmp / "empty").mkdir()
    return Call(["train", "tiny_c2d", "--data", str(tmp / "empty"), "--epochs", "1"])


def _base_spec_of_space(text: str) -> Setup:
    def setup(tmp: Path) -> Call:
        write(tmp, "base.yaml", text)
        return Call(["check", space(tmp, base="base.yaml"), "--draws", "0"])

    return setup


def _not_a_file(command: str, make: Callable[[Path], object]) -> Setup:
    def setup(tmp: Path) -> Call:
        make(tmp / "odd.yaml")
        return Call([command, str(tmp / "odd.yaml")])

    return setup


def _data_cache_is_file(tmp: Path) -> Call:
    root = _videos(tmp)
    env = {"HARNESS_DATA_CACHE": write(tmp, "datacache", "a file\n")}
    return Call(["train", "tiny_c2d", "--data", f"folder:{root}", "--epochs", "1"], env)


def _videos_garbage(tmp: Path) -> Call:
    root = _videos(tmp, b"\x00\x00\x00\x18ftypmp42 garbage" * 8)
    return Call(["train", "tiny_c2d", "--data", f"folder:{root}", "--epochs", "1"])


def _with_file(line: str, name: str, content: str) -> Setup:
    """``line`` with ``{}`` replaced by the path of a file holding ``content``."""
    return lambda tmp: Call(shlex.split(line.format(write(tmp, name, content))))


def _kinetics_binary(tmp: Path) -> Call:
    """A Kinetics CSV whose last row is not UTF-8."""
    call = _kinetics("a,vidz,0,1,train")(tmp)
    with (tmp / "k400" / "train.csv").open("ab") as csv:
        csv.write(b"b,vid\xff,0,1,train\n")
    return call


def _frames(first: bytes, rest: bytes) -> Setup:
    """A frame-folder data set (``frames/{train,val}/{a,b}/v/img_NNNNN.jpg``, 8 files a
    folder): ``first`` in the first file of each folder, ``rest`` in the others."""

    def setup(tmp: Path) -> Call:
        for split in ("train", "val"):
            for label in "ab":
                for i in range(8):
                    write(tmp, f"frames/{split}/{label}/v/img_{i:05d}.jpg", rest if i else first)
        return Call(["train", "tiny_c2d", "--data", f"frames:{tmp / 'frames'}", "--epochs", "1"])

    return setup


def _fifo_in_layout(layout: str, name: str) -> Setup:
    """``--data LAYOUT:set`` where ``set/NAME`` is a FIFO (reading it would never end)."""

    def setup(tmp: Path) -> Call:
        (tmp / "set").mkdir()
        os.mkfifo(tmp / "set" / name)
        return Call(["train", "tiny_c2d", "--data", f"{layout}:{tmp / 'set'}", "--epochs", "1"])

    return setup


def _torch_file(payload: Callable[[], object]) -> Callable[[Path], None]:
    """An ``out/last.pt`` that ``torch.save`` wrote (plain data: loads with weights_only)."""

    def make(tmp: Path) -> None:
        import torch

        (tmp / "out").mkdir()
        torch.save(payload(), tmp / "out" / "last.pt")

    return make


def _tensors() -> object:
    import torch

    return {"weights": torch.ones(2)}


# ------------------------------------------------------------------------------ the corpus
GROUPS = "stages: {2: {block: {type: bottleneck, groups: 3}, bottleneck_ratio: 0.25}}\n"
LATERAL = "laterals: [{from: fast, to: slow, after: stem, combine: sum, weight: .nan}]\n"
WHEN = (
    "\n  stages.1.block.type: [basic, r2plus1d]"
    "\n  stages.1.width: {type: int, low: 16, high: 32, when: {stages.1.block.type: plain3d}}"
)
AT = r"spec\.yaml:\d+:\d+: "  # the error line's start for a mistake in spec.yaml
SP = r"sp\.yaml:\d+:\d+: "  # ... in the space file
NO_BASE = """\
clip: {frames: 4, size: 32}
stem: {type: conv, width: 8, kernel: 3}
stages: {0: {block: {type: basic}, depth: 1, width: 8}}
head: {type: classifier}
"""  # a patch of the stages with no base spec to patch
TWO_PLACES = r"\.yaml:\d+:\d+: .*\.yaml:\d+:\d+"  # one error line naming two file positions

# fmt: off
TRACEBACKS = [
    Case("cache_dir_is_file", _cache_dir_is_file, r"HARNESS_CACHE_DIR|cache"),
    Case("cost_cache_garbage", lambda t: _cost_cache(t, b"not SQLite\n" * 100), r"costs\.sqlite"),
    Case("cost_cache_foreign_table", lambda t: _cost_cache(t, None), r"costs\.sqlite"),
    Case("journal_garbage", _in_results("results/sp/journal.log", "junk\n{no\n\x01\nmore\n"), r"journal\.log:1:"),  # noqa: E501
    Case("journal_binary", _in_results("results/sp/journal.log", bytes(range(256)) * 64), r"journal\.log"),  # noqa: E501
    Case("study_folder_is_file", _in_results("results/sp", "a file\n"), r"results/sp"),
    Case("results_dir_is_file", _in_results("results", "a file\n"), r"--results"),
    Case("groups_do_not_divide", spec(TINY + GROUPS), AT + r"stages\.2\.block\.groups"),
    Case("base_loop", _base_loop, r"(a|b)\.yaml:1:\d+: base: .*loop"),
    Case("base_loop_symlink", _base_loop_symlink, r"real\.yaml:1:\d+: base"),
    Case("base_self_symlink", _base_self_symlink, AT + "base"),
    Case("base_loop_symlinked_dir", _base_loop_symlinked_dir, AT + "base"),
    Case("base_name_1mb", spec("base: " + "x" * 1_000_000 + "\n"), AT + "base"),
    Case("kinetics_time_not_a_number", _kinetics("a,vidz,soon,later,train"), r"train\.csv.*time_start"),  # noqa: E501
    Case("kinetics_time_inf", _kinetics("a,vidz,inf,nan,train"), r"train\.csv.*time_start"),
    Case("data_root_is_file", data("type: video\nlayout: folder\nroot: afile.txt\n"), r"data\.yaml:3:\d+: data\.root"),  # noqa: E501
    Case("data_layout_root_is_file", _with_file("train tiny_c2d --data folder:{}", "f", "x"), r"data\.root"),  # noqa: E501
    Case("train_out_is_file", lambda t: train(f"--out {write(t, 'out', 'x')}")(t), "--out"),
    Case("train_out_garbage_checkpoint", _out(lambda t: write(t, "out/last.pt", b"\x80\x04junk" * 9)), r"last\.pt"),  # noqa: E501
    Case("train_out_hostile_pickle", _out(_hostile_pickle), r"last\.pt", after=missing("PWNED")),
    Case("train_out_hostile_torch_zip", _out(_hostile_torch_zip), r"last\.pt", after=missing("PWNED")),  # noqa: E501
    Case("train_out_checkpoint_is_dir", _out(lambda t: (t / "out/last.pt").mkdir(parents=True)), r"last\.pt"),  # noqa: E501
    Case("compile_classes_1e8", cli("compile tiny_c2d --classes 100000000"), "--classes"),
    Case("spec_classes_1e8_train", spec(TINY + "classes: 100000000\n", "train", TRAIN), AT + "classes"),  # noqa: E501
    Case("export_classes_1e8", cli("data export synthetic:tiny dest --classes 100000000"), "--classes"),  # noqa: E501
    Case("scores_join_zero_weights", spec(TWO_STREAM + "join: {type: scores, weights: [0, 0]}\n"), AT + r"join\.weights"),  # noqa: E501
    Case("scores_join_negative_weights", spec(TWO_STREAM + "join: {type: scores, weights: [1, -1]}\n"), AT + r"join\.weights"),  # noqa: E501
]

ACCEPTED = [
    Case("width_yes", spec(TINY + "stages: {2: {width: yes}}\n"), AT + r"stages\.2\.width"),
    Case("depth_on", spec(TINY + "stages: {2: {depth: on}}\n"), AT + r"stages\.2\.depth"),
    Case("patch_negative_index", spec(TINY + "stages: {-1: {depth: 2}}\n"), AT + r"stages"),
    Case("scores_join_nan_weight", spec(TWO_STREAM + "join: {type: scores, weights: [.nan, 1]}\n"), AT + r"join\.weights"),  # noqa: E501
    Case("scores_join_inf_weight", spec(TWO_STREAM + "join: {type: scores, weights: [.inf, 1]}\n"), AT + r"join\.weights"),  # noqa: E501
    Case("lateral_nan_weight", spec(SLOWFAST + LATERAL), AT + r"laterals\.0\.weight"),
    Case("cli_budget_negative", check("--budget gflops=-1"), "--budget"),
    Case("cli_budget_nan", check("--budget gflops=nan"), "--budget"),
    Case("cli_budget_inf", check("--budget gflops=inf"), "--budget"),
    Case("space_budget_negative", check(budgets="{gflops: -1}"), SP + r"budgets\.gflops"),
    Case("space_budget_nan", check(budgets="{gflops: .nan}"), SP + r"budgets\.gflops"),
    Case("space_budget_list_nan", check(budgets="['gflops <= nan']"), SP + r"budgets"),
    Case("search_timeout_negative", search("--timeout -1"), "--timeout"),
    Case("search_timeout_nan", search("--timeout nan"), "--timeout"),
    Case("halving_min_epochs_past_fidelity", check(halving="{min_epochs: 5}"), SP + r"halving\.min_epochs"),  # noqa: E501
    Case("space_train_batch_size_0", check(train="{batch_size: 0}"), SP + r"train\.batch_size"),
    Case("space_train_lr_negative", check(train="{lr: -1}"), SP + r"train\.lr"),
    Case("space_train_lr_nan", check(train="{lr: .nan}"), SP + r"train\.lr: .*finite", forbid="greater than"),  # noqa: E501
    Case("cli_train_lr_negative", train("--lr -1"), "--lr"),
    Case("cli_train_lr_nan", train("--lr nan"), "--lr"),
    Case("when_value_never_taken", check(params=WHEN), SP + r"params\.stages\.1\.width\.when"),
    Case("tied_and_sampled", check(tied="{stages.1.width: stages.1.width}"), SP + r"tied\.stages\.1\.width"),  # noqa: E501
    Case("choice_not_a_width", check(params="\n  stages.1.width: [32, a]"), SP + r"params\.stages\.1\.width"),  # noqa: E501
    Case("choice_only_a_string", check(params='\n  stages.1.width: ["a"]'), SP + r"params\.stages\.1\.width"),  # noqa: E501
    Case("choice_bool_width", check(params="\n  stages.1.width: [32, yes]"), SP + r"params\.stages\.1\.width"),  # noqa: E501
    Case("train_size_3", train("--size 3"), "--size"),
    Case("train_frames_strides_cannot_take", spec(TINY + "stages: {1: {temporal_stride: 2}, 2: {temporal_stride: 2}}\n", "train", TRAIN + " --frames 1"), r"--frames|temporal_stride"),  # noqa: E501
    Case("compile_size_1", cli("compile tiny_c2d --size 1"), r"--size|stride"),
    Case("expand_target_nan", dry("--target-gflops nan"), "--target-gflops"),
    Case("expand_target_negative", dry("--target-gflops -1"), "--target-gflops"),
    Case("expand_step_ratio_nan", dry("--target-gflops 0.1 --step-ratio nan"), "--step-ratio"),
    Case("expand_order_empty_item", cli("expand tiny_c2d --dry-run --target-gflops 0.1 --order width,,depth"), "--order"),  # noqa: E501
    Case("stem_stride_bool", spec(TINY + "stem: {stride: [1, yes, 2]}\n"), AT + r"stem\.stride\.1: .*boolean"),  # noqa: E501
    Case("scores_join_learned_zero_weight", spec(TWO_STREAM + "join: {type: scores, weights: [0, 1], learned: true}\n"), AT + r"join\.weights\.0"),  # noqa: E501
    Case("space_int_low_bool", check(params="\n  stages.1.width: {type: int, low: yes, high: 32}"), SP + r"params\.stages\.1\.width\.low"),  # noqa: E501
    Case("space_negative_index", check(params="\n  stages.-1.width: [16, 32]"), SP + r"params\.stages\.-1\.width"),  # noqa: E501
    Case("space_base_self_symlink", _space_base_self_symlink, SP + "base"),
    Case("data_yaml_std_zero", data("type: synthetic\npreset: tiny\nstd: [0.2, 0, 0.2]\n"), r"data\.yaml:3:\d+: data\.std\.1"),  # noqa: E501
]

# Run under the 4 GiB address-space limit: a network or clip that does not fit must be refused.
ALLOCATING = [
    Case("compile_size_4096", cli("compile tiny_c2d --size 4096"), "--size", codes=(0, 2)),
    Case("train_size_2048", cli("train tiny_c2d --data synthetic:tiny --size 2048 --epochs 1"), "--size"),  # noqa: E501
    Case("width_13000_compile", spec(TINY + "stages: {2: {width: 13000}}\n"), AT + r"stages\.2", codes=(0, 2)),  # noqa: E501
    Case("width_13000_train", spec(TINY + "stages: {2: {width: 13000}}\n", "train", TRAIN), AT + r"stages\.2"),  # noqa: E501
    Case("width_200000_compile", spec(TINY + "stages: {2: {width: 200000}}\n"), AT + r"stages\.2"),
    Case("compile_batch_1e6", cli("compile tiny_c2d --batch 1000000 --memory measure"), "--batch"),
    Case("compile_frames_1e8", cli("compile tiny_c2d --frames 100000000"), "--frames"),
]

MISLEADING = [
    Case("unknown_key_heads", spec(TINY + "heads: {type: classifier}\n"), r"spec\.yaml:2:1: heads: .*'head'", forbid="did you mean 'heads'"),  # noqa: E501
    Case("key_of_a_stage_at_top", spec(TINY + "depth: 2\n"), r"spec\.yaml:2:1: depth: .*stages", forbid="did you mean 'depth'"),  # noqa: E501
    Case("key_of_the_block_in_a_stage", spec(TINY + "stages: {1: {temporal_kernel: 3}}\n"), AT + r"stages\.1\.temporal_kernel: .*block", forbid="did you mean 'temporal_kernel'"),  # noqa: E501
    Case("budget_fps_no_gflops_hint", check("--budget fps=1"), "--budget", forbid="did you mean 'gflops'"),  # noqa: E501
    Case("patch_string_key", spec(TINY + "stages: {two: {depth: 2}}\n"), AT + "stages", forbid="valid tuple"),  # noqa: E501
    Case("patch_index_out_of_range", spec(TINY + "stages: {7: {depth: 2}}\n"), AT + r"stages\.7"),
    Case("space_index_out_of_range", check(params="\n  stages.7.width: [16, 32]"), SP + r"params\.stages\.7\.width"),  # noqa: E501
    Case("child_error_names_child", _with_parent(TINY + "stages: {2: {width: 64}}\n", "base: parent.yaml\n\nstages: {2: {width: -5}}\n"), r"child\.yaml:3:\d+: stages\.2\.width"),  # noqa: E501
    Case("child_clip_names_child", _with_parent(TINY, "base: parent.yaml\n\nclip: {size: 1}\n"), r"child\.yaml:3:\d+: clip"),  # noqa: E501
    Case("parent_error_names_parent", _with_parent(TINY + "\n\nstages: {1: {widht: 3}}\n", "base: parent.yaml\n"), r"parent\.yaml:4:\d+: stages\.1\.widht"),  # noqa: E501
    Case("data_yaml_error_has_line", data("type: synthetic\npreset: tiny\nclasses: 99\n"), r"data\.yaml:3:\d+: data\.classes"),  # noqa: E501
    Case("data_yaml_unknown_type", data("type: imagenet\nroot: .\n"), r"data\.yaml:1:\d+: data\.type"),  # noqa: E501
    Case("data_yaml_nan_noise", data("type: synthetic\npreset: tiny\nnoise: .nan\n"), r"data\.yaml:3:\d+: data\.noise"),  # noqa: E501
    Case("train_views_zero_names_option", train("--views 0x0"), "--views"),
    Case("usage_bad_int", cli("compile tiny_c2d --frames eight"), "--frames"),
    Case("usage_unknown_option", cli("compile tiny_c2d --widht 3"), "--widht"),
    Case("usage_missing_argument", cli("compile"), "spec|SPEC"),
    Case("usage_unknown_command", cli("compiel tiny_c2d"), "compiel"),
    Case("usage_option_out_of_range", cli("storage serve sqlite:///db.sqlite --port 99999"), "--port", timeout=30),  # noqa: E501
    Case("deep_nesting_has_line", spec(TINY + "clip: " + "[" * 20000 + "]" * 20000 + "\n"), r"spec\.yaml:2:\d+"),  # noqa: E501
    Case("space_base_missing_one_location", check(base="nosuch.yaml"), SP + "base", forbid=TWO_PLACES),  # noqa: E501
    Case("key_of_another_block_type", spec(TINY + "stages: {2: {block: {groups: 2}}}\n"), AT + r"stages\.2\.block\.groups: .*'bottleneck'", forbid="did you mean 'groups'"),  # noqa: E501
    Case("space_key_of_fidelity_at_top", check(epochs="2"), SP + r"epochs: .*fidelity\.epochs"),
    Case("patch_without_base", spec(NO_BASE), AT + "stages", forbid="valid tuple"),
    Case("space_deep_nesting_has_line", check(params="\n  stages.1.width: " + "[" * 20000 + "]" * 20000), SP + "params"),  # noqa: E501
    Case("expansion_nan", spec(TINY + "expansion: {width: .nan}\n"), AT + r"expansion\.width: .*finite", forbid="greater than"),  # noqa: E501
]

ESCAPES = [
    Case("study_escapes_results", _study_escape, "--study", after=missing("elsewhere")),
    Case("study_absolute_path", search("--study /tmp/x-harness-bad-input-abs"), "--study"),
    Case("expand_study_escapes", _expand_study_escape, "--study", after=missing("elsewhere")),
    Case("dashboard_missing_results", cli("dashboard --results /nonexistent/harness"), "--results", timeout=30),  # noqa: E501
]

# Found by trying what a careless user or an attacker would.
MORE = [
    Case("empty_spec", spec(""), r"spec\.yaml", root_ok=True),
    Case("spec_top_level_list", spec("- clip\n- stem\n"), r"spec\.yaml:1:1", root_ok=True),
    Case("spec_binary", spec(bytes(range(256)).decode("latin-1")), r"spec\.yaml:1:1", root_ok=True, forbid=r"\\n|unicode string"),  # noqa: E501
    Case("spec_is_directory", _not_a_file("compile", Path.mkdir), r"odd\.yaml", root_ok=True),
    Case("spec_fifo", _not_a_file("compile", os.mkfifo), r"odd\.yaml", root_ok=True, timeout=30),
    Case("space_is_directory", _not_a_file("check", Path.mkdir), r"odd\.yaml", root_ok=True),
    Case("space_fifo", _not_a_file("check", os.mkfifo), r"odd\.yaml", root_ok=True, timeout=30),
    Case("base_dev_zero", spec("base: /dev/zero\n"), AT + "base", timeout=30),
    Case("zoo_name_typo", cli("compile tiny_c2"), r"tiny_c2d", forbid="<root>"),
    Case("spec_name_with_newline", cli("compile 'tiny\nc2d'"), r"tiny\\nc2d", root_ok=True),
    Case("key_with_newline", spec(TINY + 'clip: {"fra\\nmes": 4}\n'), AT + r"clip\.fra\\nmes"),
    Case("undefined_alias", spec(TINY + "clip: *nothing\n"), AT, root_ok=True),
    Case("merge_key_scalar", spec(TINY + "clip: {<<: 5, frames: 4}\n"), AT),
    Case("python_tag", spec(TINY + "clip: !!python/object/apply:os.system ['touch PWNED']\n"), AT, after=missing("PWNED")),  # noqa: E501
    Case("huge_int_frames", spec(TINY + f"clip: {{frames: {10**400}}}\n"), AT + r"clip\.frames"),
    Case("float_1e400_frames", spec(TINY + "clip: {frames: 1e400}\n"), AT + r"clip\.frames"),
    Case("string_for_number", spec(TINY + "clip: {frames: eight}\n"), AT + r"clip\.frames"),
    Case("fraction_for_int", spec(TINY + "stages: {0: {depth: 1.5}}\n"), AT + r"stages\.0\.depth"),
    Case("unknown_block_type", spec(TINY + "stages: {0: {block: {type: resnext}}}\n"), AT + r"stages\.0\.block"),  # noqa: E501
    Case("even_kernel", spec(TINY + "stem: {kernel: [2, 3, 3]}\n"), AT + r"stem\.kernel"),
    Case("expansion_zero", spec(TINY + "expansion: {width: 0}\n"), AT + r"expansion\.width"),
    Case("segments_do_not_divide", spec(TINY + "segments: {count: 3}\n"), AT + "segments", forbid="4096x4096"),  # noqa: E501
    Case("lateral_unknown_pathway", spec(SLOWFAST + "laterals: [{from: mid, to: slow, after: stem}]\n"), AT + r"laterals\.0"),  # noqa: E501
    Case("pathway_unknown_input", spec(TWO_STREAM.replace("input: flow", "input: depth") + "join: {type: concat}\n"), AT + r"pathways\.1\.input"),  # noqa: E501
    Case("too_many_blocks", spec(TINY + "stages: {0: {depth: 100000}}\n"), AT + r"stages\.0"),
    Case("dropout_one", spec(TINY + "head: {dropout: 1.0}\n"), AT + r"head\.dropout"),
    Case("space_empty", lambda t: Call(["check", write(t, "e.yaml", "")]), r"e\.yaml", root_ok=True),  # noqa: E501
    Case("space_params_a_list", check(params="[a, b]"), SP + "params"),
    Case("space_int_high_below_low", check(params="\n  stages.1.width: {type: int, low: 64, high: 16}"), SP + r"params\.stages\.1\.width"),  # noqa: E501
    Case("space_unknown_param_type", check(params="\n  stages.1.width: {type: normal}"), SP + r"params\.stages\.1\.width"),  # noqa: E501
    Case("space_base_bad_spec", _base_spec_of_space(TINY + "clip: {frames: -1}\n"), r"(sp|base)\.yaml:\d+:\d+", forbid=TWO_PLACES),  # noqa: E501
    Case("space_base_is_a_space", lambda t: Call(["check", space(t, base=space(t, "other.yaml"))]), SP + "base"),  # noqa: E501
    Case("space_objectives_list_unknown", check(objectives="[top1, fps]"), SP + "objectives"),
    Case("space_objective_direction", check(objectives="{top1: maximise}"), SP + r"objectives\.top1"),  # noqa: E501
    Case("space_grid_float_without_step", check("--sampler grid", params="\n  head.dropout: {type: float, low: 0.0, high: 0.5}"), r"params\.head\.dropout"),  # noqa: E501
    Case("space_sampler_unknown", check("--sampler bayes"), "--sampler"),
    Case("space_data_missing", check(data="/nonexistent/videos"), SP + "data"),
    Case("space_fidelity_size_0", check(fidelity="{epochs: 1, size: 0}"), SP + r"fidelity\.size"),
    Case("space_seed_2e64", check(seed=str(2**64)), SP + "seed"),
    Case("data_missing_path", cli("train tiny_c2d --data /nonexistent/videos"), "data"),
    Case("data_unknown_synthetic_size", cli("train tiny_c2d --data synthetic:huge"), "data"),
    Case("data_empty_folder", _empty_folder, "data"),
    Case("data_dev_zero_csv", cli("train tiny_c2d --data kinetics:/dev/zero"), "data", timeout=30),
    Case("data_yaml_binary", data("\x00\x01\x02\x03"), r"data\.yaml", root_ok=True),
    Case("data_videos_garbage", _videos_garbage, r"x\.mp4|clips"),
    Case("data_ssv2_garbage_json", _layout("ssv2", {"labels.json": "{no", "train.json": "[1, 2", "validation.json": "null"}), r"\.json"),  # noqa: E501
    Case("data_ucf_garbage_lists", _layout("ucf101", {"classInd.txt": "one two three\nx\n", "trainlist01.txt": "\x01\n../../etc/passwd 1\n", "testlist01.txt": "nothing\n"}), r"\.txt"),  # noqa: E501
    Case("data_ucf_class_line_short", _layout("ucf101", {"classInd.txt": "1 a\n2\n", "trainlist01.txt": "a/x.avi 1\n", "testlist01.txt": "a/y.avi\n"}), r"classInd\.txt:2: data\.root"),  # noqa: E501
    Case("data_ucf_root_is_file", _with_file("train tiny_c2d --data ucf101:{}", "f", "x"), r"data\.root"),  # noqa: E501
    Case("data_ucf_list_binary", _layout("ucf101", {"classInd.txt": b"1 a\n\xff\xfe\n", "trainlist01.txt": "", "testlist01.txt": ""}), r"classInd\.txt:2: data\.root"),  # noqa: E501
    Case("data_ucf_class_list_fifo", _fifo_in_layout("ucf101", "classInd.txt"), r"data\.root", timeout=30),  # noqa: E501
    Case("data_hmdb_garbage_split_line", _layout("hmdb51", {"a_test_split1.txt": "x.avi 1\ny.avi seven\n", "b_test_split1.txt": "z.avi 2\n"}), r"a_test_split1\.txt:2: data\.root"),  # noqa: E501
    Case("data_ssv2_label_id_not_a_number", _layout("ssv2", {"labels.json": '{"Pushing something": "x"}', "train.json": "[]", "validation.json": "[]"}), r"labels\.json: Pushing something"),  # noqa: E501
    Case("data_ssv2_json_too_deep", _layout("ssv2", {"labels.json": "[" * 100_000, "train.json": "[]", "validation.json": "[]"}), r"labels\.json"),  # noqa: E501
    Case("data_ssv2_json_line", _layout("ssv2", {"labels.json": '{"a": "0",\n "b": 1,,}', "train.json": "[]", "validation.json": "[]"}), r"labels\.json:2:\d+: data\.root"),  # noqa: E501
    Case("data_kinetics_time_negative", _kinetics("a,vidz,-5,3,train"), r"train\.csv:\d+: time_start"),  # noqa: E501
    Case("data_kinetics_end_not_a_number", _kinetics("a,vidz,1,later,train"), r"train\.csv:\d+: time_end"),  # noqa: E501
    Case("data_kinetics_csv_binary", _kinetics_binary, r"train\.csv:\d+: data\.root"),
    Case("data_kinetics_csv_fifo", _fifo_in_layout("kinetics", "train.csv"), r"data\.root", timeout=30),  # noqa: E501
    Case("data_frames_not_images", _frames(b"garbage", b"garbage"), r"data\.root: .*no usable videos .*unreadable or corrupt"),  # noqa: E501
    Case("data_frames_later_frames_garbage", _frames(b"\x89PNG\r\n\x1a\n garbage", b"garbage"), r"failed to decode.*img_\d+\.jpg"),  # noqa: E501
    # NOTE: the data cache is optional: training without it is right too
    Case("data_cache_is_file", _data_cache_is_file, r"HARNESS_DATA_CACHE|datacache", codes=(0, 2)),
    Case("train_views_garbage", train("--views axb"), "--views"),
    Case("train_batch_zero", train("--batch 0"), "--batch:"),
    Case("train_workers_negative", train("--workers -1"), "--workers:"),
    Case("train_subset_nan", train("--subset nan"), "--subset"),
    Case("train_device_tpu", train("--device tpu"), "--device"),
    Case("train_device_cuda_absent", train("--device cuda"), "--device"),
    Case("train_world_size_garbage", cli(f"train tiny_c2d {TRAIN}", {"WORLD_SIZE": "two"}), "WORLD_SIZE"),  # noqa: E501
    Case("train_rank_garbage", cli(f"train tiny_c2d {TRAIN}", {"RANK": "first"}), "RANK"),
    Case("train_out_under_a_file", lambda t: train(f"--out {write(t, 'f', 'x')}/run")(t), "--out"),
    Case("train_out_metrics_is_dir", _out(lambda t: (t / "out/metrics.jsonl").mkdir(parents=True)), r"--out: .*metrics\.jsonl"),  # noqa: E501
    Case("train_out_foreign_torch_file", _out(_torch_file(_tensors)), r"last\.pt.*not a checkpoint harness wrote"),  # noqa: E501
    Case("train_out_other_format_checkpoint", _out(_torch_file(lambda: {"format": 0, "model": {}})), r"out holds a checkpoint of another version"),  # noqa: E501
    Case("compile_device_cuda_absent", cli("compile tiny_c2d --device cuda --latency"), "--device"),
    Case("compile_precision_fp8", cli("compile tiny_c2d --precision fp8"), "--precision"),
    Case("compile_memory_guess", cli("compile tiny_c2d --batch 2 --memory guess"), "--memory"),
    Case("compile_batch_zero", cli("compile tiny_c2d --batch 0"), "--batch"),
    Case("compile_threads_zero", cli("compile tiny_c2d --latency --threads 0"), "--threads"),
    Case("compile_frames_negative", cli("compile tiny_c2d --frames -4"), "--frames"),
    Case("search_trials_negative", search("--trials -1"), "--trials"),
    Case("search_workers_zero", search("--workers 0"), "--workers"),
    Case("search_seed_negative", search("--seed -1"), "--seed"),
    Case("search_results_unwritable", search("--results /proc/harness-results"), "--results"),
    Case("search_storage_bogus_scheme", search("--storage mongodb://x/y"), "--storage"),
    Case("search_storage_missing_dir", search("--storage sqlite:////nonexistent/d/db.sqlite"), "--storage"),  # noqa: E501
    Case("search_heartbeat_garbage", search(env={"HARNESS_HEARTBEAT_SECONDS": "soon"}), "HARNESS_HEARTBEAT_SECONDS"),  # noqa: E501
    Case("search_min_free_nan", search(env={"HARNESS_MIN_FREE_MB": "nan"}), "HARNESS_MIN_FREE_MB"),
    Case("check_draws_negative", check("--draws -1"), "--draws"),
    Case("expand_unknown_axis", dry("--target-gflops 0.1 --axes colour"), "--axes"),
    Case("expand_two_targets", dry("--target-gflops 0.1 --target-params 1e6"), "--target"),
    Case("expand_max_steps_zero", dry("--target-gflops 0.1 --max-steps 0"), "--max-steps"),
    Case("expand_step_ratio_one", dry("--target-gflops 0.1 --step-ratio 1"), "--step-ratio"),
    Case("export_into_a_file", _with_file("data export synthetic:tiny {} --clips 1", "dest", "x"), "dest"),  # noqa: E501
    Case("export_clips_zero", cli("data export synthetic:tiny dest --clips 0"), "--clips"),
    Case("export_size_huge", cli("data export synthetic:tiny dest --clips 1 --size 100000"), "--size", after=missing("dest")),  # noqa: E501
    Case("export_fps_huge", cli("data export synthetic:tiny dest --clips 1 --fps 1000000000000"), "--fps", after=missing("dest")),  # noqa: E501
    Case("storage_serve_journal", _with_file("storage serve {} --port 39217", "j/journal.log", ""), "journal", timeout=30),  # noqa: E501
]

# fmt: on

CASES = [*TRACEBACKS, *ACCEPTED, *ALLOCATING, *MISLEADING, *ESCAPES, *MORE]
