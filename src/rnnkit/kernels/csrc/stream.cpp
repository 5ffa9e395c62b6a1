// One time step of a stacked, unidirectional LSTM or GRU for online inference (streaming):
// every layer in one call, weights packed once for oneDNN, no autograd.
#include "common.h"

namespace rnnkit {

// out (B, N) = x (B, K) @ w (N, K)^T (+ bias) for a handful of rows: dot products over the
// contiguous rows of w, split across threads by output row, so each core keeps its half of the
// weights in its own cache from one step to the next. (A packed oneDNN GEMM costs more than the
// arithmetic at B = 1.)
template <typename scalar_t>
void small_batch_gemm(const scalar_t* __restrict__ x, int64_t B, int64_t K,
                      const scalar_t* __restrict__ w, int64_t N, const scalar_t* bias,
                      scalar_t* __restrict__ out) {
  at::parallel_for(0, N, std::max<int64_t>(64, N / at::get_num_threads()), [&](int64_t begin, int64_t end) {
    for (int64_t n = begin; n < end; ++n) {
      const scalar_t* __restrict__ row = w + n * K;
      for (int64_t b = 0; b < B; ++b) {
        const scalar_t* __restrict__ v = x + b * K;
        scalar_t acc = 0;
#pragma omp simd reduction(+ : acc)
        for (int64_t k = 0; k < K; ++k) acc += row[k] * v[k];
        out[b * N + n] = acc + (bias ? bias[n] : scalar_t(0));
      }
    }
  });
}

constexpr int64_t kSmallBatch = 4;  // up to this many rows, small_batch_gemm beats a GEMM call

inline Tensor linear_small(const Tensor& x, const Tensor& w, const std::optional<Tensor>& w_packed,
                           const std::optional<Tensor>& bias) {
  if (x.size(0) > kSmallBatch) {
    auto y = gemm_nt(x, w, w_packed);
    return bias ? y.add_(*bias) : y;
  }
  auto out = at::empty({x.size(0), w.size(0)}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "rnnkit_small_batch_gemm", [&] {
    small_batch_gemm(x.data_ptr<scalar_t>(), x.size(0), x.size(1), w.data_ptr<scalar_t>(),
                     w.size(0), bias ? bias->data_ptr<scalar_t>() : nullptr,
                     out.data_ptr<scalar_t>());
  });
  return out;
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
    auto pre = linear_small(input, w_ih[k], w_ih_packed[k], bias[k]);  // (B, 4H)
    pre.add_(linear_small(h[k], w_hh[k], w_hh_packed[k], std::nullopt));
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
    auto xp = linear_small(input, w_ih[k], w_ih_packed[k], b_ih[k]);  // (B, 3H)
    auto hh = linear_small(h[k], w_hh[k], w_hh_packed[k], b_hh[k]);   // (B, 3H)
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
