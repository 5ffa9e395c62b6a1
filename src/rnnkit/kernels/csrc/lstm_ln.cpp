// Layer-normalised LSTM (Ba et al. 2016, as in rnnkit.cells.lstm): the time loop and BPTT in
// C++. The input side, LN(W_ih x) * g_ih + b_ih, depends on x alone and is computed (and
// differentiated) by the caller for all steps at once; per step this runs the recurrent GEMM,
// the per-gate normalisation of W_hh h, the gates, and the normalisation of the cell state.
// Batches are sorted by decreasing length: rows [0, batch_sizes[t]) are active at step t.
#include "common.h"

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

// Forward of one row. xp: (4H) input side incl. b_ih; hh: (4H) raw W_hh h_{t-1}; c: (H) state,
// updated in place. Saves gates (4H: i, f, g, o), hh_hat (4H), rstd_hh (4), c_hat (H), rstd_c.
template <bool kPeephole, typename scalar_t>
inline void ln_forward_row(const scalar_t* __restrict__ xp, const scalar_t* __restrict__ hh,
                           const scalar_t* __restrict__ g_hh, const scalar_t* b_hh,
                           const scalar_t* __restrict__ g_c, const scalar_t* __restrict__ b_c,
                           const scalar_t* w_peep, scalar_t* __restrict__ c,
                           scalar_t* __restrict__ gates, scalar_t* __restrict__ hh_hat,
                           scalar_t* __restrict__ rstd_hh, scalar_t* __restrict__ c_hat,
                           scalar_t* __restrict__ rstd_c, scalar_t* __restrict__ c_out,
                           scalar_t* __restrict__ h_out, int64_t H) {
  for (int64_t k = 0; k < 4; ++k) rstd_hh[k] = normalise(hh + k * H, hh_hat + k * H, H);
  scalar_t* __restrict__ pre = gates;  // pre-activations first, activated in place below
#pragma omp simd
  for (int64_t m = 0; m < 4 * H; ++m) pre[m] = xp[m] + hh_hat[m] * g_hh[m] + (b_hh ? b_hh[m] : 0);
#pragma omp simd
  for (int64_t j = 0; j < H; ++j) {
    const scalar_t c_prev = c[j];
    scalar_t pi = pre[j], pf = pre[H + j];
    if constexpr (kPeephole) {
      pi += w_peep[j] * c_prev;
      pf += w_peep[H + j] * c_prev;
    }
    const scalar_t i = sigmoid(pi), f = sigmoid(pf), g = tanh_(pre[2 * H + j]);
    gates[j] = i;
    gates[H + j] = f;
    gates[2 * H + j] = g;
    c[j] = f * c_prev + i * g;
    c_out[j] = c[j];
  }
  *rstd_c = normalise(c, c_hat, H);
#pragma omp simd
  for (int64_t j = 0; j < H; ++j) {
    scalar_t po = pre[3 * H + j];
    if constexpr (kPeephole) po += w_peep[2 * H + j] * c[j];
    const scalar_t o = sigmoid(po);
    gates[3 * H + j] = o;
    h_out[j] = o * tanh_(c_hat[j] * g_c[j] + b_c[j]);
  }
}

// One row of the input side's normalisation (see gate_norm_forward); v: (4H), in place.
template <typename scalar_t>
inline void gate_norm_forward_row(scalar_t* __restrict__ v, scalar_t* __restrict__ v_hat,
                                  scalar_t* __restrict__ rstd, const scalar_t* __restrict__ g,
                                  const scalar_t* b, int64_t H) {
  for (int64_t k = 0; k < 4; ++k) rstd[k] = normalise(v + k * H, v_hat + k * H, H);
#pragma omp simd
  for (int64_t m = 0; m < 4 * H; ++m) v[m] = v_hat[m] * g[m] + (b ? b[m] : 0);
}

// Its backward for one row: d (4H) in place; acc (4H): running sums of the gain's gradient;
// d_hat: (4H) scratch.
template <typename scalar_t>
inline void gate_norm_backward_row(scalar_t* __restrict__ d, const scalar_t* __restrict__ v_hat,
                                   const scalar_t* __restrict__ rstd,
                                   const scalar_t* __restrict__ g, scalar_t* __restrict__ d_hat,
                                   scalar_t* __restrict__ acc, int64_t H) {
#pragma omp simd
  for (int64_t m = 0; m < 4 * H; ++m) {
    acc[m] += d[m] * v_hat[m];
    d_hat[m] = d[m] * g[m];
  }
  for (int64_t k = 0; k < 4; ++k)
    normalise_backward(d_hat + k * H, v_hat + k * H, rstd[k], d + k * H, H);
}

