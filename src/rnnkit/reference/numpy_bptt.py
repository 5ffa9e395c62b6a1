"""Backpropagation through time (BPTT), written out by hand in plain NumPy.

This module is the readable reference for three recurrent layers — the Elman RNN (tanh,
relu or sigmoid), the LSTM and the GRU — each single-layer and single-direction, run over a
whole sequence. It is also an oracle: its gradients equal autograd's on ``torch.nn.RNN``,
``torch.nn.LSTM`` and ``torch.nn.GRU`` (float64, ``num_layers=1``) when given the same weights.

Letters used for shapes throughout::

    T  number of time steps          B  batch size
    I  input size                    H  hidden size
    G  gates stacked in a weight:    1 for the RNN, 4 for the LSTM, 3 for the GRU

Conventions, chosen to match ``torch.nn`` exactly so weights can be copied across:

* Vectors are rows: a batch of inputs ``x_t`` is ``(B, I)`` and a layer computes
  ``x_t @ weight_ih.T + bias_ih``.
* ``weight_ih`` is ``(G*H, I)``, ``weight_hh`` is ``(G*H, H)``, ``bias_ih`` and ``bias_hh`` are
  ``(G*H,)``; the G blocks of H rows are stacked in torch's gate order (LSTM: i, f, g, o;
  GRU: r, z, n). A bias of ``None`` means the layer has no such bias.

How BPTT works, in one paragraph. The forward pass *unrolls* the recurrence: the same
weights are applied at every step t = 0 .. T-1 and each step's activations are kept in a
cache, because the backward pass needs them. The loss is taken to be linear in the outputs
with the caller's upstream gradients as coefficients,

    L = sum_t <d_outputs[t], h_t> + <d_h_n, h_{T-1}>   (+ <d_c_n, c_{T-1}> for the LSTM),

so any real loss is covered by passing its gradient w.r.t. the outputs. The backward pass
walks the steps in reverse, t = T-1 .. 0. At step t the total gradient w.r.t. the hidden
state ``h_t`` is the error injected directly at t plus the error arriving back from step
t+1 through the recurrence. That gradient is pushed through the step's equations to give
(a) the gradient w.r.t. the step's input ``x_t``, (b) the gradient w.r.t. ``h_{t-1}``,
which is carried to the next (earlier) iteration, and (c) this step's contribution to each
weight's gradient. Because the weights are shared by all steps, their gradients are the sums
of those per-step contributions.

Every backward function also returns the per-step gradients ``d L / d h_t`` for
t = 0 .. T-1 (``grads.hidden``): how strongly the loss still reaches each step — the
quantity that shrinks with distance from the loss when gradients vanish.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "GRUCache",
    "GRUGrads",
    "GRUWeights",
    "LSTMCache",
    "LSTMGrads",
    "LSTMWeights",
    "RNNCache",
    "RNNGrads",
    "RNNWeights",
    "gru_backward",
    "gru_forward",
    "lstm_backward",
    "lstm_forward",
    "rnn_backward",
    "rnn_forward",
]

NONLINEARITIES = ("tanh", "relu", "sigmoid")


# --------------------------------------------------------------------------------------------
# Containers. ``eq=False`` because dataclass equality would compare NumPy arrays with ``==``,
# which has no single truth value; identity comparison is the honest behaviour here.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class RNNWeights:
    """Parameters of an Elman RNN layer, laid out as ``torch.nn.RNN`` layer 0 (G = 1).

    Fields: ``weight_ih`` (H, I), ``weight_hh`` (H, H), ``bias_ih`` (H,) or None,
    ``bias_hh`` (H,) or None.
    """

    weight_ih: np.ndarray
    weight_hh: np.ndarray
    bias_ih: np.ndarray | None = None
    bias_hh: np.ndarray | None = None


@dataclass(frozen=True, eq=False)
class LSTMWeights:
    """Parameters of an LSTM layer, laid out as ``torch.nn.LSTM`` layer 0 (G = 4).

    Fields: ``weight_ih`` (4H, I), ``weight_hh`` (4H, H), ``bias_ih`` (4H,) or None,
    ``bias_hh`` (4H,) or None. Row blocks of H are the gates in order i, f, g, o.
    """

    weight_ih: np.ndarray
    weight_hh: np.ndarray
    bias_ih: np.ndarray | None = None
    bias_hh: np.ndarray | None = None


@dataclass(frozen=True, eq=False)
class GRUWeights:
    """Parameters of a GRU layer, laid out as ``torch.nn.GRU`` layer 0 (G = 3).

    Fields: ``weight_ih`` (3H, I), ``weight_hh`` (3H, H), ``bias_ih`` (3H,) or None,
    ``bias_hh`` (3H,) or None. Row blocks of H are the gates in order r, z, n.
    """

    weight_ih: np.ndarray
    weight_hh: np.ndarray
    bias_ih: np.ndarray | None = None
    bias_hh: np.ndarray | None = None


@dataclass(frozen=True, eq=False)
class RNNCache:
    """What :func:`rnn_forward` keeps for :func:`rnn_backward`.

    ``x`` (T, B, I), ``h0`` (B, H), ``weights``, ``nonlinearity``, and ``h`` (T, B, H), the
    hidden state after every step. The activation's derivative is recovered from ``h``
    alone, so pre-activations need not be stored.
    """

    x: np.ndarray
    h0: np.ndarray
    weights: RNNWeights
    nonlinearity: str
    h: np.ndarray


@dataclass(frozen=True, eq=False)
class LSTMCache:
    """What :func:`lstm_forward` keeps for :func:`lstm_backward`; every array is (T, B, H)
    except ``x`` (T, B, I), ``h0`` and ``c0`` (B, H).

    ``i``, ``f``, ``g``, ``o`` are the gate activations (after their sigmoid / tanh),
    ``c`` the cell state and ``h`` the hidden state after every step.
    """

    x: np.ndarray
    h0: np.ndarray
    c0: np.ndarray
    weights: LSTMWeights
    i: np.ndarray
    f: np.ndarray
    g: np.ndarray
    o: np.ndarray
    c: np.ndarray
    h: np.ndarray


@dataclass(frozen=True, eq=False)
class GRUCache:
    """What :func:`gru_forward` keeps for :func:`gru_backward`; every array is (T, B, H)
    except ``x`` (T, B, I) and ``h0`` (B, H).

    ``r``, ``z``, ``n`` are the gate activations, ``n_recurrent`` is ``W_hn h_{t-1} + b_hn``
    (the term the reset gate multiplies; the backward pass needs it for d r), and ``h`` the
    hidden state after every step.
    """

    x: np.ndarray
    h0: np.ndarray
    weights: GRUWeights
    r: np.ndarray
    z: np.ndarray
    n: np.ndarray
    n_recurrent: np.ndarray
    h: np.ndarray


@dataclass(frozen=True, eq=False)
class RNNGrads:
    """Gradients of the loss from :func:`rnn_backward`.

    ``x`` (T, B, I); ``h0`` (B, H); ``weights``, an :class:`RNNWeights` holding the gradient
    of each parameter (a bias gradient is None when that bias is None); ``hidden`` (T, B, H),
    where ``hidden[t]`` is the total gradient d L / d h_t.
    """

    x: np.ndarray
    h0: np.ndarray
    weights: RNNWeights
    hidden: np.ndarray


@dataclass(frozen=True, eq=False)
class LSTMGrads:
    """Gradients of the loss from :func:`lstm_backward`.

    ``x`` (T, B, I); ``h0``, ``c0`` (B, H); ``weights``, an :class:`LSTMWeights` of
    gradients (None for absent biases); ``hidden`` (T, B, H) with ``hidden[t]`` = d L / d h_t;
    ``cell`` (T, B, H) with ``cell[t]`` = d L / d c_t.
    """

    x: np.ndarray
    h0: np.ndarray
    c0: np.ndarray
    weights: LSTMWeights
    hidden: np.ndarray
    cell: np.ndarray


@dataclass(frozen=True, eq=False)
class GRUGrads:
    """Gradients of the loss from :func:`gru_backward`.

    ``x`` (T, B, I); ``h0`` (B, H); ``weights``, a :class:`GRUWeights` of gradients (None for
    absent biases); ``hidden`` (T, B, H) with ``hidden[t]`` = d L / d h_t.
    """

    x: np.ndarray
    h0: np.ndarray
    weights: GRUWeights
    hidden: np.ndarray


# --------------------------------------------------------------------------------------------
# Small numerical helpers
# --------------------------------------------------------------------------------------------


def _sigmoid(a: np.ndarray) -> np.ndarray:
    # Same function as 1 / (1 + exp(-a)), but exp never overflows for large negative a.
    return 0.5 * (1.0 + np.tanh(0.5 * a))


def _relu(a: np.ndarray) -> np.ndarray:
    return np.maximum(a, 0.0)


_ACTIVATIONS = {"tanh": np.tanh, "relu": _relu, "sigmoid": _sigmoid}


def _affine(v: np.ndarray, weight: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    """``v @ weight.T + bias`` for a batch of row vectors v (B, K) and weight (G*H, K)."""
    out = v @ weight.T
    return out if bias is None else out + bias


def _weight_grads(weights, d_weight_ih, d_weight_hh, d_bias_ih, d_bias_hh):
    """Package weight gradients in the caller's weight type, None where there is no bias."""
    return type(weights)(
        weight_ih=d_weight_ih,
        weight_hh=d_weight_hh,
        bias_ih=None if weights.bias_ih is None else d_bias_ih,
        bias_hh=None if weights.bias_hh is None else d_bias_hh,
    )


