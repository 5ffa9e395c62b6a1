// The linear recurrence of minGRU/minLSTM, h_t = exp(log_a_t) * h_{t-1} + b_t, solved by the
// plain sequential loop over t (exact up to float rounding, unlike a chunked or log-space scan),
// and its reverse-time backward. Every column of the (T, B*H) layout is independent: each
// thread owns a contiguous block of columns for all t, and the inner loop over that block
// vectorises.
#include "common.h"

namespace rnnkit {

inline float exp_(float x) { return exp_approx(x); }
inline double exp_(double x) { return std::exp(x); }

// Columns [0, C) split into contiguous blocks across threads: at least ~32k element-steps per
// task, and blocks a multiple of 16 columns (whole cache lines) when more than one.
template <typename F>
inline void for_columns(int64_t C, int64_t T, const F& body) {
  int64_t grain = std::max<int64_t>(16, 32768 / std::max<int64_t>(1, T));
  grain = (grain + 15) / 16 * 16;
  at::parallel_for(0, C, grain, [&](int64_t begin, int64_t end) { body(begin, end); });
}

// One step of the forward over a block of columns: out = exp(la) * prev + b.
template <typename scalar_t>
inline void forward_block(const scalar_t* __restrict__ la, const scalar_t* __restrict__ b,
                          const scalar_t* __restrict__ prev, scalar_t* __restrict__ out,
                          int64_t width) {
#pragma omp simd
  for (int64_t j = 0; j < width; ++j) out[j] = exp_(la[j]) * prev[j] + b[j];
}

// One step of the backward over a block of columns: g = d_h + carry; d_b = g;
// d_log_a = g * a * prev; carry = a * g, with a = exp(la).
template <typename scalar_t>
inline void backward_block(const scalar_t* __restrict__ d_h, const scalar_t* __restrict__ la,
                           const scalar_t* __restrict__ prev, scalar_t* __restrict__ d_la,
                           scalar_t* __restrict__ d_b, scalar_t* __restrict__ carry,
                           int64_t width) {
#pragma omp simd
  for (int64_t j = 0; j < width; ++j) {
    const scalar_t a = exp_(la[j]);
    const scalar_t g = d_h[j] + carry[j];
    d_b[j] = g;
    d_la[j] = g * a * prev[j];
    carry[j] = a * g;
  }
}

// log_a, b: (T, B, H); h0: (B, H). Returns h (T, B, H).
Tensor linear_recurrence_forward(const Tensor& log_a, const Tensor& b, const Tensor& h0) {
  TORCH_CHECK(log_a.is_contiguous() && b.is_contiguous() && h0.is_contiguous(),
              "rnnkit linear_recurrence: contiguous inputs");
  TORCH_CHECK(log_a.sizes() == b.sizes() && log_a.dim() == 3 &&
                  h0.sizes() == log_a.sizes().slice(1),
              "rnnkit linear_recurrence: log_a, b (T, B, H) and h0 (B, H)");
  const int64_t T = log_a.size(0), C = log_a.size(1) * log_a.size(2);
  auto h = at::empty_like(log_a);
  AT_DISPATCH_FLOATING_TYPES(log_a.scalar_type(), "rnnkit_linear_recurrence_forward", [&] {
    const scalar_t* LA = log_a.data_ptr<scalar_t>();
    const scalar_t* Bv = b.data_ptr<scalar_t>();
    const scalar_t* H0 = h0.data_ptr<scalar_t>();
    scalar_t* Hs = h.data_ptr<scalar_t>();
    for_columns(C, T, [&](int64_t begin, int64_t end) {
      const int64_t width = end - begin;
      for (int64_t t = 0; t < T; ++t) {
        const scalar_t* prev = (t == 0 ? H0 : Hs + (t - 1) * C) + begin;
        forward_block(LA + t * C + begin, Bv + t * C + begin, prev, Hs + t * C + begin, width);
      }
    });
  });
  return h;
}

// d_h: (T, B, H) gradient of every h_t; log_a, h: the forward's input and output; h0: (B, H).
// With g_t = d_h_t + a_{t+1} g_{t+1} (the total gradient reaching h_t), returns
// d_log_a_t = g_t a_t h_{t-1}, d_b_t = g_t, and d_h0 = a_0 g_0.
std::vector<Tensor> linear_recurrence_backward(const Tensor& d_h, const Tensor& log_a,
                                               const Tensor& h, const Tensor& h0) {
  TORCH_CHECK(d_h.is_contiguous() && log_a.is_contiguous() && h.is_contiguous() &&
                  h0.is_contiguous(),
              "rnnkit linear_recurrence: contiguous inputs");
  const int64_t T = log_a.size(0), C = log_a.size(1) * log_a.size(2);
  auto d_log_a = at::empty_like(log_a);
  auto d_b = at::empty_like(log_a);
  auto d_h0 = at::empty_like(h0);
  AT_DISPATCH_FLOATING_TYPES(log_a.scalar_type(), "rnnkit_linear_recurrence_backward", [&] {
    const scalar_t* dH = d_h.data_ptr<scalar_t>();
    const scalar_t* LA = log_a.data_ptr<scalar_t>();
    const scalar_t* Hs = h.data_ptr<scalar_t>();
    const scalar_t* H0 = h0.data_ptr<scalar_t>();
    scalar_t* dLA = d_log_a.data_ptr<scalar_t>();
    scalar_t* dB = d_b.data_ptr<scalar_t>();
    scalar_t* dH0 = d_h0.data_ptr<scalar_t>();
    for_columns(C, T, [&](int64_t begin, int64_t end) {
      const int64_t width = end - begin;
      // carry = a_{t+1} g_{t+1}, kept in d_h0's block (its final value is d_h0 = a_0 g_0).
      scalar_t* carry = dH0 + begin;
      std::fill(carry, carry + width, scalar_t(0));
      for (int64_t t = T - 1; t >= 0; --t) {
        const int64_t at = t * C + begin;
        const scalar_t* prev = (t == 0 ? H0 : Hs + (t - 1) * C) + begin;
        backward_block(dH + at, LA + at, prev, dLA + at, dB + at, carry, width);
      }
    });
  });
  return {d_log_a, d_b, d_h0};
}

}  // namespace rnnkit

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("linear_recurrence_forward", &rnnkit::linear_recurrence_forward,
        "h_t = exp(log_a_t) * h_{t-1} + b_t over t");
  m.def("linear_recurrence_backward", &rnnkit::linear_recurrence_backward,
        "Backward of linear_recurrence_forward");
}