// The input side for all rows at once: v (R, 4H), the raw W_ih x, is replaced in place by
// LN_k(v) * gain + bias, each gate's block k normalised on its own (bias may be absent).
// v_hat (R, 4H) and rstd (R, 4) are written into the caller's buffers for backward.
void gate_norm_forward(Tensor v, const Tensor& gain, const std::optional<Tensor>& bias,
                       Tensor v_hat, Tensor rstd) {
  const int64_t R = v.size(0), G = v.size(1), H = G / 4;
  TORCH_CHECK(v.is_contiguous() && v_hat.is_contiguous() && v_hat.sizes() == v.sizes() &&
                  rstd.is_contiguous() && rstd.sizes() == at::IntArrayRef({R, 4}),
              "gate_norm_forward: expected contiguous v, v_hat (R, 4H) and rstd (R, 4)");
  AT_DISPATCH_FLOATING_TYPES(v.scalar_type(), "rnnkit_gate_norm_forward", [&] {
    scalar_t *V = v.data_ptr<scalar_t>(), *Vh = v_hat.data_ptr<scalar_t>();
    scalar_t* Rs = rstd.data_ptr<scalar_t>();
    const scalar_t* g = gain.data_ptr<scalar_t>();
    const scalar_t* b = bias ? bias->data_ptr<scalar_t>() : nullptr;
    for_rows(R, G, [&](int64_t begin, int64_t end) {
      for (int64_t row = begin; row < end; ++row)
        gate_norm_forward_row(V + row * G, Vh + row * G, Rs + 4 * row, g, b, H);
    });
  });
}

// Backward of gate_norm_forward: d (R, 4H), the gradient of its output, is replaced in place
// by the gradient of v; returns the gain's gradient (4H). (The bias's is d summed over rows,
// which the recurrent side's bias already has: both are added to the same pre-activation.)
Tensor gate_norm_backward(Tensor d, const Tensor& v_hat, const Tensor& rstd, const Tensor& gain) {
  const int64_t R = d.size(0), G = d.size(1), H = G / 4;
  TORCH_CHECK(d.is_contiguous() && v_hat.is_contiguous() && v_hat.sizes() == d.sizes(),
              "gate_norm_backward: expected contiguous d and v_hat of one shape (R, 4H)");
  auto sums = at::zeros({at::get_num_threads(), G}, d.options());  // per-thread gain sums
  auto scratch = at::empty({at::get_num_threads(), G}, d.options());
  AT_DISPATCH_FLOATING_TYPES(d.scalar_type(), "rnnkit_gate_norm_backward", [&] {
    scalar_t* D = d.data_ptr<scalar_t>();
    const scalar_t *Vh = v_hat.data_ptr<scalar_t>(), *Rs = rstd.data_ptr<scalar_t>();
    const scalar_t* g = gain.data_ptr<scalar_t>();
    for_rows(R, G, [&](int64_t begin, int64_t end) {
      scalar_t* acc = sums.data_ptr<scalar_t>() + at::get_thread_num() * G;
      scalar_t* d_hat = scratch.data_ptr<scalar_t>() + at::get_thread_num() * G;
      for (int64_t row = begin; row < end; ++row)
        gate_norm_backward_row(D + row * G, Vh + row * G, Rs + 4 * row, g, d_hat, acc, H);
    });
  });
  return sums.sum(0);
}