# --------------------------------------------------------------------------------------------
# Input validation (only at the public edges; the maths below trusts its inputs)
# --------------------------------------------------------------------------------------------


def _as_float64(name: str, value) -> np.ndarray:
    array = np.asarray(value)
    if array.dtype.kind not in "biuf":
        raise ValueError(f"{name} must be a real-valued numeric array; got dtype {array.dtype}")
    # A private float64 copy: the cache must not change if the caller later edits their array.
    return np.array(array, dtype=np.float64)


def _check_weights(weights, weights_type: type, gates: int, layout: str):
    """Validate and copy the weights; return them (as float64) with H and I.

    ``layout`` names the layer for error messages, e.g. "an LSTM (G=4, gates i, f, g, o)".
    """
    if not isinstance(weights, weights_type):
        raise ValueError(
            f"weights must be an instance of {weights_type.__name__}; got {type(weights).__name__}"
        )
    weight_ih = _as_float64("weight_ih", weights.weight_ih)
    weight_hh = _as_float64("weight_hh", weights.weight_hh)
    if weight_ih.ndim != 2 or weight_ih.shape[0] == 0 or weight_ih.shape[0] % gates != 0:
        raise ValueError(
            f"weight_ih must have shape (G*H, I) with G={gates} for {layout}; got {weight_ih.shape}"
        )
    hidden_size = weight_ih.shape[0] // gates
    input_size = weight_ih.shape[1]
    if weight_hh.shape != (gates * hidden_size, hidden_size):
        raise ValueError(
            f"weight_hh must have shape (G*H, H) = {(gates * hidden_size, hidden_size)} "
            f"to match weight_ih {weight_ih.shape} for {layout}; got {weight_hh.shape}"
        )
    biases = {}
    for name in ("bias_ih", "bias_hh"):
        bias = getattr(weights, name)
        if bias is not None:
            bias = _as_float64(name, bias)
            if bias.shape != (gates * hidden_size,):
                raise ValueError(
                    f"{name} must have shape (G*H,) = {(gates * hidden_size,)} "
                    f"for {layout}, or be None; got {bias.shape}"
                )
        biases[name] = bias
    checked = weights_type(weight_ih, weight_hh, biases["bias_ih"], biases["bias_hh"])
    return checked, hidden_size, input_size


