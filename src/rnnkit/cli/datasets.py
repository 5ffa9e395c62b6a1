"""``rnnkit datasets``: list, fetch and verify the registered datasets.

A thin layer over :mod:`rnnkit.data.registry`; local copies live under its ``data_root()``
(``$RNNKIT_DATA`` if set, else ``~/.cache/rnnkit/data``).
"""

from __future__ import annotations

import json
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.filesize import decimal
from rich.progress import BarColumn, DownloadColumn, Progress, TaskID, TextColumn
from rich.table import Table

from rnnkit.data import registry

app = typer.Typer(
    help="The dataset registry: list, fetch and verify rnnkit's datasets "
    "(stored under $RNNKIT_DATA, else ~/.cache/rnnkit/data).",
    no_args_is_help=True,
)

_stdout = Console()
_stderr = Console(stderr=True)


@app.command("list")
def list_datasets(
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object per dataset and line.")
    ] = False,
) -> None:
    """List the registered datasets and whether their files are present under the data root."""
    root = registry.data_root()
    if as_json:
        for dataset in registry.DATASETS.values():
            present = _present_files(dataset)
            entry = {
                "name": dataset.name,
                "description": dataset.description,
                "license": dataset.license,
                "files": len(dataset.files),
                "size": dataset.size,
                "present_files": present,
                "status": _local_copy(dataset, present),
                "dir": str(root / dataset.name),
            }
            typer.echo(json.dumps(entry))
        return
    table = Table(title=f"datasets under {root}")
    for column in ("name", "files", "size", "license", "local copy"):
        table.add_column(column, justify="right" if column in ("files", "size") else "left")
    for dataset in registry.DATASETS.values():
        table.add_row(
            dataset.name,
            str(len(dataset.files)),
            decimal(dataset.size),
            dataset.license,
            _local_copy(dataset, _present_files(dataset)),
        )
    _stdout.print(table)


@app.command()
def fetch(
    name: Annotated[str, typer.Argument(help="The dataset to download.")],
    force: Annotated[
        bool, typer.Option("--force", help="Download every file again, even ones that verify.")
    ] = False,
) -> None:
    """Download a dataset's missing or damaged files, checking each sha256 before keeping it."""
    try:
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            console=_stderr,
            transient=True,
            disable=not _stderr.is_terminal,
        ) as bars:
            tasks: dict[str, TaskID] = {}

            def report(file: registry.DataFile, received: int) -> None:
                if file.path not in tasks:
                    tasks[file.path] = bars.add_task(file.path, total=file.size)
                bars.update(tasks[file.path], completed=received)

            written = registry.fetch(name, force=force, progress=report)
    except (ValueError, registry.FetchError, OSError) as error:
        _fail(str(error))
    kept = len(registry.DATASETS[name].files) - len(written)
    typer.echo(
        f"{name}: downloaded {len(written)} file(s), kept {kept} already verified, "
        f"in {registry.dataset_dir(name)}"
    )


@app.command()
def verify(
    name: Annotated[str | None, typer.Argument(help="The dataset to check.")] = None,
    all_datasets: Annotated[
        bool, typer.Option("--all", help="Check every registered dataset.")
    ] = False,
) -> None:
    """Check local copies against the registry (size, then sha256); exit 1 on any failure."""
    if all_datasets == (name is not None):
        raise typer.BadParameter("give either a dataset NAME or --all")
    names = list(registry.DATASETS) if name is None else [name]
    try:
        statuses = [status for each in names for status in registry.verify(each)]
    except ValueError as error:
        _fail(str(error))
    table = Table(title=f"verified under {registry.data_root()}")
    for column in ("dataset", "file", "size", "status"):
        table.add_column(column, justify="right" if column == "size" else "left")
    for status in statuses:
        style = "green" if status.ok else "bold red"
        table.add_row(
            status.dataset,
            status.file.path,
            decimal(status.file.size),
            f"[{style}]{status.state.value}[/]",
        )
    _stdout.print(table)
    failures = [status for status in statuses if not status.ok]
    if failures:
        for failure in failures:
            typer.echo(str(failure), err=True)
        fixes = ", ".join(
            f"`rnnkit datasets fetch {each}`" for each in dict.fromkeys(s.dataset for s in failures)
        )
        _fail(
            f"{len(failures)} of {len(statuses)} file(s) failed verification. Fix: run {fixes}, "
            "or set RNNKIT_DATA to a directory holding verified copies."
        )
    typer.echo(f"all {len(statuses)} file(s) ok")


def _present_files(dataset: registry.Dataset) -> int:
    """How many of the dataset's files exist under the data root (existence only, not hashed)."""
    directory = registry.dataset_dir(dataset.name)
    return sum((directory / file.path).is_file() for file in dataset.files)


def _local_copy(dataset: registry.Dataset, present: int) -> str:
    """``present``, ``missing`` or ``partial (k/n)``, from the count of files present."""
    if present == len(dataset.files):
        return "present"
    if present == 0:
        return "missing"
    return f"partial ({present}/{len(dataset.files)})"


def _fail(message: str) -> NoReturn:
    """Print ``message`` to stderr and exit with status 1."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)
