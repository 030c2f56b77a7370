"""Annotation and prediction files of temporal action detection, read strictly.

ActivityNet's JSON (the format of ActivityNet 1.3 and of most localization code)::

    {"database": {"VIDEO": {"subset": "validation", "duration": 120.5,
                            "annotations": [{"segment": [12.1, 30.0], "label": "Run"}]}}}

predictions in the challenge's submission format::

    {"results": {"VIDEO": [{"label": "Run", "score": 0.9, "segment": [11.0, 29.5]}]}}

and THUMOS14's per-class lists (``Run_val.txt``: one ``VIDEO START END`` line per
instance, seconds; the class is the file name before its last ``_``). A file that does not
follow the format is a :class:`~harness.errors.SpecError` naming the file, the key path and,
where the file is small enough to locate it, the line.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from harness.errors import Location, SpecError, shorten
from harness.localization.evaluate import Detection, Instance
from harness.spec import load_yaml_file

__all__ = ["load_activitynet", "load_detections", "load_thumos14"]

KeyPath = tuple[str | int, ...]
_LOCATE_LIMIT = 2_000_000  # bytes: larger files are named without a line


def _read_json(path: Path) -> Any:
    try:
        if not path.is_file():
            raise SpecError("no such file" if not path.exists() else "not a regular file",
                            file=str(path))  # fmt: skip
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(f"cannot read file: {exc.strerror or exc}", file=str(path)) from None
    except UnicodeDecodeError as exc:
        raise SpecError(f"cannot read file: {exc}", file=str(path)) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise SpecError(
            f"not JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})", file=str(path)
        ) from None
    except RecursionError:
        raise SpecError("JSON nested too deeply", file=str(path)) from None


def _error(path: Path, message: str, key: KeyPath) -> SpecError:
    """A SpecError at ``key`` of the JSON file ``path``, with its line where it can."""
    if path.stat().st_size <= _LOCATE_LIMIT:
        try:
            return load_yaml_file(path).error(message, key)
        except SpecError:  # JSON that YAML reads otherwise: the key path alone
            pass
    return SpecError(message, path=key, file=str(path))


def _mapping(path: Path, value: Any, key: KeyPath, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _error(path, f"expected a mapping ({what})", key)
    return value


def _segment(path: Path, value: Any, key: KeyPath) -> tuple[float, float]:
    numbers = isinstance(value, list) and len(value) == 2 and all(
        isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
        for v in value
    )  # fmt: skip
    if not numbers:
        raise _error(path, "a segment is [start, end], two finite numbers (seconds)", key)
    start, end = float(value[0]), float(value[1])
    if end < start:
        raise _error(path, f"the segment ends ({end:g}) before it starts ({start:g})", key)
    return start, end


def _label(path: Path, value: Any, key: KeyPath) -> str:
    if not isinstance(value, str) or not value:
        raise _error(path, "a label is a non-empty string", key)
    return value


def load_activitynet(path: str | Path, subset: str | None = None) -> list[Instance]:
    """The action instances of an ActivityNet-format file (of ``subset`` only, if given).

    Raises:
        SpecError: the file is not in the format (file, line, key path), or ``subset``
            names no video.
    """
    path = Path(path)
    data = _mapping(path, _read_json(path), (), "the file")
    if "database" not in data:
        raise _error(path, "missing key 'database' (video -> annotations)", ())
    database = _mapping(path, data["database"], ("database",), "video -> annotations")
    instances: list[Instance] = []
    chosen = 0
    for video, entry in database.items():
        key: KeyPath = ("database", video)
        entry = _mapping(path, entry, key, "a video's subset and annotations")
        if subset is not None and entry.get("subset") != subset:
            continue
        chosen += 1
        annotations = entry.get("annotations", [])
        if not isinstance(annotations, list):
            raise _error(path, "expected a list of annotations", (*key, "annotations"))
        for i, item in enumerate(annotations):
            at = (*key, "annotations", i)
            item = _mapping(path, item, at, "segment and label")
            for name in ("segment", "label"):
                if name not in item:
                    raise _error(path, f"missing key '{name}'", at)
            start, end = _segment(path, item["segment"], (*at, "segment"))
            instances.append(Instance(video, _label(path, item["label"], (*at, "label")),
                                      start, end))  # fmt: skip
    if subset is not None and not chosen:
        raise SpecError(f"no video of subset '{subset}'", path=("--subset",), file=str(path))
    return instances


def load_detections(path: str | Path) -> list[Detection]:
    """The predicted segments of a submission-format file (``results``).

    Raises:
        SpecError: the file is not in the format (file, line, key path).
    """
    path = Path(path)
    data = _mapping(path, _read_json(path), (), "the file")
    if "results" not in data:
        raise _error(path, "missing key 'results' (video -> predictions)", ())
    results = _mapping(path, data["results"], ("results",), "video -> predictions")
    detections = []
    for video, items in results.items():
        if not isinstance(items, list):
            raise _error(path, "expected a list of predictions", ("results", video))
        for i, item in enumerate(items):
            at: KeyPath = ("results", video, i)
            item = _mapping(path, item, at, "label, score and segment")
            for name in ("label", "score", "segment"):
                if name not in item:
                    raise _error(path, f"missing key '{name}'", at)
            score = item["score"]
            if (
                not isinstance(score, int | float)
                or isinstance(score, bool)
                or not math.isfinite(score)
            ):
                raise _error(path, "a score is a finite number", (*at, "score"))
            start, end = _segment(path, item["segment"], (*at, "segment"))
            label = _label(path, item["label"], (*at, "label"))
            detections.append(Detection(video, label, start, end, float(score)))
    return detections


def load_thumos14(folder: str | Path) -> list[Instance]:
    """The instances of THUMOS14's per-class lists in ``folder`` (``CLASS_SUBSET.txt``).

    Raises:
        SpecError: a line that is not ``VIDEO START END`` (file and line).
    """
    folder = Path(folder)
    files = sorted(p for p in folder.glob("*.txt") if "_" in p.stem)
    if not files:
        raise SpecError("no CLASS_SUBSET.txt annotation list here", file=str(folder))
    instances = []
    for file in files:
        label = file.stem.rsplit("_", 1)[0]
        for number, line in enumerate(file.read_text(encoding="utf-8").splitlines(), 1):
            parts = line.split()
            if not parts:
                continue
            try:
                video, start, end = parts[0], float(parts[1]), float(parts[2])
                if len(parts) != 3 or not (math.isfinite(start) and math.isfinite(end)):
                    raise ValueError
            except (ValueError, IndexError):
                raise SpecError(f"expected 'VIDEO START END' (seconds), got "
                                f"{shorten(line.strip())!r}",
                                location=Location(str(file), number, 1)) from None  # fmt: skip
            if end < start:
                raise SpecError(f"the segment ends ({end:g}) before it starts ({start:g})",
                                location=Location(str(file), number, 1))  # fmt: skip
            instances.append(Instance(video, label, start, end))
    return instances