def _check_x(x, input_size: int) -> np.ndarray:
    x = _as_float64("x", x)
    if x.ndim != 3 or x.shape[2] != input_size:
        raise ValueError(
            f"x must have shape (T, B, I) with I={input_size} matching weight_ih (G*H, I); "
            f"got {x.shape}"
        )
    if x.shape[0] == 0:
        raise ValueError(f"x must have at least one time step (T >= 1); got shape {x.shape}")
    return x


def _check_state(name: str, state, batch: int, hidden_size: int) -> np.ndarray:
    state = _as_float64(name, state)
    if state.shape != (batch, hidden_size):
        raise ValueError(
            f"{name} must have shape (B, H) = {(batch, hidden_size)} matching x and the "
            f"weights; got {state.shape}"
        )
    return state


def _check_upstream(name: str, grad, shape: tuple[int, ...], what: str) -> np.ndarray:
    """Upstream gradients may be None, meaning the loss does not depend on that output."""
    if grad is None:
        return np.zeros(shape)
    grad = _as_float64(name, grad)
    if grad.shape != shape:
        raise ValueError(
            f"{name} must have shape {what} = {shape} matching the forward pass, or be None; "
            f"got {grad.shape}"
        )
    return grad


def _check_cache(cache, cache_type: type):
    if not isinstance(cache, cache_type):
        raise ValueError(
            f"cache must be the {cache_type.__name__} returned by the forward function; "
            f"got {type(cache).__name__}"
        )


