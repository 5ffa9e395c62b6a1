// Elman RNN time loop with hand-written BPTT: h_t = f(xp_t + W_hh (m * h_{t-1})), f in {tanh,
// relu, sigmoid}. Only the recurrent GEMM and the activation run per step; the input projection
// (with both biases) and the weight gradients are single GEMMs done by the caller.
//
// Batches are sorted by decreasing length, so at step t the active sequences are rows
// [0, batch_sizes[t]) and the others keep their state untouched (the masking rule of
// rnnkit.ops.masking, with no work spent on padding). A row active at step t was active at every
// earlier step, so its state h_{t-1} is row b of the output h_all[t-1] (h0 at t = 0): no separate
// state buffer is kept.
#include "common.h"

namespace rnnkit {

enum Activation : int64_t { kTanh = 0, kRelu = 1, kSigmoid = 2 };

template <int64_t kAct, typename scalar_t>
inline scalar_t activate(scalar_t x) {
  if constexpr (kAct == kTanh) {
    return tanh_(x);
  } else if constexpr (kAct == kRelu) {
    return x < scalar_t(0) ? scalar_t(0) : x;
  } else {
    return sigmoid(x);
  }
}

// f'(pre) written in terms of the output h = f(pre).
template <int64_t kAct, typename scalar_t>
inline scalar_t derivative_from_output(scalar_t h) {
  if constexpr (kAct == kTanh) {
    return scalar_t(1) - h * h;
  } else if constexpr (kAct == kRelu) {
    return h > scalar_t(0) ? scalar_t(1) : scalar_t(0);
  } else {
    return h * (scalar_t(1) - h);
  }
}

// h[i] = f(pre[i]) for i < count.
template <int64_t kAct, typename scalar_t>
inline void activate_block(const scalar_t* __restrict__ pre, scalar_t* __restrict__ h,
                           int64_t count) {
#pragma omp simd
  for (int64_t i = 0; i < count; ++i) h[i] = activate<kAct>(pre[i]);
}

// d_pre[i] = (d_out[i] + d_h[i]) * f'(h[i]) for i < count.
template <int64_t kAct, typename scalar_t>
inline void backward_block(const scalar_t* __restrict__ h, const scalar_t* __restrict__ d_out,
                           const scalar_t* __restrict__ d_h, scalar_t* __restrict__ d_pre,
                           int64_t count) {
#pragma omp simd
  for (int64_t i = 0; i < count; ++i) {
    d_pre[i] = (d_out[i] + d_h[i]) * derivative_from_output<kAct>(h[i]);
  }
}

// Calls body(std::integral_constant<int64_t, kAct>) for the runtime activation code.
template <typename F>
inline void with_activation(int64_t activation, const F& body) {
  switch (activation) {
    case kTanh:
      body(std::integral_constant<int64_t, kTanh>{});
      break;
    case kRelu:
      body(std::integral_constant<int64_t, kRelu>{});
      break;
    case kSigmoid:
      body(std::integral_constant<int64_t, kSigmoid>{});
      break;
    default:
      TORCH_CHECK(false, "rnnkit elman: unknown activation code ", activation);
  }
}

inline int64_t active_rows(const std::vector<int64_t>& batch_sizes, int64_t t, int64_t B) {
  return batch_sizes.empty() ? B : batch_sizes[t];
}

// xp: (T, B, H) input projection plus both biases; h0: (B, H); w_hh: (H, H); mask: (B, H)
// recurrent dropout, applied to h_{t-1} where it enters w_hh. Returns h_all (T, B, H) (zeros at
// inactive rows), h_n (B, H) (the state at each row's last active step, h0 if never active),
// and, with keep_for_backward, h_prev_t (H, T*B), the transposed inputs of the recurrent GEMM
// (zeros at inactive rows), else an empty (0, T*B) tensor; h_all and h_prev_t are written into
// the caller's buffers (reused across calls by the caller).
std::vector<Tensor> elman_forward(const Tensor& xp, const Tensor& h0, const Tensor& w_hh,
                                  const std::optional<Tensor>& w_hh_packed,
                                  const std::optional<Tensor>& mask,
                                  const std::vector<int64_t>& batch_sizes, int64_t activation,
                                  bool keep_for_backward, Tensor h_all, Tensor h_prev_t) {
  const int64_t T = xp.size(0), B = xp.size(1), H = h0.size(1);
  TORCH_CHECK(xp.is_contiguous() && h0.is_contiguous(), "rnnkit elman: contiguous inputs");
  TORCH_CHECK(batch_sizes.empty() || static_cast<int64_t>(batch_sizes.size()) == T,
              "rnnkit elman: batch_sizes must have T entries");
  TORCH_CHECK(h_all.is_contiguous() && h_all.sizes() == at::IntArrayRef({T, B, H}) &&
                  h_prev_t.is_contiguous() &&
                  h_prev_t.sizes() == at::IntArrayRef({keep_for_backward ? H : 0, T * B}) &&
                  h_all.scalar_type() == h0.scalar_type() &&
                  h_prev_t.scalar_type() == h0.scalar_type(),
              "rnnkit elman: h_all must be a contiguous (T, B, H) tensor and h_prev_t (",
              keep_for_backward ? H : 0, ", T*B), of h0's dtype; got ", h_all.sizes(), " and ",
              h_prev_t.sizes());
  auto h_n = h0.clone();
  auto h_in_buffer = mask ? at::empty({B, H}, h0.options()) : Tensor();
  auto pre_rows = at::empty({B, H}, h0.options());  // a step's pre-activations
  AT_DISPATCH_FLOATING_TYPES(xp.scalar_type(), "rnnkit_elman_forward", [&] {
    with_activation(activation, [&](auto act) {
      constexpr int64_t kAct = decltype(act)::value;
      for (int64_t t = 0; t < T; ++t) {
        const int64_t n = active_rows(batch_sizes, t, B);
        auto h_t = h_all[t];
        zero_rows_from(h_t.data_ptr<scalar_t>(), n, B, H);  // outputs at padded steps
        if (keep_for_backward && n < B) h_prev_t.narrow(1, t * B + n, B - n).zero_();
        if (n == 0) continue;
        auto h_in = (t == 0 ? h0 : h_all[t - 1]).narrow(0, 0, n);
        if (mask) {
          auto dropped = h_in_buffer.narrow(0, 0, n);
          at::mul_out(dropped, h_in, mask->narrow(0, 0, n));
          h_in = dropped;
        }
        if (keep_for_backward) {
          transpose_block(h_in.data_ptr<scalar_t>(), n, H,
                          h_prev_t.data_ptr<scalar_t>() + t * B, T * B);
        }
        auto pre = gemm_nt_add(h_in, w_hh, w_hh_packed, xp[t].narrow(0, 0, n),
                               pre_rows.narrow(0, 0, n));  // (n, H)
        const scalar_t* P = pre.data_ptr<scalar_t>();
        scalar_t* Ht = h_t.data_ptr<scalar_t>();
        for_rows(n, H, [&](int64_t begin, int64_t end) {
          activate_block<kAct>(P + begin * H, Ht + begin * H, (end - begin) * H);
        });
        // Rows whose last active step is t: their final state.
        const int64_t n_next = t + 1 < T ? active_rows(batch_sizes, t + 1, B) : 0;
        if (n_next < n) h_n.narrow(0, n_next, n - n_next).copy_(h_t.narrow(0, n_next, n - n_next));
      }
    });
  });
  return {h_all, h_n, h_prev_t};
}

// Backward through time. d_h_all: (T, B, H) gradient of the outputs; d_h_n: (B, H); h_all: the
// forward outputs. Fills d_pre (T, B, H) (gradients of the pre-activations, zero at inactive
// rows; the caller turns them into weight, bias and input gradients with one GEMM each) and its
// transpose d_pre_t (H, T*B), the caller's buffers, and returns [d_pre, d_pre_t, d_h0].
// w_hh_t_packed, if given, is w_hh^T (H, H) as rnnkit.kernels.gemm.pack laid it out.
std::vector<Tensor> elman_backward(const Tensor& d_h_all, const Tensor& d_h_n,
                                   const Tensor& h_all, const Tensor& w_hh,
                                   const std::optional<Tensor>& w_hh_t_packed,
                                   const std::optional<Tensor>& mask,
                                   const std::vector<int64_t>& batch_sizes, int64_t activation,
                                   Tensor d_pre, Tensor d_pre_t) {
  const int64_t T = h_all.size(0), B = h_all.size(1), H = h_all.size(2);
  TORCH_CHECK(d_h_all.is_contiguous() && h_all.is_contiguous(), "rnnkit elman: contiguous");
  TORCH_CHECK(d_pre.is_contiguous() && d_pre.sizes() == h_all.sizes() &&
                  d_pre_t.is_contiguous() && d_pre_t.sizes() == at::IntArrayRef({H, T * B}) &&
                  d_pre.scalar_type() == h_all.scalar_type() &&
                  d_pre_t.scalar_type() == h_all.scalar_type(),
              "rnnkit elman: d_pre must be a contiguous (T, B, H) tensor and d_pre_t (H, T*B), "
              "of h_all's dtype");
  auto d_h = d_h_n.clone();  // gradient reaching h_t from later steps and from h_n
  auto w_hh_t = w_hh.t();  // gemm_nt(x, w_hh_t) = x @ w_hh: d_h_prev = d_pre @ w_hh
  AT_DISPATCH_FLOATING_TYPES(h_all.scalar_type(), "rnnkit_elman_backward", [&] {
    with_activation(activation, [&](auto act) {
      constexpr int64_t kAct = decltype(act)::value;
      for (int64_t t = T - 1; t >= 0; --t) {
        const int64_t n = active_rows(batch_sizes, t, B);
        auto d_pre_step = d_pre[t];
        zero_rows_from(d_pre_step.data_ptr<scalar_t>(), n, B, H);
        if (n < B) d_pre_t.narrow(1, t * B + n, B - n).zero_();
        if (n == 0) continue;
        const scalar_t* Ht = h_all[t].data_ptr<scalar_t>();
        const scalar_t* dO = d_h_all[t].data_ptr<scalar_t>();
        const scalar_t* dH = d_h.data_ptr<scalar_t>();
        scalar_t* dP = d_pre_step.data_ptr<scalar_t>();
        for_rows(n, H, [&](int64_t begin, int64_t end) {
          const int64_t r = begin * H;
          backward_block<kAct>(Ht + r, dO + r, dH + r, dP + r, (end - begin) * H);
        });
        auto d_pre_rows = d_pre_step.narrow(0, 0, n);
        transpose_block(d_pre_rows.data_ptr<scalar_t>(), n, H,
                        d_pre_t.data_ptr<scalar_t>() + t * B, T * B);
        auto d_h_prev = d_h.narrow(0, 0, n);  // the carried d_h of active rows: d_pre @ w_hh
        gemm_nt_into(d_pre_rows, w_hh_t, w_hh_t_packed, d_h_prev);
        if (mask) d_h_prev.mul_(mask->narrow(0, 0, n));
      }
    });
  });
  return {d_pre, d_pre_t, d_h};
}

}  // namespace rnnkit

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("elman_forward", &rnnkit::elman_forward, "Elman RNN forward over a sequence");
  m.def("elman_backward", &rnnkit::elman_backward, "Elman RNN backward through time");
}
