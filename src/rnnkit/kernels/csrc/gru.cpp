// GRU time loop with hand-written BPTT (torch.nn's formulation: the reset gate scales
// W_hn h + b_hn): only the recurrent GEMM and the fused gate math run per step; the input
// projection and the weight gradients are single GEMMs done by the caller.
//
// With layer normalisation (g_hh given) the caller passes the input side already normalised
// (xp = LN(W_ih x) g_ih + biases, differentiated by autograd) and each step normalises the
// recurrent side, W_hh h_in, per gate block before the gate math, and its backward the other
// way, while the row is in cache.
//
// Batches are sorted by decreasing length, so at step t the active sequences are rows
// [0, batch_sizes[t]) and the others keep their state untouched (the masking rule of
// rnnkit.ops.masking, with no work spent on padding).
#include "common.h"
#include "layer_norm.h"

namespace rnnkit {

// One row of the forward gate math. xp: (3H) input projection, with b_ih and the r, z parts of
// b_hh folded in (normalised first, with layer normalisation); hh: (3H) W_hh h_in (normalised
// and scaled by its gains, with layer normalisation); b_hn: (H) or null; h: (H) state h_{t-1}, updated in place
// to h_t; gates: (4H) r, z, n, hh_n = W_hn h_in + b_hn out; h_out: (H) out.
template <bool kBias, typename scalar_t>
inline void gru_forward_row(const scalar_t* __restrict__ xp, const scalar_t* __restrict__ hh,
                            const scalar_t* __restrict__ b_hn, scalar_t* __restrict__ h,
                            scalar_t* __restrict__ gates, scalar_t* __restrict__ h_out,
                            int64_t H) {
#pragma omp simd
  for (int64_t j = 0; j < H; ++j) {
    scalar_t hn = hh[2 * H + j];
    if constexpr (kBias) hn += b_hn[j];
    const scalar_t r = sigmoid(xp[j] + hh[j]);
    const scalar_t z = sigmoid(xp[H + j] + hh[H + j]);
    const scalar_t n = tanh_(xp[2 * H + j] + r * hn);
    const scalar_t h_new = n + z * (h[j] - n);  // (1 - z) n + z h, as the reference loop
    gates[j] = r;
    gates[H + j] = z;
    gates[2 * H + j] = n;
    gates[3 * H + j] = hn;
    h[j] = h_new;
    h_out[j] = h_new;
  }
}

// One row of the backward gate math. g: (4H) saved r, z, n, hh_n; h_prev: (H) h_{t-1} (not
// dropped out: it is what the z interpolation saw); d_out: (H) output gradient; d_h: (H) the
// gradient carried into h_t, replaced by its direct part dh * z towards h_{t-1}; d_xp: (3H) out,
// the gradient of W_ih x + b_ih; d_hh: (3H) out, the gradient of W_hh h_in + b_hh; d_hn_r: (H)
// out, its n part again (contiguous, for the transposed copy).
template <typename scalar_t>
inline void gru_backward_row(const scalar_t* __restrict__ g, const scalar_t* __restrict__ h_prev,
                             const scalar_t* __restrict__ d_out, scalar_t* __restrict__ d_h,
                             scalar_t* __restrict__ d_xp, scalar_t* __restrict__ d_hh,
                             scalar_t* __restrict__ d_hn_r, int64_t H) {
#pragma omp simd
  for (int64_t j = 0; j < H; ++j) {
    const scalar_t r = g[j], z = g[H + j], n = g[2 * H + j], hn = g[3 * H + j];
    const scalar_t dh = d_out[j] + d_h[j];
    const scalar_t dn_pre = dh * (1 - z) * (1 - n * n);
    const scalar_t dz_pre = dh * (h_prev[j] - n) * z * (1 - z);
    const scalar_t dr_pre = dn_pre * hn * r * (1 - r);
    const scalar_t dn_r = dn_pre * r;
    d_xp[j] = dr_pre;
    d_xp[H + j] = dz_pre;
    d_xp[2 * H + j] = dn_pre;
    d_hh[j] = dr_pre;
    d_hh[H + j] = dz_pre;
    d_hh[2 * H + j] = dn_r;
    d_hn_r[j] = dn_r;
    d_h[j] = dh * z;
  }
}

// dst[k] = a[k] * b[k], k < n.
template <typename scalar_t>
inline void mul_into(const scalar_t* __restrict__ a, const scalar_t* __restrict__ b,
                     scalar_t* __restrict__ dst, int64_t n) {
#pragma omp simd
  for (int64_t k = 0; k < n; ++k) dst[k] = a[k] * b[k];
}

// dst[k] *= b[k], k < n.
template <typename scalar_t>
inline void mul_in_place(scalar_t* __restrict__ dst, const scalar_t* __restrict__ b, int64_t n) {
#pragma omp simd
  for (int64_t k = 0; k < n; ++k) dst[k] *= b[k];
}

// dst[k] += a[k] (* b[k] if b), k < n.
template <typename scalar_t>
inline void add_into(const scalar_t* __restrict__ a, const scalar_t* __restrict__ b,
                     scalar_t* __restrict__ dst, int64_t n) {
  if (b) {
#pragma omp simd
    for (int64_t k = 0; k < n; ++k) dst[k] += a[k] * b[k];
  } else {
#pragma omp simd
    for (int64_t k = 0; k < n; ++k) dst[k] += a[k];
  }
}

// xp: (T, B, 3H) input projection plus b_ih and the r, z parts of b_hh; h0: (B, H);
// w_hh: (3H, H); b_hn: (H) the n part of b_hh, or none; mask: (B, H) recurrent dropout, applied
// to h_{t-1} where it enters w_hh only. Returns h_all (T, B, H) (zeros at inactive rows),
// gates (r, z, n, hh_n at active rows; the rest unset) and h_n; h_all and gates are written
// into the caller's buffers (reused across calls by the caller). gates is (T, B, 4H), or
// without keep_for_backward (1, B, 4H), one step at a time: nothing is kept.
// Layer normalisation: g_hh (3H) the recurrent side's gains; hh_hat (S, B, 3H) and rstd
// (S, B, 3), S = T or 1 as for gates, the caller's buffers for what its backward reads.
std::vector<Tensor> gru_forward(const Tensor& xp, const Tensor& h0, const Tensor& w_hh,
                                const std::optional<Tensor>& w_hh_packed,
                                const std::optional<Tensor>& b_hn,
                                const std::optional<Tensor>& mask,
                                const std::vector<int64_t>& batch_sizes, bool keep_for_backward,
                                Tensor gates, Tensor h_all, const std::optional<Tensor>& g_hh,
                                const std::optional<Tensor>& hh_hat,
                                const std::optional<Tensor>& rstd) {
  const int64_t T = xp.size(0), B = xp.size(1), H = h0.size(1);
  const int64_t S = keep_for_backward ? T : 1;
  TORCH_CHECK(!g_hh || (g_hh->is_contiguous() && g_hh->numel() == 3 * H && hh_hat && rstd &&
                        hh_hat->is_contiguous() && rstd->is_contiguous() &&
                        hh_hat->sizes() == at::IntArrayRef({S, B, 3 * H}) &&
                        rstd->sizes() == at::IntArrayRef({S, B, 3})),
              "gru_forward: layer normalisation needs contiguous g_hh (3H), hh_hat (", S,
              ", B, 3H) and rstd (", S, ", B, 3)");
  TORCH_CHECK(xp.is_contiguous() && h0.is_contiguous(), "gru_forward: contiguous xp, h0");
  TORCH_CHECK(!mask || mask->is_contiguous(), "gru_forward: contiguous mask");
  TORCH_CHECK(batch_sizes.empty() || static_cast<int64_t>(batch_sizes.size()) == T,
              "gru_forward: one batch size per step");
  TORCH_CHECK(gates.is_contiguous() && gates.sizes() == at::IntArrayRef({S, B, 4 * H}) &&
                  gates.scalar_type() == xp.scalar_type(),
              "gru_forward: gates must be a contiguous (", S, ", B, 4H) tensor of xp's dtype; got ",
              gates.sizes(), " ", gates.scalar_type());
  TORCH_CHECK(h_all.is_contiguous() && h_all.sizes() == at::IntArrayRef({T, B, H}) &&
                  h_all.scalar_type() == xp.scalar_type(),
              "gru_forward: h_all must be a contiguous (T, B, H) tensor of xp's dtype; got ",
              h_all.sizes(), " ", h_all.scalar_type());
  auto h = h0.clone();
  auto h_in = mask ? at::empty({B, H}, h0.options()) : h;  // h * mask, rows [0, n)
  auto hh_rows = at::empty({B, 3 * H}, h0.options());      // W_hh h_in of a step's rows
  AT_DISPATCH_FLOATING_TYPES(xp.scalar_type(), "rnnkit_gru_forward", [&] {
    const scalar_t* bn = b_hn ? b_hn->data_ptr<scalar_t>() : nullptr;
    const scalar_t* M = mask ? mask->data_ptr<scalar_t>() : nullptr;
    scalar_t* Hs = h.data_ptr<scalar_t>();
    scalar_t* Hin = h_in.data_ptr<scalar_t>();
    for (int64_t t = 0; t < T; ++t) {
      const int64_t n = batch_sizes.empty() ? B : batch_sizes[t];
      zero_rows_from(h_all[t].data_ptr<scalar_t>(), n, B, H);  // outputs at padded steps
      if (n == 0) continue;
      if (M) {
        for_rows(n, H, [&](int64_t begin, int64_t end) {
          mul_into(Hs + begin * H, M + begin * H, Hin + begin * H, (end - begin) * H);
        });
      }
      auto hh = gemm_nt(h_in.narrow(0, 0, n), w_hh, w_hh_packed, hh_rows.narrow(0, 0, n));
      scalar_t* HH = hh.data_ptr<scalar_t>();
      const scalar_t* X = xp[t].data_ptr<scalar_t>();
      scalar_t* Gt = gates[keep_for_backward ? t : 0].data_ptr<scalar_t>();
      scalar_t* Ht = h_all[t].data_ptr<scalar_t>();
      const int64_t k0 = (keep_for_backward ? t : 0) * B;  // the step's first saved row
      for_rows(n, 3 * H, [&](int64_t begin, int64_t end) {
        for (int64_t b = begin; b < end; ++b) {
          if (g_hh) {  // W_hh h_in -> LN(W_hh h_in) g_hh, per gate block, in place
            gate_norm_forward<3>(HH + b * 3 * H, g_hh->data_ptr<scalar_t>(),
                                 hh_hat->data_ptr<scalar_t>() + (k0 + b) * 3 * H,
                                 rstd->data_ptr<scalar_t>() + (k0 + b) * 3, H);
          }
          if (bn) {
            gru_forward_row<true>(X + b * 3 * H, HH + b * 3 * H, bn, Hs + b * H, Gt + b * 4 * H,
                                  Ht + b * H, H);
          } else {
            gru_forward_row<false>(X + b * 3 * H, HH + b * 3 * H, bn, Hs + b * H,
                                   Gt + b * 4 * H, Ht + b * H, H);
          }
        }
      });
    }
  });
  return {h_all, gates, h};
}

// Backward through time. d_h_all: (T, B, H) gradient of the outputs; d_h_n: (B, H); gates,
// h_all: from gru_forward; h0: (B, H); w_hh_t_packed, if given, is w_hh^T (H, 3H) as
// rnnkit.kernels.gemm.pack laid it out. Returns [d_h0 (B, H)] and fills the caller's
// (uninitialised) buffers:
//   d_xp (T, B, 3H): gradient of the input projection W_ih x + b_ih (zero at inactive rows);
//   d_t (4H, T*B), if not empty (never written with layer normalisation): [d_hh_n; d_xp^T],
//     where d_hh_n = d_n_pre * r is the n part of the gradient of W_hh h_in + b_hh (its r, z
//     parts equal d_xp's), so rows [0, 3H) are d_hh^T with the n block first and rows [H, 4H)
//     are d_xp^T: one contiguous operand per weight-gradient GEMM, for GEMMs that take no
//     transposed operand (oneDNN);
//   h_prev_t (H, T*B), if not empty: h_{t-1} * mask (as the recurrent weights saw it),
//     transposed (rows_h is its scratch then);
//   rows_h (T*B, H): d_hh_n during the loop, and still at the end where h_prev_t is empty.
// The transposes run once after the loop (per-step strided writes cost several times more).
// Layer normalisation (g_hh, hh_hat, rstd of gru_forward, and d_hh_raw (T, B, 3H)): d_hh_raw is
// filled with the gradient of the raw W_hh h_in (r, z, n; zero at inactive rows), which the
// caller's weight gradient of W_hh reads with h_prev_t, and d_t is not written (the caller's
// autograd takes d_xp further); returns [d_h0, the gradient of g_hh (3H), of b_hn (H)].
std::vector<Tensor> gru_backward(const Tensor& d_h_all, const Tensor& d_h_n, const Tensor& gates,
                                 const Tensor& h_all, const Tensor& h0, const Tensor& w_hh,
                                 const std::optional<Tensor>& w_hh_t_packed,
                                 const std::optional<Tensor>& mask,
                                 const std::vector<int64_t>& batch_sizes, Tensor d_xp,
                                 Tensor d_t, Tensor h_prev_t, Tensor rows_h,
                                 const std::optional<Tensor>& g_hh,
                                 const std::optional<Tensor>& hh_hat,
                                 const std::optional<Tensor>& rstd,
                                 const std::optional<Tensor>& d_hh_raw) {
  const int64_t T = gates.size(0), B = gates.size(1), H = h0.size(1);
  TORCH_CHECK(!g_hh || (g_hh->is_contiguous() && g_hh->numel() == 3 * H && hh_hat && rstd &&
                        hh_hat->is_contiguous() && rstd->is_contiguous() && d_hh_raw &&
                        d_hh_raw->is_contiguous() &&
                        d_hh_raw->sizes() == at::IntArrayRef({T, B, 3 * H}) &&
                        hh_hat->sizes() == at::IntArrayRef({T, B, 3 * H}) &&
                        rstd->sizes() == at::IntArrayRef({T, B, 3})),
              "gru_backward: layer normalisation needs contiguous g_hh (3H), hh_hat (T, B, 3H), "
              "rstd (T, B, 3) and d_hh_raw (T, B, 3H)");
  TORCH_CHECK(d_h_all.is_contiguous() && d_h_n.is_contiguous() && h0.is_contiguous(),
              "gru_backward: contiguous gradients and h0");
  TORCH_CHECK(!mask || mask->is_contiguous(), "gru_backward: contiguous mask");
  TORCH_CHECK(d_xp.is_contiguous() && d_t.is_contiguous() && h_prev_t.is_contiguous() &&
                  rows_h.is_contiguous(),
              "gru_backward: contiguous buffers");
  TORCH_CHECK(d_xp.numel() == T * B * 3 * H &&
                  (d_t.numel() == 0 || (!g_hh && d_t.numel() == 4 * H * T * B)) &&
                  (h_prev_t.numel() == 0 || h_prev_t.numel() == T * B * H) &&
                  rows_h.numel() == T * B * H,
              "gru_backward: buffer sizes");
  // one step's d_hh, for the recurrent GEMM (with layer normalisation: d_hh_raw's rows)
  auto d_hh = g_hh ? Tensor() : at::empty({B, 3 * H}, gates.options());
  auto d_h_prev_rows = at::empty({B, H}, gates.options());  // d_hh @ w_hh of a step's rows
  auto d_h = d_h_n.clone();  // gradient reaching h_t from later steps and from h_n
  auto w_hh_t = w_hh.t();    // (H, 3H): d_h_prev = d_hh @ w_hh
  // with layer normalisation, each thread's sum of the gain's gradient
  auto gain_sums = g_hh ? at::zeros({at::get_num_threads(), 3 * H}, gates.options()) : Tensor();
  Tensor d_b_hn;
  AT_DISPATCH_FLOATING_TYPES(gates.scalar_type(), "rnnkit_gru_backward", [&] {
    const scalar_t* M = mask ? mask->data_ptr<scalar_t>() : nullptr;
    scalar_t* dH = d_h.data_ptr<scalar_t>();
    scalar_t* dHH = g_hh ? nullptr : d_hh.data_ptr<scalar_t>();
    scalar_t* dX_all = d_xp.data_ptr<scalar_t>();
    scalar_t* dHN_all = rows_h.data_ptr<scalar_t>();  // d_hh_n (T*B, H) during the loop
    for (int64_t t = T - 1; t >= 0; --t) {
      const int64_t n = batch_sizes.empty() ? B : batch_sizes[t];
      scalar_t* dX = dX_all + t * B * 3 * H;
      scalar_t* dHN = dHN_all + t * B * H;
      zero_rows_from(dX, n, B, 3 * H);
      zero_rows_from(dHN, n, B, H);
      if (n == 0) continue;
      const scalar_t* G = gates[t].data_ptr<scalar_t>();
      const scalar_t* Hp = (t > 0 ? h_all[t - 1] : h0).data_ptr<scalar_t>();
      const scalar_t* dHo = d_h_all[t].data_ptr<scalar_t>();
      // with layer normalisation the recurrent GEMM takes the step's rows of d_hh_raw
      scalar_t* dHHt = g_hh ? d_hh_raw->data_ptr<scalar_t>() + t * B * 3 * H : dHH;
      if (g_hh) zero_rows_from(dHHt, n, B, 3 * H);
      for_rows(n, 3 * H, [&](int64_t begin, int64_t end) {
        for (int64_t b = begin; b < end; ++b) {
          gru_backward_row(G + b * 4 * H, Hp + b * H, dHo + b * H, dH + b * H, dX + b * 3 * H,
                           dHHt + b * 3 * H, dHN + b * H, H);
          if (g_hh) {  // d LN(W_hh h_in) g_hh -> d W_hh h_in, in place
            const int64_t row = t * B + b;
            gate_norm_backward<3>(dHHt + b * 3 * H, g_hh->data_ptr<scalar_t>(),
                                  hh_hat->data_ptr<scalar_t>() + row * 3 * H,
                                  rstd->data_ptr<scalar_t>() + row * 3,
                                  gain_sums.data_ptr<scalar_t>() + at::get_thread_num() * 3 * H,
                                  static_cast<scalar_t*>(nullptr), dHHt + b * 3 * H, H);
          }
        }
      });
      auto d_h_prev = gemm_nt(g_hh ? d_hh_raw->select(0, t).narrow(0, 0, n) : d_hh.narrow(0, 0, n),
                              w_hh_t, w_hh_t_packed, d_h_prev_rows.narrow(0, 0, n));  // (n, H)
      const scalar_t* P = d_h_prev.data_ptr<scalar_t>();
      for_rows(n, H, [&](int64_t begin, int64_t end) {
        add_into(P + begin * H, M ? M + begin * H : nullptr, dH + begin * H, (end - begin) * H);
      });
    }
    if (g_hh) {
      d_b_hn = rows_h.sum(0);  // b_hn: the n part of d_hh, before the LN (it is added after it)
    } else if (d_t.numel() > 0) {
      scalar_t* Dt = d_t.data_ptr<scalar_t>();
      transpose_into(dHN_all, T * B, H, Dt);
      transpose_into(dX_all, T * B, 3 * H, Dt + H * T * B);
    }
    if (h_prev_t.numel() > 0) {
      // h_{t-1} at every step, masked: [h0; h_all[:-1]] (inactive rows hold finite values that
      // meet zero columns of d_t).
      scalar_t* Hp_all = rows_h.data_ptr<scalar_t>();
      std::memcpy(Hp_all, h0.data_ptr<scalar_t>(), sizeof(scalar_t) * B * H);
      if (T > 1) {
        std::memcpy(Hp_all + B * H, h_all.data_ptr<scalar_t>(),
                    sizeof(scalar_t) * (T - 1) * B * H);
      }
      if (M) {
        for_rows(T * B, H, [&](int64_t begin, int64_t end) {
          for (int64_t r = begin; r < end; ++r) {
            mul_in_place(Hp_all + r * H, M + (r % B) * H, H);
          }
        });
      }
      transpose_into(Hp_all, T * B, H, h_prev_t.data_ptr<scalar_t>());
    }
  });
  if (!g_hh) return {d_h};
  return {d_h, gain_sums.sum(0), d_b_hn};
}

}  // namespace rnnkit

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("gru_forward", &rnnkit::gru_forward, "GRU forward over a sequence", py::arg("xp"),
        py::arg("h0"), py::arg("w_hh"), py::arg("w_hh_packed"), py::arg("b_hn"), py::arg("mask"),
        py::arg("batch_sizes"), py::arg("keep_for_backward"), py::arg("gates"), py::arg("h_all"),
        py::arg("g_hh") = py::none(),
        py::arg("hh_hat") = py::none(), py::arg("rstd") = py::none());
  m.def("gru_backward", &rnnkit::gru_backward, "GRU backward through time", py::arg("d_h_all"),
        py::arg("d_h_n"), py::arg("gates"), py::arg("h_all"), py::arg("h0"), py::arg("w_hh"),
        py::arg("w_hh_t_packed"), py::arg("mask"), py::arg("batch_sizes"), py::arg("d_xp"),
        py::arg("d_t"), py::arg("h_prev_t"), py::arg("rows_h"), py::arg("g_hh") = py::none(),
        py::arg("hh_hat") = py::none(), py::arg("rstd") = py::none(),
        py::arg("d_hh_raw") = py::none());
}
