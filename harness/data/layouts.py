"""Data-set layouts: where the videos are and which class each belongs to.

One registered :class:`Layout` per way people lay out video data sets. A layout lists
the entries of a split (``train`` or ``val``) with their class names; it does not open
any video (:mod:`harness.data.index` checks and probes the files).

    folder    ROOT/CLASS/VIDEO, or ROOT/{train,val}/CLASS/VIDEO (no split folders: a
              ``val_fraction`` of each class is held out, chosen by file-name hash)
    frames    the same with a folder of images (img_00001.jpg, ...) per video
    kinetics  Kinetics CSV (label, youtube_id, time_start, time_end, split); ROOT is the
              CSV or a folder of them (train.csv, validate.csv); videos named
              ID_START_END.mp4 (segments) or ID.mp4 (trimmed to START..END) anywhere
              under ``videos``
    ucf101    classInd.txt, trainlistNN.txt, testlistNN.txt (UCF101, or HMDB51 in that form)
    hmdb51    HMDB51's own split files, CLASS_test_splitN.txt (1 train, 2 test)
    ssv2      Something-Something v2 JSON: labels.json, train.json, validation.json and
              ID.webm; direction-sensitive, so flips are off by default

Annotations are data, not trusted paths: an entry such as ``../../etc/passwd``, an absolute
path, or a symbolic link leading out of the data set must never be read. Every path a
layout lists is resolved (links followed) and checked to lie inside :func:`data_roots`
(the data set folder and the ``videos`` folder); the layouts never touch a candidate that
escapes, and :mod:`harness.data.index` skips and counts such entries as "outside the data
root". Annotation files found by searching (``classInd.txt`` in a linked folder) are held
to the same rule.

A line of an annotation file that cannot be read (a time that is not a number, a class list
line without its class) is a :class:`~harness.errors.SpecError` naming the file and line
(``train.csv:12``); entries that are merely unusable (a missing file, an unknown label) are
skipped and counted by the index instead.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from harness.data._annotations import (
    CsvRow,
    annotation_error,
    cell_seconds,
    load_json,
    numbered_lines,
    read_csv,
)
from harness.data.video import IMAGE_SUFFIXES, VIDEO_SUFFIXES
from harness.errors import SpecError
from harness.registry import Registry

if TYPE_CHECKING:
    from harness.data.spec import VideoDataSpec

__all__ = [
    "Entry",
    "Layout",
    "Listing",
    "data_roots",
    "detect_layout",
    "get_layout",
    "list_layouts",
    "register_layout",
    "within",
]


@dataclass(frozen=True)
class Entry:
    """One video as the annotations name it."""

    name: str  # as written in the annotations (for messages)
    label: str  # class name
    path: Path | None  # the file or frame folder; None when it cannot be found
    start: float | None = None  # seconds into the video where the segment starts
    end: float | None = None  # ... and ends (None: the whole video)


@dataclass(frozen=True)
class Listing:
    """The classes of a data set and the entries of one split."""

    classes: list[str]
    entries: list[Entry] = field(default_factory=list)


@dataclass(frozen=True)
class Layout:
    """How to list one layout, recognise it, and treat its videos."""

    list_split: Callable[[VideoDataSpec, str], Listing]  # (spec, "train" | "val")
    detect: Callable[[Path], bool]  # does this path look like the layout?
    priority: int  # detection order: lower first (specific layouts before folders)
    frames: bool = False  # entries are folders of images, not video files
    flip: bool = True  # whether horizontal flips keep the label (False: SSv2)
    root_file: bool = False  # ROOT may be an annotation file (else it must be a folder)


LAYOUTS: Registry[Layout] = Registry("layout")


def register_layout(name: str) -> Callable[[Layout], Layout]:
    """Register a :class:`Layout` under ``name`` (call with the layout instance)."""
    return LAYOUTS.register(name)


def get_layout(name: str) -> Layout:
    """The layout registered as ``name``."""
    return LAYOUTS.get(name)


def list_layouts() -> list[str]:
    """Registered layout names, sorted."""
    return LAYOUTS.names()


def detect_layout(path: Path) -> str | None:
    """The first layout (by priority) that recognises ``path``, or None."""
    for name in sorted(LAYOUTS, key=lambda n: LAYOUTS.get(n).priority):
        try:
            if LAYOUTS.get(name).detect(path):
                return name
        except OSError:
            continue
    return None


def data_roots(spec: VideoDataSpec) -> tuple[Path, ...]:
    """The resolved folders a data set's files must lie in: its root and its videos."""
    root = Path(spec.root).expanduser()
    folder = root.parent if root.is_file() else root
    return tuple(dict.fromkeys(_resolved(p) for p in (folder, _videos_dir(spec))))


