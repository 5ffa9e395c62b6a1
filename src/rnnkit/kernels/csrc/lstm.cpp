// LSTM time loop with hand-written BPTT: only the recurrent GEMM (with the panel kernel, also
// the step's input projection), the fused gate math and, for a projected LSTM, the projection
// GEMM run per step; the weight gradients (and
// otherwise the input projection) are single GEMMs done by the caller. With row splits each
// thread runs its own rows through the whole sequence (check_splits in common.h).
//
// Batches are sorted by decreasing length, so at step t the active sequences are rows
// [0, batch_sizes[t]) and the others keep their state untouched (the masking rule of
// rnnkit.ops.masking, with no work spent on padding).
#include "common.h"

namespace rnnkit {

// One row of the forward gate math. hh: (4H) W_hh h_{t-1}; xp: (4H) input projection plus
// biases; c: (H) state, updated in place; gates: (4H) activated i, f, g, o out; c_out, h_out: (H).
template <bool kPeephole, typename scalar_t>
inline void lstm_forward_row(const scalar_t* __restrict__ hh, const scalar_t* __restrict__ xp,
                             const scalar_t* __restrict__ w_peep,
                             scalar_t* __restrict__ c, scalar_t* __restrict__ gates,
                             scalar_t* __restrict__ c_out, scalar_t* __restrict__ h_out,
                             int64_t H) {
#pragma omp simd
  for (int64_t j = 0; j < H; ++j) {
    const scalar_t c_prev = c[j];
    scalar_t pi = hh[j] + xp[j], pf = hh[H + j] + xp[H + j], po = hh[3 * H + j] + xp[3 * H + j];
    if constexpr (kPeephole) {
      pi += w_peep[j] * c_prev;
      pf += w_peep[H + j] * c_prev;
    }
    const scalar_t i = sigmoid(pi), f = sigmoid(pf), g = tanh_(hh[2 * H + j] + xp[2 * H + j]);
    const scalar_t c_new = f * c_prev + i * g;
    if constexpr (kPeephole) po += w_peep[2 * H + j] * c_new;
    const scalar_t o = sigmoid(po);
    gates[j] = i;
    gates[H + j] = f;
    gates[2 * H + j] = g;
    gates[3 * H + j] = o;
    c[j] = c_new;
    c_out[j] = c_new;
    h_out[j] = o * tanh_(c_new);
  }
}

// One row of the backward gate math: from d h_t (output gradient d_out plus the carried d_h)
// and the carried d c_t, the pre-activation gradients d_gates and d c_{t-1} (into d_c).
// d_peep, d_bias: this thread's running sums of the peephole gradients (3H), if kPeephole, and
// of d_gates itself, the bias gradient (4H), if kBias (added while the row is in registers).
template <bool kPeephole, bool kBias, typename scalar_t>
inline void lstm_backward_row(const scalar_t* __restrict__ g, const scalar_t* __restrict__ c,
                              const scalar_t* __restrict__ c_prev,
                              const scalar_t* __restrict__ d_out,
                              const scalar_t* __restrict__ w_peep,
                              const scalar_t* __restrict__ d_h, scalar_t* __restrict__ d_c,
                              scalar_t* __restrict__ d_g, scalar_t* __restrict__ d_peep,
                              scalar_t* __restrict__ d_bias, int64_t H) {
#pragma omp simd
  for (int64_t j = 0; j < H; ++j) {
    const scalar_t i = g[j], f = g[H + j], gg = g[2 * H + j], o = g[3 * H + j];
    const scalar_t tc = tanh_(c[j]);
    const scalar_t dh = d_out[j] + d_h[j];
    const scalar_t do_pre = dh * tc * o * (1 - o);
    scalar_t dc = d_c[j] + dh * o * (1 - tc * tc);
    if constexpr (kPeephole) dc += do_pre * w_peep[2 * H + j];
    const scalar_t di_pre = dc * gg * i * (1 - i);
    const scalar_t df_pre = dc * c_prev[j] * f * (1 - f);
    scalar_t dc_prev = dc * f;
    if constexpr (kPeephole) {
      dc_prev += di_pre * w_peep[j] + df_pre * w_peep[H + j];
      d_peep[j] += di_pre * c_prev[j];
      d_peep[H + j] += df_pre * c_prev[j];
      d_peep[2 * H + j] += do_pre * c[j];
    }
    const scalar_t dg_pre = dc * i * (1 - gg * gg);
    d_g[j] = di_pre;
    d_g[H + j] = df_pre;
    d_g[2 * H + j] = dg_pre;
    d_g[3 * H + j] = do_pre;
    d_c[j] = dc_prev;
    if constexpr (kBias) {
      d_bias[j] += di_pre;
      d_bias[H + j] += df_pre;
      d_bias[2 * H + j] += dg_pre;
      d_bias[3 * H + j] += do_pre;
    }
  }
}

// xp: (N, 4H) input projection plus both biases for the active rows only, packed step after
// step (N = sum of batch_sizes, or T*B): no work is spent on padding. It is added to W_hh h in
// the gate math (measured faster than oneDNN's add post-op). Or, with x_rows (N, I) (the
// active rows of x, packed the same way) and w_ih_packed (W_ih in panels, as w_hh_packed):
// xp is the biases alone (4H), and each step's GEMM computes x_t W_ih^T + h_{t-1} W_hh^T into
// the same rows, so the projection of all steps is never written out and read back.
// R is the width of h: H, or P with a projection w_hr (P, H) (torch.nn's proj_size): then
// h_t = W_hr (o * tanh(c_t)), one more GEMM per step, and o * tanh(c_t) of each row is written
// into h_pre (packed like gates), which the weight gradient of W_hr reads back.
// h0: (B, R); c0: (B, H); w_hh: (4H, R);
// peephole: (3, H) rows c->i, c->f, c->o; mask: (B, R) recurrent dropout, applied to h_{t-1}
// where it enters w_hh. Returns h_all (T, B, R), c_all (T, B, H) (zeros at inactive rows), gates
// (N, 4H) (activated i, f, g, o, packed like xp), h_n, c_n. h_all, c_all and gates are written
// into the caller's buffers (reused across calls by the caller). h_in (N, R),
// required with a mask: each step's GEMM input (the active rows of h_{t-1}, masked) is written
// there, packed like xp, for the weight gradient to read back. Without keep_for_backward
// nothing is kept: c_all is (1, B, H), gates (B, 4H), h_in (B, R) and h_pre (B, H), one step at
// a time. splits: see check_splits (common.h).
std::vector<Tensor> lstm_forward(const Tensor& xp, const Tensor& h0, const Tensor& c0,
                                 const Tensor& w_hh, const std::optional<Tensor>& w_hh_packed,
                                 const std::optional<Tensor>& peephole,
                                 const std::optional<Tensor>& mask,
                                 const std::vector<int64_t>& batch_sizes, Tensor h_all,
                                 Tensor c_all, Tensor gates, const std::optional<Tensor>& h_in,
                                 bool keep_for_backward, int64_t splits,
                                 const std::optional<Tensor>& x_rows,
                                 const std::optional<Tensor>& w_ih_packed,
                                 const std::optional<Tensor>& w_hr,
                                 const std::optional<Tensor>& w_hr_packed,
                                 const std::optional<Tensor>& h_pre) {
  const int64_t B = h0.size(0), H = c0.size(1), R = h0.size(1);
  const int64_t N = x_rows ? x_rows->size(0) : xp.size(0);
  TORCH_CHECK(w_hh.sizes() == at::IntArrayRef({4 * H, R}),
              "lstm_forward: w_hh must be (4H, R) for c0 (B, H) and h0 (B, R); got ", w_hh.sizes());
  TORCH_CHECK(!x_rows || (x_rows->dim() == 2 && x_rows->is_contiguous() &&
                          is_panels(w_hh_packed) && is_panels(w_ih_packed) && xp.dim() == 1 &&
                          xp.size(0) == 4 * H),
              "lstm_forward: projecting in the loop needs contiguous x_rows (N, I), W_ih and W_hh "
              "in panels and xp the biases (4H); got x_rows ", x_rows->sizes(), ", xp ",
              xp.sizes());
  const int64_t xp_stride = x_rows ? 0 : 4 * H;  // one row of biases for every row
  const int64_t T = batch_sizes.empty() ? N / B : static_cast<int64_t>(batch_sizes.size());
  const int64_t steps = keep_for_backward ? T : 1, kept_rows = keep_for_backward ? N : B;
  TORCH_CHECK(c_all.is_contiguous() && c_all.sizes() == at::IntArrayRef({steps, B, H}) &&
                  gates.is_contiguous() && gates.sizes() == at::IntArrayRef({kept_rows, 4 * H}),
              "lstm_forward: c_all must be a contiguous (", steps, ", B, H) tensor and gates (",
              kept_rows, ", 4H)");
  TORCH_CHECK(!mask || (h_in && mask->is_contiguous() &&
                        mask->sizes() == at::IntArrayRef({B, R})),
              "lstm_forward: a mask must be a contiguous (B, R) tensor and needs the h_in buffer");
  TORCH_CHECK(!h_in ||
                  (h_in->is_contiguous() && h_in->sizes() == at::IntArrayRef({kept_rows, R})),
              "lstm_forward: h_in must be a contiguous (", kept_rows, ", R) tensor");
  TORCH_CHECK(w_hr ? (w_hr->sizes() == at::IntArrayRef({R, H}) && h_pre &&
                      h_pre->is_contiguous() &&
                      h_pre->sizes() == at::IntArrayRef({kept_rows, H}))
                   : R == H,
              "lstm_forward: with a projection, w_hr must be (R, H) for h0 (B, R) and h_pre a "
              "contiguous (", kept_rows, ", H) tensor; without one, h0 must be (B, H)");
  TORCH_CHECK(h_all.is_contiguous() && h_all.sizes() == at::IntArrayRef({T, B, R}) &&
                  h_all.scalar_type() == h0.scalar_type(),
              "lstm_forward: h_all must be a contiguous (T, B, R) tensor of h0's dtype; got ",
              h_all.sizes(), " ", h_all.scalar_type());
  check_splits(splits, w_hh_packed);
  TORCH_CHECK(splits == 1 || !w_hr || is_panels(w_hr_packed),
              "lstm_forward: row splits need the projection's weight in panels too");
  auto h = h0.clone();
  auto c = c0.clone();
  auto pre_rows = at::empty({B, 4 * H}, h0.options());  // a step's GEMM output (+ xp: gates)
  const int64_t S = splits, I = x_rows ? x_rows->size(1) : 0;
  AT_DISPATCH_FLOATING_TYPES(xp.scalar_type(), "rnnkit_lstm_forward", [&] {
    const scalar_t* w_peep = peephole ? peephole->data_ptr<scalar_t>() : nullptr;
    const scalar_t* M = mask ? mask->data_ptr<scalar_t>() : nullptr;
    scalar_t* Hs = h.data_ptr<scalar_t>();
    scalar_t* Cs = c.data_ptr<scalar_t>();
    scalar_t* P = pre_rows.data_ptr<scalar_t>();  // the step's GEMM output rows
    const scalar_t* X = x_rows ? x_rows->data_ptr<scalar_t>() : nullptr;
    // The step's panel-kernel GEMM for m rows (row strides ldx, ldh, ldo): x W_ih^T when the
    // loop projects the input, then h_{t-1} W_hh^T added in place.
    const auto panel_step = [&](const scalar_t* x, int64_t ldx, const scalar_t* h, int64_t ldh,
                                int64_t m, scalar_t* out, int64_t ldo) {
      if (X) panel_gemm(x, m, I, ldx, w_ih_packed->data_ptr<float>(), 4 * H, out, ldo, false);
      panel_gemm(h, m, R, ldh, w_hh_packed->data_ptr<float>(), 4 * H, out, ldo, X != nullptr);
    };
    // The gate math of step t (packed rows from offset, kept rows from kept) for rows
    // b = first, first + stride, ... < end: o * tanh(c) goes to h_all and the state, or with a
    // projection to h_pre (projected after).
    const auto gate_rows = [&](int64_t t, int64_t offset, int64_t kept, int64_t first,
                               int64_t end, int64_t stride) {
      scalar_t* Ht = h_all.data_ptr<scalar_t>() + t * B * R;
      scalar_t* Ct = c_all.data_ptr<scalar_t>() + (keep_for_backward ? t : 0) * B * H;
      const scalar_t* XP = xp.data_ptr<scalar_t>() + offset * xp_stride;
      scalar_t* Gt = gates.data_ptr<scalar_t>() + kept * 4 * H;
      scalar_t* Out = w_hr ? h_pre->data_ptr<scalar_t>() + kept * H : Ht;
      for (int64_t b = first; b < end; b += stride) {
        if (w_peep) {
          lstm_forward_row<true>(P + b * 4 * H, XP + b * xp_stride, w_peep, Cs + b * H,
                                 Gt + b * 4 * H, Ct + b * H, Out + b * H, H);
        } else {
          lstm_forward_row<false>(P + b * 4 * H, XP + b * xp_stride, w_peep, Cs + b * H,
                                  Gt + b * 4 * H, Ct + b * H, Out + b * H, H);
        }
        if (!w_hr) std::memcpy(Hs + b * H, Ht + b * H, sizeof(scalar_t) * H);
      }
    };
    if (S > 1) {  // each split runs its own rows through the whole sequence
      at::parallel_for(0, S, 1, [&](int64_t s0, int64_t s1) {
        for (int64_t s = s0; s < s1; ++s) {
          int64_t offset = 0;
          for (int64_t t = 0; t < T; offset += batch_sizes.empty() ? B : batch_sizes[t], ++t) {
            const int64_t n = batch_sizes.empty() ? B : batch_sizes[t];
            const int64_t kept = keep_for_backward ? offset : 0;
            const int64_t m = split_rows(n, s, S);
            for (int64_t b = s + m * S; b < B; b += S) {  // its inactive rows: zeros, as below
              std::memset(h_all.data_ptr<scalar_t>() + (t * B + b) * R, 0, sizeof(scalar_t) * R);
              std::memset(c_all.data_ptr<scalar_t>() + ((keep_for_backward ? t : 0) * B + b) * H,
                          0, sizeof(scalar_t) * H);
            }
            if (m == 0) continue;
            const scalar_t* A = Hs + s * R;
            if (h_in) {
              scalar_t* In = h_in->data_ptr<scalar_t>() + kept * R;
              for (int64_t b = s; b < n; b += S)
                recurrent_input_rows(Hs + b * R, M ? M + b * R : nullptr, In + b * R, 1, R);
              A = In + s * R;
            }
            panel_step(X ? X + (offset + s) * I : nullptr, S * I, A, S * R, m, P + s * 4 * H,
                       S * 4 * H);
            gate_rows(t, offset, kept, s, n, S);
            if (!w_hr) continue;
            scalar_t* Ht = h_all.data_ptr<scalar_t>() + t * B * R;
            panel_gemm(h_pre->data_ptr<scalar_t>() + (kept + s) * H, m, H, S * H,
                       w_hr_packed->data_ptr<float>(), R, Ht + s * R, S * R, false);
            for (int64_t b = s; b < n; b += S)
              std::memcpy(Hs + b * R, Ht + b * R, sizeof(scalar_t) * R);
          }
        }
      });
      return;
    }
    int64_t offset = 0;  // first packed row of step t
    for (int64_t t = 0; t < T; offset += batch_sizes.empty() ? B : batch_sizes[t], ++t) {
      const int64_t n = batch_sizes.empty() ? B : batch_sizes[t];
      const int64_t kept = keep_for_backward ? offset : 0;  // the step's first row in gates, h_in
      zero_rows_from(h_all.data_ptr<scalar_t>() + t * B * R, n, B, R);  // outputs at padded steps
      zero_rows_from(c_all.data_ptr<scalar_t>() + (keep_for_backward ? t : 0) * B * H, n, B,
                     H);  // read by the peephole gradient
      if (n == 0) continue;
      Tensor rows = h.narrow(0, 0, n);
      if (h_in) {
        rows = h_in->narrow(0, kept, n);
        recurrent_input_rows(Hs, M, rows.data_ptr<scalar_t>(), n, R);
      }
      Tensor pre = pre_rows;  // the step's GEMM output (oneDNN and ATen return their own)
      if (X) {  // as in the split loop, each GEMM over all of the step's rows
        panel_step(X + offset * I, I, rows.data_ptr<scalar_t>(), R, n,
                   pre_rows.data_ptr<scalar_t>(), 4 * H);
      } else {
        pre = gemm_nt(rows, w_hh, w_hh_packed, pre_rows.narrow(0, 0, n));
      }
      P = pre.data_ptr<scalar_t>();
      for_rows(n, H,
               [&](int64_t begin, int64_t end) { gate_rows(t, offset, kept, begin, end, 1); });
      if (!w_hr) continue;
      auto h_t = h_all.select(0, t).narrow(0, 0, n);
      gemm_nt_into(h_pre->narrow(0, kept, n), *w_hr, w_hr_packed, h_t);
      h.narrow(0, 0, n).copy_(h_t);
    }
  });
  return {h_all, c_all, gates, h, c};
}

// Backward through time. d_h_all: (T, B, R) gradient of the outputs; d_h_n: (B, R); d_c_n:
// (B, H) (R: see lstm_forward). Fills d_gates (N, 4H) (gradients of the gate pre-activations,
// packed like gates; the caller turns them into weight and input gradients with GEMMs over all
// steps); returns it with d_h0, d_c0, the peephole gradient (3, H) (undefined without
// peepholes) and, with bias_grad, the bias gradient (4H), d_gates summed over rows (else
// undefined). w_hh_t_packed, if given, is w_hh^T (R, 4H) as rnnkit.kernels.gemm.pack laid it
// out. With a projection w_hr (R, H) (w_hr_t_packed: w_hr^T likewise), d_r (N, R) is filled
// with the gradient of each active row's h_t (packed like gates): the caller's weight gradient
// of W_hr reads it with h_pre; each step's d (o * tanh(c_t)) is d_r's rows @ W_hr.
std::vector<Tensor> lstm_backward(const Tensor& d_h_all, const Tensor& d_h_n, const Tensor& d_c_n,
                                  const Tensor& gates, const Tensor& c_all, const Tensor& c0,
                                  const Tensor& w_hh, const std::optional<Tensor>& w_hh_t_packed,
                                  const std::optional<Tensor>& peephole,
                                  const std::optional<Tensor>& mask,
                                  const std::vector<int64_t>& batch_sizes, Tensor d_gates,
                                  bool bias_grad, int64_t splits,
                                  const std::optional<Tensor>& w_hr,
                                  const std::optional<Tensor>& w_hr_t_packed,
                                  const std::optional<Tensor>& d_r) {
  // d_gates and d_r are scratch buffers the caller owns.
  const int64_t T = c_all.size(0), B = c_all.size(1), H = c0.size(1), N = gates.size(0);
  const int64_t R = d_h_n.size(1);
  TORCH_CHECK(w_hh.sizes() == at::IntArrayRef({4 * H, R}) &&
                  d_h_all.sizes() == at::IntArrayRef({T, B, R}),
              "lstm_backward: w_hh must be (4H, R) and d_h_all (T, B, R) for d_h_n (B, R); got ",
              w_hh.sizes(), " and ", d_h_all.sizes());
  TORCH_CHECK(w_hr ? (w_hr->sizes() == at::IntArrayRef({R, H}) && d_r && d_r->is_contiguous() &&
                      d_r->sizes() == at::IntArrayRef({N, R}))
                   : R == H,
              "lstm_backward: with a projection, w_hr must be (R, H) for d_h_n (B, R) and d_r a "
              "contiguous (", N, ", R) tensor; without one, d_h_n must be (B, H)");
  TORCH_CHECK(!mask || (mask->is_contiguous() && mask->sizes() == at::IntArrayRef({B, R})),
              "lstm_backward: a mask must be a contiguous (B, R) tensor");
  auto d_h = d_h_n.clone();  // gradient reaching h_t from later steps and from h_n
  auto d_c = d_c_n.clone();
  auto w_hh_t = w_hh.t();  // (R, 4H): d_h_prev = d_gates @ w_hh
  // with a projection, a step's d (o * tanh(c_t)), and zeros in place of the carried gradient
  // (the gate math reads d_pre alone: d_pre + 0; a template flag for it cost the loop 20%)
  auto d_pre = w_hr ? at::empty({B, H}, c0.options()) : at::Tensor();
  auto no_carry = w_hr ? at::zeros({B, H}, c0.options()) : at::Tensor();
  check_splits(splits, w_hh_t_packed);
  TORCH_CHECK(splits == 1 || !w_hr || is_panels(w_hr_t_packed),
              "lstm_backward: row splits need the projection's weight in panels too");
  const int64_t S = splits;
  // this thread's or split's [d_bias | d_peep]
  auto sums = at::zeros({std::max<int64_t>(S, at::get_num_threads()), 7 * H}, c0.options());
  AT_DISPATCH_FLOATING_TYPES(gates.scalar_type(), "rnnkit_lstm_backward", [&] {
    const scalar_t* w_peep = peephole ? peephole->data_ptr<scalar_t>() : nullptr;
    scalar_t* dH = d_h.data_ptr<scalar_t>();
    scalar_t* dC = d_c.data_ptr<scalar_t>();
    // The gate math of step t (packed rows from offset) for rows b = first, first + stride, ...
    // < end, summing into acc (a row of sums). d h_t: the output's gradient plus the carried
    // one, or with a projection d_pre alone.
    const auto gate_rows = [&](int64_t t, int64_t offset, int64_t first, int64_t end,
                               int64_t stride, scalar_t* acc) {
      const scalar_t* G = gates.data_ptr<scalar_t>() + offset * 4 * H;
      const scalar_t* C = c_all.data_ptr<scalar_t>() + t * B * H;
      const scalar_t* Cp = t > 0 ? C - B * H : c0.data_ptr<scalar_t>();
      const scalar_t* dHo =
          w_hr ? d_pre.data_ptr<scalar_t>() : d_h_all.data_ptr<scalar_t>() + t * B * H;
      scalar_t* dG = d_gates.data_ptr<scalar_t>() + offset * 4 * H;
      const scalar_t* dHc = w_hr ? no_carry.data_ptr<scalar_t>() : dH;  // the carried d_h
      const auto rows = [&](auto peep, auto bias) {
        for (int64_t b = first; b < end; b += stride) {
          const int64_t r = b * H;
          lstm_backward_row<decltype(peep)::value, decltype(bias)::value>(
              G + 4 * r, C + r, Cp + r, dHo + r, w_peep, dHc + r, dC + r, dG + 4 * r,
              acc + 4 * H, acc, H);
        }
      };
      using yes = std::true_type;
      using no = std::false_type;
      if (w_peep) {
        bias_grad ? rows(yes{}, yes{}) : rows(yes{}, no{});
      } else {
        bias_grad ? rows(no{}, yes{}) : rows(no{}, no{});
      }
    };
    if (S > 1) {  // each split runs its own rows back through the whole sequence
      const scalar_t* M = mask ? mask->data_ptr<scalar_t>() : nullptr;
      at::parallel_for(0, S, 1, [&](int64_t s0, int64_t s1) {
        for (int64_t s = s0; s < s1; ++s) {
          int64_t offset = N;
          for (int64_t t = T - 1; t >= 0; --t) {
            const int64_t n = batch_sizes.empty() ? B : batch_sizes[t];
            offset -= n;
            const int64_t m = split_rows(n, s, S);
            if (m == 0) continue;
            if (w_hr) {  // its rows of d h_t, kept in d_r, then d_pre = d h_t @ W_hr
              const scalar_t* dHo = d_h_all.data_ptr<scalar_t>() + t * B * R;
              scalar_t* dR = d_r->data_ptr<scalar_t>() + offset * R;
              for (int64_t b = s; b < n; b += S)
                for (int64_t k = 0; k < R; ++k) dR[b * R + k] = dHo[b * R + k] + dH[b * R + k];
              panel_gemm(dR + s * R, m, R, S * R, w_hr_t_packed->data_ptr<float>(), H,
                         d_pre.data_ptr<scalar_t>() + s * H, S * H, false);
            }
            gate_rows(t, offset, s, n, S, sums.data_ptr<scalar_t>() + s * 7 * H);
            // its rows of the carried d_h: d_gates @ w_hh, masked
            panel_gemm(d_gates.data_ptr<scalar_t>() + (offset + s) * 4 * H, m, 4 * H, S * 4 * H,
                       w_hh_t_packed->data_ptr<float>(), R, dH + s * R, S * R, false);
            for (int64_t b = s; M && b < n; b += S)
              for (int64_t k = 0; k < R; ++k) dH[b * R + k] *= M[b * R + k];
          }
        }
      });
      return;
    }
    int64_t offset = N;  // one past the last packed row of step t
    for (int64_t t = T - 1; t >= 0; --t) {
      const int64_t n = batch_sizes.empty() ? B : batch_sizes[t];
      offset -= n;
      if (n == 0) continue;
      if (w_hr) {
        projection_backward(d_h_all.select(0, t).narrow(0, 0, n), d_h.narrow(0, 0, n), *w_hr,
                            w_hr_t_packed, d_r->narrow(0, offset, n), d_pre.narrow(0, 0, n));
      }
      for_rows(n, H, [&](int64_t begin, int64_t end) {
        gate_rows(t, offset, begin, end, 1,
                  sums.data_ptr<scalar_t>() + at::get_thread_num() * 7 * H);
      });
      auto d_h_prev = d_h.narrow(0, 0, n);  // the carried d_h of active rows: d_gates @ w_hh
      gemm_nt_into(d_gates.narrow(0, offset, n), w_hh_t, w_hh_t_packed, d_h_prev);
      if (mask) d_h_prev.mul_(mask->narrow(0, 0, n));
    }
  });
  auto total = sums.sum(0);
  auto d_peephole = peephole ? total.narrow(0, 4 * H, 3 * H).view({3, H}) : at::Tensor();
  auto d_bias = bias_grad ? total.narrow(0, 0, 4 * H) : at::Tensor();
  return {d_gates, d_h, d_c, d_peephole, d_bias};
}

}  // namespace rnnkit

