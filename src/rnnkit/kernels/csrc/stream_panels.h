// The streaming step's weight panels and the product loop over them, apart from stream.cpp so
// that benchmarks/streaming_floor.py times this very loop.
#pragma once

#include <cstdint>

namespace rnnkit {

constexpr int64_t kPanel = 64;  // output rows per weight panel

// acc[j] = sum_k v[k] * panel[k, j] for the kPanel columns of a panel of K rows.
template <typename scalar_t>
inline void panel_column_sums(const scalar_t* __restrict__ panel, const scalar_t* __restrict__ v,
                              int64_t K, scalar_t* __restrict__ acc) {
  for (int64_t j = 0; j < kPanel; ++j) acc[j] = 0;
  for (int64_t k = 0; k < K; ++k) {
    const scalar_t v_k = v[k];
    const scalar_t* __restrict__ row = panel + k * kPanel;
#pragma omp simd
    for (int64_t j = 0; j < kPanel; ++j) acc[j] += v_k * row[j];
  }
}

}  // namespace rnnkit
