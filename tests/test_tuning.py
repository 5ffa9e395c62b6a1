"""``rnnkit.tuning`` and ``rnnkit tune``: search-space checks, the five samplers, pruning, failed
trials, best.yaml, and two worker processes sharing one SQLite study.

Every trial is a tiny char LM run (6 steps, hidden size 16, 1% validation split): well under a
second once the process is warm.
"""

import contextlib
import csv
import itertools
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import typer
import yaml
from typer.testing import CliRunner

from rnnkit.cli.tune import tune as tune_command
from rnnkit.config import ConfigError, apply_overrides, load_config
from rnnkit.tuning import (
    PARAMETERS_OBJECTIVE,
    Objective,
    TuningWarning,
    make_pruner,
    make_sampler,
    parse_objective,
    parse_search_space,
    read_tune_config,
    tune,
)

EXAMPLE = Path(__file__).resolve().parents[1] / "configs" / "tune_shakespeare.yaml"
TINY = [
    "train.max_steps=6",
    "train.max_epochs=1",
    "model.hidden_size=16",
    "model.embedding_dim=8",
    "train.bptt=16",
    "train.batch_size=8",
    "sample.max_tokens=5",
    "diagnostics.every_n_steps=0",
    "train.val_every_n_steps=3",
    "train.limit_val_batches=2",
    "data.val_fraction=0.01",
]
SEARCH = {
    "optim.lr": {"type": "float", "low": 1e-3, "high": 1e-2, "log": True},
    "model.dropout": {"type": "float", "low": 0.0, "high": 0.2, "step": 0.1},
    "model.cell": {"type": "categorical", "choices": ["lstm", "gru"]},
}


def tiny_values() -> dict:
    return apply_overrides({}, TINY)


def write_tune_config(path: Path, search: dict, **sections) -> Path:
    path.write_text(yaml.safe_dump({**tiny_values(), "search": search, **sections}))
    return path


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as file:
        return list(csv.DictReader(file))


# ---- the search space and the objective ------------------------------------------------------


@pytest.mark.parametrize(
    ("search", "message"),
    [
        ({"optim.lrr": {"type": "float", "low": 0.1, "high": 1}}, "unknown config key 'optim.lrr'"),
        ({"optim": {"type": "float", "low": 0.1, "high": 1}}, "'optim' is a config section"),
        ({"optim.lr.x": {"type": "float", "low": 0.1, "high": 1}}, "'optim.lr.x'"),
        ({"optim.lr": {"type": "float", "low": 1, "high": 0.1}}, "search.optim.lr: low (1.0)"),
        ({"optim.lr": {"type": "float", "low": 0.1, "hihg": 1}}, "optim.lr: unknown field 'hihg'"),
        ({"optim.lr": {"type": "real", "low": 0.1, "high": 1}}, "search.optim.lr: type must be"),
        ({"optim.lr": {"type": "float", "low": 0, "high": 1, "log": True}}, "optim.lr: a log"),
        ({"model.dropout": {"type": "float", "low": 0, "high": 0.5, "step": 0.2}}, "multiple"),
        ({"model.hidden_size": {"type": "int", "low": 8.5, "high": 16}}, "hidden_size: low of"),
        ({"model.hidden_size": {"type": "float", "low": 8, "high": 16}}, "expected an integer"),
        ({"model.cell": {"type": "categorical", "choices": ["lstm", "lsmt"]}}, "model.cell: exp"),
        ({"model.cell": {"type": "categorical", "choices": []}}, "search.model.cell: choices"),
        ({}, "search: expected a mapping"),
    ],
)
def test_space_errors_name_the_key(search, message):
    with pytest.raises(ConfigError) as caught:
        parse_search_space(search)
    assert message in str(caught.value)


def test_grid_needs_a_finite_set_of_values():
    space = parse_search_space({"optim.lr": {"type": "float", "low": 1e-3, "high": 1e-2}})
    with pytest.raises(ConfigError, match=r"search\.optim\.lr: grid search needs"):
        make_sampler("grid", space, seed=0)


def test_unknown_sampler_and_pruner_are_config_errors():
    space = parse_search_space(SEARCH)
    with pytest.raises(ConfigError, match="unknown sampler 'bayes'"):
        make_sampler("bayes", space, seed=0)
    with pytest.raises(ConfigError, match="unknown pruner 'asha'"):
        make_pruner("asha")
    assert isinstance(make_pruner("hyperband"), optuna.pruners.HyperbandPruner)