std::vector<Tensor> lstm_ln_forward(const Tensor& xp, const Tensor& h0, const Tensor& c0,
                                    const Tensor& w_hh, const std::optional<Tensor>& w_hh_packed,
                                    const std::optional<Tensor>& b_hh, const Tensor& g_hh,
                                    const Tensor& g_c, const Tensor& b_c,
                                    const std::optional<Tensor>& peephole,
                                    const std::optional<Tensor>& mask,
                                    const std::vector<int64_t>& batch_sizes,
                                    const std::vector<Tensor>& saved) {
  // saved: the caller's buffers for what backward reads (reused across calls by the caller):
  // c_all (T, B, H), gates (T, B, 4H), hh_hat (T, B, 4H), rstd_hh (T, B, 4), c_hat (T, B, H),
  // rstd_c (T, B).
  const int64_t T = xp.size(0), B = xp.size(1), H = c0.size(1);
  const std::vector<std::vector<int64_t>> shapes = {{T, B, H}, {T, B, 4 * H}, {T, B, 4 * H},
                                                    {T, B, 4}, {T, B, H}, {T, B}};
  TORCH_CHECK(saved.size() == shapes.size(), "lstm_ln_forward: expected 6 saved buffers");
  for (size_t k = 0; k < shapes.size(); ++k)
    TORCH_CHECK(saved[k].is_contiguous() && saved[k].sizes() == at::IntArrayRef(shapes[k]) &&
                    saved[k].scalar_type() == xp.scalar_type(),
                "lstm_ln_forward: saved buffer ", k, " must be contiguous, shaped ", shapes[k]);
  auto h_all = at::empty({T, B, H}, h0.options());
  auto c_all = saved[0], gates = saved[1], hh_hat = saved[2], rstd_hh = saved[3];
  auto c_hat = saved[4], rstd_c = saved[5];
  auto h = h0.clone();
  auto c = c0.clone();
  AT_DISPATCH_FLOATING_TYPES(xp.scalar_type(), "rnnkit_lstm_ln_forward", [&] {
    const scalar_t* w_peep = peephole ? peephole->data_ptr<scalar_t>() : nullptr;
    const scalar_t* bh = b_hh ? b_hh->data_ptr<scalar_t>() : nullptr;
    const scalar_t* gh = g_hh.data_ptr<scalar_t>();
    const scalar_t* gc = g_c.data_ptr<scalar_t>();
    const scalar_t* bc = b_c.data_ptr<scalar_t>();
    for (int64_t t = 0; t < T; ++t) {
      const int64_t n = batch_sizes.empty() ? B : batch_sizes[t];
      const int64_t r0 = t * B;  // first row of step t
      scalar_t *G = gates.data_ptr<scalar_t>() + 4 * H * r0;
      scalar_t *HHh = hh_hat.data_ptr<scalar_t>() + 4 * H * r0;
      scalar_t *Rh = rstd_hh.data_ptr<scalar_t>() + 4 * r0, *Rc = rstd_c.data_ptr<scalar_t>() + r0;
      scalar_t *Ch = c_hat.data_ptr<scalar_t>() + H * r0, *Ct = c_all.data_ptr<scalar_t>() + H * r0;
      scalar_t *Ht = h_all.data_ptr<scalar_t>() + H * r0, *Cs = c.data_ptr<scalar_t>();
      for (scalar_t* buf : {Ht, Ct, Ch}) zero_rows_from(buf, n, B, H);
      zero_rows_from(G, n, B, 4 * H);
      zero_rows_from(HHh, n, B, 4 * H);
      zero_rows_from(Rh, n, B, 4);
      zero_rows_from(Rc, n, B, 1);
      if (n == 0) continue;
      auto h_in = (mask ? h * *mask : h).narrow(0, 0, n);
      auto hh = gemm_nt(h_in, w_hh, w_hh_packed);  // (n, 4H), raw
      const scalar_t* XP = xp.data_ptr<scalar_t>() + 4 * H * r0;
      const scalar_t* HH = hh.data_ptr<scalar_t>();
      for_rows(n, 4 * H, [&](int64_t begin, int64_t end) {
        for (int64_t b = begin; b < end; ++b) {
          const int64_t r = b * H;
          auto row = w_peep ? ln_forward_row<true, scalar_t> : ln_forward_row<false, scalar_t>;
          row(XP + 4 * r, HH + 4 * r, gh, bh, gc, bc, w_peep, Cs + r, G + 4 * r, HHh + 4 * r,
              Rh + 4 * b, Ch + r, Rc + b, Ct + r, Ht + r, H);
        }
      });
      std::memcpy(h.data_ptr<scalar_t>(), Ht, sizeof(scalar_t) * n * H);
    }
  });
  return {h_all, c_all, gates, hh_hat, rstd_hh, c_hat, rstd_c, h, c};
}

