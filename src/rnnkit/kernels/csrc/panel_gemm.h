// The recurrent GEMM of a time loop, x (M, K) @ W^T with W (N, K), for the few rows of one
// step: W laid out once in column panels, an AVX-512 register-blocked kernel, no library call.
//
// A oneDNN call takes 17.3 us for one row at K = 256, N = 1024 (0.5 MFLOP) against this
// kernel's 4.9, 49.2 against 35.5 us at 32 rows, and a time loop makes two per step; from 128
// rows on the two are about even (`python -m benchmarks.ab_recurrent_gemm`).
#pragma once

#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace rnnkit {

constexpr int64_t kPanelWidth = 32;  // output columns per panel: two 16-float registers
constexpr int64_t kPanelRows = 8;    // rows of x per register block (16 accumulators)
constexpr int64_t kPanelDepth = 256;  // K per pass: a panel's slice is 32 KiB

#if defined(__AVX512F__)
constexpr bool kPanelGemm = true;
#else
constexpr bool kPanelGemm = false;
#endif

// W (N, K) float, any strides (W^T of a contiguous matrix is read in place) -> panels
// (P, K, kPanelWidth), P = ceil(N / kPanelWidth), zero past N:
// panels[p, k, j] = W[p * kPanelWidth + j, k]. One panel is one contiguous block.
inline at::Tensor pack_panels(const at::Tensor& w) {
  TORCH_CHECK(w.dim() == 2 && w.scalar_type() == at::kFloat,
              "pack_panels: expected a 2-D float32 weight, got ", w.dim(), "-D ", w.scalar_type());
  const int64_t N = w.size(0), K = w.size(1), P = (N + kPanelWidth - 1) / kPanelWidth;
  const int64_t s_n = w.stride(0), s_k = w.stride(1);
  auto panels = at::empty({P, K, kPanelWidth}, w.options());
  const float* W = w.data_ptr<float>();
  float* out = panels.data_ptr<float>();
  at::parallel_for(0, P, 1, [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      float* panel = out + p * K * kPanelWidth;
      const int64_t width = std::min(kPanelWidth, N - p * kPanelWidth);
      const float* rows = W + p * kPanelWidth * s_n;
      if (s_k == 1) {  // rows of W contiguous: read along them
        for (int64_t j = 0; j < width; ++j)
          for (int64_t k = 0; k < K; ++k) panel[k * kPanelWidth + j] = rows[j * s_n + k];
      } else {
        for (int64_t k = 0; k < K; ++k)
          for (int64_t j = 0; j < width; ++j) panel[k * kPanelWidth + j] = rows[j * s_n + k * s_k];
      }
      for (int64_t k = 0; k < K; ++k)
        for (int64_t j = width; j < kPanelWidth; ++j) panel[k * kPanelWidth + j] = 0;
    }
  });
  return panels;
}

#if defined(__AVX512F__)
// C[r, 0:width) (+)= sum_k A[r, k] * panel[k, 0:width) for r < MR: MR x 32 accumulators held
// in registers over the whole depth.
template <int MR>
inline void panel_block(const float* __restrict__ A, int64_t lda,
                        const float* __restrict__ panel, int64_t depth, float* __restrict__ C,
                        int64_t ldc, int64_t width, bool accumulate) {
  const __mmask16 lo = width >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << width) - 1);
  const __mmask16 hi = width >= 32 ? 0xFFFF
                       : width > 16 ? static_cast<__mmask16>((1u << (width - 16)) - 1)
                                    : 0;
  __m512 c0[MR], c1[MR];
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r) {
    c0[r] = accumulate ? _mm512_maskz_loadu_ps(lo, C + r * ldc) : _mm512_setzero_ps();
    c1[r] = accumulate ? _mm512_maskz_loadu_ps(hi, C + r * ldc + 16) : _mm512_setzero_ps();
  }
  for (int64_t k = 0; k < depth; ++k) {
    const __m512 b0 = _mm512_loadu_ps(panel + k * kPanelWidth);
    const __m512 b1 = _mm512_loadu_ps(panel + k * kPanelWidth + 16);
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
      const __m512 a = _mm512_set1_ps(A[r * lda + k]);
      c0[r] = _mm512_fmadd_ps(a, b0, c0[r]);
      c1[r] = _mm512_fmadd_ps(a, b1, c1[r]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r) {
    _mm512_mask_storeu_ps(C + r * ldc, lo, c0[r]);
    _mm512_mask_storeu_ps(C + r * ldc + 16, hi, c1[r]);
  }
}

