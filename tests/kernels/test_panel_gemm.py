"""rnnkit's panel GEMM (the recurrent GEMM of the C++ loops) against a float64 product, its
errors, which weights gemm.pack hands out, and whole layers agreeing across the three routes
of the recurrent GEMM (panels, oneDNN, ATen)."""

import pytest
import torch

import rnnkit
from rnnkit.kernels import gemm
from rnnkit.kernels.build import load_extension
from tests.helpers import assert_close

EXT = load_extension("lstm")  # built in CI as everywhere with a compiler (test_fused_lstm)


@pytest.mark.parametrize("rows", [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 32, 33])
@pytest.mark.parametrize(
    "n,k", [(1, 1), (33, 5), (45, 7), (52, 9), (58, 11), (80, 20), (1024, 256), (70, 2500)]
)
def test_panel_gemm_matches_float64_product(rows, n, k):
    """Row tails (every block size of both builds: 8 rows with AVX-512, 6 with AVX2), column
    tails (last panels 1, 13, 20, 26 and 6 columns wide: past 8 and 16, the register widths) and
    K beyond two 1024-deep passes, with and without the added term, into a new tensor and into
    out."""
    x, w, add = torch.randn(rows, k), torch.randn(n, k), torch.randn(rows, n)
    panels = EXT.pack_panels(w)
    assert panels.shape == ((n + 31) // 32, k, 32)
    if not EXT.panel_gemm:  # a build without AVX-512 or AVX2 never hands out panels (see below)
        with pytest.raises(RuntimeError, match="neither AVX-512 nor AVX2"):
            EXT.panel_gemm_nt(x, panels, n)
        return
    exact = x.double() @ w.double().t()
    tolerance = 1e-6 * k**0.5 * (x.abs().max() * w.abs().max()).item() + 1e-6
    assert_close(EXT.panel_gemm_nt(x, panels, n).double(), exact, tolerance, "x @ w^T")
    assert_close(EXT.panel_gemm_nt(x, panels, n, add).double(), exact + add.double(), tolerance,
                 "x @ w^T + add")  # fmt: skip
    guarded = torch.full((rows + 2, n), float("nan"))  # out, then two rows that must stay NaN
    out = guarded[:rows]
    result = EXT.panel_gemm_nt(x, panels, n, None, out)
    assert result.data_ptr() == out.data_ptr()
    assert_close(out.double(), exact, tolerance, "x @ w^T, into out")
    assert guarded[rows:].isnan().all(), "written past out"


def test_panel_gemm_reads_strided_rows():
    """x may be rows of a wider matrix (a step's slice of the gate gradients)."""
    wide = torch.randn(12, 100)
    x, w = wide[:, 10:50], torch.randn(40, 40)
    if not EXT.panel_gemm:
        with pytest.raises(RuntimeError, match="neither AVX-512 nor AVX2"):
            EXT.panel_gemm_nt(x, EXT.pack_panels(w), 40)
        return
    assert_close(EXT.panel_gemm_nt(x, EXT.pack_panels(w), 40), x @ w.t(), 1e-4, "strided x")


def test_panel_gemm_of_no_columns_is_zero_or_add():
    x, w, add = torch.randn(3, 0), torch.randn(40, 0), torch.randn(3, 40)
    panels = EXT.pack_panels(w)
    if not EXT.panel_gemm:
        with pytest.raises(RuntimeError, match="neither AVX-512 nor AVX2"):
            EXT.panel_gemm_nt(x, panels, 40)
        return
    out = torch.full((3, 40), float("nan"))
    assert torch.equal(EXT.panel_gemm_nt(x, panels, 40, None, out), torch.zeros(3, 40))
    assert torch.equal(EXT.panel_gemm_nt(x, panels, 40, add), add)


def test_panel_gemm_rejects_what_does_not_fit():
    x, w = torch.randn(4, 16), torch.randn(64, 16)
    with pytest.raises(RuntimeError, match="do not fit"):
        EXT.panel_gemm_nt(x, EXT.pack_panels(torch.randn(64, 15)), 64)
    with pytest.raises(RuntimeError, match="do not fit"):
        EXT.panel_gemm_nt(x, EXT.pack_panels(w), 65)  # more columns than the panels hold
    with pytest.raises(RuntimeError, match="do not fit"):
        EXT.panel_gemm_nt(x, EXT.pack_panels(w), 32)  # panels of a wider weight
    with pytest.raises(RuntimeError, match="do not fit"):
        EXT.panel_gemm_nt(x, EXT.pack_panels(w).transpose(0, 1).contiguous().transpose(0, 1), 64)
    with pytest.raises(RuntimeError, match="out must be a contiguous \\(4, 64\\)"):
        EXT.panel_gemm_nt(x, EXT.pack_panels(w), 64, None, torch.empty(4, 63))
    with pytest.raises(RuntimeError, match="float32 rows"):
        EXT.panel_gemm_nt(x.double(), EXT.pack_panels(w), 64)
    with pytest.raises(RuntimeError, match="2-D float32 weight, got 2-D Double"):
        EXT.pack_panels(w.double())


def test_pack_hands_out_panels_up_to_the_row_limit():
    w = torch.randn(1024, 256)
    small = gemm.pack(w, 32)
    large = gemm.pack(w, gemm.PANEL_MAX_ROWS + 1)
    if EXT.panel_gemm:
        assert small.shape == (32, 256, 32)
        assert_close(small[3, :, 5], w[3 * 32 + 5], 0.0, "panel layout")
        ragged = torch.randn(40, 70)  # W^T read in place, and a zero-padded last panel
        assert torch.equal(gemm.pack(ragged.t(), 8), gemm.pack(ragged.t().contiguous(), 8))
        assert torch.equal(gemm.pack(ragged, 8)[1, :, 8:], torch.zeros(70, 24))
    else:
        assert small is None or small.dim() == 2
    assert large is None or large.dim() == 2  # oneDNN's reordered weight, or none
    assert gemm.pack(w.double(), 32) is None  # float64 runs ATen


LAYERS = {
    "lstm": lambda: rnnkit.LSTM(7, 40, recurrent_dropout=0.2, bidirectional=True),
    "lstm_ln": lambda: rnnkit.LSTM(7, 40, layer_norm=True, peephole=True),
    "gru": lambda: rnnkit.GRU(7, 40, recurrent_dropout=0.2),
    "rnn": lambda: rnnkit.RNN(7, 40, recurrent_dropout=0.2),
    # K beyond one 256-deep pass both ways, and column tails (4H = 1200, H = 300)
    "lstm_wide": lambda: rnnkit.LSTM(7, 300),
}


@pytest.mark.parametrize("kind", sorted(LAYERS))
def test_recurrent_gemm_routes_agree(kind, monkeypatch):
    """Outputs and gradients of a float32 layer (padded batch, recurrent dropout) are the same
    whether the loops' recurrent GEMM runs on panels, oneDNN or ATen."""
    torch.manual_seed(0)
    layer = LAYERS[kind]().train()
    x = torch.randn(6, 11, 7, requires_grad=True)
    lengths = torch.tensor([6, 2, 0, 6, 4, 1, 3, 5, 6, 6, 2])
    packed = []
    pack = gemm.pack

    def recorded(weight, batch_size):
        packed.append(pack(weight, batch_size))
        return packed[-1]

    def run():
        torch.manual_seed(1)  # the same dropout masks on every route
        y, _ = layer(x, lengths=lengths)
        weight = torch.linspace(-1, 1, y.numel()).view_as(y)
        return [y, *torch.autograd.grad((y * weight).sum(), [x, *layer.parameters()])]

    monkeypatch.setattr(gemm, "pack", recorded)
    routes = {"default": run()}
    assert packed and all(p is not None and p.dim() == 3 for p in packed) == EXT.panel_gemm
    monkeypatch.setattr(gemm, "PANEL_MAX_ROWS", -1)
    routes["oneDNN"] = run()
    monkeypatch.setattr(gemm, "pack", lambda weight, batch_size: None)
    routes["ATen"] = run()
    for route in ("oneDNN", "ATen"):
        for i, (a, b) in enumerate(zip(routes["default"], routes[route], strict=True)):
            assert_close(a, b, 1e-5 * max(1.0, b.abs().max().item()), f"{route}, tensor {i}")
