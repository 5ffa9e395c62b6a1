// One time step of a stacked, unidirectional LSTM or GRU for online inference (streaming):
// every layer in one call, weights packed once for oneDNN, no autograd.
#include "common.h"

namespace rnnkit {

// Both recurrent-step products at once for a handful of rows (B <= kSmallBatch):
// a = x @ w_x^T + b_x and r = h @ w_h^T + b_h, each (B, N), in one pass over output rows split
// across threads, so each core keeps its share of both weights in cache from step to step and
// there is one parallel region per layer. (A packed oneDNN GEMM costs more than the arithmetic
// at B = 1.) With sum_into_a, r is added into a instead of stored.
template <typename scalar_t>
inline scalar_t dot(const scalar_t* __restrict__ u, const scalar_t* __restrict__ v, int64_t K) {
  scalar_t acc = 0;
#pragma omp simd reduction(+ : acc)
  for (int64_t k = 0; k < K; ++k) acc += u[k] * v[k];
  return acc;
}

// Four dot products with one vector: four independent accumulators, so the FMAs pipeline
// instead of waiting on one another (one accumulator chain is latency-bound).
template <typename scalar_t>
inline void dot4(const scalar_t* __restrict__ w, int64_t K, const scalar_t* __restrict__ v,
                 scalar_t* out) {
  const scalar_t *w0 = w, *w1 = w + K, *w2 = w + 2 * K, *w3 = w + 3 * K;
  scalar_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
#pragma omp simd reduction(+ : a0, a1, a2, a3)
  for (int64_t k = 0; k < K; ++k) {
    a0 += w0[k] * v[k];
    a1 += w1[k] * v[k];
    a2 += w2[k] * v[k];
    a3 += w3[k] * v[k];
  }
  out[0] = a0;
  out[1] = a1;
  out[2] = a2;
  out[3] = a3;
}

// out[b, n] = (x[b] . w[n]) + bias[n] for rows n in [begin, end).
template <typename scalar_t>
inline void rows_times(const scalar_t* x, int64_t K, const scalar_t* w, const scalar_t* bias,
                       int64_t B, int64_t N, int64_t begin, int64_t end, scalar_t* out) {
  for (int64_t b = 0; b < B; ++b) {
    const scalar_t* v = x + b * K;
    int64_t n = begin;
    for (; n + 4 <= end; n += 4) dot4(w + n * K, K, v, out + b * N + n);
    for (; n < end; ++n) out[b * N + n] = dot(w + n * K, v, K);
    if (bias)
      for (int64_t m = begin; m < end; ++m) out[b * N + m] += bias[m];
  }
}

template <typename scalar_t>
void small_batch_gemm2(const scalar_t* x, int64_t Kx, const scalar_t* w_x, const scalar_t* b_x,
                       const scalar_t* h, int64_t Kh, const scalar_t* w_h, const scalar_t* b_h,
                       int64_t B, int64_t N, scalar_t* a, scalar_t* r, bool sum_into_a) {
  const int64_t threads = at::get_num_threads();
  const int64_t grain = std::max<int64_t>(64, (N + threads - 1) / threads / 4 * 4);
  at::parallel_for(0, N, grain, [&](int64_t begin, int64_t end) {
    rows_times(x, Kx, w_x, b_x, B, N, begin, end, a);
    rows_times(h, Kh, w_h, b_h, B, N, begin, end, r);
    if (sum_into_a)
      for (int64_t b = 0; b < B; ++b)
        for (int64_t n = begin; n < end; ++n) a[b * N + n] += r[b * N + n];
  });
}

constexpr int64_t kSmallBatch = 4;  // up to this many rows, small_batch_gemm2 beats GEMM calls

// (x @ w_x^T + b_x, h @ w_h^T + b_h), or their sum if sum: each (B, N).
inline std::vector<Tensor> step_products(const Tensor& x, const Tensor& w_x,
                                         const std::optional<Tensor>& p_x,
                                         const std::optional<Tensor>& b_x, const Tensor& h,
                                         const Tensor& w_h, const std::optional<Tensor>& p_h,
                                         const std::optional<Tensor>& b_h, bool sum) {
  if (x.size(0) > kSmallBatch) {
    auto a = gemm_nt(x, w_x, p_x);
    auto r = gemm_nt(h, w_h, p_h);
    if (b_x) a.add_(*b_x);
    if (b_h) r.add_(*b_h);
    if (sum) return {a.add_(r)};
    return {a, r};
  }
  const int64_t B = x.size(0), N = w_x.size(0);
  auto a = at::empty({B, N}, x.options());
  auto r = at::empty({B, N}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "rnnkit_small_batch_gemm2", [&] {
    small_batch_gemm2(x.data_ptr<scalar_t>(), x.size(1), w_x.data_ptr<scalar_t>(),
                      b_x ? b_x->data_ptr<scalar_t>() : nullptr, h.data_ptr<scalar_t>(), h.size(1),
                      w_h.data_ptr<scalar_t>(), b_h ? b_h->data_ptr<scalar_t>() : nullptr, B, N,
                      a.data_ptr<scalar_t>(), r.data_ptr<scalar_t>(), sum);
  });
  if (sum) return {a};
  return {a, r};
}

template <typename scalar_t>
inline void lstm_step_row(const scalar_t* __restrict__ p, const scalar_t* __restrict__ c,
                          scalar_t* __restrict__ h_out, scalar_t* __restrict__ c_out, int64_t H) {
#pragma omp simd
  for (int64_t j = 0; j < H; ++j) {
    const scalar_t i = sigmoid(p[j]), f = sigmoid(p[H + j]), g = tanh_(p[2 * H + j]);
    const scalar_t o = sigmoid(p[3 * H + j]);
    const scalar_t c_new = f * c[j] + i * g;
    c_out[j] = c_new;
    h_out[j] = o * tanh_(c_new);
  }
}

template <typename scalar_t>
inline void gru_step_row(const scalar_t* __restrict__ xr, const scalar_t* __restrict__ hr,
                         const scalar_t* __restrict__ h, scalar_t* __restrict__ h_out, int64_t H) {
#pragma omp simd
  for (int64_t j = 0; j < H; ++j) {
    const scalar_t r = sigmoid(xr[j] + hr[j]), z = sigmoid(xr[H + j] + hr[H + j]);
    const scalar_t n = tanh_(xr[2 * H + j] + r * hr[2 * H + j]);
    h_out[j] = n + z * (h[j] - n);
  }
}

// x: (B, I); h, c: (L, B, H); weights per layer: w_ih, w_hh (plain, for the ATen fallback),
// their packed forms (empty list entries when oneDNN is not used), and the summed bias.
// Returns the new (h, c); h[-1] is the layer stack's output.
std::vector<Tensor> lstm_stream_step(const Tensor& x, const Tensor& h, const Tensor& c,
                                     const std::vector<Tensor>& w_ih,
                                     const std::vector<Tensor>& w_hh,
                                     const std::vector<std::optional<Tensor>>& w_ih_packed,
                                     const std::vector<std::optional<Tensor>>& w_hh_packed,
                                     const std::vector<std::optional<Tensor>>& bias) {
  const int64_t L = h.size(0), B = h.size(1), H = h.size(2);
  auto h_out = at::empty_like(h);
  auto c_out = at::empty_like(c);
  Tensor input = x;
  for (int64_t k = 0; k < L; ++k) {
    auto pre = step_products(input, w_ih[k], w_ih_packed[k], bias[k], h[k], w_hh[k],
                             w_hh_packed[k], std::nullopt, true)[0];  // (B, 4H)
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "rnnkit_lstm_stream_step", [&] {
      const scalar_t* P = pre.data_ptr<scalar_t>();
      const scalar_t* C = c[k].data_ptr<scalar_t>();
      scalar_t* Ho = h_out[k].data_ptr<scalar_t>();
      scalar_t* Co = c_out[k].data_ptr<scalar_t>();
      for (int64_t b = 0; b < B; ++b) {
        lstm_step_row(P + b * 4 * H, C + b * H, Ho + b * H, Co + b * H, H);
      }
    });
    input = h_out[k];
  }
  return {h_out, c_out};
}

