"""The C++ linear recurrence of minGRU/minLSTM (h_t = exp(log_a_t) h_{t-1} + b_t): equals the
naive step loop and rnnkit.ops.scan.linear_scan, passes gradcheck, stays accurate in float32 at
4096 steps, and is the path minGRU/minLSTM layers really take (equal to the reference loop)."""

import pytest
import torch

import rnnkit
from rnnkit.cells.mingru import MinGRUEquations, MinLSTMEquations, MinRNNState
from rnnkit.kernels import minrnn
from rnnkit.layers import recurrence
from rnnkit.ops.scan import linear_scan
from tests.helpers import assert_close, outputs_and_grads, require_kernel


@pytest.fixture
def calls(monkeypatch):
    """Counts calls of the C++ Functions (the plain recurrence and the one with fused gates)."""
    require_kernel("minrnn")
    counter = {"apply": 0}
    for function in (minrnn.LinearRecurrence, minrnn.MinRNNFunction):

        def counting_apply(*args, _apply=function.apply):
            counter["apply"] += 1
            return _apply(*args)

        monkeypatch.setattr(function, "apply", counting_apply)
    return counter


def naive_loop(log_a, b, h0):
    h, out = h0, []
    for log_a_t, b_t in zip(log_a.unbind(0), b.unbind(0), strict=True):  # unbind: O(T) backward
        h = log_a_t.exp() * h + b_t
        out.append(h)
    return torch.stack(out) if out else log_a.new_empty(log_a.shape)


def random_coefficients(T, B, H, dtype=torch.float64, requires_grad=False):
    log_a = torch.nn.functional.logsigmoid(torch.randn(T, B, H, dtype=dtype) * 2)
    b, h0 = torch.randn(T, B, H, dtype=dtype), torch.randn(B, H, dtype=dtype)
    return [t.requires_grad_(requires_grad) for t in (log_a, b, h0)]


@pytest.mark.parametrize(
    "shape", [(1, 1, 1), (70, 3, 5), (64, 16, 256), (9, 40, 130)], ids=str
)  # (64, 16, 256) and (9, 40, 130): columns split across threads, ragged last block
def test_kernel_equals_naive_loop_and_linear_scan(calls, shape):
    log_a, b, h0 = random_coefficients(*shape)
    h = minrnn.linear_recurrence(log_a, b, h0)
    assert calls["apply"] == 1
    assert_close(h, naive_loop(log_a, b, h0), 1e-12, "vs naive loop")
    assert_close(h, linear_scan(log_a, b, h0), 1e-10, "vs linear_scan")


@pytest.mark.parametrize("shape", [(70, 3, 5), (33, 16, 256)], ids=str)
def test_backward_equals_autograd_of_the_naive_loop(calls, shape):
    log_a, b, h0 = random_coefficients(*shape, requires_grad=True)
    weights = torch.randn(shape, dtype=torch.float64)
    got = torch.autograd.grad((minrnn.linear_recurrence(log_a, b, h0) * weights).sum(),
                              (log_a, b, h0))  # fmt: skip
    want = torch.autograd.grad((naive_loop(log_a, b, h0) * weights).sum(), (log_a, b, h0))
    assert calls["apply"] == 1
    for what, g, w in zip(["d log_a", "d b", "d h0"], got, want, strict=True):
        assert_close(g, w, 1e-10, what)


def test_gradcheck_of_the_function(calls):
    log_a, b, h0 = random_coefficients(6, 3, 4, requires_grad=True)
    assert torch.autograd.gradcheck(minrnn.LinearRecurrence.apply, (log_a, b, h0))
    assert calls["apply"] >= 1


def test_float32_stays_accurate_at_4096_steps(calls):
    log_a, b, h0 = random_coefficients(4096, 4, 64)
    log_a = log_a * 0.05  # a close to 1: long memory, the hard case for accumulated error
    want = naive_loop(log_a, b, h0)  # float64
    log_a32, b32, h032 = (t.float().requires_grad_() for t in (log_a, b, h0))
    got = minrnn.linear_recurrence(log_a32, b32, h032)
    assert calls["apply"] == 1
    relative = (got.double() - want).norm() / want.norm()
    assert relative < 1e-5, f"relative error {relative:.3g}"
    # and the gradients, against float64 autograd of the loop
    weights = torch.randn(got.shape, dtype=torch.float64)
    grads32 = torch.autograd.grad((got * weights.float()).sum(), (log_a32, b32, h032))
    leaves = [t.clone().requires_grad_() for t in (log_a, b, h0)]
    grads64 = torch.autograd.grad((naive_loop(*leaves) * weights).sum(), leaves)
    for what, g32, g64 in zip(["d log_a", "d b", "d h0"], grads32, grads64, strict=True):
        relative = (g32.double() - g64).norm() / g64.norm()
        assert relative < 1e-5, f"{what}: relative error {relative:.3g}"


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_falls_back_to_linear_scan_for_other_dtypes(calls, dtype):
    log_a, b, h0 = (t.to(dtype) for t in random_coefficients(40, 2, 3))
    h = minrnn.linear_recurrence(log_a, b, h0)
    assert calls["apply"] == 0
    assert torch.equal(h, linear_scan(log_a, b, h0))


