"""``harness search`` and ``harness demo``."""

from __future__ import annotations

import functools
import json
import math
import shlex
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from harness.errors import SpecError

if TYPE_CHECKING:
    import optuna
    import pandas as pd

    from harness.search import SearchResult, SearchSpace, SpaceCheck

__all__ = ["register"]

# NOTE: results (the Pareto table, the summary lines, --json's object) go to stdout, progress
# (the space check, the live display, warnings) to stderr: `harness search ... > out.txt`
# keeps the results and still shows the progress.
console = Console(stderr=True)
out = Console()
SPACES_DIR = Path(__file__).resolve().parents[2] / "search_spaces"
MAX_SEED = 2**32 - 1  # as a space's 'seed'

Trials = Annotated[
    int | None,
    typer.Option("--trials", help="Finished trials the study should reach (default 20)."),
]
Trained = Annotated[
    int | None,
    typer.Option(
        "--trained",
        help="Stop once this many trials have trained (over-budget and reused ones do not "
        "count); with it, --trials only bounds the proposals (default 50 per trained).",
    ),
]
Draws = Annotated[
    int,
    typer.Option("--draws", help="Random draws of the feasibility scan (0: no scan)."),
]
Timeout = Annotated[
    float | None, typer.Option("--timeout", help="Stop asking for trials after S seconds.")
]
Study = Annotated[str | None, typer.Option("--study", help="Study name (default: the space's).")]
Storage = Annotated[
    str | None,
    typer.Option("--storage", help="postgresql://... or sqlite:///... (default: journal file)."),
]
Results = Annotated[Path, typer.Option("--results", help="Results directory.")]
Workers = Annotated[int, typer.Option("--workers", help="Worker processes on this machine.")]
Sampler = Annotated[
    str | None, typer.Option("--sampler", help="tpe, nsga2, nsga3, random, grid or gp.")
]
Seed = Annotated[int | None, typer.Option("--seed", help="Study seed (default: the space's).")]
Budget = Annotated[
    list[str] | None, typer.Option("--budget", help="COST=LIMIT, overrides the space's budget.")
]
Resume = Annotated[bool, typer.Option("--resume", help="Continue the study (the default anyway).")]
Json = Annotated[bool, typer.Option("--json", help="Print one JSON object at the end.")]


def _cli_error(message: str, option: str) -> SpecError:
    return SpecError(message, path=(option,), file="<command line>")


def _budgets(values: list[str] | None) -> dict[str, float]:
    from harness.search import parse_budget

    out = {}
    for text in values or []:
        try:
            cost, limit = parse_budget(text)
        except ValueError as exc:
            raise _cli_error(str(exc), "--budget") from None
        out[cost] = limit
    return out


def _front_table(front: pd.DataFrame, space: SearchSpace) -> Table:
    """The Pareto set ``front`` (from ``pareto_front``), up to 12 rows."""
    from harness.results import summarise_architecture

    table = Table(title="Pareto set (complete, within budget)", title_justify="left")
    for column in ("trial", *space.objectives, "spec"):
        table.add_column(column, justify="right")
    table.add_column("architecture", justify="left")
    for _, row in front.head(12).iterrows():
        cells = [str(row["trial"])]
        cells += [_fmt(row[name]) for name in space.objectives]
        table.add_row(*cells, str(row["spec_hash"])[:8], summarise_architecture(row))
    return table


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