// GRU (torch's formulation); biases b_ih, b_hh kept apart because r multiplies W_hn h + b_hn.
Tensor gru_stream_step(const Tensor& x, const Tensor& h, const std::vector<Tensor>& w_ih,
                       const std::vector<Tensor>& w_hh,
                       const std::vector<std::optional<Tensor>>& w_ih_packed,
                       const std::vector<std::optional<Tensor>>& w_hh_packed,
                       const std::vector<std::optional<Tensor>>& b_ih,
                       const std::vector<std::optional<Tensor>>& b_hh) {
  const int64_t L = h.size(0), B = h.size(1), H = h.size(2);
  auto h_out = at::empty_like(h);
  Tensor input = x;
  for (int64_t k = 0; k < L; ++k) {
    auto products = step_products(input, w_ih[k], w_ih_packed[k], b_ih[k], h[k], w_hh[k],
                                  w_hh_packed[k], b_hh[k], false);
    const auto& xp = products[0];  // (B, 3H)
    const auto& hh = products[1];
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "rnnkit_gru_stream_step", [&] {
      const scalar_t* X = xp.data_ptr<scalar_t>();
      const scalar_t* R = hh.data_ptr<scalar_t>();
      const scalar_t* Hp = h[k].data_ptr<scalar_t>();
      scalar_t* Ho = h_out[k].data_ptr<scalar_t>();
      for (int64_t b = 0; b < B; ++b) {
        gru_step_row(X + b * 3 * H, R + b * 3 * H, Hp + b * H, Ho + b * H, H);
      }
    });
    input = h_out[k];
  }
  return h_out;
}

}  // namespace rnnkit

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("lstm_stream_step", &rnnkit::lstm_stream_step, "one step of a stacked LSTM");
  m.def("gru_stream_step", &rnnkit::gru_stream_step, "one step of a stacked GRU");
}
