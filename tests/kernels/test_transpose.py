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
    with pytest.raises(RuntimeError, match=r"out must be a contiguous \(C, R\) tensor"):
        EXT.transpose(torch.randn(3, 5), torch.empty(3, 5))
    with pytest.raises(RuntimeError, match=r"out must be a contiguous \(C, R\) tensor"):
        EXT.transpose(torch.randn(3, 5), torch.empty(5, 3, dtype=torch.float64))