class _Display:
    """Progress bar and live Pareto summary, refreshed after each trial."""

    def __init__(self, space: SearchSpace, total: int, trained: bool) -> None:
        self.space = space
        self.trained = trained  # the bar counts trials that trained, not every trial
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[counts]}"),
            console=console,
        )
        name = "trained" if trained else "trials"
        self.task = self.progress.add_task(name, total=total, counts="")
        self.live = Live(Group(self.progress), console=console, refresh_per_second=4)

    def update(self, study: optuna.Study) -> None:
        from harness.search import pareto_front
        from harness.search._records import trials_frame

        df = trials_frame(study)
        if df.empty:
            return
        self.count(df)
        front = pareto_front(df, dict(self.space.objectives), dict(self.space.budgets))
        self.live.update(Group(self.progress, _front_table(front, self.space)))

    def count(self, df: pd.DataFrame) -> None:
        """The bar and the counts of each state, from the trials table ``df``."""
        from harness.results import reused

        counts = df["state"].value_counts()
        done = int(sum(counts.get(s, 0) for s in ("complete", "infeasible", "pruned", "failed")))
        if self.trained:
            done = int((df["state"].isin(["complete", "pruned"]) & ~reused(df)).sum())
        text = "  ".join(f"{s} {int(n)}" for s, n in counts.items())
        self.progress.update(self.task, completed=done, counts=text)

    def run(self, search: Callable[..., SearchResult], report: SpaceCheck) -> SearchResult:
        """``search(on_start=..., on_trial=...)`` under the display.

        The live Pareto set shows under the bar while trials run; a search that ends leaves
        only the bar, since its set is printed on stdout. (An interrupted one leaves the set
        it had reached on screen.)

        NOTE: the display starts once the study is open (``on_start``), after every check
        that can refuse the options: an error before it is the only line on stderr.
        """

        def start() -> None:
            _print_check(report, console)
            self.live.start()

        try:
            result = search(on_start=start, on_trial=self.update)
            if not result.table.empty:
                self.count(result.table)
            self.live.update(Group(self.progress))
        finally:
            if self.live.is_started:
                self.live.stop()
                if not console.is_terminal:
                    console.line()  # NOTE: rich ends a live display's render with no newline
        return result


def _summary(result: SearchResult, space: SearchSpace, seconds: float, results: Path) -> None:
    """The Pareto set and the summary lines, on stdout."""
    front = result.pareto()  # NOTE: the budgets in force, as harness export judges them
    out.print(_front_table(front, space))
    n = result.interrupted()
    interrupted = f", {n} interrupted (run again)" if n else ""
    out.print(
        f"study [bold]{result.study}[/bold]: {result.count('complete')} complete, "
        f"{result.count('infeasible')} infeasible (rejected before training), "
        f"{result.count('pruned')} pruned, {result.count('failed')} failed"
        f"{interrupted} in {seconds:.1f} s",
        soft_wrap=True,  # NOTE: a line that names a path must not be wrapped mid-path
    )
    groups = result.time_mixing()
    if groups:
        mixing, blind = groups["mixes_time"], groups["blind"]
        out.print(
            f"networks that mix frames: best {mixing.best:.3f} of {mixing.trained} trained in "
            f"full; blind to frame order: best {blind.best:.3f} of {blind.trained} "
            f"({_verdict(mixing.best or 0.0, blind.best or 0.0)})",
            soft_wrap=True,
            highlight=False,
        )
    out.print(
        f"results table: [bold]{result.results}[/bold] (and trials.csv beside it)", soft_wrap=True
    )
    if not front.empty:
        command = shlex.join(
            ["harness", "export", "--results", str(results), "--study", result.study, "--knee"]
        )
        out.print(
            f"export a spec: [bold]{command}[/bold] (or --trial N)", soft_wrap=True, highlight=False
        )


def _verdict(mixing: float, blind: float) -> str:
    """Whether the networks that mix frames won, in words."""
    if mixing > blind:
        return f"time pays: +{mixing - blind:.3f}"
    return "time did not pay here" if mixing < blind else "a tie"


def _check(space: SearchSpace, *, sampler: str | None, draws: int) -> SpaceCheck:
    """Validate the space and scan its feasibility (before any trial)."""
    from harness.search import check_space

    return check_space(space, sampler=sampler, draws=draws)


def _print_check(report: SpaceCheck, to: Console) -> None:
    for line in report.lines():
        to.print(line, soft_wrap=True, highlight=False)


