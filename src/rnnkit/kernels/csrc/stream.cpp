// One time step of a stacked, unidirectional LSTM or GRU for online inference (streaming):
// every layer in one call on a Stepper that holds the weights, laid out once for small
// batches, no autograd.
#include "common.h"
#include "stream_panels.h"

namespace rnnkit {

// For B <= kSmallBatch the step has its own panels (stream_panels.h): [w_x | w_h] side by
// side, kPanel output rows each. Tried here and not faster (`python -m benchmarks.bench_speed
// --cases streaming-lstm`): panel_gemm.h's 32-wide register blocks, and 16 independent
// accumulator chains; at one row the step waits on its weights coming from L2, not on the FMAs.
constexpr int64_t kSmallBatch = 4;  // up to this many rows, panel products beat GEMM calls

// [w_x | w_h] (N, I + H) regrouped into panels of kPanel output rows, zero past N:
// panels[p, k, j] = [w_x | w_h][p * kPanel + j, k]. A panel is one contiguous block that a
// thread reads from start to end, so each core keeps its share of the weights in its cache.
inline Tensor make_panels(const Tensor& w_x, const Tensor& w_h) {
  const int64_t N = w_x.size(0), K = w_x.size(1) + w_h.size(1);
  const int64_t P = (N + kPanel - 1) / kPanel;
  auto w = at::zeros({P * kPanel, K}, w_x.options());
  w.narrow(0, 0, N).copy_(at::cat({w_x, w_h}, 1));
  return w.view({P, kPanel, K}).transpose(1, 2).contiguous();  // (P, K, kPanel)
}

// Both products of a step for a few rows: a = x @ w_x^T + b_x and r = h @ w_h^T + b_h, each
// (B, N), from the panels; panels split across threads, one parallel region per layer. With
// reverse, each thread walks its panels last to first: alternating the direction from step to
// step starts each step on the panels the last one read most recently, still in cache (a
// core's share of an LSTM's weights at H=256 is its whole L2; measured 10.5 -> 8.9 us).
template <typename scalar_t>
void panel_products(const scalar_t* panels, const scalar_t* x, int64_t Kx, const scalar_t* b_x,
                    const scalar_t* h, int64_t Kh, const scalar_t* b_h, int64_t B, int64_t N,
                    bool reverse, scalar_t* a, scalar_t* r) {
  const int64_t P = (N + kPanel - 1) / kPanel, K = Kx + Kh;
  const int64_t grain = (P + at::get_num_threads() - 1) / at::get_num_threads();
  at::parallel_for(0, P, grain, [&](int64_t begin, int64_t end) {
    scalar_t acc_x[kPanel], acc_h[kPanel];
    for (int64_t q = begin; q < end; ++q) {
      const int64_t p = reverse ? begin + end - 1 - q : q;
      const scalar_t* panel = panels + p * K * kPanel;
      const int64_t n0 = p * kPanel, width = std::min(kPanel, N - n0);
      for (int64_t b = 0; b < B; ++b) {
        panel_column_sums(panel, x + b * Kx, Kx, acc_x);
        panel_column_sums(panel + Kx * kPanel, h + b * Kh, Kh, acc_h);
        scalar_t *a_row = a + b * N + n0, *r_row = r + b * N + n0;
        for (int64_t j = 0; j < width; ++j) {
          a_row[j] = acc_x[j] + (b_x ? b_x[n0 + j] : 0);
          r_row[j] = acc_h[j] + (b_h ? b_h[n0 + j] : 0);
        }
      }
    }
  });
}

// p = a + r: the LSTM's gate pre-activations (4H: i, f, g, o).
template <typename scalar_t>
inline void lstm_step_row(const scalar_t* __restrict__ a, const scalar_t* __restrict__ r,
                          const scalar_t* __restrict__ c, scalar_t* __restrict__ h_out,
                          scalar_t* __restrict__ c_out, int64_t H) {
#pragma omp simd
  for (int64_t j = 0; j < H; ++j) {
    const scalar_t i = sigmoid(a[j] + r[j]), f = sigmoid(a[H + j] + r[H + j]);
    const scalar_t g = tanh_(a[2 * H + j] + r[2 * H + j]);
    const scalar_t o = sigmoid(a[3 * H + j] + r[3 * H + j]);
    const scalar_t c_new = f * c[j] + i * g;
    c_out[j] = c_new;
    h_out[j] = o * tanh_(c_new);
  }
}

// GRU (torch's formulation): xr = W_ih x + b_ih, hr = W_hh h + b_hh, each (3H: r, z, n).
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

// The weights of a stacked LSTM or GRU, ready for steps of one batch size B. Per layer: w_ih
// (N, I_k) and w_hh (N, R) with N = 4H (LSTM) or 3H (GRU), the bias of the input side b_x
// (LSTM: b_ih + b_hh) and of the recurrent side b_h (GRU: b_hh, kept apart because r
// multiplies it), and the weights as gemm.pack laid them out for the GEMM route (B >
// kSmallBatch: rnnkit's panel kernel or oneDNN). A projected LSTM (torch.nn's proj_size) also
// has w_hr (R, H), h_t = W_hr (o * tanh(c_t)), and its packed form (panels up to 128 rows);
// R, the width of h, is H otherwise. `watched`
// are the layer's parameters: a step on a stepper that is no longer fresh() would use stale
// weights, so the caller rebuilds it.
class Stepper {
 public:
  Stepper(bool lstm, int64_t batch_size, std::vector<Tensor> watched, std::vector<Tensor> w_ih,
          std::vector<Tensor> w_hh, std::vector<std::optional<Tensor>> b_x,
          std::vector<std::optional<Tensor>> b_h, std::vector<std::optional<Tensor>> packed_ih,
          std::vector<std::optional<Tensor>> packed_hh, std::vector<std::optional<Tensor>> w_hr,
          std::vector<std::optional<Tensor>> packed_hr)
      : lstm_(lstm), B_(batch_size), L_(w_ih.size()),
        H_(w_hh[0].size(0) / (lstm ? 4 : 3)), R_(w_hh[0].size(1)),
        watched_(std::move(watched)), w_ih_(std::move(w_ih)), w_hh_(std::move(w_hh)),
        b_x_(std::move(b_x)), b_h_(std::move(b_h)), packed_ih_(std::move(packed_ih)),
        packed_hh_(std::move(packed_hh)), w_hr_(std::move(w_hr)),
        packed_hr_(std::move(packed_hr)) {
    TORCH_CHECK(lstm_ || R_ == H_, "Stepper: a GRU's w_hh must be (3H, H)");
    TORCH_CHECK(w_hr_.size() == static_cast<size_t>(L_) && packed_hr_.size() == w_hr_.size(),
                "Stepper: one w_hr (or None) and its packed form per layer");
    for (const auto& w : w_hr_)
      TORCH_CHECK(w ? w->sizes() == at::IntArrayRef({R_, H_}) : R_ == H_,
                  "Stepper: w_hr must be (R, H) for w_hh (4H, R); without it R = H");
    for (const auto& p : watched_) seen_.emplace_back(p._version(), p.data_ptr());
    if (B_ <= kSmallBatch) {
      for (int64_t k = 0; k < L_; ++k) panels_.push_back(make_panels(w_ih_[k], w_hh_[k]));
      reverse_.assign(L_, false);
      a_ = at::empty({B_, w_ih_[0].size(0)}, w_ih_[0].options());
      r_ = at::empty_like(a_);
    }
    if (w_hr_[0]) h_pre_ = at::empty({B_, H_}, w_ih_[0].options());
  }