def test_example_tune_config_reads_and_overrides_apply():
    values, space, objective = read_tune_config(EXAMPLE, ["tune.metric=val_ppl", "train.seed=3"])
    assert set(space.params) == {"optim.lr", "model.hidden_size", "model.cell", "model.dropout"}
    assert objective == Objective("val_ppl", "minimize")
    assert values["train"]["seed"] == 3 and "search" not in values and "tune" not in values
    assert space.params["model.dropout"].grid("model.dropout") == [0.0, 0.1, 0.2, 0.3]


def test_the_direction_follows_the_metric_unless_given():
    assert parse_objective(None, "classification") == Objective("val_loss", "minimize")
    assert parse_objective({"metric": "val_acc"}, "classification").direction == "maximize"
    with pytest.raises(ConfigError, match="val_ppl is reported by language models"):
        parse_objective({"metric": "val_ppl"}, "classification")
    with pytest.raises(ConfigError, match="tune: unknown key 'trials'"):
        parse_objective({"trials": 3}, "language_model")


def test_tune_config_errors_name_the_file_and_key(tmp_path):
    bad_key = write_tune_config(tmp_path / "a.yaml", {"model.size": {"type": "int"}})
    with pytest.raises(ConfigError, match=r"a\.yaml: search: unknown config key 'model\.size'"):
        read_tune_config(bad_key)
    bad_metric = write_tune_config(tmp_path / "b.yaml", SEARCH, tune={"metric": "bleu"})
    with pytest.raises(ConfigError, match=r"b\.yaml: tune\.metric: expected one of"):
        read_tune_config(bad_metric)


# ---- running studies -------------------------------------------------------------------------


@pytest.mark.parametrize("sampler", ["random", "tpe", "cmaes", "nsga2"])
def test_each_sampler_runs_its_trials(tmp_path, sampler):
    space = parse_search_space(SEARCH)
    # cmaes draws the categorical model.cell with TPE; nsga2 (two objectives) cannot prune.
    expect_warning = sampler in ("cmaes", "nsga2")
    with pytest.warns(TuningWarning) if expect_warning else contextlib.nullcontext():
        result = tune(
            tiny_values(), space, Objective(), trials=2, sampler=sampler, out_dir=tmp_path, seed=1
        )
    trials = result.study.trials
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * 2
    for trial in trials:
        assert 1e-3 <= trial.params["optim.lr"] <= 1e-2
        assert trial.params["model.dropout"] in (0.0, 0.1, 0.2)
        assert trial.params["model.cell"] in ("lstm", "gru")
    rows = read_csv(result.trials_csv)
    assert [r["state"] for r in rows] == ["complete", "complete"]
    if sampler == "nsga2":
        assert all(len(t.values) == 2 and t.values[1] > 0 for t in trials)
        assert all(float(r[PARAMETERS_OBJECTIVE]) > 0 for r in rows)
    else:
        assert all(float(r["val_loss"]) > 0 for r in rows)


def test_grid_covers_exactly_its_grid_and_best_yaml_is_the_best_trial(tmp_path):
    space = parse_search_space(
        {
            "model.cell": {"type": "categorical", "choices": ["lstm", "gru"]},
            "model.dropout": {"type": "float", "low": 0.0, "high": 0.1, "step": 0.1},
        }
    )
    result = tune(
        tiny_values(), space, Objective(), trials=10, sampler="grid", out_dir=tmp_path, quiet=True
    )
    trials = result.study.trials
    visited = sorted((t.params["model.cell"], t.params["model.dropout"]) for t in trials)
    assert visited == sorted(itertools.product(["lstm", "gru"], [0.0, 0.1]))

    best = min(trials, key=lambda t: t.value)
    assert result.best_trial.number == best.number
    config = load_config(result.best_config)
    assert (config.model.cell, config.model.dropout) == (
        best.params["model.cell"],
        best.params["model.dropout"],
    )
    assert (config.model.hidden_size, config.train.max_steps) == (16, 6)
    assert (config.train.monitor, config.train.mode) == ("val_loss", "min")


