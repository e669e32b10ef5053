// Box filter of one (H, W) plane stored flat, summing as avg_pool2d(k, stride 1, padding k // 2,
// count_include_pad=False) does: each output is the sum over the in-bounds part of its
// (2r + 1) x (2r + 1) window (callers scale by 1 / count for the average).
//
// Separable: 2r + 1 taps along the rows, then 2r + 1 down the columns, so 2k reads per pixel
// rather than k^2. Each pass is a handful of loops over the whole flat plane (no per-row loops,
// which at W = 32 cost more in loop overhead than in arithmetic): a row tap is masked by the
// pixel's column, a column tap is a shift by whole rows over the range where it stays inside. Only
// in-bounds values are ever added, so a NaN or infinity spoils exactly the windows that contain
// it, as in avg_pool2d.
#pragma once

#include <algorithm>
#include <cstdint>

#include "warp_spans.h"  // INFAUG_INLINE

namespace infaug::cpu {

// The taps t to the right and left of pixel p that stay in its row, summed. Unconditional loads,
// then a select: a load under the condition would become a masked load, several times slower.
template <typename T>
INFAUG_INLINE T row_taps(const T* __restrict__ in, const int32_t* __restrict__ column, int64_t W,
                         int64_t p, int32_t t) {
  const T right = in[p + t], left = in[p - t];
  return (column[p] < int32_t(W) - t ? right : T(0)) + (column[p] >= t ? left : T(0));
}

// out[p] = sum of in[p + t] over |t| <= radius with the same row, for the HW pixels of a plane.
// column[p] is p's column; `in` must be readable from in[-radius] to in[HW - 1 + radius] (guard
// elements: the masked loads may touch them, their values are never used). The first pair of taps
// is added in the loop that writes out: a separate copy of in costs as much as a tap.
template <typename T>
INFAUG_INLINE void box_sum_rows(int64_t HW, int64_t W, int64_t radius,
                                const int32_t* __restrict__ column, const T* __restrict__ in,
                                T* __restrict__ out) {
  if (radius == 0) {
    for (int64_t p = 0; p < HW; ++p) out[p] = in[p];
    return;
  }
  for (int64_t p = 0; p < HW; ++p) out[p] = in[p] + row_taps(in, column, W, p, 1);
  for (int32_t t = 2; t <= radius; ++t)
    for (int64_t p = 0; p < HW; ++p) out[p] += row_taps(in, column, W, p, t);
}

// out[p] = sum of in[p + t W] over |t| <= radius with the row inside the image. `in` must hold
// zeros for `radius` rows before and after the plane: the rows outside are then added as zeros,
// with no test.
template <typename T>
INFAUG_INLINE void box_sum_columns(int64_t H, int64_t W, int64_t radius, const T* __restrict__ in,
                                   T* __restrict__ out) {
  const int64_t HW = H * W;
  if (radius == 0) {
    for (int64_t p = 0; p < HW; ++p) out[p] = in[p];
    return;
  }
  for (int64_t p = 0; p < HW; ++p) out[p] = in[p - W] + in[p] + in[p + W];
  for (int64_t t = 2; t <= radius; ++t) {
    const int64_t shift = t * W;
    for (int64_t p = 0; p < HW; ++p) out[p] += in[p - shift] + in[p + shift];
  }
}

// out = B(in), times scale[p] when scale is not null. in: guarded as for box_sum_rows; tmp: HW
// elements with radius * W zeros before and after (box_sum_columns).
template <typename T>
INFAUG_INLINE void box_filter(int64_t H, int64_t W, int64_t radius, const int32_t* column,
                              const T* in, T* tmp, T* out, const T* scale) {
  box_sum_rows(H * W, W, std::min(radius, W - 1), column, in, tmp);
  box_sum_columns(H, W, std::min(radius, H - 1), tmp, out);
  if (scale != nullptr) scale_span(H * W, scale, out);
}

}  // namespace infaug::cpu