def _resolved(path: Path) -> Path:
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # a symbolic-link loop
        return path.absolute()


def within(path: Path, roots: tuple[Path, ...]) -> bool:
    """Whether ``path``, links followed, lies inside one of ``roots`` (resolved folders)."""
    try:
        real = path.resolve()
    except (OSError, RuntimeError):  # a symbolic-link loop leads nowhere safe
        return False
    return any(real.is_relative_to(root) for root in roots)


def _videos_dir(spec: VideoDataSpec) -> Path:
    root = Path(spec.root).expanduser()
    if spec.videos is not None:
        return Path(spec.videos).expanduser()
    return root.parent if root.is_file() else root


def _split_names(spec: VideoDataSpec, split: str) -> tuple[str, ...]:
    if split == "train":
        return (spec.train_split,)
    if spec.val_split == "val":  # accept the usual spellings of the default
        return ("val", "validate", "validation", "test")
    return (spec.val_split,)


# ---------------------------------------------------------------- folder and frames


def _subdirs(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))


def _is_item(path: Path, frames: bool) -> bool:
    if frames:
        return path.is_dir()
    return path.is_file() and path.suffix.lower() in VIDEO_SUFFIXES


def _held_out(name: str, fraction: float) -> bool:
    digest = hashlib.sha1(name.encode()).digest()
    return int.from_bytes(digest[:4], "big") / 2**32 < fraction


def _class_root(spec: VideoDataSpec, split: str) -> tuple[Path, Path, bool]:
    """(folder of the split's class folders, folder of the training classes, has splits)."""
    root = Path(spec.root).expanduser()
    train = root / spec.train_split
    if not train.is_dir():
        return root, root, False
    for name in _split_names(spec, split):
        if (root / name).is_dir():
            return root / name, train, True
    raise SpecError(
        f"no '{_split_names(spec, split)[0]}' folder next to '{spec.train_split}' in {root}",
        path=("data", "val_split"),
    )


def _list_folder(spec: VideoDataSpec, split: str, frames: bool) -> Listing:
    split_dir, train_dir, has_splits = _class_root(spec, split)
    classes = [d.name for d in _subdirs(train_dir)]
    entries = []
    for class_dir in _subdirs(split_dir):
        for item in sorted(class_dir.iterdir()):
            if item.name.startswith(".") or not _is_item(item, frames):
                continue
            name = f"{class_dir.name}/{item.name}"
            if not has_splits and _held_out(name, spec.val_fraction) != (split == "val"):
                continue
            entries.append(Entry(name=name, label=class_dir.name, path=item))
    return Listing(classes=classes, entries=entries)


def _class_folders(path: Path) -> list[Path]:
    if not path.is_dir():
        return []
    base = path / "train" if (path / "train").is_dir() else path
    return _subdirs(base)


def _first_item(path: Path) -> Path | None:
    for class_dir in _class_folders(path)[:8]:
        for item in sorted(class_dir.iterdir()):
            if not item.name.startswith("."):
                return item
    return None


def _detect_folder(path: Path) -> bool:
    item = _first_item(path)
    return item is not None and _is_item(item, frames=False)


def _detect_frames(path: Path) -> bool:
    item = _first_item(path)
    return (
        item is not None
        and item.is_dir()
        and any(p.suffix.lower() in IMAGE_SUFFIXES for p in item.iterdir())
    )


register_layout("folder")(
    Layout(
        list_split=lambda spec, split: _list_folder(spec, split, frames=False),
        detect=_detect_folder,
        priority=90,
    )
)
register_layout("frames")(
    Layout(
        list_split=lambda spec, split: _list_folder(spec, split, frames=True),
        detect=_detect_frames,
        priority=80,
        frames=True,
    )
)

# ---------------------------------------------------------------- Kinetics


def _index_videos(folder: Path) -> dict[str, Path]:
    """Video files under ``folder`` by file stem (the first one found wins)."""
    found: dict[str, Path] = {}
    for path in sorted(folder.rglob("*")):
        if path.suffix.lower() in VIDEO_SUFFIXES:
            found.setdefault(path.stem, path)
    return found


def _csv_rows(root: Path) -> Iterator[CsvRow]:
    files = [root] if root.is_file() else sorted(root.glob("*.csv"))
    roots = (_resolved(root if root.is_dir() else root.parent),)
    for file in [f for f in files if f.is_file() and within(f, roots)]:
        yield from read_csv(file)


