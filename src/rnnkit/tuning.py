"""Hyperparameter search with Optuna: a search space over config keys, five samplers, pruning.

A tune config is a run config plus two top-level sections::

    search:                      # dotted config key -> what to try
      optim.lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}
      model.hidden_size: {type: int, low: 32, high: 256, step: 32}
      model.cell: {type: categorical, choices: [lstm, gru]}
    tune: {metric: val_loss, direction: minimize}

Each trial trains the config with its sampled values into ``out_dir/trials/trial-<number>``. The
samplers are grid, random, tpe (Bayesian), cmaes and nsga2 (evolutionary; nsga2 minimises the
number of parameters as a second objective). A storage URL (``sqlite:///study.db``) lets several
processes work on one study. See docs/tuning.md.
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import importlib.util
import io
import math
import random
import sys
import time
import typing
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import optuna
import sqlalchemy.exc
import yaml
from optuna.trial import FrozenTrial, TrialState
from rich.table import Table

from .config import (
    Config,
    ConfigError,
    _coerce,
    apply_overrides,
    config_from_dict,
    config_to_dict,
)
from .serialization import atomic_write
from .training.engine import train

__all__ = [
    "SAMPLERS",
    "PRUNERS",
    "PARAMETERS_OBJECTIVE",
    "TuningWarning",
    "FloatParam",
    "IntParam",
    "CategoricalParam",
    "SearchSpace",
    "Objective",
    "TuneResult",
    "PruningCallback",
    "parse_search_space",
    "parse_objective",
    "read_tune_config",
    "default_study_name",
    "make_sampler",
    "make_pruner",
    "trial_config",
    "tune",
]

SAMPLERS = ("grid", "random", "tpe", "cmaes", "nsga2")
PRUNERS = ("none", "median", "hyperband")
# nsga2's second objective: the model's parameter count, minimised.
PARAMETERS_OBJECTIVE = "parameters"
_METRICS = ("val_loss", "val_acc", "val_ppl")
_DIRECTIONS = ("minimize", "maximize")
_CONNECT_ATTEMPTS = 5


class TuningWarning(UserWarning):
    """A search that runs, but not quite as asked (a sampler falls back, pruning is off)."""


# ---- the search space ------------------------------------------------------------------------


@dataclass(frozen=True)
class FloatParam:
    """A real range; ``step`` makes it discrete (and griddable), ``log`` samples log-uniformly."""

    low: float
    high: float
    step: float | None = None
    log: bool = False

    def suggest(self, trial: optuna.Trial, name: str) -> float:
        return trial.suggest_float(name, self.low, self.high, step=self.step, log=self.log)

    def grid(self, name: str) -> list[float]:
        if self.step is None:
            raise ConfigError(
                f"search.{name}: grid search needs a finite set of values: give a step, "
                "or use {type: categorical, choices: [...]}"
            )
        count = round((self.high - self.low) / self.step)
        return [min(self.high, round(self.low + i * self.step, 12)) for i in range(count + 1)]


@dataclass(frozen=True)
class IntParam:
    """An integer range (``step`` defaults to 1); ``log`` samples log-uniformly."""

    low: int
    high: int
    step: int | None = None
    log: bool = False

    def suggest(self, trial: optuna.Trial, name: str) -> int:
        return trial.suggest_int(name, self.low, self.high, step=self.step or 1, log=self.log)

    def grid(self, name: str) -> list[int]:
        if self.log:
            raise ConfigError(
                f"search.{name}: grid search cannot use a log range; list the values with "
                "{type: categorical, choices: [...]}"
            )
        return list(range(self.low, self.high + 1, self.step or 1))


@dataclass(frozen=True)
class CategoricalParam:
    """One of a list of plain values (strings, numbers, booleans, null)."""

    choices: tuple[Any, ...]

    def suggest(self, trial: optuna.Trial, name: str) -> Any:
        return trial.suggest_categorical(name, list(self.choices))

    def grid(self, name: str) -> list[Any]:  # noqa: ARG002 - same signature as the ranges
        return list(self.choices)


Param = FloatParam | IntParam | CategoricalParam


@dataclass(frozen=True)
class SearchSpace:
    """Dotted config key -> what to try, in the order the tune config lists them."""

    params: dict[str, Param]

    def suggest(self, trial: optuna.Trial) -> dict[str, Any]:
        """One value per key, drawn by the study's sampler."""
        return {name: param.suggest(trial, name) for name, param in self.params.items()}

    def grid(self) -> dict[str, list[Any]]:
        """Every key's finite set of values (a ConfigError for a continuous range)."""
        return {name: param.grid(name) for name, param in self.params.items()}

    def categorical_keys(self) -> list[str]:
        return [n for n, p in self.params.items() if isinstance(p, CategoricalParam)]


