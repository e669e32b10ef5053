// See taps_avx2.h. Only these functions carry the AVX2 target attribute, and they are plain (not
// inline) functions, so no AVX2 code can be merged into the portable kernels.
#include "taps_avx2.h"

#ifdef INFAUG_HAS_AVX2
#include <immintrin.h>

#include <algorithm>

namespace infaug::cpu {
namespace {

// The four tap values of points p .. p + 7, zero for taps outside the image.
struct Taps8 {
  __m256 v00, v01, v10, v11;
};

INFAUG_AVX2 inline __m256i load(const int32_t* a) {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a));
}

INFAUG_AVX2 inline __m256 bit_set(__m256i mask, int bit) {
  const __m256i b = _mm256_set1_epi32(bit);
  return _mm256_castsi256_ps(_mm256_cmpeq_epi32(_mm256_and_si256(mask, b), b));
}

// The (left, right) pairs of 8 points, each one 64-bit load at plane + offset[i] (scalar loads:
// the AVX2 gather instructions are slower on AMD cores, and the offsets are shared by all
// channels), split into the 8 left values and the 8 right values.
INFAUG_AVX2 inline __m128d load_two_pairs(const float* plane, int32_t a, int32_t b) {
  const __m128d first =
      _mm_castsi128_pd(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(plane + a)));
  return _mm_loadh_pd(first, reinterpret_cast<const double*>(plane + b));
}

INFAUG_AVX2 inline void load_pairs(const float* plane, const int32_t* offset, __m256* left,
                                   __m256* right) {
  // Loaded as [l0 r0 l1 r1 | l4 r4 l5 r5] and [l2 r2 l3 r3 | l6 r6 l7 r7], so that one in-lane
  // shuffle of the two gives the lefts, and one the rights, in order.
  const __m256 a = _mm256_castpd_ps(
      _mm256_insertf128_pd(_mm256_castpd128_pd256(load_two_pairs(plane, offset[0], offset[1])),
                           load_two_pairs(plane, offset[4], offset[5]), 1));
  const __m256 b = _mm256_castpd_ps(
      _mm256_insertf128_pd(_mm256_castpd128_pd256(load_two_pairs(plane, offset[2], offset[3])),
                           load_two_pairs(plane, offset[6], offset[7]), 1));
  *left = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0));
  *right = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1));
}

// Where the taps of points p .. p + 7 are, the same for every channel: the offsets of the top and
// bottom pairs, and which element of a pair each tap is.
struct TapIndex8 {
  alignas(32) int32_t top[8];
  alignas(32) int32_t bottom[8];
  __m256 left_is_second, right_is_first;
  __m256 in00, in01, in10, in11;  // all-ones where the tap is inside the image
};

INFAUG_AVX2 inline void tap_index8(__m256i stride_h, __m256i last_pair, const Points<float>& q,
                                   int64_t p, TapIndex8* t) {
  const __m256i cx0 = load(q.cx0 + p), cx1 = load(q.cx1 + p);
  // The pair starts at the left tap, moved one left on the last column so that it stays in the
  // row; the taps are then its first or second element (a tap outside is masked off).
  const __m256i start = _mm256_min_epi32(cx0, last_pair);
  const __m256i top = _mm256_add_epi32(_mm256_mullo_epi32(load(q.cy0 + p), stride_h), start);
  const __m256i bottom = _mm256_add_epi32(_mm256_mullo_epi32(load(q.cy1 + p), stride_h), start);
  _mm256_store_si256(reinterpret_cast<__m256i*>(t->top), top);
  _mm256_store_si256(reinterpret_cast<__m256i*>(t->bottom), bottom);
  t->left_is_second = _mm256_castsi256_ps(_mm256_cmpgt_epi32(cx0, start));
  t->right_is_first = _mm256_castsi256_ps(_mm256_cmpeq_epi32(cx1, start));
  const __m256i inside = load(q.inside + p);
  t->in00 = bit_set(inside, 1);
  t->in01 = bit_set(inside, 2);
  t->in10 = bit_set(inside, 4);
  t->in11 = bit_set(inside, 8);
}

INFAUG_AVX2 inline Taps8 taps8(const float* plane, const TapIndex8& t) {
  __m256 tl, tr, bl, br;
  load_pairs(plane, t.top, &tl, &tr);
  load_pairs(plane, t.bottom, &bl, &br);
  // Selecting (and-ing with a mask) rather than weighting by zero: a NaN next to the taps stays
  // out, as in the portable kernels.
  return {_mm256_and_ps(_mm256_blendv_ps(tl, tr, t.left_is_second), t.in00),
          _mm256_and_ps(_mm256_blendv_ps(tr, tl, t.right_is_first), t.in01),
          _mm256_and_ps(_mm256_blendv_ps(bl, br, t.left_is_second), t.in10),
          _mm256_and_ps(_mm256_blendv_ps(br, bl, t.right_is_first), t.in11)};
}

// The bilinear weights of points p .. p + 7.
struct Weights8 {
  __m256 w00, w01, w10, w11;
};

INFAUG_AVX2 inline Weights8 weights8(const Points<float>& q, int64_t p) {
  return {_mm256_loadu_ps(q.w00 + p), _mm256_loadu_ps(q.w01 + p), _mm256_loadu_ps(q.w10 + p),
          _mm256_loadu_ps(q.w11 + p)};
}

