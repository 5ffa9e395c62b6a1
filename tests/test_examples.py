"""The scripts in examples/ run and learn their task: each ``main()`` returns its final numbers.

Every example seeds itself, so the numbers are deterministic; the thresholds leave a wide margin
below what the examples reach (about 0.98-1.0) and far above chance.
"""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest
import torch

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def load(name: str) -> dict:
    """The globals of examples/<name>.py, run as a module (not as __main__)."""
    return runpy.run_path(str(EXAMPLES / f"{name}.py"))


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models gain nothing from intra-op threads, and on shared cores the thread pool's
    synchronisation can make them many times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_many_to_one_classification():
    result = load("many_to_one_classification")["main"]()
    assert result["test_accuracy"] > 0.9 > 2 * result["chance"]
    assert result["padding_effect"] == 0.0  # with lengths, the padding is never read


def test_many_to_many_tagging():
    result = load("many_to_many_tagging")["main"]()
    assert result["majority_baseline"] < 0.7
    assert result["token_accuracy"] > 0.95


def test_one_to_many_generation():
    result = load("one_to_many_generation")["main"]()
    assert result["char_accuracy"] > 0.9
    assert result["exact_match"]
    assert result["generated"].startswith("hello, rnnkit! hello")


def test_generation_by_steps_equals_rereading_the_whole_text():
    """The O(1)-per-token loop (prompt in one call, then ``step`` with the carried state) gives
    the same greedy text as re-running the LSTM over everything generated so far."""
    example = load("one_to_many_generation")
    torch.manual_seed(1)
    model = example["CharLM"]().eval()
    prompt, n = "hello", 12
    streamed = model.generate(prompt, n)
    text = prompt
    with torch.no_grad():
        for _ in range(n):
            logits, _ = model(example["encode"](text).unsqueeze(0))  # (1, len, V)
            text += example["CHARS"][logits[0, -1].argmax().item()]
    assert prompt + streamed == text


def test_encoder_decoder():
    result = load("encoder_decoder")["main"]()
    assert result["token_accuracy"] > 0.9 > 5 * result["chance"]
    assert result["exact_match"] > 0.8