  int64_t batch_size() const { return B_; }

  // Whether `parameters` (the layer's _parameters) are still, in order, the tensors the weights
  // were taken from, none updated in place or given new data since.
  bool fresh(const py::dict& parameters) const {
    if (py::len(parameters) != watched_.size()) return false;
    size_t m = 0;
    for (const auto& item : parameters) {
      PyObject* value = item.second.ptr();
      if (!THPVariable_Check(value) ||
          THPVariable_Unpack(value).unsafeGetTensorImpl() != watched_[m].unsafeGetTensorImpl() ||
          watched_[m]._version() != seen_[m].first || watched_[m].data_ptr() != seen_[m].second)
        return false;
      ++m;
    }
    return true;
  }

  // x (B, I), h (L, B, R) and c (L, B, H) or None (zeros) -> (y, (h_out, c_out)): y (B, R)
  // the top layer's output, h_out (L, B, R) and c_out (L, B, H); None if the inputs do not fit
  // (the caller then validates them and takes the general path). With time_dim 0 or 1, x is a
  // one-step chunk (1, B, I) or (B, 1, I) and y gets the same time dimension.
  py::object lstm(const Tensor& x, const std::optional<Tensor>& h,
                  const std::optional<Tensor>& c, int64_t time_dim) {
    if (!lstm_ || !accepts(x, time_dim, {{h, R_}, {c, H_}})) return py::none();
    auto h_out = at::empty({L_, B_, R_}, x.options());
    auto c_out = at::empty({L_, B_, H_}, x.options());
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "rnnkit_lstm_stream_step", [&] {
      auto zeros = std::vector<scalar_t>(c ? 0 : B_ * H_, scalar_t(0));
      step_layers<scalar_t>(x, h, h_out, [&](int64_t k, const scalar_t* A, const scalar_t* R,
                                             const scalar_t*, scalar_t* Ho) {
        const scalar_t* c_k = c ? c->data_ptr<scalar_t>() + k * B_ * H_ : zeros.data();
        scalar_t* Co = c_out.data_ptr<scalar_t>() + k * B_ * H_;
        // o * tanh(c_t): the output, or with a projection its input
        scalar_t* Out = w_hr_[k] ? h_pre_.data_ptr<scalar_t>() : Ho;
        for (int64_t b = 0; b < B_; ++b)
          lstm_step_row(A + b * 4 * H_, R + b * 4 * H_, c_k + b * H_, Out + b * H_, Co + b * H_,
                        H_);
        if (w_hr_[k])  // h_t = W_hr (o * tanh(c_t)), into the layer's rows of h_out
          gemm_nt_into(h_pre_, *w_hr_[k], packed_hr_[k], h_out[k]);
      });
    });
    return py::make_tuple(top_output(h_out, time_dim), py::make_tuple(h_out, c_out));
  }

