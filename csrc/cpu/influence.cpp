// CPU kernels of influence: the product of the features with [W; S] by BLAS (at::mm), then a
// per-row epilogue (softmax, residual, projection, dot product) over the (N, 2K) result, which the
// forward returns for the backward; the backward is the epilogue's adjoint, giving the
// coefficients of the rows of [W; S], and one more product by BLAS. The epilogues are vectorised
// for float32 on AVX2 CPUs (influence_avx2.h); elsewhere, and for float64, they are scalar loops.
// The gradient, as large as the features, goes on huge pages.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/mm.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <tuple>
#include <type_traits>
#include <vector>

#include "../influence.h"
#include "../warp.h"
#include "cpu_features.h"
#include "huge_pages.h"
#include "influence_avx2.h"

namespace infaug::cpu {
namespace {

// [W; S], (2K, D), contiguous.
at::Tensor stacked(const at::Tensor& weight, const at::Tensor& s_weight) {
  return at::cat({weight, s_weight}, 0).contiguous();
}

// Rows per task of the epilogues: about 64 KiB of G.
int64_t grain(int64_t K, int64_t element_size) {
  return std::max<int64_t>(1, (int64_t(64) << 10) / std::max<int64_t>(1, 2 * K * element_size));
}

// One row's softmax p of the logits z = g[:K] + b and its projection a = g[K:] + t, in the
// scalar epilogues (float64, and float32 without AVX2).
template <typename T>
struct Row {
  std::vector<T> p, a;
  explicit Row(int64_t K) : p(K), a(K) {}

