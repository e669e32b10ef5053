// See taps_avx2.h. Only these functions carry the AVX2 target attribute, and they are plain (not
// inline) functions, so no AVX2 code can be merged into the portable kernels.
#include "taps_avx2.h"

#ifdef INFAUG_HAS_AVX2
#include <immintrin.h>

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

// Two 64-bit gathers of 4 points each: (left, right) pairs of 8 points, split into the 8 left
// values and the 8 right values.
INFAUG_AVX2 inline void gather_pairs(const float* plane, __m256i offsets, __m256* left,
                                     __m256* right) {
  const long long* base = reinterpret_cast<const long long*>(plane);
  const __m256i first = _mm256_i32gather_epi64(base, _mm256_castsi256_si128(offsets), 4);
  const __m256i second = _mm256_i32gather_epi64(base, _mm256_extracti128_si256(offsets, 1), 4);
  // [l0 r0 l1 r1 l2 r2 l3 r3] -> [l0 l1 l2 l3 r0 r1 r2 r3]
  const __m256i order = _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7);
  const __m256 a = _mm256_castsi256_ps(_mm256_permutevar8x32_epi32(first, order));
  const __m256 b = _mm256_castsi256_ps(_mm256_permutevar8x32_epi32(second, order));
  *left = _mm256_permute2f128_ps(a, b, 0x20);
  *right = _mm256_permute2f128_ps(a, b, 0x31);
}

INFAUG_AVX2 inline Taps8 taps8(const float* plane, __m256i stride_h, __m256i last_pair,
                               const Points<float>& q, int64_t p) {
  const __m256i cx0 = load(q.cx0 + p), cx1 = load(q.cx1 + p);
  // The pair starts at the left tap, moved one left on the last column so that it stays in the
  // row; the taps are then its first or second element (a tap outside is masked off below).
  const __m256i start = _mm256_min_epi32(cx0, last_pair);
  const __m256 left_is_second = _mm256_castsi256_ps(_mm256_cmpgt_epi32(cx0, start));
  const __m256 right_is_first = _mm256_castsi256_ps(_mm256_cmpeq_epi32(cx1, start));
  const __m256i top = _mm256_add_epi32(_mm256_mullo_epi32(load(q.cy0 + p), stride_h), start);
  const __m256i bottom = _mm256_add_epi32(_mm256_mullo_epi32(load(q.cy1 + p), stride_h), start);
  __m256 tl, tr, bl, br;
  gather_pairs(plane, top, &tl, &tr);
  gather_pairs(plane, bottom, &bl, &br);
  const __m256i inside = load(q.inside + p);
  // Selecting (and-ing with a mask) rather than weighting by zero: a NaN next to the taps stays
  // out, as in the portable kernels.
  return {_mm256_and_ps(_mm256_blendv_ps(tl, tr, left_is_second), bit_set(inside, 1)),
          _mm256_and_ps(_mm256_blendv_ps(tr, tl, right_is_first), bit_set(inside, 2)),
          _mm256_and_ps(_mm256_blendv_ps(bl, br, left_is_second), bit_set(inside, 4)),
          _mm256_and_ps(_mm256_blendv_ps(br, bl, right_is_first), bit_set(inside, 8))};
}

INFAUG_AVX2 inline __m256 interpolate(const Taps8& v, const Points<float>& q, int64_t p) {
  __m256 r = _mm256_mul_ps(_mm256_loadu_ps(q.w00 + p), v.v00);
  r = _mm256_fmadd_ps(_mm256_loadu_ps(q.w01 + p), v.v01, r);
  r = _mm256_fmadd_ps(_mm256_loadu_ps(q.w10 + p), v.v10, r);
  return _mm256_fmadd_ps(_mm256_loadu_ps(q.w11 + p), v.v11, r);
}

}  // namespace

INFAUG_AVX2 void gather_span_avx2(int64_t n, const float* plane, int32_t stride_h, int32_t W,
                                  const Points<float>& q, float* out) {
  const __m256i sh = _mm256_set1_epi32(stride_h), last_pair = _mm256_set1_epi32(W - 2);
  int64_t p = 0;
  for (; p + 8 <= n; p += 8) _mm256_storeu_ps(out + p, interpolate(taps8(plane, sh, last_pair, q, p), q, p));
  gather_span(n - p, plane, stride_h, 1, q.cx0 + p, q.cx1 + p, q.cy0 + p, q.cy1 + p,
              q.inside + p, q.w00 + p, q.w01 + p, q.w10 + p, q.w11 + p, out + p);
}

template <bool kPoint, bool kValues>
INFAUG_AVX2 void sample_grad_span_avx2(int64_t n, const float* plane, int32_t stride_h, int32_t W,
                                       const Points<float>& q, const float* go, float* grad_ix,
                                       float* grad_iy, float* values) {
  const __m256i sh = _mm256_set1_epi32(stride_h), last_pair = _mm256_set1_epi32(W - 2);
  const __m256 one = _mm256_set1_ps(1.0f);
  int64_t p = 0;
  for (; p + 8 <= n; p += 8) {
    const Taps8 v = taps8(plane, sh, last_pair, q, p);
    if constexpr (kPoint) {
      const __m256 g = _mm256_loadu_ps(go + p);
      const __m256 tx = _mm256_loadu_ps(q.tx + p), ty = _mm256_loadu_ps(q.ty + p);
      // (v01 - v00)(1 - ty) + (v11 - v10) ty, and (v10 - v00)(1 - tx) + (v11 - v01) tx
      const __m256 dx = _mm256_fmadd_ps(_mm256_sub_ps(v.v11, v.v10), ty,
                                        _mm256_mul_ps(_mm256_sub_ps(v.v01, v.v00), _mm256_sub_ps(one, ty)));
      const __m256 dy = _mm256_fmadd_ps(_mm256_sub_ps(v.v11, v.v01), tx,
                                        _mm256_mul_ps(_mm256_sub_ps(v.v10, v.v00), _mm256_sub_ps(one, tx)));
      _mm256_storeu_ps(grad_ix + p, _mm256_fmadd_ps(g, dx, _mm256_loadu_ps(grad_ix + p)));
      _mm256_storeu_ps(grad_iy + p, _mm256_fmadd_ps(g, dy, _mm256_loadu_ps(grad_iy + p)));
    }
    if constexpr (kValues) _mm256_storeu_ps(values + p, interpolate(v, q, p));
  }
  sample_grad_span<kPoint, kValues>(n - p, plane, stride_h, 1, q.cx0 + p, q.cx1 + p, q.cy0 + p,
                                    q.cy1 + p, q.inside + p, q.tx + p, q.ty + p, q.w00 + p,
                                    q.w01 + p, q.w10 + p, q.w11 + p, go + p,
                                    kPoint ? grad_ix + p : nullptr, kPoint ? grad_iy + p : nullptr,
                                    kValues ? values + p : nullptr);
}

template void sample_grad_span_avx2<true, true>(int64_t, const float*, int32_t, int32_t,
                                                const Points<float>&, const float*, float*, float*,
                                                float*);
template void sample_grad_span_avx2<true, false>(int64_t, const float*, int32_t, int32_t,
                                                 const Points<float>&, const float*, float*, float*,
                                                 float*);
template void sample_grad_span_avx2<false, true>(int64_t, const float*, int32_t, int32_t,
                                                 const Points<float>&, const float*, float*, float*,
                                                 float*);

}  // namespace infaug::cpu
#endif
