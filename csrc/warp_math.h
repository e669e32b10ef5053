// Pixel-level math of warp, shared by the CPU and CUDA kernels so both follow grid_sample's
// semantics in exactly the same way. No ATen here: plain functions of scalars.
#pragma once

#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define INFAUG_HD __host__ __device__ __forceinline__
#else
#define INFAUG_HD inline
#endif

namespace infaug {

enum class Padding { Zeros, Border, Reflection };

// d(pixel index) / d(grid coordinate) along an axis of `size` pixels, as grid_sample unnormalises:
// [-1, 1] maps to the centres of the corner pixels (align_corners) or to the image edges.
template <typename T>
INFAUG_HD T grid_to_pixel_scale(int64_t size, bool align_corners) {
  return align_corners ? T(size - 1) / T(2) : T(size) / T(2);
}

// Maps a pixel-space coordinate (0 = centre of the first pixel) into the image as grid_sample's
// padding mode does, and sets *grad to d(result)/d(coord). Clipped points count as outside for
// the gradient (grad 0), as in grid_sample. Non-finite coordinates stay non-finite: the tap
// computation below treats them as outside the image. Reflection uses floating-point remainders
// only, so huge or non-finite values never reach an integer conversion.
template <Padding P, typename T>
INFAUG_HD T pad_coordinate(T coord, int64_t size, bool align_corners, T* grad) {
  *grad = T(1);
  if (P == Padding::Zeros) return coord;
  if (P == Padding::Reflection) {
    // Reflect about the centres of the edge pixels (align_corners) or the image edges.
    const T low = align_corners ? T(0) : T(-0.5);
    const T span = align_corners ? T(size - 1) : T(size);
    if (span <= T(0)) {  // a single pixel with align_corners: every point maps onto it
      *grad = T(0);
      return T(0);
    }
    T t = coord - low;
    if (t < T(0)) {
      t = -t;
      *grad = -*grad;
    }
    t = std::fmod(t, T(2) * span);
    if (t > span) {
      t = T(2) * span - t;
      *grad = -*grad;
    }
    coord = t + low;
  }
  const T high = T(size - 1);
  if (coord <= T(0)) {
    *grad = T(0);
    return T(0);
  }
  if (coord >= high) {
    *grad = T(0);
    return high;
  }
  return coord;
}

// The four bilinear taps around a pixel-space point: top-left (x0, y0), fractions (tx, ty), and
// which tap columns/rows fall inside the image. Taps outside contribute zero, as grid_sample's
// zeros padding (the other modes have already moved the point inside).
template <typename T>
struct Taps {
  int64_t x0, y0;
  T tx, ty;
  bool x0_in, x1_in, y0_in, y1_in;

  INFAUG_HD bool all_inside() const { return x0_in && x1_in && y0_in && y1_in; }
};

template <typename T>
INFAUG_HD Taps<T> bilinear_taps(T ix, T iy, int64_t W, int64_t H) {
  Taps<T> t;
  // Decided in floating point first: NaN, infinities and far-away points have no tap inside and
  // must not reach the integer conversion (undefined behaviour for them).
  if (!(ix >= T(-1) && ix < T(W) && iy >= T(-1) && iy < T(H))) {
    t.x0 = t.y0 = 0;
    t.tx = t.ty = T(0);
    t.x0_in = t.x1_in = t.y0_in = t.y1_in = false;
    return t;
  }
  const T fx = std::floor(ix), fy = std::floor(iy);
  t.x0 = static_cast<int64_t>(fx);
  t.y0 = static_cast<int64_t>(fy);
  t.tx = ix - fx;
  t.ty = iy - fy;
  t.x0_in = t.x0 >= 0;
  t.x1_in = t.x0 + 1 < W;
  t.y0_in = t.y0 >= 0;
  t.y1_in = t.y0 + 1 < H;
  return t;
}

// Number of in-bounds positions of a window of `radius` around `i` on an axis of `size`
// (avg_pool2d's divisor with count_include_pad=False, along one axis).
INFAUG_HD int64_t window_count(int64_t i, int64_t radius, int64_t size) {
  const int64_t lo = i - radius < 0 ? 0 : i - radius;
  const int64_t hi = i + radius > size - 1 ? size - 1 : i + radius;
  return hi - lo + 1;
}

}  // namespace infaug