  // x (B, I), h (L, B, H) or None (zeros) -> (y, h_out): y (B, H), h_out (L, B, H); None if
  // the inputs do not fit. time_dim as for lstm.
  py::object gru(const Tensor& x, const std::optional<Tensor>& h, int64_t time_dim) {
    if (lstm_ || !accepts(x, time_dim, {{h, H_}})) return py::none();
    auto h_out = at::empty({L_, B_, H_}, x.options());
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "rnnkit_gru_stream_step", [&] {
      step_layers<scalar_t>(x, h, h_out, [&](int64_t, const scalar_t* X, const scalar_t* R,
                                             const scalar_t* h_k, scalar_t* Ho) {
        for (int64_t b = 0; b < B_; ++b)
          gru_step_row(X + b * 3 * H_, R + b * 3 * H_, h_k + b * H_, Ho + b * H_, H_);
      });
    });
    return py::make_tuple(top_output(h_out, time_dim), h_out);
  }

 private:
  // The layer loop of a step: for each layer k, cell(k, A, R, h_k, Ho) gets the layer's
  // products A, R (B, N), its previous state rows h_k (B, R) (zeros if h is None) and its
  // output rows Ho (B, R) in h_out, which are layer k + 1's input.
  template <typename scalar_t, typename Cell>
  void step_layers(const Tensor& x, const std::optional<Tensor>& h, const Tensor& h_out,
                   const Cell& cell) {
    auto zeros = std::vector<scalar_t>(h ? 0 : B_ * R_, scalar_t(0));
    const scalar_t* input = x.data_ptr<scalar_t>();
    for (int64_t k = 0; k < L_; ++k) {
      const scalar_t* h_k = h ? h->data_ptr<scalar_t>() + k * B_ * R_ : zeros.data();
      const auto [A, R] = layer_products<scalar_t>(k, input, h_k, x.options());
      scalar_t* Ho = h_out.data_ptr<scalar_t>() + k * B_ * R_;
      cell(k, A, R, h_k, Ho);
      input = Ho;
    }
  }

  // Whether x (B, I) (or a one-step chunk, see lstm) and each state tensor (L, B, width) (or
  // None) fit this stepper exactly.
  bool accepts(const Tensor& x, int64_t time_dim,
               std::initializer_list<std::pair<std::optional<Tensor>, int64_t>> states) const {
    const auto& w = w_ih_[0];
    auto fits = [&](const Tensor& t) {
      return t.device().is_cpu() && t.scalar_type() == w.scalar_type() && t.is_contiguous();
    };
    if (!fits(x) || x.dim() != (time_dim < 0 ? 2 : 3)) return false;
    const int64_t batch_dim = time_dim == 0 ? 1 : 0;  // a one-step chunk is laid out as (B, I)
    if (time_dim >= 0 && (time_dim > 1 || x.size(time_dim) != 1)) return false;
    if (x.size(batch_dim) != B_ || x.size(x.dim() - 1) != w.size(1)) return false;
    for (const auto& [s, width] : states)
      if (s && (!fits(*s) || s->dim() != 3 || s->size(0) != L_ || s->size(1) != B_ ||
                s->size(2) != width))
        return false;
    return true;
  }

  // The top layer's h (B, R), with the input's time dimension if it had one.
  Tensor top_output(const Tensor& h_out, int64_t time_dim) const {
    return time_dim < 0 ? h_out[L_ - 1] : h_out[L_ - 1].unsqueeze(time_dim);
  }

  // Layer k's (x @ w_ih^T + b_x, h @ w_hh^T + b_h), each (B, N), valid until the next call:
  // x (B, I_k) and h (B, R) as raw rows.
  template <typename scalar_t>
  std::pair<const scalar_t*, const scalar_t*> layer_products(int64_t k, const scalar_t* x,
                                                             const scalar_t* h,
                                                             const at::TensorOptions& options) {
    const int64_t I = w_ih_[k].size(1), N = w_ih_[k].size(0);
    if (B_ > kSmallBatch) {
      // from_blob: views of the caller's rows, used only within this call
      auto x_t = at::from_blob(const_cast<scalar_t*>(x), {B_, I}, options);
      auto h_t = at::from_blob(const_cast<scalar_t*>(h), {B_, R_}, options);
      a_ = gemm_nt(x_t, w_ih_[k], packed_ih_[k]);
      r_ = gemm_nt(h_t, w_hh_[k], packed_hh_[k]);
      if (b_x_[k]) a_.add_(*b_x_[k]);
      if (b_h_[k]) r_.add_(*b_h_[k]);
    } else {
      auto ptr = [](const std::optional<Tensor>& t) -> const scalar_t* {
        return t ? t->data_ptr<scalar_t>() : nullptr;
      };
      reverse_[k] = !reverse_[k];
      panel_products(panels_[k].data_ptr<scalar_t>(), x, I, ptr(b_x_[k]), h, R_, ptr(b_h_[k]),
                     B_, N, reverse_[k], a_.data_ptr<scalar_t>(), r_.data_ptr<scalar_t>());
    }
    return {a_.data_ptr<scalar_t>(), r_.data_ptr<scalar_t>()};
  }

  bool lstm_;
  int64_t B_, L_, H_, R_;
  std::vector<Tensor> watched_;
  std::vector<std::pair<int64_t, const void*>> seen_;
  std::vector<Tensor> w_ih_, w_hh_;
  std::vector<std::optional<Tensor>> b_x_, b_h_, packed_ih_, packed_hh_, w_hr_, packed_hr_;
  std::vector<Tensor> panels_;
  std::vector<bool> reverse_;  // per layer: the direction of the last walk over its panels
  Tensor a_, r_;  // the products of the layer being stepped (B, N)
  Tensor h_pre_;  // with a projection, a layer's o * tanh(c_t) (B, H)
};

}  // namespace rnnkit

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  py::class_<rnnkit::Stepper>(m, "Stepper")
      .def(py::init<bool, int64_t, std::vector<at::Tensor>, std::vector<at::Tensor>,
                    std::vector<at::Tensor>, std::vector<std::optional<at::Tensor>>,
                    std::vector<std::optional<at::Tensor>>, std::vector<std::optional<at::Tensor>>,
                    std::vector<std::optional<at::Tensor>>, std::vector<std::optional<at::Tensor>>,
                    std::vector<std::optional<at::Tensor>>>())
      .def("batch_size", &rnnkit::Stepper::batch_size)
      .def("fresh", &rnnkit::Stepper::fresh, "whether these parameters are still the weights taken")
      .def("lstm", &rnnkit::Stepper::lstm, "one step of a stacked LSTM, or None")
      .def("gru", &rnnkit::Stepper::gru, "one step of a stacked GRU, or None");
}
