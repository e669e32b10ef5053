// See influence_tiles_avx2.h. Register tiles: project_rows holds 3 rows x 4 columns of dot products
// (12 accumulators, 3 + 4 loads per 12 FMAs); combine_rows holds 6 rows x 2 vectors of an output
// row (12 accumulators, 2 + 6 loads per 12 FMAs). Tiles at the edges are the same code with
// fewer rows or columns, chosen at compile time.
#include "influence_tiles_avx2.h"

#ifdef INFAUG_HAS_AVX2
#include <immintrin.h>

namespace infaug::cpu {
namespace {

template <typename T>
struct Vec;

template <>
struct Vec<float> {
  using R = __m256;
  static constexpr int L = 8;
  INFAUG_AVX2 static R zero() { return _mm256_setzero_ps(); }
  INFAUG_AVX2 static R load(const float* p) { return _mm256_loadu_ps(p); }
  INFAUG_AVX2 static R broadcast(const float* p) { return _mm256_broadcast_ss(p); }
  INFAUG_AVX2 static R fma(R a, R b, R c) { return _mm256_fmadd_ps(a, b, c); }
  INFAUG_AVX2 static void store(float* p, R v) { _mm256_storeu_ps(p, v); }
  INFAUG_AVX2 static void stream(float* p, R v) { _mm256_stream_ps(p, v); }
  INFAUG_AVX2 static float sum(R v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
};

template <>
struct Vec<double> {
  using R = __m256d;
  static constexpr int L = 4;
  INFAUG_AVX2 static R zero() { return _mm256_setzero_pd(); }
  INFAUG_AVX2 static R load(const double* p) { return _mm256_loadu_pd(p); }
  INFAUG_AVX2 static R broadcast(const double* p) { return _mm256_broadcast_sd(p); }
  INFAUG_AVX2 static R fma(R a, R b, R c) { return _mm256_fmadd_pd(a, b, c); }
  INFAUG_AVX2 static void store(double* p, R v) { _mm256_storeu_pd(p, v); }
  INFAUG_AVX2 static void stream(double* p, R v) { _mm256_stream_pd(p, v); }
  INFAUG_AVX2 static double sum(R v) {
    __m128d s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
    return _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
  }
};

// G[r, c] = <f_r, wc_c> for MR rows and NR columns of G.
template <typename T, int MR, int NR>
INFAUG_AVX2 inline void dot_tile(const T* f, int64_t ldf, const T* wc, int64_t D, T* G,
                                 int64_t J) {
  using V = Vec<T>;
  typename V::R acc[MR][NR];
#pragma GCC unroll 4
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int c = 0; c < NR; ++c) acc[r][c] = V::zero();
  int64_t d = 0;
  for (; d + V::L <= D; d += V::L) {
    typename V::R x[MR];
#pragma GCC unroll 4
    for (int r = 0; r < MR; ++r) x[r] = V::load(f + r * ldf + d);
#pragma GCC unroll 4
    for (int c = 0; c < NR; ++c) {
      const typename V::R w = V::load(wc + c * D + d);
#pragma GCC unroll 4
      for (int r = 0; r < MR; ++r) acc[r][c] = V::fma(x[r], w, acc[r][c]);
    }
  }
#pragma GCC unroll 4
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int c = 0; c < NR; ++c) {
      T s = V::sum(acc[r][c]);
      for (int64_t e = d; e < D; ++e) s += f[r * ldf + e] * wc[c * D + e];
      G[r * J + c] = s;
    }
}

template <typename T, int NR>
INFAUG_AVX2 inline void dot_tiles(const T* f, int64_t ldf, const T* wc, int64_t D, int64_t J,
                                  int64_t rows, T* G) {
  int64_t r = 0;
  for (; r + 3 <= rows; r += 3) dot_tile<T, 3, NR>(f + r * ldf, ldf, wc, D, G + r * J, J);
  if (rows - r == 2) dot_tile<T, 2, NR>(f + r * ldf, ldf, wc, D, G + r * J, J);
  if (rows - r == 1) dot_tile<T, 1, NR>(f + r * ldf, ldf, wc, D, G + r * J, J);
}

// out[r, d0 : d0 + NV L] = sum_j C[r, j] wc[j, d0 : d0 + NV L] for MR rows.
template <typename T, int MR, int NV>
INFAUG_AVX2 inline void combine_tile(const T* C, const T* wc, int64_t D, int64_t J, int64_t d0,
                                     T* out, int64_t ldo, bool stream) {
  using V = Vec<T>;
  typename V::R acc[MR][NV];
#pragma GCC unroll 6
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) acc[r][v] = V::zero();
  for (int64_t j = 0; j < J; ++j) {
    typename V::R w[NV];
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) w[v] = V::load(wc + j * D + d0 + v * V::L);
#pragma GCC unroll 6
    for (int r = 0; r < MR; ++r) {
      const typename V::R c = V::broadcast(C + r * J + j);
#pragma GCC unroll 2
      for (int v = 0; v < NV; ++v) acc[r][v] = V::fma(c, w[v], acc[r][v]);
    }
  }
