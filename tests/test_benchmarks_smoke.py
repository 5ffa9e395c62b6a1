"""Smoke test of the speed suite (benchmarks/bench_speed.py): its --quick mode runs end to end and
returns a complete, well-formed table. Nothing here asserts anything about speed: timings on a
shared CI machine say nothing, and --quick's shapes are too small to mean anything anyway.
"""

from __future__ import annotations

import contextlib
import io
import math

import pytest
import torch
from benchmarks import bench_speed

LAYER_CASES = [
    f"{kind}-a-{mode}"
    for kind in ("lstm", "bilstm", "lstmp", "gru", "rnn_tanh", "rnn_relu")
    for mode in ("train", "infer")
]
EXPECTED = {
    **{case: {"rnnkit", "torch.nn"} for case in LAYER_CASES},
    "lstm-a-train": {"rnnkit", "rnnkit C++ kernel", "torch.nn"},
    "bilstm-a-train": {"rnnkit", "rnnkit C++ kernel", "torch.nn"},
    "lstm_input_grad-a-train": {"rnnkit", "rnnkit C++ kernel", "torch.nn"},
    "bilstm_input_grad-a-train": {"rnnkit", "rnnkit C++ kernel", "torch.nn"},
    **{
        f"lstm_{option}-a-train": {"rnnkit", "torch.nn plain LSTM"}
        for option in ("peephole", "layer_norm", "recurrent_dropout")
    },
    "gru_layer_norm-a-train": {"rnnkit", "torch.nn plain GRU"},
    "lstm_lengths-a-train": {"rnnkit lengths=", "rnnkit full length", "torch.nn packed"},
    "streaming-lstm": {"rnnkit", "rnnkit .step", "torch.nn", "products: torch.mv"},
    "streaming-lstmp": {"rnnkit", "rnnkit .step", "torch.nn"},
    "streaming-gru": {"rnnkit", "rnnkit .step", "torch.nn", "products: torch.mv"},
    "minrnn-T32-train": {"rnnkit MinGRU", "rnnkit MinLSTM", "torch.nn GRU"},
}
OPTIONAL = ("jax", "keras")  # extra rows of lstm-a-train where those packages are installed