_SPEC_FIELDS = {
    "float": ("type", "low", "high", "step", "log"),
    "int": ("type", "low", "high", "step", "log"),
    "categorical": ("type", "choices"),
}


def _with_value(values: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    """A copy of nested config ``values`` with the dotted ``key`` set to ``value``."""
    result = copy.deepcopy(values)
    *sections, leaf = key.split(".")
    target = result
    for section in sections:
        child = target.get(section)
        target[section] = child = dict(child) if isinstance(child, dict) else {}
        target = child
    target[leaf] = value
    return result


def _config_field_type(key: str) -> Any:
    """The type annotation of the ``Config`` field a dotted key names (a value, not a section)."""
    cls: Any = Config
    parts = key.split(".")
    for depth, part in enumerate(parts):
        names = [f.name for f in dataclasses.fields(cls)]
        where = ".".join(parts[:depth]) or "the config"
        if part not in names:
            raise ConfigError(
                f"search: unknown config key {key!r}; known keys in {where}: {', '.join(names)}"
            )
        cls = typing.get_type_hints(cls)[part]
        if dataclasses.is_dataclass(cls) and depth == len(parts) - 1:
            raise ConfigError(f"search: {key!r} is a config section; name one of its keys")
        if not dataclasses.is_dataclass(cls) and depth < len(parts) - 1:
            raise ConfigError(f"search: unknown config key {key!r}; {part!r} is not a section")
    return cls


def _as_config_value(key: str, field_type: Any, value: Any) -> Any:
    """A value the search may try, as its config key reads it (a ConfigError if it cannot).

    Only the type is checked here: ranges and combinations (model.tie_weights needs equal sizes)
    are checked per trial, where a bad combination fails that trial with its message.
    """
    try:
        return _coerce(value, field_type, key)
    except ConfigError as error:
        raise ConfigError(f"search.{error}") from None


def _range_number(key: str, kind: str, field: str, value: Any) -> float | int:
    """``low``, ``high`` or ``step`` of a range: an integer, or for floats any number (YAML 1.1
    reads ``1e-4`` without a dot as text, so numeric text is accepted too)."""
    if kind == "float" and isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"search.{key}: {field} must be a number, got {value!r}")
    if kind == "int" and not isinstance(value, int):
        raise ConfigError(
            f"search.{key}: {field} of an int range must be an integer, got {value!r}"
        )
    return float(value) if kind == "float" else value


def _parse_range(key: str, field_type: Any, kind: str, spec: dict[str, Any]) -> Param:
    for bound in ("low", "high"):
        if bound not in spec:
            raise ConfigError(f"search.{key}: a {kind} range needs low and high")
    low, high = (_range_number(key, kind, f, spec[f]) for f in ("low", "high"))
    step = None if spec.get("step") is None else _range_number(key, kind, "step", spec["step"])
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise ConfigError(f"search.{key}: log must be true or false, got {log!r}")
    if low >= high:
        raise ConfigError(f"search.{key}: low ({low}) must be below high ({high})")
    if step is not None:
        if step <= 0:
            raise ConfigError(f"search.{key}: step must be positive, got {step}")
        if log:
            raise ConfigError(f"search.{key}: a range takes step or log, not both")
        count = (high - low) / step
        if abs(count - round(count)) > 1e-9:
            raise ConfigError(f"search.{key}: high - low ({high - low}) is not a multiple of step")
    if log and low <= 0:
        raise ConfigError(f"search.{key}: a log range needs low > 0, got {low}")
    for value in (low, high):
        _as_config_value(key, field_type, value)
    return FloatParam(low, high, step, log) if kind == "float" else IntParam(low, high, step, log)