#pragma GCC unroll 6
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) {
      T* p = out + r * ldo + d0 + v * V::L;
      if (stream)
        V::stream(p, acc[r][v]);
      else
        V::store(p, acc[r][v]);
    }
}

// MR whole rows of out: two vectors at a time, then one, then the last D % L columns.
template <typename T, int MR>
INFAUG_AVX2 inline void combine_row_tile(const T* C, const T* wc, int64_t D, int64_t J, T* out,
                                         int64_t ldo, bool stream) {
  constexpr int L = Vec<T>::L;
  int64_t d = 0;
  for (; d + 2 * L <= D; d += 2 * L) combine_tile<T, MR, 2>(C, wc, D, J, d, out, ldo, stream);
  for (; d + L <= D; d += L) combine_tile<T, MR, 1>(C, wc, D, J, d, out, ldo, stream);
  for (int r = 0; r < MR; ++r)
    for (int64_t e = d; e < D; ++e) {
      T s = T(0);
      for (int64_t j = 0; j < J; ++j) s += C[r * J + j] * wc[j * D + e];
      out[r * ldo + e] = s;
    }
}

}  // namespace

template <typename T>
INFAUG_AVX2 void project_rows(const T* f, int64_t ldf, const T* wc, int64_t D, int64_t J,
                              int64_t rows, T* G) {
  int64_t c = 0;
  for (; c + 4 <= J; c += 4) dot_tiles<T, 4>(f, ldf, wc + c * D, D, J, rows, G + c);
  switch (J - c) {
    case 3: dot_tiles<T, 3>(f, ldf, wc + c * D, D, J, rows, G + c); break;
    case 2: dot_tiles<T, 2>(f, ldf, wc + c * D, D, J, rows, G + c); break;
    case 1: dot_tiles<T, 1>(f, ldf, wc + c * D, D, J, rows, G + c); break;
    default: break;
  }
}

template <typename T>
INFAUG_AVX2 void combine_rows(const T* C, const T* wc, int64_t D, int64_t J, int64_t rows, T* out,
                              int64_t ldo, bool stream) {
  int64_t r = 0;
  for (; r + 6 <= rows; r += 6) combine_row_tile<T, 6>(C + r * J, wc, D, J, out + r * ldo, ldo, stream);
  const T* Cr = C + r * J;
  T* o = out + r * ldo;
  switch (rows - r) {
    case 5: combine_row_tile<T, 5>(Cr, wc, D, J, o, ldo, stream); break;
    case 4: combine_row_tile<T, 4>(Cr, wc, D, J, o, ldo, stream); break;
    case 3: combine_row_tile<T, 3>(Cr, wc, D, J, o, ldo, stream); break;
    case 2: combine_row_tile<T, 2>(Cr, wc, D, J, o, ldo, stream); break;
    case 1: combine_row_tile<T, 1>(Cr, wc, D, J, o, ldo, stream); break;
    default: break;
  }
  if (stream) _mm_sfence();
}

template void project_rows<float>(const float*, int64_t, const float*, int64_t, int64_t, int64_t,
                                  float*);
template void project_rows<double>(const double*, int64_t, const double*, int64_t, int64_t,
                                   int64_t, double*);
template void combine_rows<float>(const float*, const float*, int64_t, int64_t, int64_t, float*,
                                  int64_t, bool);
template void combine_rows<double>(const double*, const double*, int64_t, int64_t, int64_t,
                                   double*, int64_t, bool);

}  // namespace infaug::cpu

#endif
