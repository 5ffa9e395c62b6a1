"""The ``rnnkit`` command line: a thin typer layer over rnnkit's Python API.

Errors a user can fix (a bad config key, a missing file, a damaged checkpoint) are printed as one
``error: ...`` line with exit code 2 (usage) or 1 (a failed run), never as a traceback.
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path
from typing import Annotated

import typer

from ..config import ConfigError, load_config
from ..data.sources import DataError
from ..serialization import CheckpointError
from .datasets import app as datasets_app
from .export import export, summary
from .tune import tune

__all__ = ["app", "main"]

app = typer.Typer(
    help="rnnkit: train, tune, diagnose and ship recurrent networks.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(datasets_app, name="datasets")
app.command()(export)
app.command()(summary)
app.command()(tune)

SetOption = Annotated[
    list[str] | None,
    typer.Option("--set", "-s", help="Override a config value: section.key=value (repeatable)."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]


def fail(message: str, code: int = 1) -> None:
    """Print ``error: message`` on stderr and exit."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


@app.command()
def train(
    config: Annotated[
        Path | None, typer.Argument(help="YAML config (defaults if omitted).")
    ] = None,
    set_: SetOption = None,
    run_dir: Annotated[Path | None, typer.Option(help="Run directory (default: runs/...).")] = None,
    resume: Annotated[
        Path | None, typer.Option(help="Continue a run from its last checkpoint.")
    ] = None,
    devices: Annotated[int | None, typer.Option(help="Processes (or GPUs) per node.")] = None,
    num_nodes: Annotated[int | None, typer.Option(help="Machines taking part (DDP).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")] = False,
    json_lines: Annotated[
        bool, typer.Option("--json-lines", help="Progress as JSON lines on stdout.")
    ] = False,
) -> None:
    """Train a model; the run directory is printed at the end."""
    from ..training.engine import train as run_training

    overrides = list(set_ or [])
    if devices is not None:
        overrides.append(f"train.devices={devices}")
    if num_nodes is not None:
        overrides.append(f"train.num_nodes={num_nodes}")
    try:
        if resume is not None:
            if config is not None:
                fail("pass either CONFIG or --resume RUN (a resumed run keeps its config)", 2)
            loaded = load_config(resume / "config.yaml", overrides)
            result = run_training(
                loaded, run_dir=resume, resume=True, quiet=quiet, json_lines=json_lines
            )
        else:
            loaded = load_config(config, overrides)
            result = run_training(loaded, run_dir=run_dir, quiet=quiet, json_lines=json_lines)
    except (ConfigError, DataError, CheckpointError, FileNotFoundError, ValueError) as error:
        fail(str(error), 2)
    except RuntimeError as error:  # a run that failed (non-finite loss, ...)
        fail(str(error), 1)
    if json_lines:
        typer.echo(json.dumps({"event": "done", "run_dir": str(result.run_dir), **result.metrics}))
    elif not quiet:
        typer.echo(str(result.run_dir))


def _load(run: Path):
    from ..api import load

    try:
        return load(run)
    except (CheckpointError, FileNotFoundError) as error:
        fail(str(error), 2)


@app.command()
def evaluate(
    run: Annotated[Path, typer.Argument(help="Run directory, bundle or checkpoint.")],
    split: Annotated[str, typer.Option(help="train, val or test.")] = "test",
    as_json: JsonOption = False,
) -> None:
    """Metrics of a trained model on a split of its dataset."""
    trained = _load(run)
    try:
        metrics = trained.evaluate(split, progress=not as_json and sys.stderr.isatty())
    except (ValueError, DataError) as error:
        fail(str(error), 2)
    if as_json:
        typer.echo(json.dumps({"split": split, **metrics}))
    else:
        for name, value in metrics.items():
            typer.echo(f"{name}\t{value:.4f}")


@app.command()
def predict(
    run: Annotated[Path, typer.Argument(help="Run directory, bundle or checkpoint.")],
    text: Annotated[
        str | None, typer.Argument(help="Text, a file path, or '-' for stdin (one per line).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Label texts (classification), tag tokens (labelling) or rank next tokens (LM)."""
    trained = _load(run)
    if text is None or text == "-":
        texts = [line.rstrip("\n") for line in sys.stdin if line.strip()]
    elif Path(text).is_file():
        texts = [line for line in Path(text).read_text(encoding="utf-8").splitlines() if line]
    else:
        texts = [text]
    if not texts:
        fail("no input text: pass TEXT, a file, or lines on stdin", 2)
    for result in trained.predict(texts):
        if as_json:
            typer.echo(json.dumps(result, ensure_ascii=False))
        elif "label" in result:
            probabilities = "  ".join(f"{k} {v:.3f}" for k, v in result["probabilities"].items())
            typer.echo(f"{result['label']}\t{probabilities}")
        elif "tags" in result:
            typer.echo(
                " ".join(f"{w}/{t}" for w, t in zip(result["tokens"], result["tags"], strict=True))
            )
        else:
            typer.echo("  ".join(f"{n['token']!r} {n['probability']:.3f}" for n in result["next"]))


@app.command()
def generate(
    run: Annotated[Path, typer.Argument(help="A language-model run directory or bundle.")],
    prompt: Annotated[str, typer.Option(help="Text to continue.")] = "\n",
    max_tokens: Annotated[int, typer.Option(min=0, help="Tokens to generate.")] = 200,
    temperature: Annotated[float, typer.Option(min=0.0, help="0 = greedy.")] = 0.8,
    top_k: Annotated[int | None, typer.Option(min=1, help="Sample from the k best.")] = None,
    top_p: Annotated[float | None, typer.Option(help="Nucleus sampling mass.")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed for reproducible samples.")] = None,
) -> None:
    """Continue a prompt with a language model, streaming the text as it comes."""
    trained = _load(run)
    try:
        pieces = trained.generate(
            prompt,
            max_tokens,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            seed=seed,
            stream=True,
        )
        sys.stdout.write(prompt)
        for piece in pieces:
            sys.stdout.write(piece)
            sys.stdout.flush()
    except ValueError as error:
        fail(str(error), 2)
    sys.stdout.write("\n")


def _format_warning(message, category, filename, lineno, line=None) -> str:
    return f"warning: {message}\n"


def main() -> None:
    """Console-script entry point."""
    warnings.formatwarning = _format_warning
    app()