def _parse_categorical(key: str, field_type: Any, spec: dict[str, Any]) -> CategoricalParam:
    choices = spec.get("choices")
    if not isinstance(choices, list) or not choices:
        raise ConfigError(f"search.{key}: choices must be a non-empty list")
    for choice in choices:
        if choice is not None and not isinstance(choice, str | int | float | bool):
            raise ConfigError(
                f"search.{key}: choices must be plain values (text, numbers, true/false, null), "
                f"got {choice!r}"
            )
    values = [_as_config_value(key, field_type, choice) for choice in choices]
    if len({(type(v), v) for v in values}) != len(values):
        raise ConfigError(f"search.{key}: choices repeat a value: {choices}")
    return CategoricalParam(tuple(values))


def parse_search_space(search: Any) -> SearchSpace:
    """Check and read the ``search:`` mapping; every error names the offending key.

    >>> parse_search_space({"model.cell": {"type": "categorical", "choices": ["lstm", "gru"]}})
    SearchSpace(params={'model.cell': CategoricalParam(choices=('lstm', 'gru'))})
    >>> parse_search_space({"model.size": {"type": "int", "low": 8, "high": 16}})
    Traceback (most recent call last):
    ...
    rnnkit.config.ConfigError: search: unknown config key 'model.size'; known keys in model: ...
    """
    if not isinstance(search, dict) or not search:
        raise ConfigError("search: expected a mapping of config keys to ranges, e.g. optim.lr")
    params: dict[str, Param] = {}
    for key, spec in search.items():
        key = str(key)
        field_type = _config_field_type(key)
        if not isinstance(spec, dict):
            raise ConfigError(f"search.{key}: expected a mapping like {{type: float, low, high}}")
        kind = spec.get("type")
        if kind not in _SPEC_FIELDS:
            raise ConfigError(
                f"search.{key}: type must be one of {', '.join(_SPEC_FIELDS)}, got {kind!r}"
            )
        unknown = [f for f in spec if f not in _SPEC_FIELDS[kind]]
        if unknown:
            raise ConfigError(
                f"search.{key}: unknown field {unknown[0]!r} for a {kind} parameter; "
                f"fields: {', '.join(_SPEC_FIELDS[kind])}"
            )
        params[key] = (
            _parse_categorical(key, field_type, spec)
            if kind == "categorical"
            else _parse_range(key, field_type, kind, spec)
        )
    return SearchSpace(params)


# ---- the objective ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Objective:
    """The validation metric a trial is judged by (final whole-split value, best checkpoint)."""

    metric: str = "val_loss"
    direction: str = "minimize"

    @property
    def mode(self) -> str:
        """``train.mode`` for this direction, so the best checkpoint is the best by the metric."""
        return "min" if self.direction == "minimize" else "max"

    def names(self, multi_objective: bool) -> list[str]:
        """The study's value names: the metric, and the parameter count for nsga2."""
        return [self.metric, PARAMETERS_OBJECTIVE] if multi_objective else [self.metric]

    def directions(self, multi_objective: bool) -> list[str]:
        return [self.direction, "minimize"] if multi_objective else [self.direction]


