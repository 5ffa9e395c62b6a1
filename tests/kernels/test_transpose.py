"""The C++ tiled transpose behind the weight gradients (``gemm.transpose``) against torch's,
at shapes with ragged 8x8 blocks and 64x64 tiles, into a reused buffer, and its errors."""

import pytest
import torch

from rnnkit.kernels import gemm
from rnnkit.kernels.build import load_extension

EXT = load_extension("lstm")  # built in CI as everywhere with a compiler (test_fused_lstm)


@pytest.mark.parametrize("shape", [(1, 1), (7, 13), (8, 8), (64, 64), (65, 130), (300, 1024)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
def test_transpose_equals_torch(shape, dtype):
    x = torch.randn(*shape, dtype=dtype)
    assert torch.equal(EXT.transpose(x), x.t().contiguous())
    out = torch.full((shape[1], shape[0]), float("nan"), dtype=dtype)
    assert EXT.transpose(x, out).data_ptr() == out.data_ptr()
    assert torch.equal(out, x.t().contiguous())


def test_transpose_reads_a_strided_input_and_reuses_the_named_buffer():
    x = torch.randn(130, 70)[::2]  # rows 140 floats apart
    first = gemm.transpose(x, "test.transpose")
    assert torch.equal(first, x.t().contiguous())
    second = gemm.transpose(x * 2, "test.transpose")
    assert second.data_ptr() == first.data_ptr() and torch.equal(second, 2 * x.t())


def test_transpose_rejects_what_does_not_fit():
    with pytest.raises(RuntimeError, match="expected a 2-D tensor, got 3-D"):
        EXT.transpose(torch.randn(2, 3, 4))
    expected = r"out must be a contiguous \(C, >= column \+ R\) tensor of the input's dtype"
    with pytest.raises(RuntimeError, match=expected):
        EXT.transpose(torch.randn(3, 5), torch.empty(3, 5))
    with pytest.raises(RuntimeError, match=expected):
        EXT.transpose(torch.randn(3, 5), torch.empty(5, 3, dtype=torch.float64))
    with pytest.raises(RuntimeError, match=expected + ".*at column 2"):
        EXT.transpose(torch.randn(3, 5), torch.empty(5, 4), 2)
    with pytest.raises(RuntimeError, match=expected + ".*at column -1"):
        EXT.transpose(torch.randn(3, 5), torch.empty(5, 4), -1)


def test_row_blocks_are_transposed_side_by_side():
    """gemm.transpose of a list of row blocks equals the transpose of their concatenation,
    each block written at its column of the buffer (including an empty block)."""
    blocks = [torch.randn(3, 70), torch.randn(0, 70), torch.randn(65, 70), torch.randn(8, 70)]
    expected = torch.cat(blocks).t()
    assert torch.equal(gemm.transpose(blocks), expected)
    assert torch.equal(gemm.transpose(blocks, "test.blocks"), expected)


@pytest.mark.parametrize("onednn", [True, False], ids=["onednn", "aten"])
def test_rows_t_matmul_sums_row_blocks_on_both_routes(onednn, monkeypatch):
    """The weight gradients' product: blocks of rows, one after another, transposed against
    d, by oneDNN (blocks transposed first) or ATen (transposed views), equal to one product
    in float64."""
    if onednn and not gemm.onednn_applies(torch.zeros(1)):
        pytest.skip("this torch build has no oneDNN GEMMs")
    monkeypatch.setattr(gemm, "use_onednn", lambda t: onednn)
    blocks = [torch.randn(5, 7), torch.randn(64, 7), torch.randn(1, 7)]
    d = torch.randn(70, 33)
    got = gemm.rows_t_matmul(blocks, d, "test.rows_t")
    want = torch.cat(blocks).double().t() @ d.double()
    assert got.shape == (7, 33)
    assert torch.allclose(got.double(), want, rtol=1e-5, atol=1e-4)
