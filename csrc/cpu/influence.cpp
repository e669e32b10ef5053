// CPU kernels of influence (SPEC 1.3): one GEMM of the features against [W; S], then a per-row
// epilogue (softmax, residual, projection, dot product) over the (N, 2K) result, in double.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/aminmax.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/mm.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "../influence.h"
#include "../warp.h"

namespace infaug::cpu {
namespace {

void check_labels(const at::Tensor& labels, int64_t K) {
  if (labels.numel() == 0) return;
  const auto [low, high] = at::aminmax(labels);
  const int64_t lo = low.item<int64_t>(), hi = high.item<int64_t>();
  TORCH_CHECK_VALUE(lo >= 0 && hi < K, "infaug.influence: labels must lie in [0, K) = [0, ", K,
                    "), got values from ", lo, " to ", hi);
}

// (N, 2K): features @ [W; S]^T, each row of features read once.
at::Tensor projections(const at::Tensor& features, const at::Tensor& weight,
                       const at::Tensor& s_weight) {
  return at::mm(features, at::cat({weight, s_weight}, 0).t());
}

// One row's softmax p (of the logits z = G[:K] + b) and projection a = G[K:] + t, in double.
template <typename T>
struct Row {
  std::vector<double> p, a;
  explicit Row(int64_t K) : p(K), a(K) {}

  void compute(const T* g, const T* bias, const T* s_bias, int64_t K) {
    double top = -INFINITY;
    for (int64_t k = 0; k < K; ++k) {
      p[k] = double(g[k]) + (bias ? double(bias[k]) : 0.0);
      a[k] = double(g[K + k]) + (s_bias ? double(s_bias[k]) : 0.0);
      top = std::max(top, p[k]);
    }
    double total = 0.0;
    for (int64_t k = 0; k < K; ++k) total += (p[k] = std::exp(p[k] - top));
    for (int64_t k = 0; k < K; ++k) p[k] /= total;
  }
};

template <typename T>
const T* data_or_null(const c10::optional<at::Tensor>& t) {
  return t.has_value() ? t->const_data_ptr<T>() : nullptr;
}

at::Tensor influence_cpu(const at::Tensor& features, const at::Tensor& labels,
                         const at::Tensor& weight, const c10::optional<at::Tensor>& bias,
                         const at::Tensor& s_weight, const c10::optional<at::Tensor>& s_bias) {
  check_influence_args(features, labels, weight, bias, s_weight, s_bias);
  check_supported_dtype("influence", features, {at::kFloat, at::kDouble});
  const int64_t N = features.size(0), K = weight.size(0);
  at::Tensor scores = at::empty({N}, features.options());
  if (N == 0) return scores;
  check_labels(labels, K);
  const at::Tensor G = projections(features, weight, s_weight).contiguous();
  const at::Tensor b = bias.has_value() ? bias->contiguous() : at::Tensor();
  const at::Tensor t = s_bias.has_value() ? s_bias->contiguous() : at::Tensor();
  const at::Tensor y = labels.contiguous();
  AT_DISPATCH_FLOATING_TYPES(features.scalar_type(), "infaug_influence_cpu", [&] {
    using T = scalar_t;
    const T* g = G.const_data_ptr<T>();
    const T* bp = b.defined() ? b.const_data_ptr<T>() : nullptr;
    const T* tp = t.defined() ? t.const_data_ptr<T>() : nullptr;
    const int64_t* yp = y.const_data_ptr<int64_t>();
    T* out = scores.mutable_data_ptr<T>();
    at::parallel_for(0, N, 1024, [&](int64_t begin, int64_t end) {
      Row<T> row(K);
      for (int64_t i = begin; i < end; ++i) {
        row.compute(g + i * 2 * K, bp, tp, K);
        double dot = -row.a[yp[i]];  // the one-hot part of r . a
        for (int64_t k = 0; k < K; ++k) dot += row.p[k] * row.a[k];
        out[i] = T(-dot);
      }
    });
  });
  return scores;
}

at::Tensor influence_backward_cpu(const at::Tensor& grad_scores, const at::Tensor& features,
                                  const at::Tensor& labels, const at::Tensor& weight,
                                  const c10::optional<at::Tensor>& bias,
                                  const at::Tensor& s_weight,
                                  const c10::optional<at::Tensor>& s_bias) {
  check_influence_args(features, labels, weight, bias, s_weight, s_bias);
  check_supported_dtype("influence", features, {at::kFloat, at::kDouble});
  const int64_t N = features.size(0), K = weight.size(0);
  TORCH_CHECK_VALUE(grad_scores.dim() == 1 && grad_scores.size(0) == N,
                    "infaug.influence: grad_scores must have shape (N,) = (", N, ",), got ",
                    grad_scores.sizes());
  if (N == 0) return at::empty(features.sizes(), features.options());
  check_labels(labels, K);
  const at::Tensor G = projections(features, weight, s_weight).contiguous();
  const at::Tensor b = bias.has_value() ? bias->contiguous() : at::Tensor();
  const at::Tensor t = s_bias.has_value() ? s_bias->contiguous() : at::Tensor();
  const at::Tensor y = labels.contiguous();
  const at::Tensor go = grad_scores.contiguous();
  at::Tensor coefficients = at::empty({N, 2 * K}, features.options());
  AT_DISPATCH_FLOATING_TYPES(features.scalar_type(), "infaug_influence_backward_cpu", [&] {
    using T = scalar_t;
    const T* g = G.const_data_ptr<T>();
    const T* bp = b.defined() ? b.const_data_ptr<T>() : nullptr;
    const T* tp = t.defined() ? t.const_data_ptr<T>() : nullptr;
    const int64_t* yp = y.const_data_ptr<int64_t>();
    const T* gs = go.const_data_ptr<T>();
    T* c = coefficients.mutable_data_ptr<T>();
    at::parallel_for(0, N, 1024, [&](int64_t begin, int64_t end) {
      Row<T> row(K);
      for (int64_t i = begin; i < end; ++i) {
        row.compute(g + i * 2 * K, bp, tp, K);
        double pa = 0.0;
        for (int64_t k = 0; k < K; ++k) pa += row.p[k] * row.a[k];
        // d score / d h = -(W^T (p * (a - <p, a>)) + S^T r): coefficients of the rows of [W; S].
        const double scale = -double(gs[i]);
        T* ci = c + i * 2 * K;
        for (int64_t k = 0; k < K; ++k) {
          ci[k] = T(scale * row.p[k] * (row.a[k] - pa));
          ci[K + k] = T(scale * (row.p[k] - (k == yp[i] ? 1.0 : 0.0)));
        }
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