def parse_objective(section: Any, task: str) -> Objective:
    """Check and read the ``tune:`` mapping (``metric``, ``direction``); both are optional.

    The direction defaults to maximize for ``val_acc`` and minimize otherwise.
    """
    section = {} if section is None else section
    if not isinstance(section, dict):
        raise ConfigError("tune: expected a mapping like {metric: val_loss, direction: minimize}")
    unknown = [k for k in section if k not in ("metric", "direction")]
    if unknown:
        raise ConfigError(f"tune: unknown key {unknown[0]!r}; known keys: metric, direction")
    metric = section.get("metric", "val_loss")
    if metric not in _METRICS:
        raise ConfigError(f"tune.metric: expected one of {list(_METRICS)}, got {metric!r}")
    if metric == "val_ppl" and task != "language_model":
        raise ConfigError(f"tune.metric: val_ppl is reported by language models, not {task}")
    direction = section.get("direction", "maximize" if metric == "val_acc" else "minimize")
    if direction not in _DIRECTIONS:
        raise ConfigError(f"tune.direction: expected minimize or maximize, got {direction!r}")
    return Objective(metric, direction)


def read_tune_config(
    path: str | Path, overrides: list[str] | None = None
) -> tuple[dict[str, Any], SearchSpace, Objective]:
    """Read a tune config: (the run config's nested values, the search space, the objective).

    ``overrides`` (``section.key=value``) apply to the run config and the ``tune`` section.
    Errors are ConfigErrors naming the file and the key.
    """
    path = Path(path)
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise ConfigError(f"{path}: tune config not found") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from None
    if not isinstance(document, dict):
        raise ConfigError(f"{path}: expected a mapping of sections")
    try:
        document = apply_overrides(document, overrides or [])
        search = document.pop("search", None)
        objective_section = document.pop("tune", None)
        config = config_from_dict(document)
        space = parse_search_space(search)
        objective = parse_objective(objective_section, config.task)
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None
    return document, space, objective


def default_study_name(values: dict[str, Any]) -> str:
    """The config's ``name``, else ``<dataset>-<task>`` (as run directories are named)."""
    config = config_from_dict(values)
    return config.name or f"{config.data.dataset}-{config.task}"


def trial_config(values: dict[str, Any], params: dict[str, Any], objective: Objective) -> Config:
    """The run config of a trial: ``values`` with ``params`` set by dotted key, and the
    checkpoint monitor set to the objective (a ConfigError for a bad combination)."""
    for key, value in params.items():
        values = _with_value(values, key, value)
    values = _with_value(values, "train.monitor", objective.metric)
    values = _with_value(values, "train.mode", objective.mode)
    return config_from_dict(values)


# ---- samplers and pruners --------------------------------------------------------------------


def make_sampler(name: str, space: SearchSpace, seed: int) -> optuna.samplers.BaseSampler:
    """grid, random, tpe (Bayesian), cmaes or nsga2 (evolutionary), seeded.

    CMA-ES models numeric parameters only: categorical ones are drawn by a TPE sampler
    (a TuningWarning says so).
    """
    if name == "grid":
        return optuna.samplers.GridSampler(space.grid(), seed=seed)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if name == "cmaes":
        if importlib.util.find_spec("cmaes") is None:
            raise ConfigError("the cmaes sampler needs the cmaes package: pip install cmaes")
        categorical = space.categorical_keys()
        if categorical:
            warnings.warn(
                f"cmaes searches numeric parameters only; {', '.join(categorical)} "
                "will be drawn by TPE instead",
                TuningWarning,
                stacklevel=3,
            )
        return optuna.samplers.CmaEsSampler(
            seed=seed,
            independent_sampler=optuna.samplers.TPESampler(seed=seed),
            warn_independent_sampling=False,
        )
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    raise ConfigError(f"unknown sampler {name!r}; choose one of {', '.join(SAMPLERS)}")


def make_pruner(name: str) -> optuna.pruners.BasePruner:
    """none, median (stop a trial below the median of earlier ones at the same step) or
    hyperband (successive halving over several budgets)."""
    if name == "none":
        return optuna.pruners.NopPruner()
    if name == "median":
        return optuna.pruners.MedianPruner()
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner()
    raise ConfigError(f"unknown pruner {name!r}; choose one of {', '.join(PRUNERS)}")