inline void panel_rows(int64_t rows, const float* A, int64_t lda, const float* panel,
                       int64_t depth, float* C, int64_t ldc, int64_t width, bool accumulate) {
  switch (rows) {
    case 8: return panel_block<8>(A, lda, panel, depth, C, ldc, width, accumulate);
    case 7: return panel_block<7>(A, lda, panel, depth, C, ldc, width, accumulate);
    case 6: return panel_block<6>(A, lda, panel, depth, C, ldc, width, accumulate);
    case 5: return panel_block<5>(A, lda, panel, depth, C, ldc, width, accumulate);
    case 4: return panel_block<4>(A, lda, panel, depth, C, ldc, width, accumulate);
    case 3: return panel_block<3>(A, lda, panel, depth, C, ldc, width, accumulate);
    case 2: return panel_block<2>(A, lda, panel, depth, C, ldc, width, accumulate);
    case 1: return panel_block<1>(A, lda, panel, depth, C, ldc, width, accumulate);
  }
}
#endif

// C (M, N) = A (M, K) @ W^T, or C += it with accumulate; A's rows lda apart, C's ldc apart;
// W as pack_panels made it. Panels are split across threads, each thread runs its panels
// kPanelDepth of K at a time.
inline void panel_gemm(const float* A, int64_t M, int64_t K, int64_t lda, const float* panels,
                       int64_t N, float* C, int64_t ldc, bool accumulate) {
#if defined(__AVX512F__)
  const int64_t P = (N + kPanelWidth - 1) / kPanelWidth;
  const int64_t threads = std::max<int64_t>(1, at::get_num_threads());
  at::parallel_for(0, P, (P + threads - 1) / threads, [&](int64_t p0, int64_t p1) {
    for (int64_t k0 = 0; k0 < K; k0 += kPanelDepth) {
      const int64_t depth = std::min(kPanelDepth, K - k0);
      for (int64_t p = p0; p < p1; ++p) {
        const float* panel = panels + (p * K + k0) * kPanelWidth;
        const int64_t width = std::min(kPanelWidth, N - p * kPanelWidth);
        for (int64_t m0 = 0; m0 < M; m0 += kPanelRows) {
          panel_rows(std::min(kPanelRows, M - m0), A + m0 * lda + k0, lda, panel, depth,
                     C + m0 * ldc + p * kPanelWidth, ldc, width, accumulate || k0 > 0);
        }
      }
    }
  });
#else
  TORCH_CHECK(false, "panel_gemm: this build has no AVX-512");
#endif
}

// For loops written over any scalar type: panels are float32 only (pack_panels), so a loop
// that holds panels never reaches this.
inline void panel_gemm(const double*, int64_t, int64_t, int64_t, const float*, int64_t, double*,
                       int64_t, bool) {
  TORCH_CHECK(false, "panel_gemm: the panel kernel is float32 only");
}

// x (M, K) float @ W^T (+ add (M, N)) -> (M, N), W as pack_panels made it; written into out
// (contiguous (M, N), not overlapping x) if given, else into a new tensor.
inline at::Tensor panel_gemm_nt(const at::Tensor& x, const at::Tensor& panels, int64_t N,
                                const std::optional<at::Tensor>& add = std::nullopt,
                                const std::optional<at::Tensor>& out = std::nullopt) {
  TORCH_CHECK(x.dim() == 2 && x.scalar_type() == at::kFloat && x.stride(1) == 1,
              "panel_gemm_nt: expected float32 rows with unit stride");
  TORCH_CHECK(panels.dim() == 3 && panels.is_contiguous() && panels.size(1) == x.size(1) &&
                  panels.size(2) == kPanelWidth &&
                  panels.size(0) == (N + kPanelWidth - 1) / kPanelWidth,
              "panel_gemm_nt: panels ", panels.sizes(), " do not fit x ", x.sizes(), " and N ", N);
  auto y = out ? *out : at::empty({x.size(0), N}, x.options());
  TORCH_CHECK(y.is_contiguous() && y.size(0) == x.size(0) && y.size(1) == N,
              "panel_gemm_nt: out must be a contiguous (", x.size(0), ", ", N, ") tensor");
  if (add) {
    y.copy_(*add);
  } else if (x.size(1) == 0) {
    y.zero_();  // an empty sum: the kernel would write nothing
  }
  panel_gemm(x.data_ptr<float>(), x.size(0), x.size(1), x.stride(0),
             panels.data_ptr<float>(), N, y.data_ptr<float>(), N, add.has_value());
  return y;
}

}  // namespace rnnkit
