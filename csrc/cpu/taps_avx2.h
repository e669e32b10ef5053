// Bilinear gathers for float32 planes whose rows are contiguous (unit column stride) and at least
// two pixels wide, written with AVX2 intrinsics: the two taps of a row are adjacent in memory, so
// one 64-bit load fetches both, and the taps' offsets and masks, worked out once per 8 points,
// serve every channel. Scalar 64-bit loads rather than AVX2 gathers: on AMD cores a gather costs
// about a cycle per element, more than the loads and the shuffles that pack them. Call only when
// use_avx2() (cpu_features.h). Each is the same computation as its portable counterpart in
// warp_spans.h, which also handles the last n % 8 points.
#pragma once

#include <cstdint>

#include "cpu_features.h"
#include "warp_spans.h"

namespace infaug::cpu {

// gather_span for C float32 planes `plane_stride` apart, rows stride_h apart, unit column
// stride, W >= 2; channel k's samples go to out + k * out_stride. The taps' addresses and masks are
// worked out once for all channels.
INFAUG_AVX2 void gather_span_avx2(int64_t n, int64_t C, const float* planes, int64_t plane_stride,
                                  int32_t stride_h, int32_t W, const Points<float>& q, float* out,
                                  int64_t out_stride);

// sample_grad_span over the same planes and all their channels at once: with go + k * go_stride
// the gradient of channel k's samples, stores (not adds) d loss / d point summed over the channels
// into grad_ix and grad_iy when kPoint, and channel k's samples into values + k * values_stride
// when kValues.
template <bool kPoint, bool kValues>
INFAUG_AVX2 void sample_grad_span_avx2(int64_t n, int64_t C, const float* planes,
                                       int64_t plane_stride, int32_t stride_h, int32_t W,
                                       const Points<float>& q, const float* go, int64_t go_stride,
                                       float* grad_ix, float* grad_iy, float* values,
                                       int64_t values_stride);

}  // namespace infaug::cpu
