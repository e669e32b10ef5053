// Building blocks of the CPU warp kernels: each is one loop over a span of n pixels of a flat
// (H, W) plane, written so that the compiler vectorises it: no control flow in the loop body, and
// the arrays passed as restrict-qualified parameters (GCC ignores restrict on local pointers, and
// without it a loop over many arrays needs more overlap checks than it is willing to emit). They
// are always inlined into the per-image kernels, which are compiled once per instruction set
// (warp.cpp), so the same source runs as SSE2 or AVX2 code.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include "../warp_math.h"

#define INFAUG_INLINE inline __attribute__((always_inline))

namespace infaug::cpu {

// inout[p] *= scale[p]
template <typename T>
INFAUG_INLINE void scale_span(int64_t n, const T* __restrict__ scale, T* __restrict__ inout) {
  for (int64_t p = 0; p < n; ++p) inout[p] *= scale[p];
}

// The displacement D = (a u + b v + e - u, c u + d v + f - v) of the flow, with
// u, v the base grid and a..f the per-pixel parameters.
template <typename T>
INFAUG_INLINE void displacement_span(int64_t n, const T* __restrict__ u, const T* __restrict__ v,
                                     const T* __restrict__ a, const T* __restrict__ b,
                                     const T* __restrict__ c, const T* __restrict__ d,
                                     const T* __restrict__ e, const T* __restrict__ f,
                                     T* __restrict__ dx, T* __restrict__ dy) {
  for (int64_t p = 0; p < n; ++p) {
    // (a - 1) u rather than a u - u: exactly zero for the identity, whatever u rounds to.
    dx[p] = (a[p] - T(1)) * u[p] + b[p] * v[p] + e[p];
    dy[p] = c[p] * u[p] + (d[p] - T(1)) * v[p] + f[p];
  }
}

// Carves one allocation into arrays whose starts are staggered modulo 4 KiB. Scratch arrays of a
// power-of-two size (a 32 x 32 float plane is exactly 4 KiB) would otherwise all start at the same
// offset within a page, and the CPU then takes a load from one array for a dependence on a recent
// store to another ("4K aliasing"): it serialised some of these loops sevenfold. Call carve() with
// a null base to measure, then with the allocation.
class Carver {
 public:
  explicit Carver(char* base) : base_(base) {}

  // An array of `count` elements; the pointer returned is `skip` elements into it.
  template <typename T>
  T* take(int64_t count, int64_t skip = 0) {
    const size_t start = used_;
    // 64-byte aligned, then 5 cache lines of stagger: the k-th of equal-sized arrays starts at
    // 320 k bytes modulo 4 KiB.
    used_ = (start + sizeof(T) * size_t(count) + 63) / 64 * 64 + 320;
    return base_ ? reinterpret_cast<T*>(base_ + start) + skip : nullptr;
  }
  size_t used() const { return used_; }

 private:
  char* base_;
  size_t used_ = 0;
};

// Owns the memory of a Layout (a struct with `void carve(Carver&)` that takes its arrays), zeroed.
template <typename Layout>
struct Carved : Layout {
  template <typename... Args>
  explicit Carved(Args&&... args) : Layout(std::forward<Args>(args)...) {
    Carver measure(nullptr);
    this->carve(measure);
    memory_.resize(measure.used() + 64);
    char* base = memory_.data();
    base += (64 - reinterpret_cast<uintptr_t>(base) % 64) % 64;
    Carver carver(base);
    this->carve(carver);
  }

 private:
  std::vector<char> memory_;
};

// The sampling points of a span of up to n pixels, as locate_span computes them. Each tap index is
// clamped into the image, so every read stays inside; a tap whose true position is outside has
// its bit clear in `inside` and reads as zero (grid_sample's zeros padding). Selecting zero rather
// than multiplying by a zero weight keeps a NaN or infinity elsewhere in the image out.
template <typename T>
struct Points {
  int32_t *cx0, *cx1;      // columns of the left and right taps, clamped to [0, W - 1]
  int32_t *cy0, *cy1;      // rows of the top and bottom taps, clamped to [0, H - 1]
  int32_t* inside;         // bit k set when tap k (nw, ne, sw, se) lies inside the image
  T *w00, *w01, *w10, *w11;  // bilinear weights of the taps (nw, ne, sw, se)
  T *tx, *ty;              // position inside the tap square, in [0, 1)
  T *dix, *diy;            // d(pixel point) / d(displacement), padding included

