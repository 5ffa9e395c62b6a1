// The recurrent GEMM of a time loop, x (M, K) @ W^T with W (N, K), for the few rows of one
// step: W laid out once in column panels, a register-blocked kernel (AVX-512, or AVX2 with FMA)
// with no library call.
//
// A oneDNN call takes 17.3 us for one row at K = 256, N = 1024 (0.5 MFLOP) against this
// kernel's 4.9, 49.2 against 35.5 us at 32 rows, and a time loop makes two per step; from 128
// rows on the two are about even (`python -m benchmarks.ab_recurrent_gemm`; AVX-512).
#pragma once

#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>

#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif

namespace rnnkit {

constexpr int64_t kPanelWidth = 32;  // output columns per panel
// K per pass: a panel's slice is up to 128 KiB, streamed from L2. One pass over K up to 1024
// instead of passes of 256 (a slice of 32 KiB, L1's size) stores and reloads C less: on AVX2
// (Zen 3) whole GRU steps at config b 1.03-1.05x, the rest 1.00-1.02x, results bit-identical
// (docs/performance.md).
constexpr int64_t kPanelDepth = 1024;

#if defined(__AVX512F__)
#define RNNKIT_PANEL_KERNEL 1
// A register of 16 floats, and the masks that load and store its first n lanes.
struct PanelVec {
  static constexpr const char* kIsa = "avx512";
  using Reg = __m512;
  using Mask = __mmask16;
  static constexpr int64_t kLanes = 16;
  static Mask first(int64_t n) {
    return n >= kLanes ? Mask(0xFFFF) : n <= 0 ? Mask(0) : static_cast<Mask>((1u << n) - 1);
  }
  static Reg load(const float* p) { return _mm512_loadu_ps(p); }
  static Reg load(const float* p, Mask m) { return _mm512_maskz_loadu_ps(m, p); }
  static void store(float* p, Reg v, Mask m) { _mm512_mask_storeu_ps(p, m, v); }
  static Reg zero() { return _mm512_setzero_ps(); }
  static Reg broadcast(const float* p) { return _mm512_set1_ps(*p); }
  static Reg fma(Reg a, Reg b, Reg c) { return _mm512_fmadd_ps(a, b, c); }
};
constexpr int64_t kPanelRows = 8;  // rows of x per register block: 8 x 2 accumulators
#elif defined(__AVX2__) && defined(__FMA__)
#define RNNKIT_PANEL_KERNEL 1
// A register of 8 floats (AVX2), and the masks that load and store its first n lanes.
struct PanelVec {
  static constexpr const char* kIsa = "avx2";
  using Reg = __m256;
  using Mask = __m256i;
  static constexpr int64_t kLanes = 8;
  static Mask first(int64_t n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(std::clamp<int64_t>(n, 0, 8))),
                              _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  static Reg load(const float* p) { return _mm256_loadu_ps(p); }
  static Reg load(const float* p, Mask m) { return _mm256_maskload_ps(p, m); }
  static void store(float* p, Reg v, Mask m) { _mm256_maskstore_ps(p, m, v); }
  static Reg zero() { return _mm256_setzero_ps(); }
  static Reg broadcast(const float* p) { return _mm256_broadcast_ss(p); }
  static Reg fma(Reg a, Reg b, Reg c) { return _mm256_fmadd_ps(a, b, c); }
};
// 6 x 2 accumulators, 2 panel registers and a broadcast: 15 of AVX2's 16 registers (each
// panel of 32 columns in two blocks of 16)
constexpr int64_t kPanelRows = 6;
#endif

#if defined(RNNKIT_PANEL_KERNEL)
constexpr const char* kPanelIsa = PanelVec::kIsa;
static_assert(kPanelRows >= 1 && kPanelRows <= 8, "panel_rows dispatches 1 to 8 rows");
#else
constexpr const char* kPanelIsa = "";  // no panel kernel in this build
#endif
constexpr bool kPanelGemm = kPanelIsa[0] != '\0';

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

#if defined(RNNKIT_PANEL_KERNEL)
// Columns of a panel one register block covers: two registers per row.
constexpr int64_t kBlockColumns = 2 * PanelVec::kLanes;

// C[r, 0:width) (+)= sum_k A[r, k] * panel[k, 0:width) for r < MR, width <= kBlockColumns
// (panel rows kPanelWidth apart): MR x 2 accumulators held in registers over the whole depth.
template <int MR>
inline void panel_block(const float* __restrict__ A, int64_t lda,
                        const float* __restrict__ panel, int64_t depth, float* __restrict__ C,
                        int64_t ldc, int64_t width, bool accumulate) {
  using V = PanelVec;
  const typename V::Mask lo = V::first(width), hi = V::first(width - V::kLanes);
  typename V::Reg c0[MR], c1[MR];
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r) {
    c0[r] = accumulate ? V::load(C + r * ldc, lo) : V::zero();
    c1[r] = accumulate ? V::load(C + r * ldc + V::kLanes, hi) : V::zero();
  }
  for (int64_t k = 0; k < depth; ++k) {
    const typename V::Reg b0 = V::load(panel + k * kPanelWidth);
    const typename V::Reg b1 = V::load(panel + k * kPanelWidth + V::kLanes);
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
      const typename V::Reg a = V::broadcast(A + r * lda + k);
      c0[r] = V::fma(a, b0, c0[r]);
      c1[r] = V::fma(a, b1, c1[r]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r) {
    V::store(C + r * ldc, c0[r], lo);
    V::store(C + r * ldc + V::kLanes, c1[r], hi);
  }
}

// panel_block over rows <= kPanelRows and the panel's first width columns (one register block
// per kBlockColumns of them).
inline void panel_rows(int64_t rows, const float* A, int64_t lda, const float* panel,
                       int64_t depth, float* C, int64_t ldc, int64_t width, bool accumulate) {
  for (int64_t j = 0; j < width; j += kBlockColumns) {
    const int64_t w = std::min(kBlockColumns, width - j);
    switch (rows) {
      case 8: panel_block<8>(A, lda, panel + j, depth, C + j, ldc, w, accumulate); break;
      case 7: panel_block<7>(A, lda, panel + j, depth, C + j, ldc, w, accumulate); break;
      case 6: panel_block<6>(A, lda, panel + j, depth, C + j, ldc, w, accumulate); break;
      case 5: panel_block<5>(A, lda, panel + j, depth, C + j, ldc, w, accumulate); break;
      case 4: panel_block<4>(A, lda, panel + j, depth, C + j, ldc, w, accumulate); break;
      case 3: panel_block<3>(A, lda, panel + j, depth, C + j, ldc, w, accumulate); break;
      case 2: panel_block<2>(A, lda, panel + j, depth, C + j, ldc, w, accumulate); break;
      case 1: panel_block<1>(A, lda, panel + j, depth, C + j, ldc, w, accumulate); break;
      default: TORCH_CHECK(false, "panel_rows: ", rows, " rows; a block holds 1 to ", kPanelRows);
    }
  }
}
#endif

// C (M, N) = A (M, K) @ W^T, or C += it with accumulate; A's rows lda apart, C's ldc apart;
// W as pack_panels made it. Panels are split across threads, each thread runs its panels
// kPanelDepth of K at a time.
inline void panel_gemm(const float* A, int64_t M, int64_t K, int64_t lda, const float* panels,
                       int64_t N, float* C, int64_t ldc, bool accumulate) {
#if defined(RNNKIT_PANEL_KERNEL)
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
  TORCH_CHECK(false, "panel_gemm: this build has neither AVX-512 nor AVX2 with FMA");
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