  void compute(const T* __restrict__ g, const T* __restrict__ bias, const T* __restrict__ s_bias,
               int64_t K) {
    T top = -std::numeric_limits<T>::infinity();
    for (int64_t k = 0; k < K; ++k) {
      p[k] = g[k] + (bias ? bias[k] : T(0));
      a[k] = g[K + k] + (s_bias ? s_bias[k] : T(0));
      top = std::max(top, p[k]);
    }
    T total = T(0);
    for (int64_t k = 0; k < K; ++k) total += (p[k] = std::exp(p[k] - top));
    const T inverse = T(1) / total;
    for (int64_t k = 0; k < K; ++k) p[k] *= inverse;
  }
};

// The scalar epilogues, the same contract as influence_avx2.h's.
template <typename T>
void score_rows_scalar(const T* G, int64_t K, const T* b, const T* t, const int64_t* y,
                       int64_t rows, T* scores) {
  Row<T> row(K);
  for (int64_t i = 0; i < rows; ++i) {
    row.compute(G + i * 2 * K, b, t, K);
    T dot = -row.a[y[i]];  // the one-hot part of r . a
    for (int64_t k = 0; k < K; ++k) dot += row.p[k] * row.a[k];
    scores[i] = -dot;
  }
}

template <typename T>
void coefficient_rows_scalar(const T* G, int64_t K, const T* b, const T* t, const int64_t* y,
                             const T* grad_scores, int64_t rows, T* C) {
  Row<T> row(K);
  for (int64_t i = 0; i < rows; ++i) {
    row.compute(G + i * 2 * K, b, t, K);
    T pa = T(0);
    for (int64_t k = 0; k < K; ++k) pa += row.p[k] * row.a[k];
    // d score / d h = -(W^T (p * (a - <p, a>)) + S^T r): coefficients of the rows of [W; S].
    const T scale = -grad_scores[i];
    T* c = C + i * 2 * K;
    for (int64_t k = 0; k < K; ++k) {
      c[k] = scale * row.p[k] * (row.a[k] - pa);
      c[K + k] = scale * row.p[k];
    }
    c[K + y[i]] -= scale;  // r = p - onehot(y)
  }
}

template <typename T>
void score_rows_any(const T* G, int64_t K, const T* b, const T* t, const int64_t* y, int64_t rows,
                    T* scores) {
#ifdef INFAUG_HAS_AVX2
  if constexpr (std::is_same_v<T, float>) {
    if (use_avx2()) return score_rows(G, K, b, t, y, rows, scores);
  }
#endif
  score_rows_scalar(G, K, b, t, y, rows, scores);
}

template <typename T>
void coefficient_rows_any(const T* G, int64_t K, const T* b, const T* t, const int64_t* y,
                          const T* grad_scores, int64_t rows, T* C) {
#ifdef INFAUG_HAS_AVX2
  if constexpr (std::is_same_v<T, float>) {
    if (use_avx2()) return coefficient_rows(G, K, b, t, y, grad_scores, rows, C);
  }
#endif
  coefficient_rows_scalar(G, K, b, t, y, grad_scores, rows, C);
}

struct Inputs {
  at::Tensor G, b, t, y;
};

Inputs prepare(const at::Tensor& G, const at::Tensor& labels, const c10::optional<at::Tensor>& bias,
               const c10::optional<at::Tensor>& s_bias) {
  return {G.contiguous(), bias.has_value() ? bias->contiguous() : at::Tensor(),
          s_bias.has_value() ? s_bias->contiguous() : at::Tensor(), labels.contiguous()};
}

template <typename T>
const T* data_or_null(const at::Tensor& t) {
  return t.defined() ? t.const_data_ptr<T>() : nullptr;
}

std::tuple<at::Tensor, at::Tensor> influence_cpu(const at::Tensor& features, const at::Tensor& labels,
                                                 const at::Tensor& weight,
                                                 const c10::optional<at::Tensor>& bias,
                                                 const at::Tensor& s_weight,
                                                 const c10::optional<at::Tensor>& s_bias) {
  check_influence_args(features, labels, weight, bias, s_weight, s_bias);
  check_supported_dtype("influence", "features", features, {at::kFloat, at::kDouble});
  const int64_t N = features.size(0), K = weight.size(0);
  at::Tensor scores = at::empty({N}, features.options());
  if (N == 0) return {scores, at::empty({0, 2 * K}, features.options())};
  check_label_range(labels, K);
  // (N, 2K) = features @ [W; S]^T: each row of features read once, by BLAS.
  const at::Tensor G = at::mm(features, stacked(weight, s_weight).t());
  const Inputs in = prepare(G, labels, bias, s_bias);
  AT_DISPATCH_FLOATING_TYPES(features.scalar_type(), "infaug_influence_cpu", [&] {
    using T = scalar_t;
    const T* g = in.G.const_data_ptr<T>();
    const T *bp = data_or_null<T>(in.b), *tp = data_or_null<T>(in.t);
    const int64_t* yp = in.y.const_data_ptr<int64_t>();
    T* out = scores.mutable_data_ptr<T>();
    at::parallel_for(0, N, grain(K, sizeof(T)), [&](int64_t begin, int64_t end) {
      score_rows_any<T>(g + begin * 2 * K, K, bp, tp, yp + begin, end - begin, out + begin);
    });
  });
  return {scores, in.G};
}

at::Tensor influence_backward_cpu(const at::Tensor& grad_scores, const at::Tensor& G_in,
                                  const at::Tensor& labels, const at::Tensor& weight,
                                  const c10::optional<at::Tensor>& bias,
                                  const at::Tensor& s_weight,
                                  const c10::optional<at::Tensor>& s_bias) {
  check_influence_args(G_in, labels, weight, bias, s_weight, s_bias, /*projections=*/true);
  check_supported_dtype("influence", "features", G_in, {at::kFloat, at::kDouble});
  const int64_t N = G_in.size(0), K = weight.size(0), D = weight.size(1);
  check_grad_scores(grad_scores, G_in);
  if (N == 0) return at::empty({0, D}, G_in.options());
  const Inputs in = prepare(G_in, labels, bias, s_bias);
  const at::Tensor go = grad_scores.contiguous();
  at::Tensor coefficients = at::empty({N, 2 * K}, G_in.options());
  AT_DISPATCH_FLOATING_TYPES(G_in.scalar_type(), "infaug_influence_backward_cpu", [&] {
    using T = scalar_t;
    const T* g = in.G.const_data_ptr<T>();
    const T *bp = data_or_null<T>(in.b), *tp = data_or_null<T>(in.t);
    const int64_t* yp = in.y.const_data_ptr<int64_t>();
    const T* gs = go.const_data_ptr<T>();
    T* c = coefficients.mutable_data_ptr<T>();
    at::parallel_for(0, N, grain(K, sizeof(T)), [&](int64_t begin, int64_t end) {
      coefficient_rows_any<T>(g + begin * 2 * K, K, bp, tp, yp + begin, gs + begin, end - begin,
                              c + begin * 2 * K);
    });
  });
  // (N, D) = coefficients @ [W; S], by BLAS.
  at::Tensor grad = empty_on_huge_pages({N, D}, G_in.options());
  at::mm_out(grad, coefficients, stacked(weight, s_weight));
  return grad;
}

}  // namespace

TORCH_LIBRARY_IMPL(infaug, CPU, m) {
  m.impl("influence", &influence_cpu);
  m.impl("_influence_backward", &influence_backward_cpu);
}

}  // namespace infaug::cpu