# --------------------------------------------------------------------------------------------
# Elman RNN
# --------------------------------------------------------------------------------------------


def rnn_forward(
    x, h0, weights: RNNWeights, nonlinearity: str = "tanh"
) -> tuple[np.ndarray, RNNCache]:
    """Run an Elman RNN over a sequence, as ``torch.nn.RNN`` (one layer, one direction).

    For t = 0 .. T-1, with h_{-1} = h0 and φ the nonlinearity (tanh, relu or sigmoid)::

        a_t = x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh        (B, H)
        h_t = φ(a_t)                                           (B, H)

    Args:
        x: inputs, (T, B, I).
        h0: initial hidden state, (B, H).
        weights: :class:`RNNWeights`, ``weight_ih`` (H, I), ``weight_hh`` (H, H), biases (H,)
            or None.
        nonlinearity: ``"tanh"``, ``"relu"`` or ``"sigmoid"``.

    Returns:
        ``(outputs, cache)``: ``outputs`` (T, B, H) is h_t for every t (so the final state
        h_n is ``outputs[-1]``); ``cache`` is the :class:`RNNCache` for :func:`rnn_backward`.
    """
    if nonlinearity not in NONLINEARITIES:
        raise ValueError(f"nonlinearity must be one of {NONLINEARITIES}; got {nonlinearity!r}")
    weights, hidden_size, input_size = _check_weights(weights, RNNWeights, 1, "an RNN (G=1)")
    x = _check_x(x, input_size)
    steps, batch, _ = x.shape
    h0 = _check_state("h0", h0, batch, hidden_size)
    activation = _ACTIVATIONS[nonlinearity]

    h = np.empty((steps, batch, hidden_size))
    h_prev = h0
    for t in range(steps):
        # The same weights at every step: this loop *is* the unrolled network.
        a = _affine(x[t], weights.weight_ih, weights.bias_ih) + _affine(
            h_prev, weights.weight_hh, weights.bias_hh
        )
        h[t] = activation(a)
        h_prev = h[t]

    cache = RNNCache(x=x, h0=h0, weights=weights, nonlinearity=nonlinearity, h=h)
    return h.copy(), cache  # a copy, so editing the outputs cannot corrupt the cache