// Backward of one row. Writes d_gates (4H: gradient of the gate pre-activations, which is also
// that of xp and b_hh), d_hh (4H: gradient of the raw W_hh h), uses d_c_read (H: gradient of
// the normalised cell state after its gain and bias) and updates d_c and the sums in acc.
template <bool kPeephole, typename scalar_t>
inline void ln_backward_row(const scalar_t* __restrict__ g, const scalar_t* __restrict__ c,
                            const scalar_t* __restrict__ c_prev, const scalar_t* __restrict__ c_hat,
                            scalar_t rstd_c, const scalar_t* __restrict__ hh_hat,
                            const scalar_t* __restrict__ rstd_hh, const scalar_t* __restrict__ g_hh,
                            const scalar_t* __restrict__ g_c, const scalar_t* __restrict__ b_c,
                            const scalar_t* w_peep, const scalar_t* __restrict__ d_out,
                            const scalar_t* __restrict__ d_h, scalar_t* __restrict__ d_c,
                            scalar_t* __restrict__ d_g, scalar_t* __restrict__ d_hh,
                            scalar_t* __restrict__ d_c_read, scalar_t* scratch,
                            scalar_t* __restrict__ acc, int64_t H) {
  // scratch: 2H per thread; acc: this thread's running sums of the gain and bias gradients,
  // [g_hh (4H), b_hh (4H), g_c (H), b_c (H)].
#pragma omp simd
  for (int64_t j = 0; j < H; ++j) {
    const scalar_t o = g[3 * H + j];
    const scalar_t tc = tanh_(c_hat[j] * g_c[j] + b_c[j]);
    const scalar_t dh = d_out[j] + d_h[j];
    d_g[3 * H + j] = dh * tc * o * (1 - o);
    d_c_read[j] = dh * o * (1 - tc * tc);
    scratch[j] = d_c_read[j] * g_c[j];  // gradient of c_hat
    acc[8 * H + j] += d_c_read[j] * c_hat[j];
    acc[9 * H + j] += d_c_read[j];
  }
  scalar_t* __restrict__ d_c_ln = scratch + H;
  normalise_backward(scratch, c_hat, rstd_c, d_c_ln, H);  // gradient of c_t through the LN
#pragma omp simd
  for (int64_t j = 0; j < H; ++j) {
    const scalar_t i = g[j], f = g[H + j], gg = g[2 * H + j];
    scalar_t dc = d_c[j] + d_c_ln[j];
    if constexpr (kPeephole) dc += d_g[3 * H + j] * w_peep[2 * H + j];
    const scalar_t di = dc * gg * i * (1 - i), df = dc * c_prev[j] * f * (1 - f);
    scalar_t dc_prev = dc * f;
    if constexpr (kPeephole) dc_prev += di * w_peep[j] + df * w_peep[H + j];
    d_g[j] = di;
    d_g[H + j] = df;
    d_g[2 * H + j] = dc * i * (1 - gg * gg);
    d_c[j] = dc_prev;
  }
#pragma omp simd
  for (int64_t m = 0; m < 4 * H; ++m) {
    acc[m] += d_g[m] * hh_hat[m];
    acc[4 * H + m] += d_g[m];
  }
  for (int64_t k = 0; k < 4; ++k) {
#pragma omp simd
    for (int64_t j = 0; j < H; ++j) scratch[j] = d_g[k * H + j] * g_hh[k * H + j];
    normalise_backward(scratch, hh_hat + k * H, rstd_hh[k], d_hh + k * H, H);
  }
}

