"""``harness data``: data-set utilities (``harness data export``).

The group registers itself on :data:`harness.cli._app.app` when this module is imported.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from harness.cli._app import app
from harness.cli._features import export_untrimmed_command
from harness.errors import SpecError

__all__ = ["data_app"]

data_app = typer.Typer(
    name="data", help="Data-set utilities.", no_args_is_help=True, add_completion=False
)

Opt = typer.Option


@data_app.command("export")
def export_command(
    source: Annotated[
        str,
        typer.Argument(
            metavar="SOURCE",
            help="synthetic[:ci|tiny|small|large], synthetic-untrimmed[:tiny|small], or a YAML.",
        ),
    ],
    out: Annotated[Path, typer.Argument(metavar="DIR", help="A new or empty folder.")],
    clips: Annotated[
        int | None,
        Opt("--clips", help="Training videos per class (default 16; untrimmed: in all)."),
    ] = None,
    val_clips: Annotated[
        int | None,
        Opt(
            "--val-clips", help="Validation videos per class (default clips/4; untrimmed: in all)."
        ),
    ] = None,
    classes: Annotated[
        int | None, Opt("--classes", help="The first K classes (default: all of the size's).")
    ] = None,
    size: Annotated[int, Opt("--size", help="Frame width and height, pixels (even).")] = 64,
    fps: Annotated[
        int | None, Opt("--fps", help="Frame rate of the files (default 25; untrimmed: its own).")
    ] = None,
    seed: Annotated[int | None, Opt("--seed", help="Benchmark seed (default: 0).")] = None,
) -> None:
    """Write the synthetic benchmark as .mp4 files in class folders (DIR/{train,val}/CLASS);
    the untrimmed one as DIR/videos/VIDEO.mp4, DIR/annotations.json and DIR/thumos14/."""
    from harness.data.export import export_synthetic
    from harness.data.spec import AUDIO_VISUAL, SyntheticDataSpec, load_data_spec
    from harness.localization.untrimmed import is_untrimmed_name

    if is_untrimmed_name(source):
        export_untrimmed_command(
            source,
            out,
            clips=clips,
            val_clips=val_clips,
            classes=classes,
            size=size,
            fps=fps,
            seed=seed,
        )
        return
    clips = 16 if clips is None else clips
    fps = 25 if fps is None else fps

    builtin = source.partition(":")[0] in ("synthetic", AUDIO_VISUAL)
    if not (builtin or source.endswith(".yaml")):
        raise SpecError(
            f"only the built-in benchmarks can be exported (synthetic[:ci|tiny|small|large], "
            f"{AUDIO_VISUAL}[:...] or a synthetic YAML), got '{source}'",
            path=("SOURCE",),
            file="<command line>",
        )
    spec = load_data_spec(source)
    if not isinstance(spec, SyntheticDataSpec):
        raise SpecError(
            f"'{source}' is not the synthetic benchmark; only it can be exported",
            path=("SOURCE",),
            file="<command line>",
        )
    if seed is not None:
        if seed < 0:
            raise SpecError(
                f"must be at least 0, got {seed}", path=("--seed",), file="<command line>"
            )
        spec = spec.model_copy(update={"seed": seed})
    summary = export_synthetic(
        spec, out, clips=clips, val_clips=val_clips, classes=classes, size=size, fps=fps
    )
    counts = ", ".join(f"{n} {split}" for split, n in summary.videos.items())
    typer.echo(
        f"wrote {counts} videos ({len(summary.classes)} classes, {summary.frames} frames of "
        f"{summary.size}x{summary.size}, {summary.codec}) to {summary.root}"
    )
    typer.echo(f"train on them: harness train tiny_r2plus1d --data {summary.root}")


app.add_typer(data_app, name="data")
