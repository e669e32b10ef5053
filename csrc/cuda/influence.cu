// CUDA kernels of influence: one GEMM of the features against [W; S] (cuBLAS, through
// at::mm), then one thread per row for the epilogue over the (N, 2K) result (softmax, residual,
// projection, dot product), in float32 for half/bfloat16/float32 and float64 for float64. The
// forward returns the (N, 2K) projections; the backward is the same epilogue producing the
// coefficients of the rows of [W; S], and one GEMM.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/core/Tensor.h>
#include <ATen/cuda/CUDAContext.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/mm.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <tuple>

#include "../influence.h"
#include "../warp.h"

namespace infaug::cuda {
namespace {

constexpr int kThreads = 256;

// The largest logit of row g[:K] + b and the softmax's normaliser (p_k = exp(z_k - top) / total).
template <typename scalar_t, typename A>
__device__ void row_terms(const scalar_t* g, const scalar_t* bias, const scalar_t* s_bias, int K, A* p_max,
                          A* p_sum) {
  A top = -INFINITY;
  for (int k = 0; k < K; ++k) top = max(top, A(g[k]) + (bias ? A(bias[k]) : A(0)));
  A total = A(0);
  for (int k = 0; k < K; ++k) total += exp(A(g[k]) + (bias ? A(bias[k]) : A(0)) - top);
  *p_max = top;
  *p_sum = total;
}

template <typename scalar_t>
__global__ void forward_epilogue(const scalar_t* __restrict__ G, const int64_t* __restrict__ labels,
                                 const scalar_t* __restrict__ bias, const scalar_t* __restrict__ s_bias, int64_t N,
                                 int K, scalar_t* __restrict__ scores) {
  using A = at::opmath_type<scalar_t>;
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= N) return;
  const scalar_t* g = G + i * 2 * K;
  A top, total;
  row_terms<scalar_t, A>(g, bias, s_bias, K, &top, &total);
  const int64_t y = labels[i];
  A dot = A(0);
  for (int k = 0; k < K; ++k) {
    const A p = exp(A(g[k]) + (bias ? A(bias[k]) : A(0)) - top) / total;
    const A a = A(g[K + k]) + (s_bias ? A(s_bias[k]) : A(0));
    dot += (p - (k == y ? A(1) : A(0))) * a;
  }
  scores[i] = scalar_t(-dot);
}

template <typename scalar_t>
__global__ void backward_epilogue(const scalar_t* __restrict__ G, const int64_t* __restrict__ labels,
                                  const scalar_t* __restrict__ bias, const scalar_t* __restrict__ s_bias,
                                  const scalar_t* __restrict__ grad_scores, int64_t N, int K,
                                  scalar_t* __restrict__ coefficients) {
  using A = at::opmath_type<scalar_t>;
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= N) return;
  const scalar_t* g = G + i * 2 * K;
  A top, total;
  row_terms<scalar_t, A>(g, bias, s_bias, K, &top, &total);
  A pa = A(0);
  for (int k = 0; k < K; ++k) {
    const A p = exp(A(g[k]) + (bias ? A(bias[k]) : A(0)) - top) / total;
    pa += p * (A(g[K + k]) + (s_bias ? A(s_bias[k]) : A(0)));
  }
  const int64_t y = labels[i];
  const A scale = -A(grad_scores[i]);
  scalar_t* c = coefficients + i * 2 * K;
  for (int k = 0; k < K; ++k) {
    const A p = exp(A(g[k]) + (bias ? A(bias[k]) : A(0)) - top) / total;
    const A a = A(g[K + k]) + (s_bias ? A(s_bias[k]) : A(0));
    c[k] = scalar_t(scale * p * (a - pa));
    c[K + k] = scalar_t(scale * (p - (k == y ? A(1) : A(0))));
  }
}

template <typename T>
const T* optional_data(const c10::optional<at::Tensor>& t, at::Tensor& keep) {
  if (!t.has_value()) return nullptr;
  keep = t->contiguous();
  return keep.const_data_ptr<T>();
}

std::tuple<at::Tensor, at::Tensor> influence_cuda(const at::Tensor& features, const at::Tensor& labels,
                                                  const at::Tensor& weight, const c10::optional<at::Tensor>& bias,
                                                  const at::Tensor& s_weight, const c10::optional<at::Tensor>& s_bias) {
  check_influence_args(features, labels, weight, bias, s_weight, s_bias);
  check_supported_dtype("influence", "features", features, {at::kFloat, at::kDouble, at::kHalf, at::kBFloat16});
  const c10::cuda::CUDAGuard guard(features.device());
  const int64_t N = features.size(0), K = weight.size(0);
  at::Tensor scores = at::empty({N}, features.options());
  if (N == 0) return {scores, at::empty({0, 2 * K}, features.options())};
  check_label_range(labels, K);
  const at::Tensor G = at::mm(features, at::cat({weight, s_weight}, 0).t()).contiguous();
  const at::Tensor y = labels.contiguous();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, features.scalar_type(), "infaug_influence_cuda", [&] {
    at::Tensor b, t;
    const scalar_t* bp = optional_data<scalar_t>(bias, b);
    const scalar_t* tp = optional_data<scalar_t>(s_bias, t);
    forward_epilogue<scalar_t><<<(N + kThreads - 1) / kThreads, kThreads, 0, at::cuda::getCurrentCUDAStream()>>>(
        G.const_data_ptr<scalar_t>(), y.const_data_ptr<int64_t>(), bp, tp, N, int(K),
        scores.mutable_data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return {scores, G};
}

at::Tensor influence_backward_cuda(const at::Tensor& grad_scores, const at::Tensor& projections,
                                   const at::Tensor& labels, const at::Tensor& weight,
                                   const c10::optional<at::Tensor>& bias, const at::Tensor& s_weight,
                                   const c10::optional<at::Tensor>& s_bias) {
  const at::Tensor& features = projections;  // (N, 2K): the forward's, in place of the features
  check_influence_args(projections, labels, weight, bias, s_weight, s_bias, /*projections=*/true);
  check_supported_dtype("influence", "features", features, {at::kFloat, at::kDouble, at::kHalf, at::kBFloat16});
  const int64_t N = features.size(0), K = weight.size(0);
  check_grad_scores(grad_scores, projections);
  const c10::cuda::CUDAGuard guard(features.device());
  if (N == 0) return at::empty({0, weight.size(1)}, features.options());
  const at::Tensor stacked = at::cat({weight, s_weight}, 0);
  const at::Tensor G = projections.contiguous();
  const at::Tensor y = labels.contiguous(), go = grad_scores.contiguous();
  at::Tensor coefficients = at::empty({N, 2 * K}, features.options());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, features.scalar_type(), "infaug_influence_backward_cuda", [&] {
    at::Tensor b, t;
    const scalar_t* bp = optional_data<scalar_t>(bias, b);
    const scalar_t* tp = optional_data<scalar_t>(s_bias, t);
    backward_epilogue<scalar_t><<<(N + kThreads - 1) / kThreads, kThreads, 0, at::cuda::getCurrentCUDAStream()>>>(
        G.const_data_ptr<scalar_t>(), y.const_data_ptr<int64_t>(), bp, tp, go.const_data_ptr<scalar_t>(), N, int(K),
        coefficients.mutable_data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return at::mm(coefficients, stacked);
}

}  // namespace

TORCH_LIBRARY_IMPL(infaug, CUDA, m) {
  m.impl("influence", &influence_cuda);
  m.impl("_influence_backward", &influence_backward_cuda);
}

}  // namespace infaug::cuda