std::vector<Tensor> lstm_ln_backward(const Tensor& d_h_all, const Tensor& d_h_n,
                                     const Tensor& d_c_n, const Tensor& gates,
                                     const Tensor& c_all, const Tensor& c0, const Tensor& hh_hat,
                                     const Tensor& rstd_hh, const Tensor& c_hat,
                                     const Tensor& rstd_c, const Tensor& w_hh,
                                     const std::optional<Tensor>& w_hh_t_packed,
                                     const Tensor& g_hh, const Tensor& g_c, const Tensor& b_c,
                                     const std::optional<Tensor>& peephole,
                                     const std::optional<Tensor>& mask,
                                     const std::vector<int64_t>& batch_sizes) {
  const int64_t T = gates.size(0), B = gates.size(1), H = c0.size(1);
  auto d_gates = at::empty_like(gates);
  auto d_hh = at::empty_like(gates);
  auto d_c_read = at::empty({at::get_num_threads(), H}, c_all.options());  // per-thread row
  auto scratch = at::empty({at::get_num_threads(), 2 * H}, c0.options());
  auto sums = at::zeros({at::get_num_threads(), 10 * H}, c0.options());  // per-thread sums
  auto d_h = d_h_n.clone();
  auto d_c = d_c_n.clone();
  auto w_hh_t = w_hh.t();
  AT_DISPATCH_FLOATING_TYPES(gates.scalar_type(), "rnnkit_lstm_ln_backward", [&] {
    const scalar_t* w_peep = peephole ? peephole->data_ptr<scalar_t>() : nullptr;
    const scalar_t *gh = g_hh.data_ptr<scalar_t>(), *gc = g_c.data_ptr<scalar_t>();
    const scalar_t* bc = b_c.data_ptr<scalar_t>();
    for (int64_t t = T - 1; t >= 0; --t) {
      const int64_t n = batch_sizes.empty() ? B : batch_sizes[t];
      const int64_t r0 = t * B;  // first row of step t
      scalar_t *dG = d_gates.data_ptr<scalar_t>() + 4 * H * r0;
      scalar_t *dHH = d_hh.data_ptr<scalar_t>() + 4 * H * r0;
      zero_rows_from(dG, n, B, 4 * H);
      zero_rows_from(dHH, n, B, 4 * H);
      if (n == 0) continue;
      const scalar_t* G = gates.data_ptr<scalar_t>() + 4 * H * r0;
      const scalar_t* C = c_all.data_ptr<scalar_t>() + H * r0;
      const scalar_t* Cp = t > 0 ? C - H * B : c0.data_ptr<scalar_t>();
      const scalar_t *Ch = c_hat.data_ptr<scalar_t>() + H * r0, *Rc = rstd_c.data_ptr<scalar_t>() + r0;
      const scalar_t* HHh = hh_hat.data_ptr<scalar_t>() + 4 * H * r0;
      const scalar_t* Rh = rstd_hh.data_ptr<scalar_t>() + 4 * r0;
      const scalar_t* dHo = d_h_all.data_ptr<scalar_t>() + H * r0;
      scalar_t *dH = d_h.data_ptr<scalar_t>(), *dC = d_c.data_ptr<scalar_t>();
      scalar_t* dCr = d_c_read.data_ptr<scalar_t>();
      scalar_t* S = scratch.data_ptr<scalar_t>();
      scalar_t* A = sums.data_ptr<scalar_t>();
      for_rows(n, 4 * H, [&](int64_t begin, int64_t end) {
        scalar_t* s = S + at::get_thread_num() * 2 * H;
        scalar_t* a = A + at::get_thread_num() * 10 * H;
        for (int64_t b = begin; b < end; ++b) {
          const int64_t r = b * H;
          auto row = w_peep ? ln_backward_row<true, scalar_t> : ln_backward_row<false, scalar_t>;
          row(G + 4 * r, C + r, Cp + r, Ch + r, Rc[b], HHh + 4 * r, Rh + 4 * b, gh, gc, bc,
              w_peep, dHo + r, dH + r, dC + r, dG + 4 * r, dHH + 4 * r,
              dCr + at::get_thread_num() * H, s, a, H);
        }
      });
      auto d_h_prev = gemm_nt(d_hh.view({T * B, 4 * H}).narrow(0, r0, n), w_hh_t, w_hh_t_packed);  // (n, H)
      if (mask) d_h_prev.mul_(mask->narrow(0, 0, n));
      d_h.narrow(0, 0, n).copy_(d_h_prev);
    }
  });
  auto total = sums.sum(0);  // [g_hh, b_hh, g_c, b_c] gradients
  return {d_gates, d_hh, d_h, d_c, total.narrow(0, 0, 4 * H), total.narrow(0, 4 * H, 4 * H),
          total.narrow(0, 8 * H, H), total.narrow(0, 9 * H, H)};
}

}  // namespace rnnkit

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("lstm_ln_forward", &rnnkit::lstm_ln_forward, "layer-norm LSTM forward");
  m.def("gate_norm_forward", &rnnkit::gate_norm_forward, "per-gate layer norm, in place");
  m.def("gate_norm_backward", &rnnkit::gate_norm_backward, "its backward, in place");
  m.def("lstm_ln_backward", &rnnkit::lstm_ln_backward, "layer-norm LSTM backward through time");
}