def run_main(argv: list[str]) -> tuple[list[dict], str]:
    """main(argv) on one intra-op thread (restored after), with what it printed."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            rows = bench_speed.main(argv)
    finally:
        torch.set_num_threads(threads)
    return rows, out.getvalue()


@pytest.fixture(scope="module")
def quick() -> tuple[list[dict], str]:
    return run_main(["--quick", "--markdown"])


def by_case(rows: list[dict]) -> dict[str, list[dict]]:
    cases: dict[str, list[dict]] = {}
    for row in rows:
        cases.setdefault(row["case"], []).append(row)
    return cases


def test_quick_has_every_case_and_implementation(quick):
    rows, _ = quick
    cases = by_case(rows)
    assert list(cases) == list(EXPECTED)
    for case, expected in EXPECTED.items():
        names = {row["implementation"] for row in cases[case]}
        extras = {name for name in names - expected if name.startswith(OPTIONAL)}
        assert names - extras == expected, case
        assert case == "lstm-a-train" or not extras


def test_quick_numbers_are_positive_and_finite(quick):
    rows, _ = quick
    for row in rows:
        for key in ("seconds", "tokens_per_s", "gflops_per_s", "pct_peak", "ratio_vs_torch"):
            value = row[key]
            assert isinstance(value, float) and math.isfinite(value) and value > 0, (row, key)
    for case, case_rows in by_case(rows).items():
        (reference,) = [row for row in case_rows if row["reference"]]
        assert reference["implementation"].startswith("torch.nn"), case
        assert reference["ratio_vs_torch"] == 1.0


def test_quick_extras(quick):
    rows, _ = quick
    cases = by_case(rows)
    (with_lengths,) = [
        r for r in cases["lstm_lengths-a-train"] if r["implementation"] == "rnnkit lengths="
    ]
    assert (
        math.isfinite(with_lengths["lengths_over_full"]) and with_lengths["lengths_over_full"] > 0
    )
    for row in cases["streaming-lstm"] + cases["streaming-gru"]:
        assert math.isfinite(row["us_per_step"]) and row["us_per_step"] > 0
    errors = [row["rel_error"] for row in cases["minrnn-T32-train"] if "rel_error" in row]
    assert len(errors) == 2 and all(math.isfinite(e) and e >= 0 for e in errors)


def test_quick_prints_header_and_tables(quick):
    rows, printed = quick
    header = ("machine:", "torch threads: 1", "versions:", "rnnkit backend:", "GEMM peak:")
    for text in (*header, "heap: glibc defaults"):
        assert text in printed
    assert "| case | configuration | implementation |" in printed  # --markdown
    for row in rows:
        assert row["case"] in printed and row["implementation"] in printed


def test_warm_heap_reruns_the_suite_with_glibc_keeping_freed_memory(capfd):
    argv = ["--quick", "--cases", "streaming-gru", "--heap", "warm", "--repeats", "1"]
    rows, _ = run_main(argv)
    assert rows == []  # the rows are the child process's: it printed them
    printed = capfd.readouterr().out
    settings = " ".join(f"{name}={value}" for name, value in bench_speed.WARM_HEAP.items())
    assert f"heap: warm (glibc keeps freed memory: {settings})" in printed
    assert "streaming-gru" in printed and "rnnkit .step" in printed


def test_input_grad_cases_train_on_an_input_that_requires_a_gradient(quick):
    rows, _ = quick
    cases = by_case(rows)
    for case in ("lstm_input_grad-a-train", "bilstm_input_grad-a-train"):
        assert {row["configuration"].endswith(", input requires grad") for row in cases[case]} == {
            True
        }
    # their flops count the input's gradient, the plain cases' do not
    plain, with_input = cases["lstm-a-train"][0], cases["lstm_input_grad-a-train"][0]
    s = bench_speed.QUICK_A
    d_input = 2 * s.T * s.B * 4 * s.H * s.I
    assert with_input["gflop"] * 1e9 == pytest.approx(plain["gflop"] * 1e9 + d_input)


def test_gemm_flop_formulas():
    # config a LSTM forward: 2*T*B*G*H*(I + H)
    assert bench_speed.gemm_flops("lstm", 128 * 32, 128, 256) == 2 * 128 * 32 * 4 * 256 * 384
    # training is 3x forward, less the input gradient of layer 0 unless the input requires one;
    # layer 2 of a bidirectional stack reads both directions
    tokens, I, H = 10, 3, 5
    layer0, layer1 = 2 * tokens * 3 * H * (I + H), 2 * tokens * 3 * H * (2 * H + H)
    d_input = 2 * 2 * tokens * 3 * H * I  # both directions
    flops = bench_speed.gemm_flops("gru", tokens, I, H, 2, bidirectional=True, train=True)
    assert flops == 3 * 2 * (layer0 + layer1) - d_input
    with_input = bench_speed.gemm_flops(
        "gru", tokens, I, H, 2, bidirectional=True, train=True, input_grad=True
    )
    assert with_input == 3 * 2 * (layer0 + layer1)
    # a projected LSTM feeds back P and adds the projection GEMM
    assert bench_speed.gemm_flops("lstm", 1, 3, 5, proj_size=2) == 2 * 4 * 5 * (3 + 2) + 2 * 5 * 2
    # minGRU / minLSTM: no recurrent GEMM
    assert bench_speed.gemm_flops("mingru", 7, 3, 5) == 2 * 7 * 2 * 5 * 3
    assert bench_speed.gemm_flops("minlstm", 7, 3, 5) == 2 * 7 * 3 * 5 * 3


def test_case_selection_and_listing():
    cases = bench_speed.all_cases(quick=True)
    assert [c.id for c in bench_speed.select(cases, "lstm")] == ["lstm-a-train", "lstm-a-infer"]
    assert {c.id for c in bench_speed.select(cases, "streaming-*,minrnn")} == {
        "streaming-lstm", "streaming-lstmp", "streaming-gru", "minrnn-T32-train",
    }  # fmt: skip
    with pytest.raises(ValueError, match="no case matches"):
        bench_speed.select(cases, "no-such-case")
    full = {c.id for c in bench_speed.all_cases(quick=False)}
    assert {
        "lstm-b-train",
        "minrnn-T4096-train",
        "memory-lstm-b-train",
        "memory-gru-b-train",
    } <= full
    assert "bilstm-b-train" not in full
    rows, printed = run_main(["--quick", "--list-cases"])
    assert rows == [] and "streaming-gru" in printed


def test_peak_memory_subprocess_runs():
    shape = bench_speed.Shape(B=2, T=4, I=3, H=5, L=2)
    for impl, kind in [("rnnkit", "lstm"), (bench_speed.OWN_KERNEL, "lstm"), ("torch.nn", "lstm"),
                       ("rnnkit", "gru"), ("torch.nn", "gru")]:  # fmt: skip
        mib = bench_speed.peak_rss_increase_mib(impl, shape, kind)
        assert math.isfinite(mib) and mib >= 0
