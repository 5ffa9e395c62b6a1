// Shared pieces of rnnkit's CPU kernels: GEMMs through oneDNN where the machine has it (with a
// plain ATen fallback), and element-wise math that the compiler can vectorise.
#pragma once

#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <ATen/core/dispatch/Dispatcher.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <optional>
#include <type_traits>
#include <vector>

#include "panel_gemm.h"

namespace rnnkit {

using at::Tensor;

// The recurrent GEMMs take w (N, K) and, from rnnkit.kernels.gemm.pack, either w in panels
// (3-D, pack_panels; float32 where the build has a panel kernel: AVX-512 or AVX2) or a oneDNN-packed weight (float32
// on CPU), or nothing (plain ATen).
inline bool is_panels(const std::optional<Tensor>& w_packed) {
  return w_packed.has_value() && w_packed->dim() == 3;
}

// y = x @ w^T + add. `scratch` (contiguous (M, N), owned by the loop) is where the panel kernel
// writes y; the other routes return a tensor of their own (no copy into scratch).
inline Tensor gemm_nt_add(const Tensor& x, const Tensor& w, const std::optional<Tensor>& w_packed,
                         const Tensor& add, const Tensor& scratch) {
  if (is_panels(w_packed)) return panel_gemm_nt(x, *w_packed, w.size(0), add, scratch);
  if (w_packed.has_value()) {
    static auto op = c10::Dispatcher::singleton()
                         .findSchemaOrThrow("mkldnn::_linear_pointwise", "binary")
                         .typed<Tensor(const Tensor&, const Tensor&, const Tensor&,
                                       const std::optional<Tensor>&, c10::string_view)>();
    return op.call(x, add, *w_packed, std::nullopt, "add");
  }
  return at::addmm(add, x, w.t());
}

// y = x @ w^T, where the routes put it: see gemm_nt_add.
inline Tensor gemm_nt(const Tensor& x, const Tensor& w, const std::optional<Tensor>& w_packed,
                      const std::optional<Tensor>& scratch = std::nullopt) {
  if (is_panels(w_packed)) return panel_gemm_nt(x, *w_packed, w.size(0), std::nullopt, scratch);
  if (w_packed.has_value()) {
    static auto op =
        c10::Dispatcher::singleton()
            .findSchemaOrThrow("mkldnn::_linear_pointwise", "")
            .typed<Tensor(const Tensor&, const Tensor&, const std::optional<Tensor>&,
                          c10::string_view, c10::List<std::optional<c10::Scalar>>,
                          std::optional<c10::string_view>)>();
    return op.call(x, *w_packed, std::nullopt, "none", c10::List<std::optional<c10::Scalar>>(),
                   std::nullopt);
  }
  return at::mm(x, w.t());
}

// out (contiguous (M, N)) = x @ w^T, on every route (oneDNN's result is copied; out must not
// overlap x).
inline void gemm_nt_into(const Tensor& x, const Tensor& w, const std::optional<Tensor>& w_packed,
                         const Tensor& out) {
  if (is_panels(w_packed)) {
    panel_gemm_nt(x, *w_packed, w.size(0), std::nullopt, out);
  } else if (w_packed.has_value()) {
    out.copy_(gemm_nt(x, w, w_packed));
  } else {
    at::mm_out(const_cast<Tensor&>(out), x, w.t());
  }
}

// Backward of a projection h = W_hr p (w_hr (R, H), torch.nn's proj_size) for a step's rows:
// d_r (n, R) = d_out + d_carried, the gradient of h (kept by the caller for W_hr's weight
// gradient), and d_p (n, H) = d_r @ W_hr. w_hr_t_packed: W_hr^T as gemm_nt's routes take it.
inline void projection_backward(const Tensor& d_out, const Tensor& d_carried, const Tensor& w_hr,
                                const std::optional<Tensor>& w_hr_t_packed, Tensor d_r,
                                const Tensor& d_p) {
  at::add_out(d_r, d_out, d_carried);
  gemm_nt_into(d_r, w_hr.t(), w_hr_t_packed, d_p);
}

// exp for float32: Cephes' polynomial after range reduction (relative error ~2e-7), written
// with selects instead of branches so loops over it vectorise. Overflow gives inf, underflow 0,
// and NaN stays NaN (both comparisons are false for it).
inline float exp_approx(float x) {
  const float fn = std::floor(x * 1.44269504088896341f + 0.5f);
  const float r = x - fn * 0.693359375f + fn * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  int32_t n = static_cast<int32_t>(fn);
  n = n < -126 ? -126 : (n > 127 ? 127 : n);
  const int32_t bits = (n + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  float v = p * scale;
  v = x > 88.0f ? std::numeric_limits<float>::infinity() : v;
  return x < -87.0f ? 0.0f : v;
}

inline float sigmoid(float x) { return 1.0f / (1.0f + exp_approx(-x)); }
inline float tanh_(float x) { return 2.0f / (1.0f + exp_approx(-2.0f * x)) - 1.0f; }
inline double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }
inline double tanh_(double x) { return std::tanh(x); }

// A batch's rows split between threads for a whole sequence: split s of S owns rows s, s + S,
// s + 2S, ... and runs their recurrent GEMM (the panel kernel) and gate math step after step,
// with no synchronisation between steps (a row's state depends on that row only). Interleaved
// rows keep the splits even when sequences end at different steps (sorted batches). With one
// split, each step's GEMM columns and gate rows are shared between the threads instead.
// rnnkit.kernels.lstm.row_splits chooses S.
inline void check_splits(int64_t splits, const std::optional<Tensor>& w_packed) {
  TORCH_CHECK(splits >= 1 && (splits == 1 || is_panels(w_packed)),
              "row splits need the panel kernel's weights and splits >= 1; got ", splits);
}

// The rows split s of S owns among the first n.
inline int64_t split_rows(int64_t n, int64_t s, int64_t S) {
  return n > s ? (n - s + S - 1) / S : 0;
}

// Rows [0, n) of a loop body, split across threads when the work is worth it.
template <typename F>
inline void for_rows(int64_t n, int64_t row_width, const F& body) {
  const int64_t grain = std::max<int64_t>(1, 2048 / std::max<int64_t>(1, row_width));
  at::parallel_for(0, n, grain, [&](int64_t begin, int64_t end) { body(begin, end); });
}

#if defined(__AVX2__)
#include <immintrin.h>
// 8x8 float block: dst[c * ld + b] = src[b * lds + c], b, c < 8.
inline void transpose8x8(const float* src, int64_t lds, float* dst, int64_t ld) {
  __m256 r[8], t[8];
  for (int k = 0; k < 8; ++k) r[k] = _mm256_loadu_ps(src + k * lds);
  for (int k = 0; k < 8; k += 2) {
    t[k] = _mm256_unpacklo_ps(r[k], r[k + 1]);
    t[k + 1] = _mm256_unpackhi_ps(r[k], r[k + 1]);
  }
  for (int k = 0; k < 8; k += 4) {
    r[k] = _mm256_shuffle_ps(t[k], t[k + 2], 0x44);
    r[k + 1] = _mm256_shuffle_ps(t[k], t[k + 2], 0xEE);
    r[k + 2] = _mm256_shuffle_ps(t[k + 1], t[k + 3], 0x44);
    r[k + 3] = _mm256_shuffle_ps(t[k + 1], t[k + 3], 0xEE);
  }
  for (int k = 0; k < 4; ++k) {
    _mm256_storeu_ps(dst + k * ld, _mm256_permute2f128_ps(r[k], r[k + 4], 0x20));
    _mm256_storeu_ps(dst + (k + 4) * ld, _mm256_permute2f128_ps(r[k], r[k + 4], 0x31));
  }
}
#endif

// dst[c * ld + b] = src[b * C + c] for b < n, c < C: a (n, C) block written transposed into a
// column block of a (C, ld) matrix. Strided writes: for large C prefer transpose_into after the
// loop (measured 4.6 ms vs ~1 ms per LSTM backward at B=32, T=128, H=256, before both took
// their 8x8 blocks along dst's rows).
template <typename scalar_t>
inline void transpose_block(const scalar_t* __restrict__ src, int64_t n, int64_t C,
                            scalar_t* __restrict__ dst, int64_t ld) {
  int64_t c0 = 0, b0 = 0;
#if defined(__AVX2__)
  if constexpr (std::is_same_v<scalar_t, float>) {
    b0 = n - n % 8;
    c0 = C - C % 8;
    for (int64_t c = 0; c < c0; c += 8)  // along dst's rows: whole lines get written
      for (int64_t b = 0; b < b0; b += 8) transpose8x8(src + b * C + c, C, dst + c * ld + b, ld);
  }
#endif
  for (int64_t c = 0; c < C; ++c)  // the rest: ragged rows and columns, or no AVX2
    for (int64_t b = (c < c0 ? b0 : 0); b < n; ++b) dst[c * ld + b] = src[b * C + c];
}

// dst (C, R) = src (R, C)^T, in 64x64 tiles (both sides stay in cache and TLB) of 8x8 AVX2
// blocks, tiles spread over threads. The weight-gradient GEMM wants its operands this way.
// ld is dst's row stride (R by default: a whole matrix; larger to fill a column block).
template <typename scalar_t>
inline void transpose_into(const scalar_t* __restrict__ src, int64_t R, int64_t C,
                           scalar_t* __restrict__ dst, int64_t ld = -1) {
  if (ld < 0) ld = R;
  constexpr int64_t kTile = 64;
  const int64_t tiles_r = (R + kTile - 1) / kTile, tiles_c = (C + kTile - 1) / kTile;
  at::parallel_for(0, tiles_r * tiles_c, 4, [&](int64_t begin, int64_t end) {
    for (int64_t tile = begin; tile < end; ++tile) {
      const int64_t r0 = (tile / tiles_c) * kTile, c0 = (tile % tiles_c) * kTile;
      const int64_t r1 = std::min(R, r0 + kTile), c1 = std::min(C, c0 + kTile);
      int64_t r_vec = r0, c_vec = c0;
#if defined(__AVX2__)
      if constexpr (std::is_same_v<scalar_t, float>) {
        r_vec = r0 + (r1 - r0) / 8 * 8;
        c_vec = c0 + (c1 - c0) / 8 * 8;
        for (int64_t c = c0; c < c_vec; c += 8)  // along dst's rows: whole lines get written
          for (int64_t r = r0; r < r_vec; r += 8)
            transpose8x8(src + r * C + c, C, dst + c * ld + r, ld);
      }
#endif
      for (int64_t c = c0; c < c1; ++c)  // ragged edges, or no AVX2
        for (int64_t r = (c < c_vec ? r_vec : r0); r < r1; ++r) dst[c * ld + r] = src[r * C + c];
    }
  });
}

// dst (n, H) = h (n, H) * mask (n, H), or a copy of h without a mask: the recurrent GEMM's input
// at one step, written where the weight gradient reads it back after the loop.
template <typename scalar_t>
inline void recurrent_input_rows(const scalar_t* __restrict__ h, const scalar_t* mask,
                                 scalar_t* __restrict__ dst, int64_t n, int64_t H) {
  if (mask == nullptr) {
    std::memcpy(dst, h, sizeof(scalar_t) * n * H);
    return;
  }
#pragma omp simd
  for (int64_t k = 0; k < n * H; ++k) dst[k] = h[k] * mask[k];
}

// Rows [n, B) of a (B, C) block set to zero (the inactive sequences of a sorted batch).
template <typename scalar_t>
inline void zero_rows_from(scalar_t* data, int64_t n, int64_t B, int64_t C) {
  if (n < B) std::memset(data + n * C, 0, sizeof(scalar_t) * (B - n) * C);
}

}  // namespace rnnkit
