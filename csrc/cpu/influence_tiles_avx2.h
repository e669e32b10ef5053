// The two products of influence on the CPU where K is small, for row-major float32/float64
// operands, written with AVX2 intrinsics: a tall, thin shape (N rows, 2K columns) that is bound by
// memory and that BLAS libraries handle poorly on some CPUs (MKL reaches about a third of the FMA
// peak on AMD cores). influence.cpp runs them a block of rows at a time, with the epilogue, for
// K <= kTiledMaxK; above that BLAS is faster. Call only when use_avx2() (cpu_features.h) is true.
//
//   project_rows: G[i, j] = <f_i, wc_j>           for rows i in [0, rows), j in [0, J)
//   combine_rows: out[i, :] = sum_j C[i, j] wc_j   for rows i in [0, rows)
//
// wc is [W; S], (J, D), contiguous. f and out have row strides ldf and ldo and unit column stride;
// G and C are contiguous (rows, J). The caller hands out rows a block at a time, sized so that a
// block of f stays in L2 while every 4 rows of wc pass over it.
#pragma once

#include <cstdint>

#include "cpu_features.h"

namespace infaug::cpu {

template <typename T>
INFAUG_AVX2 void project_rows(const T* f, int64_t ldf, const T* wc, int64_t D, int64_t J,
                              int64_t rows, T* G);

// stream: write out with non-temporal stores (for outputs far larger than the caches); the
// caller must order them (_mm_sfence, done here before returning).
template <typename T>
INFAUG_AVX2 void combine_rows(const T* C, const T* wc, int64_t D, int64_t J, int64_t rows, T* out,
                              int64_t ldo, bool stream);

}  // namespace infaug::cpu
