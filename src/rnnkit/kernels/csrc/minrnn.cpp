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

namespace rnnkit {
// minGRU / minLSTM with their gate math fused into the sequential loop (Feng et al. 2024;
// equations as in rnnkit.cells.mingru), one pass over memory forward and one backward.
// xp: (T, B, G) projected input, G = 2H (minGRU: [k; h~]) or 3H (minLSTM: [k_f; k_i; h~]);
// valid: (T, B) uint8 or empty; padded steps carry the state. Every (b, j) column is an
// independent recurrence: threads split the columns, the time loop runs inside.
template <bool kLSTM, typename scalar_t>
void min_rnn_forward_cols(const scalar_t* __restrict__ xp, const scalar_t* __restrict__ h0,
                          const uint8_t* valid, scalar_t* __restrict__ h, int64_t T, int64_t B,
                          int64_t H, int64_t b) {
  const int64_t G = (kLSTM ? 3 : 2) * H;
  std::vector<scalar_t> state(h0 + b * H, h0 + (b + 1) * H);
  scalar_t* __restrict__ s = state.data();
  for (int64_t t = 0; t < T; ++t) {
    scalar_t* __restrict__ out = h + (t * B + b) * H;
    if (valid && !valid[t * B + b]) {
      std::memcpy(out, s, sizeof(scalar_t) * H);
      continue;
    }
    const scalar_t* __restrict__ x = xp + (t * B + b) * G;
#pragma omp simd
    for (int64_t j = 0; j < H; ++j) {
      scalar_t a;  // weight of h_{t-1}
      if constexpr (kLSTM) {
        const scalar_t f = sigmoid(x[j]), i = sigmoid(x[H + j]);
        a = f / (f + i);
      } else {
        a = 1 - sigmoid(x[j]);
      }
      const scalar_t h_tilde = x[(kLSTM ? 2 : 1) * H + j];
      s[j] = a * s[j] + (1 - a) * h_tilde;
      out[j] = s[j];
    }
  }
}

template <bool kLSTM, typename scalar_t>
void min_rnn_backward_cols(const scalar_t* __restrict__ d_h, const scalar_t* __restrict__ xp,
                           const scalar_t* __restrict__ h0, const scalar_t* __restrict__ h,
                           const uint8_t* valid, scalar_t* __restrict__ d_xp,
                           scalar_t* __restrict__ d_h0, int64_t T, int64_t B, int64_t H,
                           int64_t b) {
  const int64_t G = (kLSTM ? 3 : 2) * H;
  std::vector<scalar_t> carry_buf(H, scalar_t(0));
  scalar_t* __restrict__ carry = carry_buf.data();  // d loss / d h_t from later steps
  for (int64_t t = T - 1; t >= 0; --t) {
    const scalar_t* __restrict__ dh = d_h + (t * B + b) * H;
    scalar_t* __restrict__ dx = d_xp + (t * B + b) * G;
    if (valid && !valid[t * B + b]) {
#pragma omp simd
      for (int64_t j = 0; j < H; ++j) carry[j] += dh[j];
      std::memset(dx, 0, sizeof(scalar_t) * G);
      continue;
    }
    const scalar_t* __restrict__ x = xp + (t * B + b) * G;
    const scalar_t* __restrict__ h_prev = t > 0 ? h + ((t - 1) * B + b) * H : h0 + b * H;
#pragma omp simd
    for (int64_t j = 0; j < H; ++j) {
      const scalar_t g = dh[j] + carry[j];
      const scalar_t h_tilde = x[(kLSTM ? 2 : 1) * H + j];
      if constexpr (kLSTM) {
        const scalar_t f = sigmoid(x[j]), i = sigmoid(x[H + j]);
        const scalar_t a = f / (f + i);
        const scalar_t d_a = g * (h_prev[j] - h_tilde) * a * (1 - a);
        dx[j] = d_a * (1 - f);       // d a / d k_f = a (1 - a) (1 - f)
        dx[H + j] = -d_a * (1 - i);  // d a / d k_i = -a (1 - a) (1 - i)
        dx[2 * H + j] = g * (1 - a);
        carry[j] = g * a;
      } else {
        const scalar_t z = sigmoid(x[j]);
        dx[j] = g * (h_tilde - h_prev[j]) * z * (1 - z);
        dx[H + j] = g * z;
        carry[j] = g * (1 - z);
      }
    }
  }
  std::memcpy(d_h0 + b * H, carry, sizeof(scalar_t) * H);
}

Tensor min_rnn_forward(const Tensor& xp, const Tensor& h0, const Tensor& valid, bool lstm) {
  const int64_t T = xp.size(0), B = xp.size(1), H = h0.size(1);
  auto h = at::empty({T, B, H}, h0.options());
  const uint8_t* v = valid.numel() ? valid.data_ptr<uint8_t>() : nullptr;
  AT_DISPATCH_FLOATING_TYPES(xp.scalar_type(), "rnnkit_min_rnn_forward", [&] {
    at::parallel_for(0, B, 1, [&](int64_t begin, int64_t end) {
      for (int64_t b = begin; b < end; ++b) {
        auto run = lstm ? min_rnn_forward_cols<true, scalar_t> : min_rnn_forward_cols<false, scalar_t>;
        run(xp.data_ptr<scalar_t>(), h0.data_ptr<scalar_t>(), v, h.data_ptr<scalar_t>(), T, B, H, b);
      }
    });
  });
  return h;
}

// d_xp: the caller's (T, B, G) buffer for the gradient of xp, filled and returned.
std::vector<Tensor> min_rnn_backward(const Tensor& d_h, const Tensor& xp, const Tensor& h0,
                                     const Tensor& h, const Tensor& valid, bool lstm,
                                     Tensor d_xp) {
  const int64_t T = xp.size(0), B = xp.size(1), H = h0.size(1);
  TORCH_CHECK(d_xp.is_contiguous() && d_xp.sizes() == xp.sizes() &&
                  d_xp.scalar_type() == xp.scalar_type(),
              "min_rnn_backward: d_xp must be a contiguous tensor shaped and typed like xp");
  auto d_h0 = at::empty_like(h0);
  const uint8_t* v = valid.numel() ? valid.data_ptr<uint8_t>() : nullptr;
  AT_DISPATCH_FLOATING_TYPES(xp.scalar_type(), "rnnkit_min_rnn_backward", [&] {
    at::parallel_for(0, B, 1, [&](int64_t begin, int64_t end) {
      for (int64_t b = begin; b < end; ++b) {
        auto run = lstm ? min_rnn_backward_cols<true, scalar_t> : min_rnn_backward_cols<false, scalar_t>;
        run(d_h.data_ptr<scalar_t>(), xp.data_ptr<scalar_t>(), h0.data_ptr<scalar_t>(),
            h.data_ptr<scalar_t>(), v, d_xp.data_ptr<scalar_t>(), d_h0.data_ptr<scalar_t>(), T, B,
            H, b);
      }
    });
  });
  return {d_xp, d_h0};
}

}  // namespace rnnkit


PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("min_rnn_forward", &rnnkit::min_rnn_forward, "minGRU/minLSTM forward, gates fused");
  m.def("min_rnn_backward", &rnnkit::min_rnn_backward, "minGRU/minLSTM backward, gates fused");
  m.def("linear_recurrence_forward", &rnnkit::linear_recurrence_forward,
        "h_t = exp(log_a_t) * h_{t-1} + b_t over t");
  m.def("linear_recurrence_backward", &rnnkit::linear_recurrence_backward,
        "Backward of linear_recurrence_forward");
}
