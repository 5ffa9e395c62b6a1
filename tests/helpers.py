"""Utilities for comparing two recurrent modules: copy weights, run, backprop, compare."""

from __future__ import annotations

import torch
from torch import Tensor, nn

# float32 within 1e-5, float64 within 1e-10 (the parity contract of the torch-compatible layers).
TOLERANCE = {torch.float32: 1e-5, torch.float64: 1e-10}


def flatten_output(out):
    """Output, h_n (and c_n) as a flat tuple of tensors; PackedSequence -> its data."""
    y, h = out
    y = y.data if isinstance(y, nn.utils.rnn.PackedSequence) else y
    return (y, *((h,) if isinstance(h, Tensor) else tuple(h)))


def forward_backward(module: nn.Module, *args, **kwargs):
    """Run ``module``; backprop a fixed random weighting of every output; return
    (outputs, {parameter name: gradient})."""
    module.zero_grad()
    outs = flatten_output(module(*args, **kwargs))
    gen = torch.Generator().manual_seed(1234)
    loss = sum((o * torch.randn(o.shape, generator=gen, dtype=o.dtype)).sum() for o in outs)
    loss.backward()
    grads = {n: p.grad.clone() for n, p in module.named_parameters()}
    return [o.detach() for o in outs], grads


def assert_close(actual, expected, tol, what=""):
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    err = (actual - expected).abs().max().item() if actual.numel() else 0.0
    assert err <= tol, f"{what}: max abs error {err:.3g} > {tol:g}"


def assert_near(actual, expected, dtype, what=""):
    """assert_close with the dtype's tolerance, relative to the scale in float32."""
    scale = max(1.0, expected.abs().max().item()) if dtype == torch.float32 else 1.0
    assert_close(actual, expected, TOLERANCE[dtype] * scale, what)


def count_calls(monkeypatch, owner, name="run"):
    """Replace ``owner.name`` by a wrapper that counts its calls; returns {name: count}, so a
    test can prove that a fused kernel ran rather than a silent fallback."""
    counter = {name: 0}
    original = getattr(owner, name)

    def counted(*args, **kwargs):
        counter[name] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, counted)
    return counter


def outputs_and_grads(layer, x, hx, lengths, seed=5):
    """Forward (seeded, so recurrent dropout draws the same masks), backprop a fixed random
    weighting of output and h_n -> {output, h_n, d input, d hx, d each parameter}."""
    layer.zero_grad()
    x = x.detach().requires_grad_()
    hx = hx.detach().requires_grad_()
    torch.manual_seed(seed)
    y, h_n = layer(x, hx, lengths=lengths)
    gen = torch.Generator().manual_seed(1234)
    loss = sum((o * torch.randn(o.shape, generator=gen, dtype=o.dtype)).sum() for o in (y, h_n))
    loss.backward()
    grads = {f"d {name}": p.grad.clone() for name, p in layer.named_parameters()}
    return {"output": y.detach(), "h_n": h_n.detach(), "d input": x.grad, "d hx": hx.grad} | grads


def assert_direction_matches_loop(calls, equations, state_type, dtype, reverse):
    """One fused direction without lengths or mask equals rnnkit's step loop: outputs, final
    state and the gradients of the input, initial state and every parameter."""
    from rnnkit.layers.recurrence import run_direction

    H = equations.hidden_size
    params = {
        name: (torch.randn(shape, dtype=dtype) * 0.4).requires_grad_()
        for name, shape in equations.parameter_shapes().items()
    }
    x = torch.randn(6, 10, equations.input_size, dtype=dtype, requires_grad=True)
    h0 = torch.randn(10, H, dtype=dtype, requires_grad=True)
    weights = torch.randn(6, 10, H, dtype=dtype), torch.randn(10, H, dtype=dtype)
    inputs = [x, h0, *params.values()]

    def run(use_fast):
        y, state = run_direction(equations, params, x, state_type(h0), reverse=reverse,
                                 use_fast=use_fast)  # fmt: skip
        loss = (y * weights[0]).sum() + (state.h * weights[1]).sum()
        return [y.detach(), state.h.detach(), *torch.autograd.grad(loss, inputs)]

    fused = run(True)
    assert calls["run"] == 1
    reference = run(False)
    assert calls["run"] == 1
    names = ["output", "h_n", "d x", "d h0", *(f"d {n}" for n in params)]
    for what, a, b in zip(names, fused, reference, strict=True):
        assert_near(a, b, dtype, what)


def require_kernel(name):
    """The C++ kernel ``name`` must have built; with RNNKIT_NO_EXTENSIONS=1 (kernels switched
    off on purpose) there is nothing to test, and the test says so by skipping."""
    import os

    import pytest

    from rnnkit.kernels.build import load_extension

    if os.environ.get("RNNKIT_NO_EXTENSIONS") == "1":
        pytest.skip("C++ kernels disabled by RNNKIT_NO_EXTENSIONS=1")
    assert load_extension(name) is not None, f"the {name} kernel failed to build"


def assert_inference_equals_torch_nn(ours: nn.Module, theirs: nn.Module, ragged: bool) -> None:
    """Without autograd, ``ours`` (an rnnkit layer, 7 -> 40 units, 2 bidirectional layers, with
    ``theirs``' weights loaded) gives torch.nn's outputs and final state: on a full batch, or
    with lengths against torch.nn on the PackedSequence of the same batch."""
    x, h0 = torch.randn(9, 11, 7), torch.randn(4, 11, 40)
    sizes = torch.tensor([9, 2, 5, 9, 1, 3, 7, 8, 9, 4, 6])
    with torch.no_grad():
        if not ragged:
            expected, expected_h = theirs(x, h0)
            got, got_h = ours(x, h0)
        else:
            packed = nn.utils.rnn.pack_padded_sequence(x, sizes, enforce_sorted=False)
            out, expected_h = theirs(packed, h0)
            expected, _ = nn.utils.rnn.pad_packed_sequence(out, total_length=9)
            got, got_h = ours(x, h0, lengths=sizes)
    assert_near(got, expected, torch.float32, "output")
    assert_near(got_h, expected_h, torch.float32, "h_n")
