"""``harness export``: one trial of a study as a standalone spec file.

    harness export --results results --study tiny --knee            # -> tiny-trial7.yaml
    harness export --results results/tiny --trial 3 --out best.yaml

The file is the trial's realised spec (``spec_yaml`` in the results table) under a header
comment naming the study, the trial, its objectives and where it came from; ``harness
compile FILE`` gives the trial's spec hash and parameters again. Only a member of the Pareto
set that ``harness search`` prints (complete, within the budgets in force, one trial per
candidate) is exported, and an existing file is never overwritten without ``--force``.
"""

from __future__ import annotations

import os
import shlex
import sys
import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from harness.errors import SpecError, one_line, shorten

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["register"]

Opt = typer.Option
STDOUT = "-"  # --out - writes the spec to stdout


def _cli_error(message: str, option: str) -> SpecError:
    return SpecError(message, path=(option,), file="<command line>")


def _studies(folder: Path) -> list[str]:
    from harness.results import study_dirs

    return [study.name for study in study_dirs(folder)]


def _study_dir(results: Path, study: str | None) -> Path:
    """The folder of the study to export from: ``results`` itself when it holds a table,
    else ``results/<study>`` (``--study`` may be left out when there is one study)."""
    from harness.results import TABLE_NAME

    if not results.exists():
        raise _cli_error(f"{results} does not exist: give a search's --results", "--results")
    if not results.is_dir():
        raise _cli_error(f"{results} is a file, not a results folder", "--results")
    if (results / TABLE_NAME).is_file():  # one study's own folder
        if study is not None and study != results.name:
            raise _cli_error(f"{results} holds study '{results.name}' only", "--study")
        return results
    known = _studies(results)
    if not known:
        raise _cli_error(f"no study in {results} (no */{TABLE_NAME})", "--results")
    if study is None:
        if len(known) > 1:
            raise _cli_error(f"name one of the studies in {results}: {', '.join(known)}", "--study")
        return results / known[0]
    if study not in known:  # NOTE: only a listed folder name reaches the file system
        raise _cli_error(
            f"no study '{shorten(study)}' in {results}; studies: {', '.join(known)}", "--study"
        )
    return results / study


def _load(folder: Path) -> pd.DataFrame:
    from harness.results import load_study_results

    try:
        table = load_study_results(folder)
    except (OSError, ValueError) as exc:
        raise _cli_error(str(exc), "--results") from None
    if table.empty:
        raise _cli_error(f"study '{folder.name}' has no trials yet", "--study")
    return table


def _pick(table: pd.DataFrame, trial: int | None, knee: bool) -> tuple[pd.Series, str]:
    """The row to export and how it was chosen (``the knee of the Pareto set``)."""
    from harness.results import knee_point, pareto_front, study_budgets, study_objectives

    if (trial is None) == (not knee):
        raise _cli_error("give --trial N or --knee, one of them", "--trial")
    name = str(table["study"].dropna().iloc[0]) if table["study"].notna().any() else "?"
    objectives = study_objectives(table)
    if not objectives:
        raise _cli_error(f"the table of study '{name}' names no objectives", "--study")
    front = pareto_front(table, objectives, study_budgets(table))
    if trial is not None:
        return _member(table, front, trial, name), "on the Pareto set"
    label = knee_point(front, objectives)
    if label is None:
        raise _cli_error(
            f"study '{name}' has no complete trial within its budgets yet: no Pareto set",
            "--knee",
        )
    return front.loc[label], "the knee of the Pareto set"


def _member(table: pd.DataFrame, front: pd.DataFrame, trial: int, name: str) -> pd.Series:
    """Trial ``trial``'s row, refused unless complete and on the Pareto set ``front`` (a
    reused duplicate counts as the candidate it repeats)."""
    rows = table[table["trial"] == trial]
    if rows.empty:
        raise _cli_error(
            f"study '{name}' has no trial {trial} (trials {table['trial'].min()} to "
            f"{table['trial'].max()})",
            "--trial",
        )
    row = rows.iloc[0]
    if row["state"] != "complete":
        reason = f": {row['reason']}" if isinstance(row["reason"], str) and row["reason"] else ""
        raise _cli_error(
            f"trial {trial} of study '{name}' is {row['state']}, not complete{reason}", "--trial"
        )
    key = (row["spec_hash"], row["protocol"])
    if not any((r["spec_hash"], r["protocol"]) == key for _, r in front.iterrows()):
        members = ", ".join(str(t) for t in sorted(front["trial"])) or "none"
        raise _cli_error(
            f"trial {trial} of study '{name}' is not on its Pareto set (complete, within "
            f"budget): its members are trials {members}",
            "--trial",
        )
    return row


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _header(
    row: pd.Series, how: str, objectives: Mapping[str, str], source: Path, name: str
) -> str:
    from harness.results import search_params, summarise_architecture

    scores = ", ".join(f"{k} {_fmt(row[k])} ({d})" for k, d in objectives.items())
    lines = [
        f"Exported by `harness export`: study '{row['study']}', trial {row['trial']}, {how}.",
        f"objectives: {scores}",
        f"protocol: {row['protocol']}",
        f"search parameters: {', '.join(search_params(row)) or 'none'}",
        f"architecture: {summarise_architecture(row)}",
        f"spec hash: {row['spec_hash']} (harness compile {name} --json gives it again)",
        f"from: {source}",
        "The realised spec follows: every key explicit, no base: chain to resolve.",
    ]
    wrapped = [
        part
        for line in lines
        for part in textwrap.wrap(
            one_line(line),
            width=96,
            subsequent_indent="    ",
            break_long_words=False,
            break_on_hyphens=False,
        )
    ]
    return "".join(f"# {line}\n" for line in wrapped)