def rnn_backward(d_outputs, d_h_n, cache: RNNCache) -> RNNGrads:
    """Backpropagation through time for :func:`rnn_forward`.

    The loss is L = sum_t <d_outputs[t], h_t> + <d_h_n, h_{T-1}>. Walking t = T-1 .. 0,
    with dh_T^{carry} = d_h_n and φ'(a_t) written in terms of h_t (tanh: 1 - h², sigmoid:
    h (1 - h), relu: [h > 0])::

        dh_t  = d_outputs[t] + dh^{carry}       total d L / d h_t          (B, H)
        da_t  = dh_t ⊙ φ'(a_t)                                             (B, H)
        dx_t  = da_t W_ih                                                  (B, I)
        dh^{carry} = da_t W_hh            becomes d L / d h_{t-1} via step t (B, H)
        dW_ih += da_t^T x_t,   dW_hh += da_t^T h_{t-1},   db_ih, db_hh += sum_B da_t

    Args:
        d_outputs: d L / d outputs, (T, B, H), or None for zeros.
        d_h_n: d L / d h_n (the final state), (B, H), or None for zeros.
        cache: the :class:`RNNCache` from :func:`rnn_forward`.

    Returns:
        :class:`RNNGrads` with ``x`` (T, B, I), ``h0`` (B, H), ``weights`` (an
        :class:`RNNWeights` of gradients) and ``hidden`` (T, B, H), ``hidden[t]`` = dh_t.
    """
    _check_cache(cache, RNNCache)
    x, h, w = cache.x, cache.h, cache.weights
    steps, batch, hidden_size = h.shape
    d_outputs = _check_upstream("d_outputs", d_outputs, h.shape, "(T, B, H)")
    d_h_carry = _check_upstream("d_h_n", d_h_n, (batch, hidden_size), "(B, H)")

    d_x = np.zeros_like(x)
    d_hidden = np.empty_like(h)
    d_weight_ih = np.zeros_like(w.weight_ih)
    d_weight_hh = np.zeros_like(w.weight_hh)
    d_bias = np.zeros(hidden_size)

    for t in reversed(range(steps)):
        h_prev = cache.h0 if t == 0 else h[t - 1]
        # h_t reaches the loss two ways: directly (it is output t) and through h_{t+1},
        # whose gradient w.r.t. h_t was carried back from the previous iteration.
        d_h = d_outputs[t] + d_h_carry
        d_hidden[t] = d_h
        if cache.nonlinearity == "tanh":
            d_a = d_h * (1.0 - h[t] ** 2)
        elif cache.nonlinearity == "sigmoid":
            d_a = d_h * h[t] * (1.0 - h[t])
        else:  # relu passes the gradient only where it was active (torch's convention at 0)
            d_a = d_h * (h[t] > 0.0)
        # The weights are shared by all steps, so each step *adds* its contribution.
        d_weight_ih += d_a.T @ x[t]
        d_weight_hh += d_a.T @ h_prev
        d_bias += d_a.sum(axis=0)  # each bias is broadcast over the batch, so sum over B
        d_x[t] = d_a @ w.weight_ih
        # This multiplication by W_hh (and by φ') once per step is what makes gradients
        # vanish or explode over long spans.
        d_h_carry = d_a @ w.weight_hh

    # Both biases enter a_t with coefficient one, so their gradients are the same.
    weights = _weight_grads(w, d_weight_ih, d_weight_hh, d_bias, d_bias.copy())
    return RNNGrads(x=d_x, h0=d_h_carry, weights=weights, hidden=d_hidden)


# --------------------------------------------------------------------------------------------
# LSTM
# --------------------------------------------------------------------------------------------


def lstm_forward(
    x, h0, c0, weights: LSTMWeights
) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray], LSTMCache]:
    """Run an LSTM over a sequence, as ``torch.nn.LSTM`` (one layer, one direction).

    For t = 0 .. T-1, with h_{-1} = h0, c_{-1} = c0, and the four (B, H) column blocks of
    the (B, 4H) pre-activation taken in torch's gate order i, f, g, o::

        [a_i, a_f, a_g, a_o] = x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh     (B, 4H)
        i = σ(a_i)   f = σ(a_f)   g = tanh(a_g)   o = σ(a_o)                  (B, H) each
        c_t = f ⊙ c_{t-1} + i ⊙ g                                            (B, H)
        h_t = o ⊙ tanh(c_t)                                                  (B, H)

    Args:
        x: inputs, (T, B, I).
        h0, c0: initial hidden and cell states, (B, H) each.
        weights: :class:`LSTMWeights`, ``weight_ih`` (4H, I), ``weight_hh`` (4H, H),
            biases (4H,) or None.

    Returns:
        ``(outputs, (h_n, c_n), cache)``: ``outputs`` (T, B, H) is h_t for every t; h_n and
        c_n (B, H) are the final states; ``cache`` is the :class:`LSTMCache`.
    """
    weights, hidden_size, input_size = _check_weights(
        weights, LSTMWeights, 4, "an LSTM (G=4, gates i, f, g, o)"
    )
    x = _check_x(x, input_size)
    steps, batch, _ = x.shape
    h0 = _check_state("h0", h0, batch, hidden_size)
    c0 = _check_state("c0", c0, batch, hidden_size)

    i, f, g, o, c, h = (np.empty((steps, batch, hidden_size)) for _ in range(6))
    h_prev, c_prev = h0, c0
    for t in range(steps):
        a = _affine(x[t], weights.weight_ih, weights.bias_ih) + _affine(
            h_prev, weights.weight_hh, weights.bias_hh
        )
        a_i, a_f, a_g, a_o = np.split(a, 4, axis=1)
        i[t], f[t], g[t], o[t] = _sigmoid(a_i), _sigmoid(a_f), np.tanh(a_g), _sigmoid(a_o)
        c[t] = f[t] * c_prev + i[t] * g[t]
        h[t] = o[t] * np.tanh(c[t])
        h_prev, c_prev = h[t], c[t]

    cache = LSTMCache(x=x, h0=h0, c0=c0, weights=weights, i=i, f=f, g=g, o=o, c=c, h=h)
    return h.copy(), (h[-1].copy(), c[-1].copy()), cache


