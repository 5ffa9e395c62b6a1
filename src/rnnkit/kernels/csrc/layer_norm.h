// Layer normalisation of one row's blocks (Ba et al. 2016, as torch.nn.functional.layer_norm
// without affine parameters), forward and backward, shared by the layer-normalised LSTM and GRU.
#pragma once

#include <cmath>
#include <cstdint>

namespace rnnkit {

constexpr double kEps = 1e-5;  // torch.nn.functional.layer_norm's default

// Normalise v (H) into v_hat; return 1 / std.
template <typename scalar_t>
inline scalar_t normalise(const scalar_t* __restrict__ v, scalar_t* __restrict__ v_hat, int64_t H) {
  scalar_t sum = 0, sq = 0;
#pragma omp simd reduction(+ : sum)
  for (int64_t j = 0; j < H; ++j) sum += v[j];
  const scalar_t mean = sum / H;
#pragma omp simd reduction(+ : sq)
  for (int64_t j = 0; j < H; ++j) sq += (v[j] - mean) * (v[j] - mean);  // two passes: no cancellation
  const scalar_t var = sq / H;
  const scalar_t rstd = scalar_t(1) / std::sqrt(var + scalar_t(kEps));
#pragma omp simd
  for (int64_t j = 0; j < H; ++j) v_hat[j] = (v[j] - mean) * rstd;
  return rstd;
}

// Backward of v_hat = normalise(v): d_v = rstd * (d_hat - mean(d_hat) - v_hat * mean(d_hat v_hat)).
template <typename scalar_t>
inline void normalise_backward(const scalar_t* __restrict__ d_hat,
                               const scalar_t* __restrict__ v_hat, scalar_t rstd,
                               scalar_t* __restrict__ d_v, int64_t H) {
  scalar_t s1 = 0, s2 = 0;
#pragma omp simd reduction(+ : s1, s2)
  for (int64_t j = 0; j < H; ++j) {
    s1 += d_hat[j];
    s2 += d_hat[j] * v_hat[j];
  }
  s1 /= H;
  s2 /= H;
#pragma omp simd
  for (int64_t j = 0; j < H; ++j) d_v[j] = rstd * (d_hat[j] - s1 - v_hat[j] * s2);
}

// Backward of y = normalise_k(v) * gain (+ bias) for the K gate blocks of one row, given
// d_y (KH): writes d_v (KH) and adds to acc_gain (KH) and, if given, acc_bias (KH). The sums of
// normalise_backward are taken in the same pass as the gain and bias sums. d_v may be d_y.
template <int K, typename scalar_t>
inline void gate_norm_backward(const scalar_t* d_y, const scalar_t* __restrict__ gain,
                               const scalar_t* __restrict__ v_hat,
                               const scalar_t* __restrict__ rstd,
                               scalar_t* __restrict__ acc_gain, scalar_t* acc_bias,
                               scalar_t* d_v, int64_t H) {
  for (int64_t k = 0; k < K; ++k) {
    const scalar_t *dy = d_y + k * H, *gk = gain + k * H, *vk = v_hat + k * H;
    scalar_t* __restrict__ ag = acc_gain + k * H;
    scalar_t s1 = 0, s2 = 0;
#pragma omp simd reduction(+ : s1, s2)
    for (int64_t j = 0; j < H; ++j) {
      const scalar_t d_hat = dy[j] * gk[j];
      ag[j] += dy[j] * vk[j];
      s1 += d_hat;
      s2 += d_hat * vk[j];
    }
    if (acc_bias) {
      scalar_t* __restrict__ ab = acc_bias + k * H;
#pragma omp simd
      for (int64_t j = 0; j < H; ++j) ab[j] += dy[j];
    }
    s1 /= H;
    s2 /= H;
    const scalar_t r = rstd[k];
    scalar_t* out = d_v + k * H;  // may be dy: element j is read, then written
#pragma omp simd
    for (int64_t j = 0; j < H; ++j) out[j] = r * (dy[j] * gk[j] - s1 - vk[j] * s2);
  }
}

// Forward of y = normalise_k(v) * gain for the K gate blocks of one row v (KH), in place:
// v_hat (KH) and rstd (K) are saved for gate_norm_backward, v becomes y.
template <int K, typename scalar_t>
inline void gate_norm_forward(scalar_t* v, const scalar_t* __restrict__ gain,
                              scalar_t* __restrict__ v_hat, scalar_t* __restrict__ rstd,
                              int64_t H) {
  for (int64_t k = 0; k < K; ++k) rstd[k] = normalise(v + k * H, v_hat + k * H, H);
#pragma omp simd
  for (int64_t m = 0; m < K * H; ++m) v[m] = v_hat[m] * gain[m];
}

}  // namespace rnnkit
