"""``rnnkit export`` and ``rnnkit summary``: ship a trained model, or look inside a config's.

Errors a user can fix print one ``error: ...`` line: exit code 2 for a bad argument, config or
file, or a model the format cannot express; 1 when the exported file fails its check against
PyTorch (nothing is written then).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

__all__ = ["export", "summary"]

DEFAULT_NAMES = {"onnx": "model.onnx", "torchscript": "model.pt"}


def _fail(message: str, code: int) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def export(
    run: Annotated[Path, typer.Argument(help="Run directory, bundle or checkpoint.")],
    format: Annotated[
        Literal["onnx", "torchscript"], typer.Option("--format", "-f", help="File format.")
    ] = "onnx",
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="File to write (default: RUN/export/model.onnx or model.pt).",
        ),
    ] = None,
) -> None:
    """Export a trained model to ONNX or TorchScript; the file is written only once its outputs
    match PyTorch's. Prints the path and the largest difference found."""
    from ..api import load
    from ..export import TOLERANCE, ExportCheckError, ExportError, export_onnx, export_torchscript
    from ..serialization import CheckpointError

    try:
        trained = load(run)
    except (CheckpointError, FileNotFoundError) as error:
        raise _fail(str(error), 2) from None
    if output is None:
        output = (run if run.is_dir() else run.parent) / "export" / DEFAULT_NAMES[format]
    write = export_onnx if format == "onnx" else export_torchscript
    try:
        report = write(trained, output)
    except ExportError as error:
        raise _fail(str(error), 2) from None
    except ExportCheckError as error:
        raise _fail(f"{output} not written: {error}", 1) from None
    shapes = ", ".join(f"({b}, {t})" for b, t in report.checked_shapes)
    typer.echo(str(report.path))
    typer.echo(
        f"max |diff| vs PyTorch: {report.max_abs_diff:.2e} (tolerance {TOLERANCE:.0e}; "
        f"inputs (B, T) = {shapes})"
    )


def summary(
    config: Annotated[
        Path | None, typer.Argument(help="YAML config (defaults if omitted).")
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", "-s", help="Override a config value: section.key=value."),
    ] = None,
) -> None:
    """Print the model a config builds: layers, output shapes and parameter counts (the data is
    read to size the vocabulary and the labels)."""
    from ..config import ConfigError, load_config
    from ..data.sources import DataError
    from ..summary import summary_from_config

    try:
        text = summary_from_config(load_config(config, list(set_ or [])))
    except (ConfigError, DataError, FileNotFoundError, ValueError) as error:
        raise _fail(str(error), 2) from None
    typer.echo(text, nl=False)