def test_a_failed_trial_is_recorded_and_the_study_goes_on(tmp_path):
    # tie_weights needs embedding_dim == hidden_size (8 != 16 here): that trial fails.
    space = parse_search_space(
        {"model.tie_weights": {"type": "categorical", "choices": [True, False]}}
    )
    result = tune(tiny_values(), space, Objective(), trials=2, sampler="grid", out_dir=tmp_path)
    states = {t.params["model.tie_weights"]: t.state for t in result.study.trials}
    assert states == {True: optuna.trial.TrialState.FAIL, False: optuna.trial.TrialState.COMPLETE}
    failed = next(r for r in read_csv(result.trials_csv) if r["state"] == "fail")
    assert "model.tie_weights: needs model.embedding_dim == model.hidden_size" in failed["note"]
    assert load_config(result.best_config).model.tie_weights is False


def test_a_pruner_that_always_prunes_prunes_at_the_first_validation(tmp_path):
    result = tune(
        tiny_values(),
        parse_search_space(SEARCH),
        Objective(),
        trials=2,
        sampler="random",
        out_dir=tmp_path,
        pruner=optuna.pruners.ThresholdPruner(upper=0.0),  # any val_loss is "too high"
        quiet=True,
    )
    for trial in result.study.trials:
        assert trial.state == optuna.trial.TrialState.PRUNED
        assert list(trial.intermediate_values) == [3]  # train.val_every_n_steps=3
    assert [r["note"] for r in read_csv(result.trials_csv)] == ["pruned at step 3"] * 2
    assert result.best_trial is None and result.best_config is None


def test_a_new_study_refuses_an_output_directory_holding_another_studys_trials(tmp_path):
    (tmp_path / "trials" / "trial-0").mkdir(parents=True)
    with pytest.raises(ConfigError, match="holds trials of another study"):
        tune(
            tiny_values(),
            parse_search_space(SEARCH),
            Objective(),
            trials=1,
            sampler="random",
            out_dir=tmp_path,
        )


# ---- the command line ------------------------------------------------------------------------


def tune_app() -> typer.Typer:
    app = typer.Typer()
    app.command()(tune_command)
    return app


def test_cli_prints_the_table_and_the_best_config(tmp_path):
    config = write_tune_config(
        tmp_path / "tune.yaml", {"model.cell": {"type": "categorical", "choices": ["lstm", "gru"]}}
    )
    out = tmp_path / "out"
    args = [str(config), "--trials", "5", "--sampler", "grid", "--out", str(out), "--quiet"]
    result = CliRunner().invoke(tune_app(), args)
    assert result.exit_code == 0, result.output
    assert "2 trials (2 complete)" in result.stdout
    assert f"best config: {out / 'best.yaml'}" in result.stdout
    assert load_config(out / "best.yaml").model.cell in ("lstm", "gru")


def test_cli_errors_are_one_line_with_exit_code_2(tmp_path):
    config = write_tune_config(tmp_path / "tune.yaml", {"model.size": {"type": "int"}})
    result = CliRunner().invoke(tune_app(), [str(config), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "error: " in result.stderr and "unknown config key 'model.size'" in result.stderr
    result = CliRunner().invoke(tune_app(), [str(EXAMPLE), "--sampler", "grid"])
    assert result.exit_code == 2 and "grid search needs" in result.stderr


def test_two_worker_processes_share_one_sqlite_study(tmp_path):
    config = write_tune_config(tmp_path / "tune.yaml", SEARCH)
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    workers = [
        subprocess.Popen(
            [
                *(sys.executable, "-m", "rnnkit", "tune"),
                str(config),
                *("--trials", "2", "--sampler", "tpe", "--seed", str(seed)),
                *("--storage", storage, "--study-name", "shared", "--out", str(tmp_path / "out")),
                *("--set", "train.threads=1", "--quiet"),
            ],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for seed in (1, 2)
    ]
    for worker in workers:
        stdout, stderr = worker.communicate(timeout=300)
        assert worker.returncode == 0, stderr
        assert "best config:" in stdout

    study = optuna.load_study(study_name="shared", storage=storage)
    assert len(study.trials) == 4
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)

    # trials=0 joins the study and only writes its outputs.
    values, space, objective = read_tune_config(config)
    result = tune(
        values,
        space,
        objective,
        trials=0,
        sampler="tpe",
        storage=storage,
        study_name="shared",
        out_dir=tmp_path / "out",
    )
    assert sorted(int(r["number"]) for r in read_csv(result.trials_csv)) == [0, 1, 2, 3]
    best = load_config(result.best_config)
    assert best.optim.lr == pytest.approx(result.best_trial.params["optim.lr"])
    assert best.model.cell == result.best_trial.params["model.cell"]
