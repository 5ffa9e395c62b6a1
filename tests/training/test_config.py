"""Config: YAML in, typed sections out, every mistake named by its key."""

import pytest

from rnnkit.config import (
    DEFAULT_CONFIG,
    Config,
    ConfigError,
    config_from_dict,
    config_to_dict,
    load_config,
)


def test_defaults_file_is_the_char_lstm_main_job():
    config = load_config()
    assert config.task == "language_model"
    assert config.data.dataset == "tinyshakespeare"
    assert config.model.cell == "lstm"
    assert DEFAULT_CONFIG.exists()


def test_round_trip_through_plain_values():
    config = load_config(overrides=["model.hidden_size=64", "optim.scheduler=cosine"])
    assert config_from_dict(config_to_dict(config)) == config


def test_overrides_parse_yaml_scalars_and_nulls():
    config = load_config(
        overrides=["train.max_minutes=null", "optim.lr=1e-3", "model.bidirectional=true"]
    )
    assert config.train.max_minutes is None
    assert config.optim.lr == pytest.approx(1e-3)
    assert config.model.bidirectional is True


def test_precision_written_as_a_number_is_accepted():
    assert config_from_dict({"train": {"precision": 32}}).train.precision == "32"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"model": {"hiden_size": 3}}, "unknown config key 'model.hiden_size'"),
        ({"modle": {}}, "unknown config key 'modle'"),
        ({"model": {"hidden_size": "big"}}, "model.hidden_size: expected an integer, got 'big'"),
        ({"model": {"hidden_size": True}}, "model.hidden_size: expected an integer, got True"),
        ({"model": {"cell": "transformer"}}, "model.cell: expected one of ['lstm'"),
        ({"optim": {"lr": -1.0}}, "optim.lr: expected a positive value, got -1.0"),
        ({"model": {"dropout": 1.0}}, "model.dropout: expected a probability in [0, 1)"),
        ({"model": {"word_dropout": -0.1}}, "model.word_dropout: expected a probability"),
        ({"model": 3}, "model: expected a mapping of keys, got 3 (int)"),
        ({"train": {"bptt": None}}, "train.bptt: expected an integer, got null"),
        (
            {"model": {"tie_weights": True, "embedding_dim": 8, "hidden_size": 16}},
            "model.tie_weights: needs model.embedding_dim == model.hidden_size",
        ),
    ],
)
def test_bad_values_name_the_key(values, message):
    with pytest.raises(ConfigError) as error:
        config_from_dict(values)
    assert message in str(error.value)


def test_errors_from_a_file_name_the_file(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("train:\n  max_epoch: 3\n")
    with pytest.raises(ConfigError, match=r"run\.yaml: unknown config key 'train.max_epoch'"):
        load_config(path)
    path.write_text("train: [1, 2\n")
    with pytest.raises(ConfigError, match=r"run\.yaml: not valid YAML"):
        load_config(path)
    path.write_text("- just a list\n")
    with pytest.raises(ConfigError, match="expected a mapping of sections"):
        load_config(path)
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "missing.yaml")


def test_bad_override_syntax():
    with pytest.raises(ConfigError, match="expected key=value"):
        load_config(overrides=["train.max_epochs"])
    with pytest.raises(ConfigError, match="'task' is not a section"):
        load_config(overrides=["task.x=1"])


def test_an_empty_config_is_all_defaults():
    assert config_from_dict({}) == Config()


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("sample.top_k=0", "sample.top_k: expected a positive integer, got 0"),
        ("sample.top_p=1.5", "sample.top_p: expected a value in (0, 1], got 1.5"),
        ("sample.temperature=-1", "sample.temperature: expected a value >= 0"),
        ("data.val_fraction=-0.05", "data.val_fraction: expected a fraction in [0, 1)"),
    ],
)
def test_sampling_and_split_values_are_checked_before_training(override, message):
    with pytest.raises(ConfigError) as error:
        load_config(overrides=[override])
    assert message in str(error.value)