def _check_spec(text: str, row: pd.Series) -> None:
    """The stored spec must load with this harness and give the trial's hash again."""
    from harness.spec import load_yaml_text, spec_hash
    from harness.spec.load import spec_from_document

    try:
        got = spec_hash(spec_from_document(load_yaml_text(text, f"<trial {row['trial']}>")))
    except SpecError as exc:
        raise SpecError(
            f"trial {row['trial']}: its stored spec no longer loads ({exc.message})",
            path=("--trial",),
            file="<command line>",
        ) from None
    if got != row["spec_hash"]:
        raise _cli_error(
            f"trial {row['trial']}: its stored spec gives the hash {got[:12]} with this version "
            f"of harness, not the trial's {str(row['spec_hash'])[:12]}",
            "--trial",
        )


def _target(out: str | None, row: pd.Series, force: bool) -> Path | None:
    """The file to write (None: stdout), refused when it exists and not ``force``."""
    if out == STDOUT:
        return None
    path = Path(out) if out is not None else Path(f"{row['study']}-trial{row['trial']}.yaml")
    if path.is_dir():
        raise _cli_error(f"{path} is a folder; give a file name", "--out")
    if (path.exists() or path.is_symlink()) and not force:
        raise _cli_error(f"{path} exists; add --force to overwrite it", "--out")
    parent = next((p for p in path.parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise _cli_error(f"{parent} is a file, not a folder", "--out")
    return path


def _write(path: Path, text: str) -> None:
    """``text`` into ``path`` through a temporary file beside it: never half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(text)
        os.replace(tmp, path)
    except OSError as exc:
        raise _cli_error(f"cannot write {path}: {exc.strerror or exc}", "--out") from None
    finally:
        tmp.unlink(missing_ok=True)


def export_command(
    results: Annotated[
        Path, Opt("--results", help="Results folder (one folder per study), or one study's.")
    ] = Path("results"),
    study: Annotated[
        str | None, Opt("--study", help="Study name (default: the only one in --results).")
    ] = None,
    trial: Annotated[int | None, Opt("--trial", help="A Pareto member, by trial number.")] = None,
    knee: Annotated[bool, Opt("--knee", help="The knee of the Pareto set.")] = False,
    out: Annotated[
        str | None, Opt("--out", help="File to write (default STUDY-trialN.yaml; - for stdout).")
    ] = None,
    force: Annotated[bool, Opt("--force", help="Overwrite --out if it exists.")] = False,
) -> None:
    """Write one Pareto member of a study (or its knee) as a standalone spec file.

    The file is the trial's realised spec with a header naming the study, the trial and its
    objectives; harness compile FILE and harness train FILE take it as any spec.
    """
    from harness.results import TABLE_NAME, study_objectives, summarise_architecture

    folder = _study_dir(results, study)
    table = _load(folder)
    row, how = _pick(table, trial, knee)
    text = row["spec_yaml"]
    if not isinstance(text, str) or not text.strip():  # NaN or None: nothing stored
        raise _cli_error(f"trial {row['trial']} has no stored spec", "--trial")
    _check_spec(text, row)
    path = _target(out, row, force)
    objectives = study_objectives(table)
    name = path.name if path is not None else "FILE"
    document = _header(row, how, objectives, folder / TABLE_NAME, name) + str(text)
    scores = ", ".join(f"{k} {_fmt(row[k])}" for k in objectives)
    lines = [
        f"study {row['study']}, trial {row['trial']} ({how}): {scores}",
        summarise_architecture(row),
    ]
    if path is None:
        sys.stdout.write(document)
        sys.stderr.write("".join(f"{line}\n" for line in lines))
        return
    _write(path, document)
    typer.echo(f"wrote {path}: {lines[0]}")
    typer.echo(lines[1])
    command = shlex.join(["harness", "compile", str(path)])
    typer.echo(f"spec {str(row['spec_hash'])[:12]}; check it: {command}")


def register(app: typer.Typer) -> None:
    app.command("export")(export_command)