def test_falls_back_to_linear_scan_without_the_extension(calls, monkeypatch):
    monkeypatch.setattr(minrnn, "load_extension", lambda name: None)
    log_a, b, h0 = random_coefficients(40, 2, 3)
    assert torch.equal(minrnn.linear_recurrence(log_a, b, h0), linear_scan(log_a, b, h0))
    assert calls["apply"] == 0


@pytest.mark.parametrize("ragged", [False, True], ids=["no-lengths", "lengths"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("cls", [rnnkit.MinGRU, rnnkit.MinLSTM])
def test_layers_equal_the_reference_loop(calls, cls, bidirectional, ragged):
    layer = cls(4, 6, num_layers=2, bidirectional=bidirectional, dtype=torch.float64)
    D = 2 if bidirectional else 1
    x = torch.randn(70, 5, 4, dtype=torch.float64)
    hx = torch.randn(2 * D, 5, 6, dtype=torch.float64)
    lengths = torch.tensor([70, 0, 33, 1, 69]) if ragged else None
    fused = outputs_and_grads(layer, x, hx, lengths)
    assert calls["apply"] == 2 * D
    with rnnkit.reference_implementation():
        reference = outputs_and_grads(layer, x, hx, lengths)
    assert calls["apply"] == 2 * D  # not during the reference
    for what in reference:
        assert_close(fused[what], reference[what], 1e-10, what)


@pytest.mark.parametrize("cls", [rnnkit.MinGRU, rnnkit.MinLSTM])
def test_float32_layer_at_4096_steps_against_a_float64_loop(calls, cls):
    layer = cls(8, 16)
    x = torch.randn(4096, 2, 8)
    h0 = torch.randn(1, 2, 16)
    with torch.no_grad():
        y32, _ = layer(x, h0)
        assert calls["apply"] == 1
        with rnnkit.reference_implementation():
            y64, _ = layer.double()(x.double(), h0.double())
    relative = (y32.double() - y64).norm() / y64.norm()
    assert relative < 1e-5, f"relative error {relative:.3g}"


@pytest.mark.parametrize("equations", [MinGRUEquations(4, 6), MinLSTMEquations(4, 6)])
def test_registry_run_on_a_sorted_batch_equals_the_step_loop(calls, equations):
    """``run`` (the registry contract; ``applies`` is False, the layers use the scan path) on a
    batch sorted by decreasing length, lengths 5, 3, 3, 0."""
    assert not minrnn.applies(equations)
    p = {n: torch.randn(s, dtype=torch.float64) for n, s in equations.parameter_shapes().items()}
    x = torch.randn(5, 4, 4, dtype=torch.float64)
    h0 = torch.randn(4, 6, dtype=torch.float64)
    lengths = torch.tensor([5, 3, 3, 0])
    y, final = minrnn.run(equations, p, x, MinRNNState(h0), None, [3, 3, 3, 1, 1])
    with rnnkit.reference_implementation():
        y_ref, final_ref = recurrence.run_direction(
            equations, p, x, MinRNNState(h0), lengths=lengths,
            valid=torch.arange(5).unsqueeze(1) < lengths,
        )  # fmt: skip
    assert_close(y, y_ref, 1e-12, "output")
    assert_close(final.h, final_ref.h, 1e-12, "h_n")


@pytest.mark.parametrize("lstm", [False, True], ids=["minGRU", "minLSTM"])
def test_fused_gates_function_gradcheck_and_layer_takes_it(lstm, monkeypatch):
    from rnnkit.kernels.minrnn import MinRNNFunction

    T, B, H = 5, 3, 4
    xp = torch.randn(T, B, (3 if lstm else 2) * H, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(B, H, dtype=torch.float64, requires_grad=True)
    valid = (torch.arange(T).unsqueeze(1) < torch.tensor([5, 2, 0])).to(torch.uint8)
    assert torch.autograd.gradcheck(lambda a, b: MinRNNFunction.apply(a, b, valid, lstm), (xp, h0))

    calls = []
    original = MinRNNFunction.apply
    monkeypatch.setattr(MinRNNFunction, "apply", lambda *a: calls.append(1) or original(*a))
    layer = (rnnkit.MinLSTM if lstm else rnnkit.MinGRU)(3, H, dtype=torch.float64)
    layer(torch.randn(T, B, 3, dtype=torch.float64), lengths=torch.tensor([5, 2, 0]))
    assert calls, "the fused minGRU/minLSTM kernel was not used"
