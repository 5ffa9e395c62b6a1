"""Independent, deliberately naive step functions written from the papers' equations, one gate
at a time, for the cells torch.nn does not have. They share no code with rnnkit."""

from __future__ import annotations

import torch
from torch import Tensor


def _gate(p, name_w, name_b, k, H, x):
    """Gate k's slice of W x + b (b optional)."""
    out = x @ p[name_w][k * H : (k + 1) * H].T
    return out if name_b not in p else out + p[name_b][k * H : (k + 1) * H]


def _ln(v: Tensor, gain: Tensor, bias: Tensor | None = None, eps: float = 1e-5) -> Tensor:
    mean = v.mean(-1, keepdim=True)
    var = ((v - mean) ** 2).mean(-1, keepdim=True)
    out = (v - mean) / torch.sqrt(var + eps) * gain
    return out if bias is None else out + bias


def lstm_step(p, x, h, c, *, peephole=False, layer_norm=False, proj=False):
    """Gers & Schmidhuber peepholes; Ba et al. layer norm (per gate, then biases added)."""
    H = c.shape[-1]
    pre = []
    for k in range(4):  # i, f, g, o
        xi = x @ p["weight_ih"][k * H : (k + 1) * H].T
        hh = h @ p["weight_hh"][k * H : (k + 1) * H].T
        if layer_norm:
            xi = _ln(xi, p["ln_ih_weight"][k * H : (k + 1) * H])
            hh = _ln(hh, p["ln_hh_weight"][k * H : (k + 1) * H])
        if "bias_ih" in p:
            xi = xi + p["bias_ih"][k * H : (k + 1) * H] + p["bias_hh"][k * H : (k + 1) * H]
        pre.append(xi + hh)
    i, f, g, o = pre
    if peephole:
        i = i + p["weight_peephole"][0] * c
        f = f + p["weight_peephole"][1] * c
    c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    if peephole:
        o = o + p["weight_peephole"][2] * c_new
    c_read = _ln(c_new, p["ln_cell_weight"], p["ln_cell_bias"]) if layer_norm else c_new
    h_new = torch.sigmoid(o) * torch.tanh(c_read)
    if proj:
        h_new = h_new @ p["weight_hr"].T
    return h_new, c_new


def gru_layer_norm_step(p, x, h):
    H = h.shape[-1]
    xs = [_ln(x @ p["weight_ih"][k * H : (k + 1) * H].T, p["ln_ih_weight"][k * H : (k + 1) * H])
          + p["bias_ih"][k * H : (k + 1) * H] for k in range(3)]  # fmt: skip
    hs = [_ln(h @ p["weight_hh"][k * H : (k + 1) * H].T, p["ln_hh_weight"][k * H : (k + 1) * H])
          + p["bias_hh"][k * H : (k + 1) * H] for k in range(3)]  # fmt: skip
    r = torch.sigmoid(xs[0] + hs[0])
    z = torch.sigmoid(xs[1] + hs[1])
    n = torch.tanh(xs[2] + r * hs[2])
    return (1 - z) * n + z * h


def elman_sigmoid_step(p, x, h):
    return torch.sigmoid(x @ p["weight_ih"].T + p["bias_ih"] + h @ p["weight_hh"].T + p["bias_hh"])


def min_gru_step(p, x, h):
    """Feng et al. (2024), Algorithm 1: z = σ(Linear_z x), h̃ = Linear_h x."""
    H = h.shape[-1]
    z = torch.sigmoid(_gate(p, "weight_ih", "bias_ih", 0, H, x))
    h_tilde = _gate(p, "weight_ih", "bias_ih", 1, H, x)
    return (1 - z) * h + z * h_tilde


def min_lstm_step(p, x, h):
    """Feng et al. (2024), Algorithm 2 with normalised gates f' = f/(f+i), i' = i/(f+i)."""
    H = h.shape[-1]
    f = torch.sigmoid(_gate(p, "weight_ih", "bias_ih", 0, H, x))
    i = torch.sigmoid(_gate(p, "weight_ih", "bias_ih", 1, H, x))
    h_tilde = _gate(p, "weight_ih", "bias_ih", 2, H, x)
    return f / (f + i) * h + i / (f + i) * h_tilde