class PruningCallback(pl.Callback):
    """Reports the objective metric to the trial at each validation (step = global step) and
    raises ``optuna.TrialPruned`` when the study's pruner says the trial is not worth finishing.
    """

    def __init__(self, trial: optuna.Trial, metric: str) -> None:
        self.trial = trial
        self.metric = metric
        self._reported_steps: set[int] = set()

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        value = trainer.callback_metrics.get(self.metric)
        step = trainer.global_step
        if trainer.sanity_checking or value is None or step in self._reported_steps:
            return
        self._reported_steps.add(step)
        self.trial.report(float(value), step)
        if self.trial.should_prune():
            self.trial.set_user_attr("pruned_at_step", step)
            raise optuna.TrialPruned(f"{self.metric} {float(value):.4g} at step {step}")


class _ParameterCount(pl.Callback):
    """Counts the model's parameters when training starts (nsga2's second objective)."""

    count: int | None = None

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.count = sum(p.numel() for p in pl_module.parameters())


# ---- running a study -------------------------------------------------------------------------


@dataclass
class TuneResult:
    """A finished search: the study, its best trial and the files written."""

    study: optuna.Study
    best_trial: FrozenTrial | None
    best_config: Path | None
    trials_csv: Path
    table: Table


def _objective_function(
    values: dict[str, Any],
    space: SearchSpace,
    objective: Objective,
    *,
    trials_dir: Path,
    multi_objective: bool,
    prune: bool,
) -> Callable[[optuna.Trial], float | list[float]]:
    """The function Optuna calls per trial: train the sampled config, return its value(s)."""

    def run_trial(trial: optuna.Trial) -> float | list[float]:
        run_dir = trials_dir / f"trial-{trial.number}"
        trial.set_user_attr("run_dir", str(run_dir))
        try:
            config = trial_config(values, space.suggest(trial), objective)
            counter = _ParameterCount()
            callbacks: list[pl.Callback] = [counter]
            if prune:
                callbacks.append(PruningCallback(trial, objective.metric))
            result = train(config, run_dir=run_dir, quiet=True, callbacks=callbacks)
            value = result.metrics.get(objective.metric)
            if value is None or not math.isfinite(value):
                raise RuntimeError(f"{objective.metric} is {value} after training")
        except optuna.TrialPruned:
            raise
        except Exception as error:
            trial.set_user_attr("error", f"{type(error).__name__}: {error}")
            raise
        return [value, float(counter.count)] if multi_objective else value

    return run_trial


def _connect(url: str) -> optuna.storages.RDBStorage:
    """Open an Optuna RDB storage; workers starting together may race to create its tables
    (a known Optuna limitation), so a failed first contact is retried a few times. SQLite
    waits up to a minute for a lock instead of failing at once."""
    engine_kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    for attempt in range(1, _CONNECT_ATTEMPTS):
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs)
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.OperationalError):
            time.sleep(random.uniform(0.1, 0.5) * attempt)
    return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs)


def _open_study(
    name: str,
    storage: str | None,
    sampler: optuna.samplers.BaseSampler,
    pruner: optuna.pruners.BasePruner,
    directions: list[str],
) -> optuna.Study:
    """Create the study, or join it when ``storage`` already holds one of that name."""
    try:
        study = optuna.create_study(
            storage=None if storage is None else _connect(storage),
            study_name=name,
            sampler=sampler,
            pruner=pruner,
            directions=directions,
            load_if_exists=True,
        )
    except (ValueError, ImportError, sqlalchemy.exc.SQLAlchemyError) as error:
        raise ConfigError(f"storage {storage!r}: {error}") from None
    found = [d.name.lower() for d in study.directions]
    if found != directions:
        raise ConfigError(
            f"study {name!r} in {storage} optimises {found}, this search asks for {directions}; "
            "choose another --study-name or the same objective and sampler"
        )
    return study


