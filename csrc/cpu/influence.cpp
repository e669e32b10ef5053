// CPU kernels of influence (SPEC 1.3): one GEMM of the features against [W; S], then a per-row
// epilogue (softmax, residual, projection, dot product) over the (N, 2K) result, which the
// forward returns for the backward; the backward is the epilogue's adjoint and one GEMM.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/mm.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <tuple>
#include <vector>

#include "../influence.h"
#include "../warp.h"

namespace infaug::cpu {
namespace {

// (N, 2K): features @ [W; S]^T, each row of features read once.
at::Tensor projections(const at::Tensor& features, const at::Tensor& weight,
                       const at::Tensor& s_weight) {
  return at::mm(features, at::cat({weight, s_weight}, 0).t());
}

// One row's softmax p of the logits z = G[:K] + b and its projection a = G[K:] + t, in float32
// for float32 (the accumulation type) and float64 for float64.
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
  const at::Tensor G = projections(features, weight, s_weight);
  const Inputs in = prepare(G, labels, bias, s_bias);
  AT_DISPATCH_FLOATING_TYPES(features.scalar_type(), "infaug_influence_cpu", [&] {
    using T = scalar_t;
    const T* g = in.G.const_data_ptr<T>();
    const T *bp = data_or_null<T>(in.b), *tp = data_or_null<T>(in.t);
    const int64_t* yp = in.y.const_data_ptr<int64_t>();
    T* out = scores.mutable_data_ptr<T>();
    at::parallel_for(0, N, 256, [&](int64_t begin, int64_t end) {
      Row<T> row(K);
      for (int64_t i = begin; i < end; ++i) {
        row.compute(g + i * 2 * K, bp, tp, K);
        T dot = -row.a[yp[i]];  // the one-hot part of r . a
        for (int64_t k = 0; k < K; ++k) dot += row.p[k] * row.a[k];
        out[i] = -dot;
      }
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
    at::parallel_for(0, N, 256, [&](int64_t begin, int64_t end) {
      Row<T> row(K);
      for (int64_t i = begin; i < end; ++i) {
        row.compute(g + i * 2 * K, bp, tp, K);
        T pa = T(0);
        for (int64_t k = 0; k < K; ++k) pa += row.p[k] * row.a[k];
        // d score / d h = -(W^T (p * (a - <p, a>)) + S^T r): coefficients of the rows of [W; S].
        const T scale = -gs[i];
        T* ci = c + i * 2 * K;
        for (int64_t k = 0; k < K; ++k) {
          ci[k] = scale * row.p[k] * (row.a[k] - pa);
          ci[K + k] = scale * row.p[k];
        }
        ci[K + yp[i]] -= scale;  // r = p - onehot(y)
      }
    });
  });
  return at::mm(coefficients, at::cat({weight, s_weight}, 0));
}

}  // namespace

TORCH_LIBRARY_IMPL(infaug, CPU, m) {
  m.impl("influence", &influence_cpu);
  m.impl("_influence_backward", &influence_backward_cpu);
}

}  // namespace infaug::cpu