namespace rnnkit {
// (R, C) -> (C, R): written into columns [column, column + R) of out, a contiguous (C, ld)
// tensor (a reused buffer: fresh pages cost more than the copy; several row blocks of one
// matrix go side by side), or into a new contiguous tensor.
Tensor transpose(const Tensor& input, const std::optional<Tensor>& out_opt, int64_t column) {
  TORCH_CHECK(input.dim() == 2, "transpose: expected a 2-D tensor, got ", input.dim(), "-D");
  const auto src = input.contiguous();
  const int64_t R = src.size(0), C = src.size(1);
  auto out = out_opt ? *out_opt : at::empty({C, R}, src.options());
  TORCH_CHECK(out.dim() == 2 && out.is_contiguous() && out.size(0) == C && column >= 0 &&
                  column + R <= out.size(1) && out.scalar_type() == src.scalar_type(),
              "transpose: out must be a contiguous (C, >= column + R) tensor of the input's "
              "dtype; got ", out.sizes(), " ", out.scalar_type(), " for input ", src.sizes(), " ",
              src.scalar_type(), " at column ", column);
  AT_DISPATCH_FLOATING_TYPES(src.scalar_type(), "rnnkit_transpose", [&] {
    transpose_into(src.data_ptr<scalar_t>(), R, C, out.data_ptr<scalar_t>() + column,
                   out.size(1));
  });
  return out;
}

}  // namespace rnnkit

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("transpose", &rnnkit::transpose, "2-D transpose into out or a new contiguous tensor",
        py::arg("input"), py::arg("out") = py::none(), py::arg("column") = 0);
  m.def("pack_panels", &rnnkit::pack_panels, "W (N, K) laid out in panels for panel_gemm_nt");
  m.def("panel_gemm_nt", &rnnkit::panel_gemm_nt, "x (M, K) @ W^T (+ add) from W's panels",
        py::arg("x"), py::arg("panels"), py::arg("N"), py::arg("add") = py::none(),
        py::arg("out") = py::none());
  m.attr("panel_gemm") = rnnkit::kPanelGemm;
  m.attr("panel_isa") = rnnkit::kPanelIsa;
  m.def("lstm_forward", &rnnkit::lstm_forward, "LSTM forward over a sequence", py::arg("xp"),
        py::arg("h0"), py::arg("c0"), py::arg("w_hh"), py::arg("w_hh_packed"),
        py::arg("peephole"), py::arg("mask"), py::arg("batch_sizes"), py::arg("h_all"),
        py::arg("c_all"), py::arg("gates"), py::arg("h_in"), py::arg("keep_for_backward"),
        py::arg("splits") = 1,
        py::arg("x_rows") = py::none(), py::arg("w_ih_packed") = py::none(),
        py::arg("w_hr") = py::none(), py::arg("w_hr_packed") = py::none(),
        py::arg("h_pre") = py::none());
  m.def("lstm_backward", &rnnkit::lstm_backward, "LSTM backward through time", py::arg("d_h_all"),
        py::arg("d_h_n"), py::arg("d_c_n"), py::arg("gates"), py::arg("c_all"), py::arg("c0"),
        py::arg("w_hh"), py::arg("w_hh_t_packed"), py::arg("peephole"), py::arg("mask"),
        py::arg("batch_sizes"), py::arg("d_gates"), py::arg("bias_grad"), py::arg("splits") = 1,
        py::arg("w_hr") = py::none(), py::arg("w_hr_t_packed") = py::none(),
        py::arg("d_r") = py::none());
}