def _search(
    space: SearchSpace,
    *,
    trials: int | None,
    trained: int | None,
    timeout: float | None,
    study: str | None,
    storage: str | None,
    results: Path,
    workers: int,
    sampler: str | None,
    seed: int | None,
    draws: int,
    as_json: bool,
) -> SearchResult:
    from harness.errors import Interrupted
    from harness.search import run_search

    for option, value in (("--trials", trials), ("--trained", trained), ("--workers", workers)):
        if value is not None and value < 1:
            raise _cli_error(f"must be at least 1, got {value}", option)
    if draws < 0:
        raise _cli_error(f"must be at least 0, got {draws}", "--draws")
    if seed is not None and not 0 <= seed <= MAX_SEED:
        raise _cli_error(f"must be from 0 to {MAX_SEED} (numpy's seeds), got {seed}", "--seed")
    if timeout is not None and not (math.isfinite(timeout) and timeout > 0):
        raise _cli_error(f"must be a number of seconds above 0, got {timeout}", "--timeout")
    if study is not None:
        from harness.search._preflight import check_study_name

        check_study_name(study)
    if trials is None and trained is None:
        trials = 20
    start = time.perf_counter()
    report = _check(space, sampler=sampler, draws=draws)
    search = functools.partial(
        run_search, space, trials=trials, trained=trained, study=study, storage=storage,
        results_dir=results, workers=workers, sampler=sampler, seed=seed, timeout=timeout,
        check=False,
    )  # fmt: skip
    try:
        if as_json:
            result = search()
        else:
            display = _Display(space, trained or trials or 0, trained is not None)
            result = display.run(search, report)
    except Interrupted as exc:
        command = shlex.join(["harness", *sys.argv[1:]]) if sys.argv[1:] else "the same command"
        raise Interrupted(f"{exc}; resume it with: {command}") from None
    if as_json:  # the space check goes into the object, not onto stderr
        typer.echo(json.dumps({**result.to_json(), "check": report.to_json()}))
    else:
        _summary(result, space, time.perf_counter() - start, results)
    return result


def _quiet_optuna() -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def search_command(
    space_file: Annotated[Path, typer.Argument(metavar="SPACE.yaml", help="A search space.")],
    trials: Trials = None,
    trained: Trained = None,
    timeout: Timeout = None,
    study: Study = None,
    storage: Storage = None,
    results: Results = Path("results"),
    workers: Workers = 1,
    sampler: Sampler = None,
    seed: Seed = None,
    budget: Budget = None,
    draws: Draws = 200,
    resume: Resume = False,
    as_json: Json = False,
) -> None:
    """Search a space for the Pareto set of accuracy against cost; every trial is recorded.

    The space is checked first (harness check). Running the same command again (or with
    --resume) continues the study; Ctrl-C or SIGTERM stops it with every finished trial kept.
    """
    _quiet_optuna()
    space = _load(space_file, budget)
    _search(
        space, trials=trials, trained=trained, timeout=timeout, study=study, storage=storage,
        results=results, workers=workers, sampler=sampler, seed=seed, draws=draws,
        as_json=as_json,
    )  # fmt: skip


def _load(space_file: Path, budget: list[str] | None) -> SearchSpace:
    from harness.search import load_space

    space = load_space(space_file)
    budgets = _budgets(budget)
    return space.with_budgets(budgets) if budgets else space


def check_command(
    space_file: Annotated[Path, typer.Argument(metavar="SPACE.yaml", help="A search space.")],
    budget: Budget = None,
    sampler: Sampler = None,
    draws: Draws = 200,
    as_json: Json = False,
) -> None:
    """Check a space before searching it: every choice and when: branch built at the spec's
    and the fidelity's clip, the data, the sampler, and a feasibility scan of the budgets."""
    if draws < 0:
        raise _cli_error(f"must be at least 0, got {draws}", "--draws")
    space = _load(space_file, budget)
    if as_json:
        typer.echo(json.dumps(_check(space, sampler=sampler, draws=draws).to_json()))
        return
    _print_check(_check(space, sampler=sampler, draws=draws), Console())


def demo_command(
    trials: Annotated[int, typer.Option("--trials", help="Finished trials.")] = 12,
    results: Results = Path("results"),
    as_json: Json = False,
) -> None:
    """Run a small search on the built-in synthetic benchmark (embedded storage)."""
    from harness.search import load_space

    _quiet_optuna()
    space = load_space(SPACES_DIR / "demo.yaml")
    _search(
        space, trials=trials, trained=None, timeout=None, study="demo", storage=None,
        results=results, workers=1, sampler=None, seed=None, draws=200, as_json=as_json,
    )  # fmt: skip
    if not as_json:
        out.print(
            f"open the dashboard: [bold]harness dashboard --results {results}[/bold]",
            soft_wrap=True,
        )


def register(app: typer.Typer) -> None:
    app.command("search")(search_command)
    app.command("check")(check_command)
    app.command("demo")(demo_command)