def lstm_backward(d_outputs, d_h_n, d_c_n, cache: LSTMCache) -> LSTMGrads:
    """Backpropagation through time for :func:`lstm_forward`.

    The loss is L = sum_t <d_outputs[t], h_t> + <d_h_n, h_{T-1}> + <d_c_n, c_{T-1}>.
    Walking t = T-1 .. 0, with the carries starting at dh^{carry} = d_h_n and
    dc^{carry} = d_c_n::

        dh_t = d_outputs[t] + dh^{carry}                     total d L / d h_t     (B, H)
        dc_t = dc^{carry} + dh_t ⊙ o ⊙ (1 - tanh²(c_t))      total d L / d c_t     (B, H)
        do = dh_t ⊙ tanh(c_t)   di = dc_t ⊙ g   dg = dc_t ⊙ i   df = dc_t ⊙ c_{t-1}
        da = [di ⊙ i(1-i), df ⊙ f(1-f), dg ⊙ (1-g²), do ⊙ o(1-o)]                  (B, 4H)
        dx_t = da W_ih                                                             (B, I)
        dh^{carry} = da W_hh,   dc^{carry} = dc_t ⊙ f          for step t-1        (B, H)
        dW_ih += da^T x_t,   dW_hh += da^T h_{t-1},   db_ih, db_hh += sum_B da

    Args:
        d_outputs: d L / d outputs, (T, B, H), or None for zeros.
        d_h_n, d_c_n: d L / d h_n and d L / d c_n, (B, H) each, or None for zeros.
        cache: the :class:`LSTMCache` from :func:`lstm_forward`.

    Returns:
        :class:`LSTMGrads` with ``x``, ``h0``, ``c0``, ``weights`` (an :class:`LSTMWeights`
        of gradients), ``hidden`` (T, B, H) = dh_t and ``cell`` (T, B, H) = dc_t.
    """
    _check_cache(cache, LSTMCache)
    x, w = cache.x, cache.weights
    i, f, g, o, c, h = cache.i, cache.f, cache.g, cache.o, cache.c, cache.h
    steps, batch, hidden_size = h.shape
    d_outputs = _check_upstream("d_outputs", d_outputs, h.shape, "(T, B, H)")
    d_h_carry = _check_upstream("d_h_n", d_h_n, (batch, hidden_size), "(B, H)")
    d_c_carry = _check_upstream("d_c_n", d_c_n, (batch, hidden_size), "(B, H)")

    d_x = np.zeros_like(x)
    d_hidden = np.empty_like(h)
    d_cell = np.empty_like(c)
    d_weight_ih = np.zeros_like(w.weight_ih)
    d_weight_hh = np.zeros_like(w.weight_hh)
    d_bias = np.zeros(4 * hidden_size)

    for t in reversed(range(steps)):
        h_prev = cache.h0 if t == 0 else h[t - 1]
        c_prev = cache.c0 if t == 0 else c[t - 1]
        tanh_c = np.tanh(c[t])

        d_h = d_outputs[t] + d_h_carry
        # c_t reaches the loss through h_t = o ⊙ tanh(c_t) and through c_{t+1} = f ⊙ c_t + ...
        d_c = d_c_carry + d_h * o[t] * (1.0 - tanh_c**2)
        d_hidden[t], d_cell[t] = d_h, d_c

        d_o = d_h * tanh_c
        d_i = d_c * g[t]
        d_g = d_c * i[t]
        d_f = d_c * c_prev
        # Back through each gate's own nonlinearity to the pre-activations, in gate order.
        d_a = np.concatenate(
            [
                d_i * i[t] * (1.0 - i[t]),
                d_f * f[t] * (1.0 - f[t]),
                d_g * (1.0 - g[t] ** 2),
                d_o * o[t] * (1.0 - o[t]),
            ],
            axis=1,
        )

        d_weight_ih += d_a.T @ x[t]
        d_weight_hh += d_a.T @ h_prev
        d_bias += d_a.sum(axis=0)
        d_x[t] = d_a @ w.weight_ih
        d_h_carry = d_a @ w.weight_hh
        # The cell path is only scaled by the forget gate — no weight matrix, no squashing —
        # which is why the LSTM can carry gradients much further back than the plain RNN.
        d_c_carry = d_c * f[t]

    weights = _weight_grads(w, d_weight_ih, d_weight_hh, d_bias, d_bias.copy())
    return LSTMGrads(
        x=d_x, h0=d_h_carry, c0=d_c_carry, weights=weights, hidden=d_hidden, cell=d_cell
    )


