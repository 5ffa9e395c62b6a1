"""``metrics.csv``: every logged metric, one row per (step, logging call), kept across resumes."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import Logger
from lightning.pytorch.utilities import rank_zero_only

from ..serialization import atomic_write

__all__ = ["MetricsCSV", "read_metrics"]


def read_metrics(path: str | Path) -> list[dict[str, float]]:
    """Rows of a metrics.csv as {column: value} with the empty cells left out."""
    path = Path(path)
    if not path.exists():
        return []
    with path.open(newline="") as file:
        return [
            {k: float(v) for k, v in row.items() if v not in ("", None)}
            for row in csv.DictReader(file)
        ]


class MetricsCSV(Logger):
    """A Lightning logger writing ``run_dir/metrics.csv``.

    On resume from a checkpoint taken at global step ``s``, rows logged at step ``s`` or later
    (the interrupted part, which the resumed run logs again) are dropped, so the file of a
    resumed run reads like the uninterrupted run's.
    """

    def __init__(self, run_dir: Path, *, resume_step: int | None = None) -> None:
        super().__init__()
        self.path = Path(run_dir) / "metrics.csv"
        self.rows: list[dict[str, float]] = []
        if resume_step is not None:
            self.rows = [r for r in read_metrics(self.path) if r["step"] < resume_step]

    @property
    def name(self) -> str:
        return "metrics"

    @property
    def version(self) -> str:
        return ""

    @property
    def save_dir(self) -> str:
        return str(self.path.parent)

    @rank_zero_only
    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        """The resolved config is written as config.yaml by the engine."""

    @rank_zero_only
    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        row = {k: float(v) for k, v in metrics.items()}
        row["step"] = float(step if step is not None else len(self.rows))
        self.rows.append(row)

    @rank_zero_only
    def save(self) -> None:
        columns = sorted({k for row in self.rows for k in row}, key=lambda k: (k != "step", k))
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for row in self.rows:
            writer.writerow(
                {k: (int(v) if k in ("step", "epoch") else repr(v)) for k, v in row.items()}
            )
        atomic_write(self.path, buffer.getvalue().encode())

    @rank_zero_only
    def finalize(self, status: str) -> None:
        self.save()
