// Bilinear gathers for float32 planes whose rows are contiguous (unit column stride) and at least
// two pixels wide, written with AVX2 intrinsics: the two taps of a row are adjacent in memory, so
// one 64-bit gather fetches both, and 8 points take 4 gathers per channel instead of 4 x 8 scalar
// loads or 4 32-bit gathers (half the gathers; 32-bit gathers are slow on AMD cores). Call only
// when use_avx2() (cpu_features.h). Each is the same computation as its portable counterpart in
// warp_spans.h, which also handles the last n % 8 points.
#pragma once

#include <cstdint>

#include "cpu_features.h"
#include "warp_spans.h"

namespace infaug::cpu {

// gather_span for a float32 plane with rows stride_h apart, unit column stride, W >= 2.
INFAUG_AVX2 void gather_span_avx2(int64_t n, const float* plane, int32_t stride_h, int32_t W,
                      const Points<float>& q, float* out);

// sample_grad_span for the same planes.
template <bool kPoint, bool kValues>
INFAUG_AVX2 void sample_grad_span_avx2(int64_t n, const float* plane, int32_t stride_h, int32_t W,
                           const Points<float>& q, const float* go, float* grad_ix,
                           float* grad_iy, float* values);

}  // namespace infaug::cpu