# --------------------------------------------------------------------------------------------
# GRU
# --------------------------------------------------------------------------------------------


def gru_forward(x, h0, weights: GRUWeights) -> tuple[np.ndarray, GRUCache]:
    """Run a GRU over a sequence, as ``torch.nn.GRU`` (one layer, one direction).

    For t = 0 .. T-1, with h_{-1} = h0 and the (B, H) column blocks of the input and
    recurrent projections taken in torch's gate order r, z, n::

        [u_r, u_z, u_n] = x_t W_ih^T + b_ih                                  (B, 3H)
        [v_r, v_z, v_n] = h_{t-1} W_hh^T + b_hh                              (B, 3H)
        r = σ(u_r + v_r)   z = σ(u_z + v_z)                                  (B, H) each
        n = tanh(u_n + r ⊙ v_n)                                              (B, H)
        h_t = (1 - z) ⊙ n + z ⊙ h_{t-1}                                      (B, H)

    Note that, as in torch, the reset gate multiplies v_n = W_hn h_{t-1} + b_hn *after*
    the matrix product, so the two biases are not interchangeable for the n gate.

    Args:
        x: inputs, (T, B, I).
        h0: initial hidden state, (B, H).
        weights: :class:`GRUWeights`, ``weight_ih`` (3H, I), ``weight_hh`` (3H, H),
            biases (3H,) or None.

    Returns:
        ``(outputs, cache)``: ``outputs`` (T, B, H) is h_t for every t (the final state h_n
        is ``outputs[-1]``); ``cache`` is the :class:`GRUCache` for :func:`gru_backward`.
    """
    weights, hidden_size, input_size = _check_weights(
        weights, GRUWeights, 3, "a GRU (G=3, gates r, z, n)"
    )
    x = _check_x(x, input_size)
    steps, batch, _ = x.shape
    h0 = _check_state("h0", h0, batch, hidden_size)

    r, z, n, n_recurrent, h = (np.empty((steps, batch, hidden_size)) for _ in range(5))
    h_prev = h0
    for t in range(steps):
        u_r, u_z, u_n = np.split(_affine(x[t], weights.weight_ih, weights.bias_ih), 3, axis=1)
        v_r, v_z, v_n = np.split(_affine(h_prev, weights.weight_hh, weights.bias_hh), 3, axis=1)
        r[t] = _sigmoid(u_r + v_r)
        z[t] = _sigmoid(u_z + v_z)
        n_recurrent[t] = v_n
        n[t] = np.tanh(u_n + r[t] * v_n)
        h[t] = (1.0 - z[t]) * n[t] + z[t] * h_prev
        h_prev = h[t]

    cache = GRUCache(x=x, h0=h0, weights=weights, r=r, z=z, n=n, n_recurrent=n_recurrent, h=h)
    return h.copy(), cache


