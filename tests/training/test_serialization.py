"""safetensors + JSON trees: round trips, atomic writes, damaged files, no pickle."""

import os
import pickle

import pytest
import torch

from rnnkit.serialization import CheckpointError, atomic_write, load_tree, save_tree


def test_round_trip_keeps_structure_types_and_tensors(tmp_path):
    tree = {
        "weights": {"a": torch.randn(3, 4), "b": torch.arange(5)},
        "optimizer": {
            "state": {0: {"step": torch.tensor(3.0)}},
            "groups": [{"betas": (0.9, 0.99)}],
        },
        "numbers": [1, 2.5, float("inf"), float("-inf"), None, True, "text"],
    }
    save_tree(tmp_path / "c.safetensors", tree)
    back = load_tree(tmp_path / "c.safetensors")
    assert torch.equal(back["weights"]["a"], tree["weights"]["a"])
    assert torch.equal(back["weights"]["b"], tree["weights"]["b"])
    assert back["optimizer"]["state"][0]["step"].item() == 3.0
    assert back["optimizer"]["groups"][0]["betas"] == (0.9, 0.99)
    assert back["numbers"] == tree["numbers"]


def test_shared_and_strided_tensors_are_stored(tmp_path):
    base = torch.randn(4, 4)
    save_tree(tmp_path / "c.safetensors", {"x": base, "y": base, "t": base.t()})
    back = load_tree(tmp_path / "c.safetensors")
    assert torch.equal(back["t"], base.t()) and torch.equal(back["y"], base)


def test_objects_that_are_not_data_are_refused(tmp_path):
    with pytest.raises(TypeError, match=r"cannot store object at \.x"):
        save_tree(tmp_path / "c.safetensors", {"x": object()})
    assert not (tmp_path / "c.safetensors").exists()


def test_a_failed_write_leaves_the_old_file_and_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "last.safetensors"
    save_tree(path, {"version": 1})

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        save_tree(path, {"version": 2})
    monkeypatch.undo()
    assert load_tree(path) == {"version": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["last.safetensors"]


def test_truncated_file_is_a_clear_error(tmp_path):
    path = tmp_path / "c.safetensors"
    save_tree(path, {"w": torch.randn(100)})
    data = path.read_bytes()
    for cut in (0, 5, 40, len(data) - 10):
        path.write_bytes(data[:cut])
        with pytest.raises(CheckpointError, match="truncated or corrupted"):
            load_tree(path)


def test_pickle_files_are_not_loaded(tmp_path):
    class Boom:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "executed"),))

    path = tmp_path / "evil.safetensors"
    path.write_bytes(pickle.dumps(Boom()))
    with pytest.raises(CheckpointError):
        load_tree(path)
    assert not (tmp_path / "executed").exists()


def test_a_foreign_safetensors_file_is_named(tmp_path):
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, tmp_path / "other.safetensors")
    with pytest.raises(CheckpointError, match="expected an rnnkit file"):
        load_tree(tmp_path / "other.safetensors")
    with pytest.raises(CheckpointError, match="file not found"):
        load_tree(tmp_path / "missing.safetensors")


def test_atomic_write_replaces_whole_files(tmp_path):
    atomic_write(tmp_path / "f", b"one")
    atomic_write(tmp_path / "f", b"two")
    assert (tmp_path / "f").read_bytes() == b"two"
