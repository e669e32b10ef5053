// See influence_avx2.h. A row is taken 8 classes at a time; the last, partial vector is loaded and
// stored under a mask. Per row: one pass for the largest logit, one for the sums of e = exp(z - max)
// and of e * a (so <p, a> = sum(e a) / sum(e) needs no stored p), and for the backward one more to
// write the coefficients (e is kept in C's second half between the passes).
#include "influence_avx2.h"

#ifdef INFAUG_HAS_AVX2
#include <immintrin.h>

#include <limits>

namespace infaug::cpu {
namespace {

constexpr int L = 8;

// Lanes [0, count) of a vector (count may exceed 8).
INFAUG_AVX2 inline __m256i lanes(int64_t count) {
  const int n = count < L ? int(count) : L;
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// p[k, k + 8) with the lanes at or beyond `end` read as 0 (never touched in memory); p may be null.
INFAUG_AVX2 inline __m256 load(const float* p, int64_t k, int64_t end) {
  if (p == nullptr) return _mm256_setzero_ps();
  return k + L <= end ? _mm256_loadu_ps(p + k) : _mm256_maskload_ps(p + k, lanes(end - k));
}

INFAUG_AVX2 inline void store(float* p, int64_t k, int64_t end, __m256 v) {
  if (k + L <= end)
    _mm256_storeu_ps(p + k, v);
  else
    _mm256_maskstore_ps(p + k, lanes(end - k), v);
}

INFAUG_AVX2 inline float sum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

INFAUG_AVX2 inline float max(__m256 v) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// exp(x) in float32 to about 1 ulp, for x <= 88 (the softmax takes x <= 0): x = n ln 2 + r with
// |r| <= ln 2 / 2, exp(r) by a degree-7 polynomial (Cephes' expf), times 2^n by the exponent bits.
// Below -87.3 (where exp underflows to a subnormal) the result is exp(-87.3), about 1e-38.
INFAUG_AVX2 inline __m256 exp8(__m256 x) {
  x = _mm256_max_ps(_mm256_min_ps(x, _mm256_set1_ps(88.0f)), _mm256_set1_ps(-87.3365478515625f));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);  // ln 2 in two parts
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  const __m256i bits = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(bits));
}

struct Sums {
  float total, weighted;  // sum(e), sum(e a)
};

// The sums of one row; with `e_out`, e is stored there too.
INFAUG_AVX2 inline Sums row_sums(const float* g, int64_t K, const float* b, const float* t,
                                 float* e_out) {
  const __m256 minus_inf = _mm256_set1_ps(-std::numeric_limits<float>::infinity());
  __m256 top = minus_inf;
  for (int64_t k = 0; k < K; k += L) {
    const __m256 z = _mm256_add_ps(load(g, k, K), load(b, k, K));
    top = _mm256_max_ps(top, _mm256_blendv_ps(minus_inf, z, _mm256_castsi256_ps(lanes(K - k))));
  }
  const __m256 shift = _mm256_set1_ps(max(top));
  __m256 total = _mm256_setzero_ps(), weighted = _mm256_setzero_ps();
  for (int64_t k = 0; k < K; k += L) {
    const __m256 z = _mm256_add_ps(load(g, k, K), load(b, k, K));
    const __m256 a = _mm256_add_ps(load(g + K, k, K), load(t, k, K));
    const __m256 e = _mm256_and_ps(exp8(_mm256_sub_ps(z, shift)), _mm256_castsi256_ps(lanes(K - k)));
    total = _mm256_add_ps(total, e);
    weighted = _mm256_fmadd_ps(e, a, weighted);
    if (e_out != nullptr) store(e_out, k, K, e);
  }
  return {sum(total), sum(weighted)};
}

inline float projection(const float* g, int64_t K, const float* t, int64_t y) {
  return g[K + y] + (t != nullptr ? t[y] : 0.0f);
}

}  // namespace

void score_rows(const float* G, int64_t K, const float* b, const float* t, const int64_t* y,
                int64_t rows, float* scores) {
  for (int64_t i = 0; i < rows; ++i) {
    const float* g = G + i * 2 * K;
    const Sums s = row_sums(g, K, b, t, nullptr);
    scores[i] = projection(g, K, t, y[i]) - s.weighted / s.total;  // -(<p, a> - a_y)
  }
}

void coefficient_rows(const float* G, int64_t K, const float* b, const float* t, const int64_t* y,
                      const float* grad_scores, int64_t rows, float* C) {
  for (int64_t i = 0; i < rows; ++i) {
    const float* g = G + i * 2 * K;
    float* c = C + i * 2 * K;
    const Sums s = row_sums(g, K, b, t, c + K);
    const float inverse = 1.0f / s.total, scale = -grad_scores[i];
    const __m256 pa = _mm256_set1_ps(s.weighted * inverse), factor = _mm256_set1_ps(scale * inverse);
    for (int64_t k = 0; k < K; k += L) {
      const __m256 sp = _mm256_mul_ps(load(c + K, k, K), factor);  // scale * p
      const __m256 a = _mm256_add_ps(load(g + K, k, K), load(t, k, K));
      store(c, k, K, _mm256_mul_ps(sp, _mm256_sub_ps(a, pa)));
      store(c + K, k, K, sp);
    }
    c[K + y[i]] -= scale;  // r = p - onehot(y)
  }
}

}  // namespace infaug::cpu

#endif
