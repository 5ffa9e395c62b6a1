// Layer-normalised LSTM (Ba et al. 2016, as in rnnkit.cells.lstm): the time loop and BPTT in
// C++. The caller does the input projection W_ih x for all steps in one GEMM; per step this
// runs the recurrent GEMM, the per-gate normalisation of both sides (W_ih x and W_hh h), the
// gates, and the normalisation of the cell state, and backward the same the other way, so each
// row is normalised and differentiated while it is in cache. With a projection W_hr (R, H)
// (torch.nn's proj_size), h_t = W_hr (o * tanh(LN(c_t))): one more GEMM per step, as in
// lstm.cpp; h and the recurrent weight's input are then R wide.
// Batches are sorted by decreasing length: rows [0, batch_sizes[t]) are active at step t.
#include "common.h"
#include "layer_norm.h"

namespace rnnkit {

// The parameters of the normalisation, as raw pointers (biases may be null).
template <typename scalar_t>
struct NormParams {
  const scalar_t *g_ih, *b_ih, *g_hh, *b_hh, *g_c, *b_c, *w_peep;
};

// Forward of one row. xp: (4H) raw W_ih x; hh: (4H) raw W_hh h_{t-1}; c: (H) state, updated in
// place. Saves x_hat, hh_hat (4H each), rstd_ih, rstd_hh (4 each), gates (4H: activated i, f,
// g, o), c_hat (H), rstd_c.
template <bool kPeephole, typename scalar_t>
inline void ln_forward_row(const scalar_t* __restrict__ xp, const scalar_t* __restrict__ hh,
                           const NormParams<scalar_t>& p, scalar_t* __restrict__ c,
                           scalar_t* __restrict__ x_hat, scalar_t* __restrict__ rstd_ih,
                           scalar_t* __restrict__ hh_hat, scalar_t* __restrict__ rstd_hh,
                           scalar_t* __restrict__ gates, scalar_t* __restrict__ c_hat,
                           scalar_t* __restrict__ rstd_c, scalar_t* __restrict__ c_out,
                           scalar_t* __restrict__ h_out, int64_t H) {
  for (int64_t k = 0; k < 4; ++k) {
    rstd_ih[k] = normalise(xp + k * H, x_hat + k * H, H);
    rstd_hh[k] = normalise(hh + k * H, hh_hat + k * H, H);
  }
  const scalar_t *g_ih = p.g_ih, *g_hh = p.g_hh, *b_ih = p.b_ih, *b_hh = p.b_hh;
  const scalar_t *w_peep = p.w_peep, *g_c = p.g_c, *b_c = p.b_c;
  scalar_t* __restrict__ pre = gates;  // pre-activations first, activated in place below
#pragma omp simd
  for (int64_t m = 0; m < 4 * H; ++m)
    pre[m] = (x_hat[m] * g_ih[m] + (b_ih ? b_ih[m] : 0)) +
             (hh_hat[m] * g_hh[m] + (b_hh ? b_hh[m] : 0));
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

// xp: (T, B, 4H) raw W_ih x; h0, c0: (B, H); w_hh: (4H, H); g_ih, g_hh: (4H) gains, b_ih,
// b_hh: (4H) biases (or none); g_c, b_c: (H) the cell state's gain and bias; peephole: (3, H);
// mask: (B, H) recurrent dropout. saved: the caller's buffers for what backward reads (reused
// across calls by the caller): c_all (T, B, H), gates (T, B, 4H), x_hat (T, B, 4H), rstd_ih
// (T, B, 4), hh_hat (T, B, 4H), rstd_hh (T, B, 4), c_hat (T, B, H), rstd_c (T, B).
// h_in (T, B, R), required with a mask: each step's GEMM input (h_{t-1} masked; zero at
// inactive rows) is written there for the weight gradient to read back. With a projection
// w_hr (R, H), h0 is (B, R), w_hh (4H, R), mask (B, R), and h_pre (T, B, H) receives
// o * tanh(LN(c_t)) (zero at inactive rows) for W_hr's weight gradient; without, R = H. Without
// keep_for_backward nothing is kept: saved, h_in and h_pre have 1 in place of T, one step at a
// time. Returns h_all (T, B, R), the saved buffers filled, h_n, c_n.
std::vector<Tensor> lstm_ln_forward(const Tensor& xp, const Tensor& h0, const Tensor& c0,
                                    const Tensor& w_hh, const std::optional<Tensor>& w_hh_packed,
                                    const Tensor& g_ih, const std::optional<Tensor>& b_ih,
                                    const Tensor& g_hh, const std::optional<Tensor>& b_hh,
                                    const Tensor& g_c, const Tensor& b_c,
                                    const std::optional<Tensor>& peephole,
                                    const std::optional<Tensor>& mask,
                                    const std::vector<int64_t>& batch_sizes,
                                    const std::vector<Tensor>& saved,
                                    const std::optional<Tensor>& h_in, bool keep_for_backward,
                                    const std::optional<Tensor>& w_hr,
                                    const std::optional<Tensor>& w_hr_packed,
                                    const std::optional<Tensor>& h_pre) {
  const int64_t T = xp.size(0), B = xp.size(1), H = c0.size(1), R = h0.size(1);
  const int64_t S = keep_for_backward ? T : 1;  // steps the buffers hold
  TORCH_CHECK(xp.is_contiguous(), "lstm_ln_forward: xp must be contiguous");
  TORCH_CHECK(w_hh.sizes() == at::IntArrayRef({4 * H, R}),
              "lstm_ln_forward: w_hh must be (4H, R) for c0 (B, H) and h0 (B, R); got ",
              w_hh.sizes());
  TORCH_CHECK(w_hr ? (w_hr->sizes() == at::IntArrayRef({R, H}) && h_pre &&
                      h_pre->is_contiguous() && h_pre->sizes() == at::IntArrayRef({S, B, H}))
                   : R == H,
              "lstm_ln_forward: with a projection, w_hr must be (R, H) and h_pre a contiguous (",
              S, ", B, H) tensor; without one, h0 must be (B, H)");
  TORCH_CHECK(!mask || (h_in && mask->is_contiguous() &&
                        mask->sizes() == at::IntArrayRef({B, R})),
              "lstm_ln_forward: a mask must be a contiguous (B, R) tensor and needs h_in");
  TORCH_CHECK(!h_in || (h_in->is_contiguous() && h_in->sizes() == at::IntArrayRef({S, B, R})),
              "lstm_ln_forward: h_in must be a contiguous (", S, ", B, R) tensor");
  const std::vector<std::vector<int64_t>> shapes = {{S, B, H},     {S, B, 4 * H}, {S, B, 4 * H},
                                                    {S, B, 4},     {S, B, 4 * H}, {S, B, 4},
                                                    {S, B, H},     {S, B}};
  TORCH_CHECK(saved.size() == shapes.size(), "lstm_ln_forward: expected 8 saved buffers");
  for (size_t k = 0; k < shapes.size(); ++k)
    TORCH_CHECK(saved[k].is_contiguous() && saved[k].sizes() == at::IntArrayRef(shapes[k]) &&
                    saved[k].scalar_type() == xp.scalar_type(),
                "lstm_ln_forward: saved buffer ", k, " must be contiguous, shaped ", shapes[k]);
  auto h_all = at::empty({T, B, R}, h0.options());
  auto h = h0.clone();
  auto c = c0.clone();
  auto hh_rows = at::empty({B, 4 * H}, h0.options());  // W_hh h_{t-1} of a step's active rows
  AT_DISPATCH_FLOATING_TYPES(xp.scalar_type(), "rnnkit_lstm_ln_forward", [&] {
    const NormParams<scalar_t> p{
        g_ih.data_ptr<scalar_t>(), b_ih ? b_ih->data_ptr<scalar_t>() : nullptr,
        g_hh.data_ptr<scalar_t>(), b_hh ? b_hh->data_ptr<scalar_t>() : nullptr,
        g_c.data_ptr<scalar_t>(),  b_c.data_ptr<scalar_t>(),
        peephole ? peephole->data_ptr<scalar_t>() : nullptr};
    scalar_t *Ca = saved[0].data_ptr<scalar_t>(), *Ga = saved[1].data_ptr<scalar_t>();
    scalar_t *Xh = saved[2].data_ptr<scalar_t>(), *Ri = saved[3].data_ptr<scalar_t>();
    scalar_t *HHh = saved[4].data_ptr<scalar_t>(), *Rh = saved[5].data_ptr<scalar_t>();
    scalar_t *Chat = saved[6].data_ptr<scalar_t>(), *Rc = saved[7].data_ptr<scalar_t>();
    for (int64_t t = 0; t < T; ++t) {
      const int64_t n = batch_sizes.empty() ? B : batch_sizes[t];
      const int64_t r0 = t * B;  // first row of step t
      const int64_t k0 = keep_for_backward ? r0 : 0;  // its first row in the saved buffers
      scalar_t *Ht = h_all.data_ptr<scalar_t>() + R * r0, *Ct = Ca + H * k0, *Ch = Chat + H * k0;
      scalar_t *Gt = Ga + 4 * H * k0, *Xt = Xh + 4 * H * k0, *HHt = HHh + 4 * H * k0;
      scalar_t *Rit = Ri + 4 * k0, *Rht = Rh + 4 * k0, *Rct = Rc + k0;
      // o * tanh(LN(c_t)): the output, or with a projection its input
      scalar_t* Out = w_hr ? h_pre->data_ptr<scalar_t>() + H * k0 : Ht;
      zero_rows_from(Ht, n, B, R);
      if (w_hr) zero_rows_from(Out, n, B, H);  // without a projection Out is Ht
      for (scalar_t* buf : {Ct, Ch}) zero_rows_from(buf, n, B, H);
      for (scalar_t* buf : {Gt, Xt, HHt}) zero_rows_from(buf, n, B, 4 * H);
      for (scalar_t* buf : {Rit, Rht}) zero_rows_from(buf, n, B, 4);
      zero_rows_from(Rct, n, B, 1);
      Tensor rows = h.narrow(0, 0, n);
      if (h_in) {
        rows = (*h_in)[keep_for_backward ? t : 0].narrow(0, 0, n);
        zero_rows_from(rows.data_ptr<scalar_t>(), n, B, R);  // read by the weight gradient
        recurrent_input_rows(h.data_ptr<scalar_t>(), mask ? mask->data_ptr<scalar_t>() : nullptr,
                             rows.data_ptr<scalar_t>(), n, R);
      }
      if (n == 0) continue;
      auto hh = gemm_nt(rows, w_hh, w_hh_packed, hh_rows.narrow(0, 0, n));  // (n, 4H), raw
      const scalar_t* XP = xp.data_ptr<scalar_t>() + 4 * H * r0;
      const scalar_t* HH = hh.data_ptr<scalar_t>();
      scalar_t* Cs = c.data_ptr<scalar_t>();
      for_rows(n, 4 * H, [&](int64_t begin, int64_t end) {
        for (int64_t b = begin; b < end; ++b) {
          const int64_t r = b * H;
          auto row = p.w_peep ? ln_forward_row<true, scalar_t> : ln_forward_row<false, scalar_t>;
          row(XP + 4 * r, HH + 4 * r, p, Cs + r, Xt + 4 * r, Rit + 4 * b, HHt + 4 * r,
              Rht + 4 * b, Gt + 4 * r, Ch + r, Rct + b, Ct + r, Out + r, H);
        }
      });
      if (w_hr) {  // h_t = W_hr (o * tanh(LN(c_t)))
        gemm_nt_into((*h_pre)[keep_for_backward ? t : 0].narrow(0, 0, n), *w_hr, w_hr_packed,
                     h_all[t].narrow(0, 0, n));
      }
      std::memcpy(h.data_ptr<scalar_t>(), Ht, sizeof(scalar_t) * n * R);
    }
  });
  return {h_all, h, c};
}

// Per-thread running sums of the parameter gradients in backward, at these offsets (units of
// H) into one row of 17H: gains of both sides, the bias, the cell state's gain and bias, and
// the peepholes.
constexpr int64_t kSumGih = 0, kSumGhh = 4, kSumB = 8, kSumGc = 12, kSumBc = 13, kSumPeep = 14,
                  kSumRow = 17;

// Backward of one row: from d h_t (output gradient d_out plus the carried d_h) and the carried
// d c_t, writes d_xp and d_hh (4H each: gradients of the raw W_ih x and W_hh h_{t-1}), updates
// d_c to d c_{t-1} and adds to the sums in acc (kSumRow H). scratch: 7H per thread.
template <bool kPeephole, typename scalar_t>
inline void ln_backward_row(const scalar_t* __restrict__ g, const scalar_t* __restrict__ c,
                            const scalar_t* __restrict__ c_prev, const scalar_t* __restrict__ c_hat,
                            scalar_t rstd_c, const scalar_t* __restrict__ x_hat,
                            const scalar_t* __restrict__ rstd_ih,
                            const scalar_t* __restrict__ hh_hat,
                            const scalar_t* __restrict__ rstd_hh, const NormParams<scalar_t>& p,
                            const scalar_t* __restrict__ d_out, const scalar_t* __restrict__ d_h,
                            scalar_t* __restrict__ d_c, scalar_t* __restrict__ d_xp,
                            scalar_t* __restrict__ d_hh, scalar_t* __restrict__ scratch,
                            scalar_t* __restrict__ acc, int64_t H) {
  const scalar_t *g_c = p.g_c, *b_c = p.b_c, *w_peep = p.w_peep;
  scalar_t* __restrict__ d_g = scratch;            // (4H) gradient of the pre-activations
  scalar_t* __restrict__ d_c_hat = scratch + 4 * H;  // (H)
  scalar_t* __restrict__ d_c_ln = scratch + 5 * H;   // (H)
  scalar_t* __restrict__ d_c_read = scratch + 6 * H;  // (H) of the normalised cell state
#pragma omp simd
  for (int64_t j = 0; j < H; ++j) {
    const scalar_t o = g[3 * H + j];
    const scalar_t tc = tanh_(c_hat[j] * g_c[j] + b_c[j]);
    const scalar_t dh = d_out[j] + d_h[j];
    d_g[3 * H + j] = dh * tc * o * (1 - o);
    d_c_read[j] = dh * o * (1 - tc * tc);
    d_c_hat[j] = d_c_read[j] * g_c[j];
    acc[kSumGc * H + j] += d_c_read[j] * c_hat[j];
    acc[kSumBc * H + j] += d_c_read[j];
  }
  normalise_backward(d_c_hat, c_hat, rstd_c, d_c_ln, H);  // gradient of c_t through the LN
#pragma omp simd
  for (int64_t j = 0; j < H; ++j) {
    const scalar_t i = g[j], f = g[H + j], gg = g[2 * H + j], d_o = d_g[3 * H + j];
    scalar_t dc = d_c[j] + d_c_ln[j];
    if constexpr (kPeephole) dc += d_o * w_peep[2 * H + j];
    const scalar_t di = dc * gg * i * (1 - i), df = dc * c_prev[j] * f * (1 - f);
    scalar_t dc_prev = dc * f;
    if constexpr (kPeephole) {
      dc_prev += di * w_peep[j] + df * w_peep[H + j];
      acc[kSumPeep * H + j] += di * c_prev[j];
      acc[(kSumPeep + 1) * H + j] += df * c_prev[j];
      acc[(kSumPeep + 2) * H + j] += d_o * c[j];
    }
    d_g[j] = di;
    d_g[H + j] = df;
    d_g[2 * H + j] = dc * i * (1 - gg * gg);
    d_c[j] = dc_prev;
  }
  // b_ih and b_hh are added to the same pre-activation: one bias sum serves both.
  gate_norm_backward<4>(d_g, p.g_ih, x_hat, rstd_ih, acc + kSumGih * H,
                        static_cast<scalar_t*>(nullptr), d_xp, H);
  gate_norm_backward<4>(d_g, p.g_hh, hh_hat, rstd_hh, acc + kSumGhh * H, acc + kSumB * H, d_hh, H);
}

// Backward through time, reading what lstm_ln_forward saved. d_h_all: (T, B, R) gradient of
// the outputs; d_h_n: (B, R); d_c_n: (B, H). Fills d_xp, d_hh (T, B, 4H), the caller's buffers
// (it turns them into the input and weight gradients with GEMMs over all steps), and returns
// them with d_h0, d_c0, and the gradients of
// g_ih, g_hh, the bias (4H each; the same for b_ih and b_hh), g_c, b_c (H each) and the
// peepholes (3, H; undefined without them). With a projection w_hr (R, H) (w_hr_t_packed:
// w_hr^T laid out by rnnkit.kernels.gemm.pack), d_r (T, B, R), the caller's buffer, is filled
// with the gradient of each h_t (zero at inactive rows) for W_hr's weight gradient.
std::vector<Tensor> lstm_ln_backward(const Tensor& d_h_all, const Tensor& d_h_n,
                                     const Tensor& d_c_n, const Tensor& c0,
                                     const std::vector<Tensor>& saved, const Tensor& w_hh,
                                     const std::optional<Tensor>& w_hh_t_packed,
                                     const Tensor& g_ih, const Tensor& g_hh, const Tensor& g_c,
                                     const Tensor& b_c, const std::optional<Tensor>& peephole,
                                     const std::optional<Tensor>& mask,
                                     const std::vector<int64_t>& batch_sizes, Tensor d_xp,
                                     Tensor d_hh, const std::optional<Tensor>& w_hr,
                                     const std::optional<Tensor>& w_hr_t_packed,
                                     const std::optional<Tensor>& d_r) {
  TORCH_CHECK(saved.size() == 8, "lstm_ln_backward: expected the 8 buffers of lstm_ln_forward");
  const Tensor& gates = saved[1];
  const int64_t T = gates.size(0), B = gates.size(1), H = c0.size(1), R = d_h_n.size(1);
  TORCH_CHECK(w_hh.sizes() == at::IntArrayRef({4 * H, R}) &&
                  d_h_all.sizes() == at::IntArrayRef({T, B, R}),
              "lstm_ln_backward: w_hh must be (4H, R) and d_h_all (T, B, R) for d_h_n (B, R); "
              "got ", w_hh.sizes(), " and ", d_h_all.sizes());
  TORCH_CHECK(w_hr ? (w_hr->sizes() == at::IntArrayRef({R, H}) && d_r && d_r->is_contiguous() &&
                      d_r->sizes() == at::IntArrayRef({T, B, R}))
                   : R == H,
              "lstm_ln_backward: with a projection, w_hr must be (R, H) and d_r a contiguous "
              "(T, B, R) tensor; without one, d_h_n must be (B, H)");
  TORCH_CHECK(!mask || (mask->is_contiguous() && mask->sizes() == at::IntArrayRef({B, R})),
              "lstm_ln_backward: a mask must be a contiguous (B, R) tensor");
  TORCH_CHECK(d_xp.is_contiguous() && d_xp.sizes() == gates.sizes() && d_hh.is_contiguous() &&
                  d_hh.sizes() == gates.sizes(),
              "lstm_ln_backward: d_xp and d_hh must be contiguous (T, B, 4H) buffers");
  const int64_t threads = at::get_num_threads();
  auto scratch = at::empty({threads, 7 * H}, c0.options());
  auto sums = at::zeros({threads, kSumRow * H}, c0.options());
  auto d_h = d_h_n.clone();
  auto d_c = d_c_n.clone();
  auto w_hh_t = w_hh.t();
  // with a projection, a step's d (o * tanh(LN(c_t))), and zeros for the carried gradient
  auto d_pre = w_hr ? at::empty({B, H}, c0.options()) : at::Tensor();
  auto no_carry = w_hr ? at::zeros({B, H}, c0.options()) : at::Tensor();
  AT_DISPATCH_FLOATING_TYPES(gates.scalar_type(), "rnnkit_lstm_ln_backward", [&] {
    const NormParams<scalar_t> p{g_ih.data_ptr<scalar_t>(), nullptr, g_hh.data_ptr<scalar_t>(),
                                 nullptr, g_c.data_ptr<scalar_t>(), b_c.data_ptr<scalar_t>(),
                                 peephole ? peephole->data_ptr<scalar_t>() : nullptr};
    const scalar_t *Ca = saved[0].data_ptr<scalar_t>(), *Ga = saved[1].data_ptr<scalar_t>();
    const scalar_t *Xh = saved[2].data_ptr<scalar_t>(), *Ri = saved[3].data_ptr<scalar_t>();
    const scalar_t *HHh = saved[4].data_ptr<scalar_t>(), *Rh = saved[5].data_ptr<scalar_t>();
    const scalar_t *Chat = saved[6].data_ptr<scalar_t>(), *Rc = saved[7].data_ptr<scalar_t>();
    for (int64_t t = T - 1; t >= 0; --t) {
      const int64_t n = batch_sizes.empty() ? B : batch_sizes[t];
      const int64_t r0 = t * B;  // first row of step t
      scalar_t *dX = d_xp.data_ptr<scalar_t>() + 4 * H * r0;
      scalar_t *dHH = d_hh.data_ptr<scalar_t>() + 4 * H * r0;
      zero_rows_from(dX, n, B, 4 * H);
      zero_rows_from(dHH, n, B, 4 * H);
      if (n == 0) continue;
      const scalar_t* C = Ca + H * r0;
      const scalar_t* Cp = t > 0 ? C - H * B : c0.data_ptr<scalar_t>();
      const scalar_t* dHo = d_h_all.data_ptr<scalar_t>() + R * r0;
      const scalar_t* dHc = d_h.data_ptr<scalar_t>();  // the carried d_h
      scalar_t* dC = d_c.data_ptr<scalar_t>();
      if (w_hr) {  // d h_t (kept in d_r) -> d (o * tanh(LN(c_t))) = d h_t @ W_hr
        auto d_r_t = (*d_r)[t];
        zero_rows_from(d_r_t.data_ptr<scalar_t>(), n, B, R);
        projection_backward(d_h_all[t].narrow(0, 0, n), d_h.narrow(0, 0, n), *w_hr, w_hr_t_packed,
                            d_r_t.narrow(0, 0, n), d_pre.narrow(0, 0, n));
        dHo = d_pre.data_ptr<scalar_t>();
        dHc = no_carry.data_ptr<scalar_t>();
      }
      for_rows(n, 4 * H, [&](int64_t begin, int64_t end) {
        scalar_t* s = scratch.data_ptr<scalar_t>() + at::get_thread_num() * 7 * H;
        scalar_t* a = sums.data_ptr<scalar_t>() + at::get_thread_num() * kSumRow * H;
        for (int64_t b = begin; b < end; ++b) {
          const int64_t r = b * H, q = r0 + b;  // q: the row in the saved buffers
          auto row = p.w_peep ? ln_backward_row<true, scalar_t> : ln_backward_row<false, scalar_t>;
          row(Ga + 4 * H * q, C + r, Cp + r, Chat + H * q, Rc[q], Xh + 4 * H * q, Ri + 4 * q,
              HHh + 4 * H * q, Rh + 4 * q, p, dHo + r, dHc + r, dC + r, dX + 4 * r, dHH + 4 * r,
              s, a, H);
        }
      });
      auto d_h_prev = d_h.narrow(0, 0, n);  // the carried d_h of active rows: d_hh @ w_hh
      gemm_nt_into(d_hh.view({T * B, 4 * H}).narrow(0, r0, n), w_hh_t, w_hh_t_packed,
                   d_h_prev);
      if (mask) d_h_prev.mul_(mask->narrow(0, 0, n));
    }
  });
  auto total = sums.sum(0);
  auto part = [&](int64_t at, int64_t len) { return total.narrow(0, at * H, len * H); };
  auto d_peephole = peephole ? part(kSumPeep, 3).view({3, H}) : at::Tensor();
  return {d_xp, d_hh, d_h, d_c, part(kSumGih, 4), part(kSumGhh, 4), part(kSumB, 4),
          part(kSumGc, 1), part(kSumBc, 1), d_peephole};
}

}  // namespace rnnkit

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("lstm_ln_forward", &rnnkit::lstm_ln_forward, "layer-norm LSTM forward", py::arg("xp"),
        py::arg("h0"), py::arg("c0"), py::arg("w_hh"), py::arg("w_hh_packed"), py::arg("g_ih"),
        py::arg("b_ih"), py::arg("g_hh"), py::arg("b_hh"), py::arg("g_c"), py::arg("b_c"),
        py::arg("peephole"), py::arg("mask"), py::arg("batch_sizes"), py::arg("saved"),
        py::arg("h_in"), py::arg("keep_for_backward"), py::arg("w_hr") = py::none(),
        py::arg("w_hr_packed") = py::none(), py::arg("h_pre") = py::none());
  m.def("lstm_ln_backward", &rnnkit::lstm_ln_backward, "layer-norm LSTM backward through time",
        py::arg("d_h_all"), py::arg("d_h_n"), py::arg("d_c_n"), py::arg("c0"), py::arg("saved"),
        py::arg("w_hh"), py::arg("w_hh_t_packed"), py::arg("g_ih"), py::arg("g_hh"),
        py::arg("g_c"), py::arg("b_c"), py::arg("peephole"), py::arg("mask"),
        py::arg("batch_sizes"), py::arg("d_xp"), py::arg("d_hh"), py::arg("w_hr") = py::none(),
        py::arg("w_hr_t_packed") = py::none(), py::arg("d_r") = py::none());
}