  void carve(Carver& c, int64_t n) {
    for (int32_t** a : {&cx0, &cx1, &cy0, &cy1, &inside}) *a = c.take<int32_t>(n);
    for (T** a : {&w00, &w01, &w10, &w11, &tx, &ty, &dix, &diy}) *a = c.take<T>(n);
  }
};

// Locates the sampling points of n pixels at (pixel_x, pixel_y) with displacement (disp_x,
// disp_y), applying the padding mode. The base grid maps exactly onto pixel centres, so a pixel
// samples at (j + scale_x D_x, i + scale_y D_y): the identity field reproduces every pixel
// exactly. kGrad: also store what the backward needs (tx, ty, dix, diy).
template <Padding P, bool kGrad, typename T>
INFAUG_INLINE void locate_span(
    int64_t n, int64_t W, int64_t H, bool align_corners, T scale_x, T scale_y,
    const T* __restrict__ pixel_x, const T* __restrict__ pixel_y, const T* __restrict__ disp_x,
    const T* __restrict__ disp_y, int32_t* __restrict__ cx0, int32_t* __restrict__ cx1,
    int32_t* __restrict__ cy0, int32_t* __restrict__ cy1, int32_t* __restrict__ inside,
    T* __restrict__ w00, T* __restrict__ w01, T* __restrict__ w10, T* __restrict__ w11,
    T* __restrict__ tx, T* __restrict__ ty, T* __restrict__ dix, T* __restrict__ diy) {
  const T width = T(W), height = T(H), last_x = T(W - 1), last_y = T(H - 1);
  const int32_t max_x = int32_t(W) - 1, max_y = int32_t(H) - 1;
  // Bitwise & and | on comparisons, selects instead of branches: no control flow in the body, so
  // the loop vectorises (this needs -fno-trapping-math).
  for (int64_t p = 0; p < n; ++p) {
    T ix = pixel_x[p] + scale_x * disp_x[p];
    T iy = pixel_y[p] + scale_y * disp_y[p];
    T gx = scale_x, gy = scale_y;
    if constexpr (P == Padding::Border) {  // pad_coordinate, written to vectorise
      gx = ((ix > T(0)) & (ix < last_x)) ? scale_x : T(0);
      gy = ((iy > T(0)) & (iy < last_y)) ? scale_y : T(0);
      ix = ix < T(0) ? T(0) : ix;
      ix = ix > last_x ? last_x : ix;
      iy = iy < T(0) ? T(0) : iy;
      iy = iy > last_y ? last_y : iy;
    } else if constexpr (P == Padding::Reflection) {
      ix = pad_coordinate<P>(ix, W, align_corners, &gx);
      iy = pad_coordinate<P>(iy, H, align_corners, &gy);
      gx *= scale_x;
      gy *= scale_y;
    }
    // Points with no tap inside (far away, NaN, infinite) move to (-2, -2), which has none
    // either, before any integer conversion.
    const bool near = (ix >= T(-1)) & (ix < width) & (iy >= T(-1)) & (iy < height);
    ix = near ? ix : T(-2);
    iy = near ? iy : T(-2);
    // ix + 1 >= -1: truncation is floor for every point but (-2, -2), which only has to stay out.
    const int32_t x0 = static_cast<int32_t>(ix + T(1)) - 1, x1 = x0 + 1;
    const int32_t y0 = static_cast<int32_t>(iy + T(1)) - 1, y1 = y0 + 1;
    const T fx = ix - T(x0), fy = iy - T(y0);
    const int32_t x0_in = (x0 >= 0) & (x0 <= max_x), x1_in = (x1 >= 0) & (x1 <= max_x);
    const int32_t y0_in = (y0 >= 0) & (y0 <= max_y), y1_in = (y1 >= 0) & (y1 <= max_y);
    // min/max, not nested selects: GCC 12 does not vectorise the latter next to the masks above.
    cx0[p] = std::min(std::max(x0, 0), max_x);
    cx1[p] = std::min(std::max(x1, 0), max_x);
    cy0[p] = std::min(std::max(y0, 0), max_y);
    cy1[p] = std::min(std::max(y1, 0), max_y);
    inside[p] = (x0_in & y0_in) | ((x1_in & y0_in) << 1) | ((x0_in & y1_in) << 2) |
                ((x1_in & y1_in) << 3);
    w00[p] = (T(1) - fx) * (T(1) - fy);
    w01[p] = fx * (T(1) - fy);
    w10[p] = (T(1) - fx) * fy;
    w11[p] = fx * fy;
    if constexpr (kGrad) {
      tx[p] = fx;
      ty[p] = fy;
      dix[p] = gx;
      diy[p] = gy;
    }
  }
}

// The four tap values of a point of one channel plane with strides (stride_h, stride_w), zero
// outside the image. Offsets in int32 (the launcher guarantees the plane's extent fits): int64
// multiplies do not vectorise.
template <typename T>
struct TapValues {
  T v00, v01, v10, v11;
};

template <typename T>
INFAUG_INLINE TapValues<T> tap_values(const T* __restrict__ plane, int32_t stride_h,
                                      int32_t stride_w, int32_t cx0, int32_t cx1, int32_t cy0,
                                      int32_t cy1, int32_t inside) {
  const int32_t r0 = cy0 * stride_h, r1 = cy1 * stride_h;
  const int32_t c0 = cx0 * stride_w, c1 = cx1 * stride_w;
  const T a = plane[r0 + c0], b = plane[r0 + c1], c = plane[r1 + c0], d = plane[r1 + c1];
  return {(inside & 1) ? a : T(0), (inside & 2) ? b : T(0), (inside & 4) ? c : T(0),
          (inside & 8) ? d : T(0)};
}

// out[p] = the bilinear sample of one channel plane at n points.
template <typename T>
INFAUG_INLINE void gather_span(int64_t n, const T* __restrict__ plane, int32_t stride_h,
                               int32_t stride_w, const int32_t* __restrict__ cx0,
                               const int32_t* __restrict__ cx1, const int32_t* __restrict__ cy0,
                               const int32_t* __restrict__ cy1,
                               const int32_t* __restrict__ inside, const T* __restrict__ w00,
                               const T* __restrict__ w01, const T* __restrict__ w10,
                               const T* __restrict__ w11, T* __restrict__ out) {
  // Once inlined, GCC loses the restrict of `plane`, cannot prove the gather independent of the
  // stores, and gives up on vectorising; there is no dependence between iterations.
#pragma GCC ivdep
  for (int64_t p = 0; p < n; ++p) {
    const TapValues<T> v =
        tap_values(plane, stride_h, stride_w, cx0[p], cx1[p], cy0[p], cy1[p], inside[p]);
    out[p] = w00[p] * v.v00 + w01[p] * v.v01 + w10[p] * v.v10 + w11[p] * v.v11;
  }
}

// Backward through the bilinear sampling of one channel plane: with go (n) the gradient of the
// samples, adds d loss / d point to (grad_ix, grad_iy) when kPoint, and stores the samples in
// values (n) when kValues.
template <bool kPoint, bool kValues, typename T>
INFAUG_INLINE void sample_grad_span(
    int64_t n, const T* __restrict__ plane, int32_t stride_h, int32_t stride_w,
    const int32_t* __restrict__ cx0, const int32_t* __restrict__ cx1,
    const int32_t* __restrict__ cy0, const int32_t* __restrict__ cy1,
    const int32_t* __restrict__ inside, const T* __restrict__ tx, const T* __restrict__ ty,
    const T* __restrict__ w00, const T* __restrict__ w01, const T* __restrict__ w10,
    const T* __restrict__ w11, const T* __restrict__ go, T* __restrict__ grad_ix,
    T* __restrict__ grad_iy, T* __restrict__ values) {
  // Once inlined, GCC loses the restrict of `plane`, cannot prove the gather independent of the
  // stores, and gives up on vectorising; there is no dependence between iterations.
#pragma GCC ivdep
  for (int64_t p = 0; p < n; ++p) {
    const TapValues<T> v =
        tap_values(plane, stride_h, stride_w, cx0[p], cx1[p], cy0[p], cy1[p], inside[p]);
    if constexpr (kPoint) {
      grad_ix[p] += go[p] * ((v.v01 - v.v00) * (T(1) - ty[p]) + (v.v11 - v.v10) * ty[p]);
      grad_iy[p] += go[p] * ((v.v10 - v.v00) * (T(1) - tx[p]) + (v.v11 - v.v01) * tx[p]);
    }
    if constexpr (kValues)
      values[p] = w00[p] * v.v00 + w01[p] * v.v01 + w10[p] * v.v10 + w11[p] * v.v11;
  }
}

// Backward of gather_span with respect to the planes: for each of C contiguous (H, W) planes,
// plane[tap] += weight * go[p] for the taps inside. Planes are plane_stride apart, go's rows
// go_stride apart. Neighbouring points share taps, so each read-modify-write may wait on the
// previous point's store; visiting all channels of a point together puts independent work between
// them. The four updates stay in sequence because clamped taps can coincide. A tap outside adds
// an exact zero (a select, so a non-finite gradient cannot leak into it).
template <typename T>
INFAUG_INLINE void scatter_span(int64_t n, int64_t C, int64_t W, int64_t plane_stride,
                                const int32_t* __restrict__ cx0, const int32_t* __restrict__ cx1,
                                const int32_t* __restrict__ cy0, const int32_t* __restrict__ cy1,
                                const int32_t* __restrict__ inside, const T* __restrict__ w00,
                                const T* __restrict__ w01, const T* __restrict__ w10,
                                const T* __restrict__ w11, const T* __restrict__ go,
                                int64_t go_stride, T* __restrict__ planes) {
  for (int64_t p = 0; p < n; ++p) {
    const int32_t m = inside[p];
    const int64_t r0 = int64_t(cy0[p]) * W, r1 = int64_t(cy1[p]) * W;
    const int64_t o00 = r0 + cx0[p], o01 = r0 + cx1[p], o10 = r1 + cx0[p], o11 = r1 + cx1[p];
    const T a00 = w00[p], a01 = w01[p], a10 = w10[p], a11 = w11[p];
    T* t = planes;
    const T* g = go + p;
    for (int64_t k = 0; k < C; ++k, t += plane_stride, g += go_stride) {
      const T gk = *g;
      t[o00] += (m & 1) ? a00 * gk : T(0);
      t[o01] += (m & 2) ? a01 * gk : T(0);
      t[o10] += (m & 4) ? a10 * gk : T(0);
      t[o11] += (m & 8) ? a11 * gk : T(0);
    }
  }
}

// ---- grad_x by pairs of taps -----------------------------------------------------------------
//
// scatter_span above does four scalar read-modify-writes per point and channel, and neighbouring
// points share taps, so each waits on the store before it. Here the two taps of a row are added as
// one two-element vector into a pair of adjacent elements (the pair starts at the left tap, moved
// one left on the last column). Pairs that start at an even flat offset go to one plane and those
// at an odd offset to another, an odd number of elements further on so that both are aligned: two
// pairs in a plane are then either the same or disjoint, the adds of neighbouring points go to
// different planes, and no store is half-forwarded into a later load. grad_x is the sum of the two
// planes.

// Where pairs go, in a buffer of C channels `channel_stride` elements apart: the even plane at
// [0, HW), the odd plane `odd_shift` (odd) elements further on, so that an odd offset lands on
// an even element. The buffer must be aligned to two elements and is all zero between images.
struct PairPlanes {
  int64_t odd_shift, channel_stride;