INFAUG_AVX2 inline __m256 interpolate(const Taps8& v, const Weights8& w) {
  __m256 r = _mm256_mul_ps(w.w00, v.v00);
  r = _mm256_fmadd_ps(w.w01, v.v01, r);
  r = _mm256_fmadd_ps(w.w10, v.v10, r);
  return _mm256_fmadd_ps(w.w11, v.v11, r);
}

}  // namespace

INFAUG_AVX2 void gather_span_avx2(int64_t n, int64_t C, const float* planes, int64_t plane_stride,
                                  int32_t stride_h, int32_t W, const Points<float>& q, float* out,
                                  int64_t out_stride) {
  const __m256i sh = _mm256_set1_epi32(stride_h), last_pair = _mm256_set1_epi32(W - 2);
  int64_t p = 0;
  for (; p + 8 <= n; p += 8) {
    TapIndex8 t;
    tap_index8(sh, last_pair, q, p, &t);
    const Weights8 w = weights8(q, p);
    for (int64_t k = 0; k < C; ++k)
      _mm256_storeu_ps(out + k * out_stride + p, interpolate(taps8(planes + k * plane_stride, t), w));
  }
  for (int64_t k = 0; k < C; ++k)
    gather_span(n - p, planes + k * plane_stride, stride_h, 1, q.cx0 + p, q.cx1 + p, q.cy0 + p,
                q.cy1 + p, q.inside + p, q.w00 + p, q.w01 + p, q.w10 + p, q.w11 + p,
                out + k * out_stride + p);
}

template <bool kPoint, bool kValues>
INFAUG_AVX2 void sample_grad_span_avx2(int64_t n, int64_t C, const float* planes,
                                       int64_t plane_stride, int32_t stride_h, int32_t W,
                                       const Points<float>& q, const float* go, int64_t go_stride,
                                       float* grad_ix, float* grad_iy, float* values,
                                       int64_t values_stride) {
  const __m256i sh = _mm256_set1_epi32(stride_h), last_pair = _mm256_set1_epi32(W - 2);
  const __m256 one = _mm256_set1_ps(1.0f);
  int64_t p = 0;
  for (; p + 8 <= n; p += 8) {
    TapIndex8 t;
    tap_index8(sh, last_pair, q, p, &t);
    const __m256 tx = _mm256_loadu_ps(q.tx + p), ty = _mm256_loadu_ps(q.ty + p);
    const __m256 sx = _mm256_sub_ps(one, tx), sy = _mm256_sub_ps(one, ty);
    const Weights8 w = kValues ? weights8(q, p) : Weights8{};
    __m256 gx = _mm256_setzero_ps(), gy = _mm256_setzero_ps();
    for (int64_t k = 0; k < C; ++k) {
      const Taps8 v = taps8(planes + k * plane_stride, t);
      if constexpr (kPoint) {
        const __m256 g = _mm256_loadu_ps(go + k * go_stride + p);
        // (v01 - v00)(1 - ty) + (v11 - v10) ty, and (v10 - v00)(1 - tx) + (v11 - v01) tx
        const __m256 dx = _mm256_fmadd_ps(_mm256_sub_ps(v.v11, v.v10), ty,
                                          _mm256_mul_ps(_mm256_sub_ps(v.v01, v.v00), sy));
        const __m256 dy = _mm256_fmadd_ps(_mm256_sub_ps(v.v11, v.v01), tx,
                                          _mm256_mul_ps(_mm256_sub_ps(v.v10, v.v00), sx));
        gx = _mm256_fmadd_ps(g, dx, gx);
        gy = _mm256_fmadd_ps(g, dy, gy);
      }
      if constexpr (kValues)
        _mm256_storeu_ps(values + k * values_stride + p, interpolate(v, w));
    }
    if constexpr (kPoint) {
      _mm256_storeu_ps(grad_ix + p, gx);
      _mm256_storeu_ps(grad_iy + p, gy);
    }
  }
  if (p == n) return;
  if constexpr (kPoint) {
    std::fill(grad_ix + p, grad_ix + n, 0.0f);
    std::fill(grad_iy + p, grad_iy + n, 0.0f);
  }
  for (int64_t k = 0; k < C; ++k)
    sample_grad_span<kPoint, kValues>(
        n - p, planes + k * plane_stride, stride_h, 1, q.cx0 + p, q.cx1 + p, q.cy0 + p, q.cy1 + p,
        q.inside + p, q.tx + p, q.ty + p, q.w00 + p, q.w01 + p, q.w10 + p, q.w11 + p,
        go + k * go_stride + p, kPoint ? grad_ix + p : nullptr, kPoint ? grad_iy + p : nullptr,
        kValues ? values + k * values_stride + p : nullptr);
}

#define INFAUG_INSTANTIATE(POINT, VALUES)                                                        \
  template void sample_grad_span_avx2<POINT, VALUES>(int64_t, int64_t, const float*, int64_t,   \
                                                     int32_t, int32_t, const Points<float>&,    \
                                                     const float*, int64_t, float*, float*,     \
                                                     float*, int64_t);
INFAUG_INSTANTIATE(true, true)
INFAUG_INSTANTIATE(true, false)
INFAUG_INSTANTIATE(false, true)
#undef INFAUG_INSTANTIATE

}  // namespace infaug::cpu
#endif