def _check_out_dir_belongs_to_study(trials_dir: Path, study: optuna.Study) -> None:
    """A new study must not write over the trial directories of another one."""
    taken = trials_dir.is_dir() and any(trials_dir.iterdir())
    if taken and not study.get_trials(deepcopy=False):
        raise ConfigError(
            f"{trials_dir} holds trials of another study; choose another output directory "
            "(or pass the --storage and --study-name that study used to continue it)"
        )


@contextmanager
def _optuna_quiet() -> Iterator[None]:
    """Optuna's per-trial log lines off (rnnkit prints its own), restored afterwards."""
    previous = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(previous)


def _format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _trial_note(trial: FrozenTrial) -> str:
    if trial.state == TrialState.FAIL:
        return str(trial.user_attrs.get("error", "failed"))
    if trial.state == TrialState.PRUNED and "pruned_at_step" in trial.user_attrs:
        return f"pruned at step {trial.user_attrs['pruned_at_step']}"
    return ""


def _print_trial(names: list[str]) -> Callable[[optuna.Study, FrozenTrial], None]:
    """An optuna callback printing one line per finished trial on stderr."""

    def print_trial(study: optuna.Study, trial: FrozenTrial) -> None:  # noqa: ARG001
        values = [
            f"{n} {_format_value(v)}" for n, v in zip(names, trial.values or [], strict=False)
        ]
        params = [f"{k}={_format_value(v)}" for k, v in trial.params.items()]
        seconds = trial.duration.total_seconds() if trial.duration else 0.0
        parts = [f"trial {trial.number} {trial.state.name.lower()}", *values, f"{seconds:.1f}s"]
        parts += [" ".join(params), _trial_note(trial)]
        print("  ".join(p for p in parts if p), file=sys.stderr, flush=True)

    return print_trial


