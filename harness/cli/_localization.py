"""``harness evaluate-detections``: mAP at temporal IoU thresholds of a detection file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from harness.errors import SpecError

__all__ = ["register"]

CLI = "<command line>"


def _thresholds(tiou: str | None, protocol: str | None) -> tuple[float, ...]:
    from harness.localization import PROTOCOLS

    if tiou is not None and protocol is not None:
        raise SpecError("give --tiou or --protocol, not both", path=("--tiou",), file=CLI)
    if tiou is None:
        name = protocol or "activitynet"
        if name not in PROTOCOLS:
            known = ", ".join(PROTOCOLS)
            raise SpecError(f"unknown protocol '{name}'; known: {known}", path=("--protocol",),
                            file=CLI)  # fmt: skip
        return PROTOCOLS[name]
    try:
        values = tuple(float(part) for part in tiou.split(",") if part.strip())
    except ValueError:
        values = ()
    if not values or any(not 0.0 < v <= 1.0 for v in values):
        raise SpecError(f"'{tiou}' is not a list of tIoU thresholds in (0, 1] such as "
                        "0.5,0.75,0.95", path=("--tiou",), file=CLI)  # fmt: skip
    return values


def evaluate_detections_command(
    ground_truth: Annotated[
        Path,
        typer.Argument(
            help="ActivityNet-format JSON (database), or a folder of THUMOS14 "
            "CLASS_SUBSET.txt lists."
        ),
    ],
    predictions: Annotated[
        Path,
        typer.Argument(help="Detections: JSON with results -> video -> [{label, score, segment}]."),
    ],
    tiou: Annotated[
        str | None, typer.Option("--tiou", help="tIoU thresholds, e.g. 0.5,0.75,0.95.")
    ] = None,
    protocol: Annotated[
        str | None,
        typer.Option(
            "--protocol",
            help="activitynet (0.50:0.05:0.95, the default) or thumos14 (0.3:0.1:0.7).",
        ),
    ] = None,
    subset: Annotated[
        str | None, typer.Option("--subset", help="Only the ground truth's videos of this subset.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """mAP of detections at temporal IoU thresholds, and its average (ActivityNet's
    detection evaluation). Predictions of labels the ground truth does not have are
    reported and ignored."""
    from harness.localization import (
        evaluate_detections,
        load_activitynet,
        load_detections,
        load_thumos14,
    )

    thresholds = _thresholds(tiou, protocol)
    if ground_truth.is_dir():
        truth = load_thumos14(ground_truth)
    else:
        truth = load_activitynet(ground_truth, subset=subset)
    if not truth:
        raise SpecError("no action instance to evaluate against", file=str(ground_truth))
    result = evaluate_detections(truth, load_detections(predictions), thresholds)
    if result.ignored:
        from harness.errors import warn

        labels = ", ".join(f"{k} ({n})" for k, n in sorted(result.ignored.items()))
        warn(f"ignored predictions of labels not in the ground truth: {labels}")
    if as_json:
        typer.echo(json.dumps(result.to_json()))
        return
    typer.echo(f"{len(result.ap)} classes, {len(truth)} ground-truth instances")
    for threshold, value in zip(result.tiou_thresholds, result.mAP, strict=True):
        typer.echo(f"mAP@{threshold:.2f}  {value:.4f}")
    typer.echo(f"average mAP  {result.average_mAP:.4f}")


def register(app: typer.Typer) -> None:
    app.command("evaluate-detections")(evaluate_detections_command)
