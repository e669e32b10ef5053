// CPU kernels of influence: the product of the features with [W; S], then a per-row epilogue
// (softmax, residual, projection, dot product) over the (N, 2K) result, which the forward returns
// for the backward; the backward is the epilogue's adjoint, giving the coefficients of the rows of
// [W; S], and one more product. The epilogues are vectorised for float32 on AVX2 CPUs
// (influence_avx2.h); elsewhere, and for float64, they are scalar loops.
//
// The products: where K is small (K <= kTiledMaxK) the shapes are tall and thin and bound by memory,
// and on AVX2 CPUs both run as influence_tiles_avx2.h's register-tiled kernels, a block of rows at a
// time inside the parallel loop together with the epilogue, so that the epilogue reads the block's
// projections while they are in cache and the (N, 2K) coefficients are never stored whole. For
// larger K, and without AVX2, BLAS computes them (at::mm), which is faster there. The gradient, as
// large as the features, goes on huge pages.
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
#include "influence_tiles_avx2.h"

namespace infaug::cpu {
namespace {

// [W; S], (2K, D), contiguous.
at::Tensor stacked(const at::Tensor& weight, const at::Tensor& s_weight) {
  return at::cat({weight, s_weight}, 0).contiguous();
}

// The largest K for which the products run as register tiles: between K = 10, where the tiles
// measured about twice as fast as BLAS on the AMD EPYC VM, and K = 100, where BLAS was faster.
constexpr int64_t kTiledMaxK = 32;

// Whether the products run as influence_tiles_avx2.h's kernels: small K, rows (of the features, or
// of the gradient) with unit column stride, an AVX2 CPU.
bool use_tiles(const at::Tensor& rows, int64_t K) {
#ifdef INFAUG_HAS_AVX2
  return K <= kTiledMaxK && use_avx2() && rows.stride(1) == 1;
#else
  (void)rows;
  (void)K;
  return false;
#endif
}

// Rows per block of the tiled products: about 256 KiB of features, a multiple of 6 rows.
int64_t block_rows(int64_t D, int64_t element_size) {
  const int64_t rows = (int64_t(256) << 10) / std::max<int64_t>(1, D * element_size);
  return std::clamp<int64_t>(rows / 6 * 6, 6, 384);
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
  const at::Tensor wc = stacked(weight, s_weight);
  const bool tiles = use_tiles(features, K);
  // (N, 2K) = features @ [W; S]^T, each row of features read once: by the tiles, a block at a time
  // below, or by BLAS here.
  const at::Tensor G = tiles ? at::empty({N, 2 * K}, features.options()) : at::mm(features, wc.t());
  const Inputs in = prepare(G, labels, bias, s_bias);
  AT_DISPATCH_FLOATING_TYPES(features.scalar_type(), "infaug_influence_cpu", [&] {
    using T = scalar_t;
    T* g = in.G.mutable_data_ptr<T>();
    const T *bp = data_or_null<T>(in.b), *tp = data_or_null<T>(in.t);
    const int64_t* yp = in.y.const_data_ptr<int64_t>();
    T* out = scores.mutable_data_ptr<T>();
    if (!tiles) {
      at::parallel_for(0, N, grain(K, sizeof(T)), [&](int64_t begin, int64_t end) {
        score_rows_any<T>(g + begin * 2 * K, K, bp, tp, yp + begin, end - begin, out + begin);
      });
      return;
    }
#ifdef INFAUG_HAS_AVX2
    const T* f = features.const_data_ptr<T>();
    const int64_t ldf = features.stride(0), D = features.size(1), block = block_rows(D, sizeof(T));
    at::parallel_for(0, N, block, [&](int64_t begin, int64_t end) {
      for (int64_t start = begin; start < end; start += block) {
        const int64_t rows = std::min(end, start + block) - start;
        project_rows<T>(f + start * ldf, ldf, wc.const_data_ptr<T>(), D, 2 * K, rows, g + start * 2 * K);
        score_rows_any<T>(g + start * 2 * K, K, bp, tp, yp + start, rows, out + start);
      }
    });
#endif
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
  const at::Tensor wc = stacked(weight, s_weight);
  at::Tensor grad = empty_on_huge_pages({N, D}, G_in.options());
  const bool tiles = use_tiles(grad, K);
  // The coefficients of the rows of [W; S] in each row of the gradient: a block at a time for the
  // tiles, all of them for one product by BLAS otherwise.
  at::Tensor coefficients = at::empty({tiles ? 0 : N, 2 * K}, G_in.options());
  AT_DISPATCH_FLOATING_TYPES(G_in.scalar_type(), "infaug_influence_backward_cpu", [&] {
    using T = scalar_t;
    const T* g = in.G.const_data_ptr<T>();
    const T *bp = data_or_null<T>(in.b), *tp = data_or_null<T>(in.t);
    const int64_t* yp = in.y.const_data_ptr<int64_t>();
    const T* gs = go.const_data_ptr<T>();
    if (!tiles) {
      T* c = coefficients.mutable_data_ptr<T>();
      at::parallel_for(0, N, grain(K, sizeof(T)), [&](int64_t begin, int64_t end) {
        coefficient_rows_any<T>(g + begin * 2 * K, K, bp, tp, yp + begin, gs + begin, end - begin,
                                c + begin * 2 * K);
      });
      return;
    }
#ifdef INFAUG_HAS_AVX2
    T* out = grad.mutable_data_ptr<T>();
    const int64_t block = block_rows(D, sizeof(T));
    // Non-temporal stores for a gradient far larger than the caches, when every row is aligned.
    const bool stream = grad.nbytes() >= (size_t(32) << 20) && (D * sizeof(T)) % 32 == 0 &&
                        reinterpret_cast<uintptr_t>(out) % 32 == 0;
    at::parallel_for(0, N, block, [&](int64_t begin, int64_t end) {
      std::vector<T> local(block * 2 * K);
      for (int64_t start = begin; start < end; start += block) {
        const int64_t rows = std::min(end, start + block) - start;
        coefficient_rows_any<T>(g + start * 2 * K, K, bp, tp, yp + start, gs + start, rows, local.data());
        combine_rows<T>(local.data(), wc.const_data_ptr<T>(), D, 2 * K, rows, out + start * D, D, stream);
      }
    });
#endif
  });
  // (N, D) = coefficients @ [W; S], by BLAS, where the tiles did not already.
  if (!tiles) at::mm_out(grad, coefficients, wc);
  return grad;
}

}  // namespace

TORCH_LIBRARY_IMPL(infaug, CPU, m) {
  m.impl("influence", &influence_cpu);
  m.impl("_influence_backward", &influence_backward_cpu);
}

}  // namespace infaug::cpu