def _kinetics_entry(row: CsvRow, videos: dict[str, Path]) -> Entry:
    vid, label = row.fields["youtube_id"], row.fields["label"]
    start, end = cell_seconds(row, "time_start"), cell_seconds(row, "time_end")
    if start is not None and end is not None:
        segment = f"{vid}_{int(start):06d}_{int(end):06d}"
        if segment in videos:
            return Entry(name=segment, label=label, path=videos[segment])
    return Entry(name=vid, label=label, path=videos.get(vid), start=start, end=end)


def _list_kinetics(spec: VideoDataSpec, split: str) -> Listing:
    root = Path(spec.root).expanduser()
    rows = list(_csv_rows(root))
    if not rows and root.is_dir():
        raise SpecError(f"no .csv file in {root}", path=("data", "root"))
    if not rows or "label" not in rows[0].fields or "youtube_id" not in rows[0].fields:
        raise SpecError(
            "a Kinetics CSV needs the columns label, youtube_id, time_start, time_end, split",
            path=("data", "root"),
            file=str(root),
        )

    def in_split(row: CsvRow, names: tuple[str, ...]) -> bool:
        return (row.fields.get("split") or row.file.stem) in names

    train_rows = [r for r in rows if in_split(r, _split_names(spec, "train"))]
    # NOTE: a row without a label (a test split's) names no class
    classes = sorted({r.fields["label"] for r in train_rows or rows} - {""})
    names = _split_names(spec, split)
    videos = _index_videos(_videos_dir(spec))
    entries = [_kinetics_entry(r, videos) for r in rows if in_split(r, names)]
    return Listing(classes=classes, entries=entries)


def _detect_kinetics(path: Path) -> bool:
    if path.is_file():
        return path.suffix.lower() == ".csv"
    return path.is_dir() and any(path.glob("*.csv"))


register_layout("kinetics")(
    Layout(list_split=_list_kinetics, detect=_detect_kinetics, priority=40, root_file=True)
)

# ---------------------------------------------------------------- UCF101 and HMDB51


def _find(root: Path, pattern: str) -> Path | None:
    roots = (_resolved(root),)
    for folder in (root, *_subdirs(root)):
        hits = [hit for hit in sorted(folder.glob(pattern)) if hit.is_file() and within(hit, roots)]
        if hits:
            return hits[0]
    return None


def _locate(videos: Path, relative: str) -> Path | None:
    """The file ``relative`` names under ``videos``; a name that leads out of ``videos``
    is returned untouched (never looked at), for the index to reject."""
    name = Path(relative)
    roots = (_resolved(videos),)
    for candidate in (videos / name, videos / "UCF-101" / name, videos / name.name):
        if not within(candidate, roots):
            return candidate
        if candidate.exists():
            return candidate
    return None


def _ucf_classes(file: Path) -> list[str]:
    """The class names of ``classInd.txt``, whose lines are ``INDEX CLASS``."""
    classes = []
    for number, line in numbered_lines(file):
        parts = line.split()
        if len(parts) < 2 or not parts[0].isdigit():
            shown = line if len(line) <= 60 else line[:57] + "..."
            raise annotation_error(
                f"expected 'INDEX CLASS' (such as '1 ApplyEyeMakeup'), got '{shown}'", file, number
            )
        classes.append(parts[1])
    return classes


def _list_ucf(spec: VideoDataSpec, split: str) -> Listing:
    root = Path(spec.root).expanduser()
    class_file = _find(root, "classInd.txt")
    list_name = f"{'trainlist' if split == 'train' else 'testlist'}{spec.split:02d}.txt"
    split_file = _find(root, list_name)
    if class_file is None or split_file is None:
        missing = "classInd.txt" if class_file is None else list_name
        raise SpecError(f"no {missing} under {root}", path=("data", "root"))
    classes = _ucf_classes(class_file)
    videos = _videos_dir(spec)
    entries = []
    for _, line in numbered_lines(split_file):
        relative = line.split()[0]
        label = relative.split("/")[0] if "/" in relative else ""
        entries.append(Entry(name=relative, label=label, path=_locate(videos, relative)))
    return Listing(classes=classes, entries=entries)


