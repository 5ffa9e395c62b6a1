"""The main job (``python -m rnnkit.demo``) learns: a short run beats the mean predictor."""

import torch

from rnnkit import demo


def test_demo_learns_the_adding_problem(capsys):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a model this small only loses time syncing threads
    try:
        result = demo.main(["--steps", "300", "--max-len", "12", "--batch-size", "32"])
    finally:
        torch.set_num_threads(threads)
    assert result["test_mse"] < 0.02  # predicting the mean scores about 0.167
    assert "result: test MSE" in capsys.readouterr().out
