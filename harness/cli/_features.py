"""``harness features``: pre-extract backbone features of untrimmed videos (one .npy each)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["register"]

Opt = typer.Option


def features_command(
    spec: Annotated[str, typer.Argument(metavar="SPEC", help="Zoo name or YAML spec (backbone).")],
    data: Annotated[
        str,
        Opt(
            "--data",
            help="synthetic-untrimmed[:tiny|small] (or its YAML), a folder holding "
            "annotations.json and the videos (harness data export), or an ActivityNet JSON.",
        ),
    ],
    out: Annotated[Path, Opt("--out", help="Features folder: DIR/VIDEO.npy + features.json.")],
    window: Annotated[int, Opt("--window", help="Frames per window (one feature step).")] = 8,
    stride: Annotated[int, Opt("--stride", help="Frames between windows.")] = 4,
    size: Annotated[int, Opt("--size", help="Frame side the backbone reads, pixels.")] = 32,
    batch: Annotated[int, Opt("--batch", help="Windows per forward pass.")] = 16,
    weights: Annotated[
        Path | None, Opt("--weights", help="Checkpoint of `harness train` (last.pt).")
    ] = None,
    videos: Annotated[
        Path | None, Opt("--videos", help="Folder of the video files, if not beside the JSON.")
    ] = None,
    split: Annotated[
        str | None, Opt("--split", help="Only this split's videos: train or val (default all).")
    ] = None,
    overwrite: Annotated[
        bool, Opt("--overwrite", help="Replace features of another setting in --out.")
    ] = False,
    device: Annotated[str, Opt("--device", help="Torch device.")] = "cpu",
) -> None:
    """Slide SPEC's backbone (head replaced by global average pooling) over every video in
    windows, writing one (steps x channels) float32 .npy per video, features.json and the
    annotations. Videos already extracted with the same settings are skipped."""
    from harness.localization.extract import extract_features
    from harness.localization.videos import load_untrimmed

    source = load_untrimmed(data, videos=videos)
    summary = extract_features(
        spec,
        source,
        out,
        window=window,
        stride=stride,
        size=size,
        batch=batch,
        weights=weights,
        split=split,
        overwrite=overwrite,
        device=device,
        log=lambda line: typer.echo(line, err=True),
    )
    meta = summary.meta
    rate = f"{meta.steps_per_second:g} steps/s" if meta.steps_per_second else "per-video rates"
    typer.echo(
        f"extracted {len(summary.written)} videos, {len(summary.skipped)} already there "
        f"(key {meta.key}): {meta.width} channels, {rate}, to {summary.folder}"
    )


def export_untrimmed_command(
    source: str,
    out: Path,
    *,
    clips: int | None,
    val_clips: int | None,
    classes: int | None,
    size: int,
    fps: int | None,
    seed: int | None,
) -> None:
    """``harness data export synthetic-untrimmed[:SIZE] DIR``: the options of ``harness data
    export`` set the benchmark's fields (``--clips``: training videos, ``--val-clips``:
    validation videos)."""
    from harness.errors import SpecError
    from harness.localization.export import export_untrimmed
    from harness.localization.untrimmed import load_untrimmed_spec

    spec = load_untrimmed_spec(source)
    options = {
        "--clips": ("train_videos", clips),
        "--val-clips": ("val_videos", val_clips),
        "--classes": ("classes", classes),
        "--fps": ("fps", fps),
        "--seed": ("seed", seed),
    }
    for option, (field, value) in options.items():
        if value is None:
            continue
        try:
            spec = load_untrimmed_spec({**spec.model_dump(), field: value})
        except SpecError as exc:
            raise SpecError(exc.message, path=(option,), file="<command line>") from None
    summary = export_untrimmed(spec, out, size=size)
    counts = ", ".join(f"{n} {split}" for split, n in summary.videos.items())
    typer.echo(
        f"wrote {counts} untrimmed videos ({summary.frames} frames of {summary.size}x"
        f"{summary.size} at {summary.fps} fps, {summary.instances} actions, {summary.codec}) "
        f"and annotations.json, thumos14/ to {summary.root}"
    )
    typer.echo(f"extract features: harness features tiny_c2d --data {summary.root} --out FEATURES")


def register(app: typer.Typer) -> None:
    app.command("features")(features_command)