def _best_trial(study: optuna.Study, objective: Objective) -> FrozenTrial | None:
    """The completed trial with the best metric (for nsga2, the Pareto-front member best on
    the metric)."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        return None
    pick = min if objective.direction == "minimize" else max
    return pick(complete, key=lambda t: t.values[0])


def _param_keys(trials: list[FrozenTrial]) -> list[str]:
    keys: dict[str, None] = {}
    for trial in trials:
        keys.update(dict.fromkeys(trial.params))
    return list(keys)


def _write_trials_csv(path: Path, trials: list[FrozenTrial], names: list[str]) -> None:
    """One row per trial: number, state, params, value(s), seconds, run dir, note."""
    keys = _param_keys(trials)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["number", "state", *keys, *names, "seconds", "run_dir", "note"])
    for trial in trials:
        values = trial.values or [None] * len(names)
        seconds = trial.duration.total_seconds() if trial.duration else None
        writer.writerow(
            [
                trial.number,
                trial.state.name.lower(),
                *(trial.params.get(k) for k in keys),
                *values,
                seconds,
                trial.user_attrs.get("run_dir", ""),
                _trial_note(trial),
            ]
        )
    atomic_write(path, buffer.getvalue().encode())


def _results_table(
    study: optuna.Study, trials: list[FrozenTrial], names: list[str], best: FrozenTrial | None
) -> Table:
    """Completed trials best first, then the others by number; the best trial is starred."""
    counts = [
        f"{sum(t.state == state for t in trials)} {state.name.lower()}" for state in TrialState
    ]
    summary = ", ".join(c for c in counts if not c.startswith("0 "))
    title = f"study {study.study_name}: {len(trials)} trials ({summary or 'none yet'})"
    table = Table(title=title, caption="* the best trial" if best is not None else None)
    keys = _param_keys(trials)
    for column in ["trial", "state", *keys, *names, "seconds", "note"]:
        table.add_column(column, justify="right" if column in (*names, "seconds") else "left")
    sign = 1 if study.directions[0] == optuna.study.StudyDirection.MINIMIZE else -1
    complete = sorted(
        (t for t in trials if t.state == TrialState.COMPLETE), key=lambda t: sign * t.values[0]
    )
    for trial in complete + [t for t in trials if t.state != TrialState.COMPLETE]:
        values = trial.values or [None] * len(names)
        seconds = trial.duration.total_seconds() if trial.duration else None
        is_best = best is not None and trial.number == best.number
        table.add_row(
            f"{trial.number}{' *' if is_best else ''}",
            trial.state.name.lower(),
            *(_format_value(trial.params.get(k, "")) for k in keys),
            *("" if v is None else _format_value(v) for v in values),
            "" if seconds is None else f"{seconds:.1f}",
            _trial_note(trial),
            style="bold green" if is_best else None,
        )
    return table


def _write_best_config(
    path: Path, values: dict[str, Any], best: FrozenTrial, objective: Objective
) -> None:
    config = trial_config(values, best.params, objective)
    text = yaml.safe_dump(config_to_dict(config), sort_keys=False)
    atomic_write(path, text.encode())


def tune(
    values: dict[str, Any],
    space: SearchSpace,
    objective: Objective,
    *,
    trials: int,
    sampler: str,
    storage: str | None = None,
    study_name: str | None = None,
    out_dir: str | Path,
    seed: int = 0,
    pruner: str | optuna.pruners.BasePruner = "median",
    quiet: bool = False,
) -> TuneResult:
    """Run ``trials`` trials of a study and write ``out_dir/trials.csv`` and ``best.yaml``.

    ``values`` are the run config's nested values (``read_tune_config``). With ``storage`` (an
    Optuna storage URL such as ``sqlite:///study.db``) the study is created or joined, so several
    processes can share it; the outputs then describe every trial in it, and ``trials=0`` just
    writes them. A trial that fails (a bad combination, a non-finite loss) is recorded as failed
    with its message and the study goes on. nsga2 optimises the metric and the parameter count;
    Optuna cannot prune multi-objective trials, so pruning is off for it.
    """
    if trials < 0:
        raise ConfigError(f"trials: expected 0 or more, got {trials}")
    config_from_dict(values)
    multi_objective = sampler == "nsga2"
    optuna_sampler = make_sampler(sampler, space, seed)
    optuna_pruner = make_pruner(pruner) if isinstance(pruner, str) else pruner
    prune = not isinstance(optuna_pruner, optuna.pruners.NopPruner)
    if multi_objective and prune:
        warnings.warn(
            "nsga2 optimises two objectives and Optuna cannot prune multi-objective trials: "
            "pruning is off",
            TuningWarning,
            stacklevel=2,
        )
        prune = False
    names = objective.names(multi_objective)
    out_dir = Path(out_dir)
    trials_dir = out_dir / "trials"
    with _optuna_quiet():
        study = _open_study(
            study_name or default_study_name(values),
            storage,
            optuna_sampler,
            optuna_pruner,
            objective.directions(multi_objective),
        )
        _check_out_dir_belongs_to_study(trials_dir, study)
        if trials:
            study.optimize(
                _objective_function(
                    values,
                    space,
                    objective,
                    trials_dir=trials_dir,
                    multi_objective=multi_objective,
                    prune=prune,
                ),
                n_trials=trials,
                catch=(Exception,),
                callbacks=[] if quiet else [_print_trial(names)],
            )
    all_trials = study.get_trials(deepcopy=False)
    best = _best_trial(study, objective)
    out_dir.mkdir(parents=True, exist_ok=True)
    trials_csv = out_dir / "trials.csv"
    _write_trials_csv(trials_csv, all_trials, names)
    best_config = None
    if best is not None:
        best_config = out_dir / "best.yaml"
        _write_best_config(best_config, values, best, objective)
    table = _results_table(study, all_trials, names, best)
    return TuneResult(study, best, best_config, trials_csv, table)
