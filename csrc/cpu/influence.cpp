// CPU kernels of influence: one product of the features with [W; S], then a per-row
// epilogue (softmax, residual, projection, dot product) over the (N, 2K) result, which the
// forward returns for the backward; the backward is the epilogue's adjoint and one product.
//
// On AVX2 CPUs both products are influence_avx2.h's, run a block of rows at a time inside the
// parallel loop, so the epilogue reads the block's projections while they are in cache; elsewhere
// they are GEMMs (at::mm). The gradient, as large as the features, goes on huge pages.
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

// Whether the products run as influence_avx2.h's kernels: features (or the gradient) with
// contiguous rows, on an AVX2 CPU.
bool use_row_kernels(const at::Tensor& rows) {
#ifdef INFAUG_HAS_AVX2
  return use_avx2() && rows.stride(1) == 1;
#else
  (void)rows;
  return false;
#endif
}

// Rows per block of the row kernels: about 256 KiB of features, a multiple of 6 rows.
int64_t block_rows(int64_t D, int64_t element_size) {
  const int64_t rows = (int64_t(256) << 10) / std::max<int64_t>(1, D * element_size);
  return std::clamp<int64_t>(rows / 6 * 6, 6, 384);
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
  const int64_t N = features.size(0), K = weight.size(0), D = features.size(1);
  at::Tensor scores = at::empty({N}, features.options());
  if (N == 0) return {scores, at::empty({0, 2 * K}, features.options())};
  check_label_range(labels, K);
  const at::Tensor wc = stacked(weight, s_weight);
  const bool row_kernels = use_row_kernels(features);
  // (N, 2K) = features @ [W; S]^T, each row of features read once.
  const at::Tensor G = row_kernels ? at::empty({N, 2 * K}, features.options()) : at::mm(features, wc.t());
  const Inputs in = prepare(G, labels, bias, s_bias);
  AT_DISPATCH_FLOATING_TYPES(features.scalar_type(), "infaug_influence_cpu", [&] {
    using T = scalar_t;
    T* g = G.mutable_data_ptr<T>();
    const T *bp = data_or_null<T>(in.b), *tp = data_or_null<T>(in.t);
    const int64_t* yp = in.y.const_data_ptr<int64_t>();
    const T* f = features.const_data_ptr<T>();
    const int64_t ldf = features.stride(0), block = block_rows(D, sizeof(T));
    T* out = scores.mutable_data_ptr<T>();
    at::parallel_for(0, N, block, [&](int64_t begin, int64_t end) {
      Row<T> row(K);
      for (int64_t start = begin; start < end; start += block) {
        const int64_t stop = std::min(end, start + block);
#ifdef INFAUG_HAS_AVX2
        if (row_kernels)
          project_rows<T>(f + start * ldf, ldf, wc.const_data_ptr<T>(), D, 2 * K, stop - start,
                          g + start * 2 * K);
#endif
        for (int64_t i = start; i < stop; ++i) {
          row.compute(g + i * 2 * K, bp, tp, K);
          T dot = -row.a[yp[i]];  // the one-hot part of r . a
          for (int64_t k = 0; k < K; ++k) dot += row.p[k] * row.a[k];
          out[i] = -dot;
        }
      }
    });
  });
  return {scores, G};
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
  const at::Tensor wc = stacked(weight, s_weight);
  at::Tensor grad = empty_on_huge_pages({N, D}, G_in.options());
  const bool row_kernels = use_row_kernels(grad);
  // The coefficients of the rows of [W; S] in each row of the gradient: a block at a time for
  // the row kernels, all of them for one GEMM otherwise.
  at::Tensor coefficients = at::empty({row_kernels ? 0 : N, 2 * K}, G_in.options());
  AT_DISPATCH_FLOATING_TYPES(G_in.scalar_type(), "infaug_influence_backward_cpu", [&] {
    using T = scalar_t;
    const T* g = in.G.const_data_ptr<T>();
    const T *bp = data_or_null<T>(in.b), *tp = data_or_null<T>(in.t);
    const int64_t* yp = in.y.const_data_ptr<int64_t>();
    const T* gs = go.const_data_ptr<T>();
    T* out = grad.mutable_data_ptr<T>();
    const int64_t block = block_rows(D, sizeof(T));
    // Non-temporal stores for a gradient far larger than the caches, when every row is aligned.
    const bool stream = grad.nbytes() >= (size_t(32) << 20) && (D * sizeof(T)) % 32 == 0 &&
                        reinterpret_cast<uintptr_t>(out) % 32 == 0;
    at::parallel_for(0, N, block, [&](int64_t begin, int64_t end) {
      Row<T> row(K);
      std::vector<T> local(row_kernels ? block * 2 * K : 0);
      for (int64_t start = begin; start < end; start += block) {
        const int64_t stop = std::min(end, start + block);
        T* c = row_kernels ? local.data() : coefficients.mutable_data_ptr<T>() + start * 2 * K;
        for (int64_t i = start; i < stop; ++i) {
          row.compute(g + i * 2 * K, bp, tp, K);
          T pa = T(0);
          for (int64_t k = 0; k < K; ++k) pa += row.p[k] * row.a[k];
          // d score / d h = -(W^T (p * (a - <p, a>)) + S^T r): coefficients of the rows of [W; S].
          const T scale = -gs[i];
          T* ci = c + (i - start) * 2 * K;
          for (int64_t k = 0; k < K; ++k) {
            ci[k] = scale * row.p[k] * (row.a[k] - pa);
            ci[K + k] = scale * row.p[k];
          }
          ci[K + yp[i]] -= scale;  // r = p - onehot(y)
        }
#ifdef INFAUG_HAS_AVX2
        if (row_kernels)
          combine_rows<T>(local.data(), wc.const_data_ptr<T>(), D, 2 * K, stop - start,
                          out + start * D, D, stream);
#endif
      }
    });
  });
  if (!row_kernels) at::mm_out(grad, coefficients, wc);
  return grad;
}

}  // namespace

TORCH_LIBRARY_IMPL(infaug, CPU, m) {
  m.impl("influence", &influence_cpu);
  m.impl("_influence_backward", &influence_backward_cpu);
}

}  // namespace infaug::cpu