  explicit PairPlanes(int64_t HW)
      : odd_shift(HW | 1), channel_stride(((HW | 1) + HW + 2) / 2 * 2) {}
};

// Per point, the buffer offsets of its top and bottom pairs and the weights of their two
// elements, interleaved (top_w[2 p], top_w[2 p + 1]); a tap outside the image has weight zero.
template <typename T>
INFAUG_INLINE void pair_targets_span(int64_t n, int32_t W, int32_t odd_shift,
                                     const int32_t* __restrict__ cx0,
                                     const int32_t* __restrict__ cx1,
                                     const int32_t* __restrict__ cy0,
                                     const int32_t* __restrict__ cy1,
                                     const int32_t* __restrict__ inside, const T* __restrict__ w00,
                                     const T* __restrict__ w01, const T* __restrict__ w10,
                                     const T* __restrict__ w11, int32_t* __restrict__ top,
                                     int32_t* __restrict__ bottom, T* __restrict__ top_w,
                                     T* __restrict__ bottom_w) {
  const int32_t last_start = W - 2;
  for (int64_t p = 0; p < n; ++p) {
    const int32_t start = std::min(cx0[p], last_start), m = inside[p];
    // Where each tap lands in the pair (0 or 1) and whether it is inside (0 or 1), as numbers
    // rather than conditions, so that the loop vectorises (the weights are always finite). The
    // left tap is the second element only on the last column, the right tap the first only left
    // of the image; the other tap is then outside.
    const T l1 = T(cx0[p] - start), r1 = T(cx1[p] - start), l0 = T(1) - l1, r0 = T(1) - r1;
    const T a00 = w00[p] * T(m & 1), a01 = w01[p] * T((m >> 1) & 1);
    const T a10 = w10[p] * T((m >> 2) & 1), a11 = w11[p] * T((m >> 3) & 1);
    top_w[2 * p] = a00 * l0 + a01 * r0;
    top_w[2 * p + 1] = a00 * l1 + a01 * r1;
    bottom_w[2 * p] = a10 * l0 + a11 * r0;
    bottom_w[2 * p + 1] = a10 * l1 + a11 * r1;
    const int32_t t = cy0[p] * W + start, b = cy1[p] * W + start;
    top[p] = t + (t & 1) * odd_shift;
    bottom[p] = b + (b & 1) * odd_shift;
  }
}

// Whether all of C rows of n values (rows `stride` apart) are finite: x - x is zero for them and
// NaN otherwise.
template <typename T>
INFAUG_INLINE bool all_finite(int64_t C, int64_t n, const T* __restrict__ a, int64_t stride) {
  T part[8] = {};
  for (int64_t k = 0; k < C; ++k) {
    const T* __restrict__ row = a + k * stride;
    int64_t p = 0;
    for (; p + 8 <= n; p += 8)
      for (int l = 0; l < 8; ++l) part[l] += row[p + l] - row[p + l];
    for (; p < n; ++p) part[0] += row[p] - row[p];
  }
  T sum = T(0);
  for (int l = 0; l < 8; ++l) sum += part[l];
  return sum == T(0);
}

// buffer[pair] += weights * go[k][p] for the top and bottom pairs of n points, every channel.
// Requires finite go: a weight of zero stands for a tap outside, and 0 * inf is not zero. kC: the
// number of channels when fixed at compile time (the channel loop then unrolls), 0 for C.
template <int kC, typename T>
INFAUG_INLINE void scatter_pairs_channels(int64_t n, int64_t C, int64_t channel_stride,
                                          const int32_t* __restrict__ top,
                                          const int32_t* __restrict__ bottom,
                                          const T* __restrict__ top_w,
                                          const T* __restrict__ bottom_w,
                                          const T* __restrict__ go, int64_t go_stride,
                                          T* __restrict__ buffer) {
  typedef T Pair __attribute__((vector_size(2 * sizeof(T)), may_alias));
  const int64_t channels = kC > 0 ? kC : C;
  for (int64_t p = 0; p < n; ++p) {
    const Pair wt = *reinterpret_cast<const Pair*>(top_w + 2 * p);
    const Pair wb = *reinterpret_cast<const Pair*>(bottom_w + 2 * p);
    T* t = buffer + top[p];
    T* b = buffer + bottom[p];
    for (int64_t k = 0; k < channels; ++k) {
      const T g = go[k * go_stride + p];
      const Pair gk = {g, g};
      // t and b may be the same pair (a row outside the image): one after the other.
      *reinterpret_cast<Pair*>(t + k * channel_stride) += wt * gk;
      *reinterpret_cast<Pair*>(b + k * channel_stride) += wb * gk;
    }
  }
}

template <typename T>
INFAUG_INLINE void scatter_pairs_span(int64_t n, int64_t C, int64_t channel_stride,
                                      const int32_t* top, const int32_t* bottom, const T* top_w,
                                      const T* bottom_w, const T* go, int64_t go_stride,
                                      T* buffer) {
  switch (C) {  // one channel (MNIST) and three (RGB) unrolled
    case 1:
      return scatter_pairs_channels<1>(n, C, channel_stride, top, bottom, top_w, bottom_w, go,
                                       go_stride, buffer);
    case 3:
      return scatter_pairs_channels<3>(n, C, channel_stride, top, bottom, top_w, bottom_w, go,
                                       go_stride, buffer);
    default:
      return scatter_pairs_channels<0>(n, C, channel_stride, top, bottom, top_w, bottom_w, go,
                                       go_stride, buffer);
  }
}

// out[k] = even plane + odd plane of channel k, for C channels of HW; the buffer is left zero.
template <typename T>
INFAUG_INLINE void fold_pairs(int64_t C, int64_t HW, const PairPlanes& planes,
                              T* __restrict__ buffer, T* __restrict__ out) {
  for (int64_t k = 0; k < C; ++k) {
    T* __restrict__ even = buffer + k * planes.channel_stride;
    T* __restrict__ odd = even + planes.odd_shift;
    T* __restrict__ o = out + k * HW;
    for (int64_t p = 0; p < HW; ++p) {
      o[p] = even[p] + odd[p];
      even[p] = T(0);
      odd[p] = T(0);
    }
  }
}

// out[c][p] = bias[c] + sum_k matrix[c * C + k] * in[k][p] over n pixels (augment's colour
// transform), rows of in and out `in_stride` and `out_stride` apart. kTranspose: matrix[k * C + c]
// and no bias (the transform's adjoint, for gradients).
template <bool kTranspose, typename T>
INFAUG_INLINE void mix_span(int64_t C, int64_t n, const T* __restrict__ matrix,
                            const T* __restrict__ bias, const T* __restrict__ in,
                            int64_t in_stride, T* __restrict__ out, int64_t out_stride) {
  for (int64_t c = 0; c < C; ++c) {
    T* __restrict__ o = out + c * out_stride;
    const T b = bias ? bias[c] : T(0);
    for (int64_t p = 0; p < n; ++p) o[p] = b;
    for (int64_t k = 0; k < C; ++k) {
      const T m = kTranspose ? matrix[k * C + c] : matrix[c * C + k];
      const T* __restrict__ src = in + k * in_stride;
      for (int64_t p = 0; p < n; ++p) o[p] += m * src[p];
    }
  }
}

// Sums with eight independent partial sums: one running sum is a chain of dependent adds, which
// the compiler may not reorder into vector lanes.
template <typename T>
INFAUG_INLINE T dot_span(int64_t n, const T* __restrict__ a, const T* __restrict__ b) {
  T part[8] = {};
  int64_t p = 0;
  for (; p + 8 <= n; p += 8)
    for (int l = 0; l < 8; ++l) part[l] += a[p + l] * b[p + l];
  T sum = T(0);
  for (; p < n; ++p) sum += a[p] * b[p];
  for (int l = 0; l < 8; ++l) sum += part[l];
  return sum;
}

template <typename T>
INFAUG_INLINE T sum_span(int64_t n, const T* __restrict__ a) {
  T part[8] = {};
  int64_t p = 0;
  for (; p + 8 <= n; p += 8)
    for (int l = 0; l < 8; ++l) part[l] += a[p + l];
  T sum = T(0);
  for (; p < n; ++p) sum += a[p];
  for (int l = 0; l < 8; ++l) sum += part[l];
  return sum;
}

// out[p] = a[p] * b[p], times scale[p] when scale is not null.
template <typename T>
INFAUG_INLINE void product_span(int64_t n, const T* __restrict__ a, const T* __restrict__ b,
                                const T* __restrict__ scale, T* __restrict__ out) {
  if (scale != nullptr)
    for (int64_t p = 0; p < n; ++p) out[p] = a[p] * b[p] * scale[p];
  else
    for (int64_t p = 0; p < n; ++p) out[p] = a[p] * b[p];
}

// theta_w's gradients from the displacement's (gdx, gdy), through D_x = (a - 1) u + b v + e and
// D_y = c u + (d - 1) v + f: grad (a, b, c, d) = (gdx u, gdx v, gdy u, gdy v). (theta_b's
// gradient is (gdx, gdy) itself.)
template <typename T>
INFAUG_INLINE void theta_w_grad_span(int64_t n, const T* __restrict__ u, const T* __restrict__ v,
                                     const T* __restrict__ gdx, const T* __restrict__ gdy,
                                     T* __restrict__ ga, T* __restrict__ gb, T* __restrict__ gc,
                                     T* __restrict__ gd) {
  for (int64_t p = 0; p < n; ++p) {
    ga[p] = gdx[p] * u[p];
    gb[p] = gdx[p] * v[p];
    gc[p] = gdy[p] * u[p];
    gd[p] = gdy[p] * v[p];
  }
}

}  // namespace infaug::cpu
