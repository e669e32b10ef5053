// The row-wise epilogues of influence on the CPU, for float32 with AVX2 and FMA: everything but the
// two matrix products (which BLAS computes, see influence.cpp). Call only when use_avx2()
// (cpu_features.h) is true. Each row i reads g_i = G[i] = [W h_i, S h_i] (2K values, biases not
// added) and computes, with z = W h + b, a = S h + t, p = softmax(z):
//
//   score_rows:        scores[i] = -(<p, a> - a[y_i])
//   coefficient_rows:  C[i] = -grad_scores[i] * [p * (a - <p, a>), p - onehot(y_i)], the
//                      coefficients of the rows of [W; S] in d score_i / d h_i
//
// b and t may be null (no bias). G and C are contiguous (rows, 2K). Rows are independent, so the
// results do not depend on how the caller splits them between threads.
#pragma once

#include <cstdint>

#include "cpu_features.h"

namespace infaug::cpu {

INFAUG_AVX2 void score_rows(const float* G, int64_t K, const float* b, const float* t,
                            const int64_t* y, int64_t rows, float* scores);

INFAUG_AVX2 void coefficient_rows(const float* G, int64_t K, const float* b, const float* t,
                                  const int64_t* y, const float* grad_scores, int64_t rows,
                                  float* C);

}  // namespace infaug::cpu