def _list_hmdb(spec: VideoDataSpec, split: str) -> Listing:
    root = Path(spec.root).expanduser()
    pattern = f"*_test_split{spec.split}.txt"
    folder = root / "testTrainMulti_7030_splits"
    base = folder if folder.is_dir() else root
    files = [f for f in sorted(base.glob(pattern)) if f.is_file() and within(f, (_resolved(root),))]
    if not files:
        raise SpecError(f"no {pattern} split files under {root}", path=("data", "root"))
    wanted = "1" if split == "train" else "2"
    classes = sorted(f.name.rsplit("_test_split", 1)[0] for f in files)
    videos = _videos_dir(spec)
    entries = []
    for file in files:
        label = file.name.rsplit("_test_split", 1)[0]
        for number, line in numbered_lines(file):
            parts = line.split()
            if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
                raise annotation_error(
                    f"expected 'VIDEO 0|1|2' (unused, training, testing), got '{line[:60]}'",
                    file,
                    number,
                )
            if parts[1] == wanted:
                path = _locate(videos, f"{label}/{parts[0]}")
                entries.append(Entry(name=f"{label}/{parts[0]}", label=label, path=path))
    return Listing(classes=classes, entries=entries)


register_layout("ucf101")(
    Layout(
        list_split=_list_ucf,
        detect=lambda p: p.is_dir() and _find(p, "classInd.txt") is not None,
        priority=20,
    )
)
register_layout("hmdb51")(
    Layout(
        list_split=_list_hmdb,
        detect=lambda p: (
            p.is_dir()
            and ((p / "testTrainMulti_7030_splits").is_dir() or any(p.glob("*_test_split1.txt")))
        ),
        priority=30,
    )
)

# ---------------------------------------------------------------- Something-Something v2

_SSV2_FILES = {
    "labels": ("labels.json", "something-something-v2-labels.json"),
    "train": ("train.json", "something-something-v2-train.json"),
    "val": ("validation.json", "something-something-v2-validation.json"),
}


def _ssv2_file(folder: Path, kind: str) -> Path:
    for name in _SSV2_FILES[kind]:
        if within(folder / name, (_resolved(folder),)) and (folder / name).is_file():
            return folder / name
    raise SpecError(f"no {' or '.join(_SSV2_FILES[kind])} in {folder}", path=("data", "root"))


def _ssv2_classes(path: Path) -> list[str]:
    """Class names of SSv2's labels JSON (``{"Holding something": "12", ...}``), by id."""
    labels = load_json(path)
    if not isinstance(labels, dict):
        raise SpecError(
            "the labels JSON must map class names to ids", path=("data", "root"), file=str(path)
        )
    ids = {}
    for name, value in labels.items():
        text = str(value).strip()
        if isinstance(value, bool) or not isinstance(value, int | str) or not text.isdigit():
            raise SpecError(
                f"class id {json.dumps(value)[:40]} is not a whole number",
                path=(name,),
                file=str(path),
            )
        ids[name] = int(text)
    return sorted(ids, key=ids.__getitem__)


def _first_existing(roots: tuple[Path, ...], *paths: Path) -> Path | None:
    """The first of ``paths`` that exists; the first that leads out of ``roots`` is
    returned untouched (never looked at), for the index to reject."""
    for path in paths:
        if not within(path, roots):
            return path
        if path.exists():
            return path
    return None


def _list_ssv2(spec: VideoDataSpec, split: str) -> Listing:
    root = Path(spec.root).expanduser()
    folder = root.parent if root.is_file() else root
    classes = _ssv2_classes(_ssv2_file(folder, "labels"))
    split_file = _ssv2_file(folder, split)
    items = load_json(split_file)
    if not isinstance(items, list):
        raise SpecError(
            "the split JSON must be a list of videos", path=("data", "root"), file=str(split_file)
        )
    videos = _videos_dir(spec)
    roots = (_resolved(videos),)
    entries = []
    for item in items:
        vid = str(item.get("id", "")) if isinstance(item, dict) else ""
        template = str(item.get("template", "")) if isinstance(item, dict) else ""
        label = template.replace("[", "").replace("]", "")
        path = _first_existing(roots, videos / f"{vid}.webm", videos / f"{vid}.mp4")
        entries.append(Entry(name=vid or "<no id>", label=label, path=path))
    return Listing(classes=classes, entries=entries)


def _detect_ssv2(path: Path) -> bool:
    if path.is_file():
        return path.suffix.lower() == ".json"
    return path.is_dir() and any((path / n).is_file() for n in _SSV2_FILES["labels"])


register_layout("ssv2")(
    Layout(list_split=_list_ssv2, detect=_detect_ssv2, priority=10, flip=False, root_file=True)
)