def gru_backward(d_outputs, d_h_n, cache: GRUCache) -> GRUGrads:
    """Backpropagation through time for :func:`gru_forward`.

    The loss is L = sum_t <d_outputs[t], h_t> + <d_h_n, h_{T-1}>. Walking t = T-1 .. 0,
    with dh^{carry} = d_h_n at the start::

        dh_t  = d_outputs[t] + dh^{carry}          total d L / d h_t              (B, H)
        dn    = dh_t ⊙ (1 - z)       dz = dh_t ⊙ (h_{t-1} - n)
        dn'   = dn ⊙ (1 - n²)        (gradient at n's pre-activation)
        dr'   = dn' ⊙ v_n ⊙ r(1-r)   dz' = dz ⊙ z(1-z)
        du    = [dr', dz', dn']                    gradient of x_t W_ih^T + b_ih   (B, 3H)
        dv    = [dr', dz', dn' ⊙ r]                gradient of h_{t-1} W_hh^T + b_hh
        dx_t  = du W_ih                                                           (B, I)
        dh^{carry} = dh_t ⊙ z + dv W_hh            becomes d L / d h_{t-1}         (B, H)
        dW_ih += du^T x_t,  dW_hh += dv^T h_{t-1},  db_ih += sum_B du,  db_hh += sum_B dv

    Args:
        d_outputs: d L / d outputs, (T, B, H), or None for zeros.
        d_h_n: d L / d h_n (the final state), (B, H), or None for zeros.
        cache: the :class:`GRUCache` from :func:`gru_forward`.

    Returns:
        :class:`GRUGrads` with ``x`` (T, B, I), ``h0`` (B, H), ``weights`` (a
        :class:`GRUWeights` of gradients) and ``hidden`` (T, B, H), ``hidden[t]`` = dh_t.
    """
    _check_cache(cache, GRUCache)
    x, w = cache.x, cache.weights
    r, z, n, v_n, h = cache.r, cache.z, cache.n, cache.n_recurrent, cache.h
    steps, batch, hidden_size = h.shape
    d_outputs = _check_upstream("d_outputs", d_outputs, h.shape, "(T, B, H)")
    d_h_carry = _check_upstream("d_h_n", d_h_n, (batch, hidden_size), "(B, H)")

    d_x = np.zeros_like(x)
    d_hidden = np.empty_like(h)
    d_weight_ih = np.zeros_like(w.weight_ih)
    d_weight_hh = np.zeros_like(w.weight_hh)
    d_bias_ih = np.zeros(3 * hidden_size)
    d_bias_hh = np.zeros(3 * hidden_size)

    for t in reversed(range(steps)):
        h_prev = cache.h0 if t == 0 else h[t - 1]

        d_h = d_outputs[t] + d_h_carry
        d_hidden[t] = d_h
        # h_t interpolates between the candidate n and the old state, with weight z.
        d_n = d_h * (1.0 - z[t])
        d_z = d_h * (h_prev - n[t])
        d_n_pre = d_n * (1.0 - n[t] ** 2)
        d_r_pre = d_n_pre * v_n[t] * r[t] * (1.0 - r[t])
        d_z_pre = d_z * z[t] * (1.0 - z[t])

        # The r and z pre-activations are plain sums u + v, so both halves get the same
        # gradient; the n gate's recurrent half was scaled by r, so its gradient is too.
        d_u = np.concatenate([d_r_pre, d_z_pre, d_n_pre], axis=1)
        d_v = np.concatenate([d_r_pre, d_z_pre, d_n_pre * r[t]], axis=1)

        d_weight_ih += d_u.T @ x[t]
        d_weight_hh += d_v.T @ h_prev
        d_bias_ih += d_u.sum(axis=0)
        d_bias_hh += d_v.sum(axis=0)
        d_x[t] = d_u @ w.weight_ih
        # h_{t-1} reaches h_t directly (the z ⊙ h_{t-1} term, a gated shortcut like the
        # LSTM's cell path) and through the three gates' recurrent projections.
        d_h_carry = d_h * z[t] + d_v @ w.weight_hh

    weights = _weight_grads(w, d_weight_ih, d_weight_hh, d_bias_ih, d_bias_hh)
    return GRUGrads(x=d_x, h0=d_h_carry, weights=weights, hidden=d_hidden)
