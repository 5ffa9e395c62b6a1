"""``rnnkit tune``: hyperparameter search over a tune config (see docs/tuning.md)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Annotated

import typer

__all__ = ["tune"]


def _fail(message: str, code: int) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def _print_warning(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ARG001
    """Warnings as one ``warning: ...`` line on stderr (the signature of warnings.showwarning)."""
    typer.echo(f"warning: {message}", err=True)


def tune(
    config: Annotated[Path, typer.Argument(help="Tune config: a run config plus `search:`.")],
    trials: Annotated[
        int, typer.Option(min=0, help="Trials this process runs (0: only write the outputs).")
    ] = 20,
    sampler: Annotated[
        str, typer.Option(help="grid, random, tpe (Bayesian), cmaes or nsga2 (evolutionary).")
    ] = "tpe",
    storage: Annotated[
        str | None,
        typer.Option(help="Optuna storage URL, e.g. sqlite:///study.db, shared by workers."),
    ] = None,
    study_name: Annotated[
        str | None, typer.Option(help="Study name (default: the config's name).")
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Output directory (default: runs/tune-<study name>).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Sampler seed; give each worker its own.")] = 0,
    pruner: Annotated[str, typer.Option(help="none, median or hyperband.")] = "median",
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", "-s", help="Override a config value: section.key=value."),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No line per trial.")] = False,
) -> None:
    """Search hyperparameters with Optuna; prints the results table and the best config."""
    from rich.console import Console

    from ..config import ConfigError
    from ..tuning import TuningWarning, default_study_name, read_tune_config
    from ..tuning import tune as run_tuning

    try:
        values, space, objective = read_tune_config(config, list(set_ or []))
        name = study_name or default_study_name(values)
        with warnings.catch_warnings():
            warnings.simplefilter("always", TuningWarning)
            warnings.showwarning = _print_warning
            result = run_tuning(
                values,
                space,
                objective,
                trials=trials,
                sampler=sampler,
                storage=storage,
                study_name=name,
                out_dir=out or Path("runs") / f"tune-{name}",
                seed=seed,
                pruner=pruner,
                quiet=quiet,
            )
    except ConfigError as error:
        raise _fail(str(error), 2) from None
    Console().print(result.table)
    typer.echo(f"trials: {result.trials_csv}")
    if result.best_config is None:
        raise _fail("no trial completed; see the notes in the table", 1)
    typer.echo(f"best config: {result.best_config}")
