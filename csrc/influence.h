// infaug::influence: the up-weighting influence of each sample on the validation loss through a
// linear top layer with softmax cross-entropy, in closed form.
//
// Schemas (declared in infaug.cpp):
//
//   influence(features, labels, weight, bias, s_weight, s_bias) -> (scores, projections)
//     features: (N, D) penultimate features h
//     labels:   (N,) int64 classes in [0, K)
//     weight:   (K, D) last layer W;   bias:   (K,) b, or None
//     s_weight: (K, D) s_val's W part; s_bias: (K,) s_val's b part, or None
//     scores:      (N,)  -(r . a) with p = softmax(W h + b), r = p - onehot(y), a = S h + t
//     projections: (N, 2K) [W h, S h] (biases not added), kept for the backward
//
//   _influence_backward(grad_scores, projections, labels, weight, bias, s_weight, s_bias)
//     -> grad_features (N, D) = -grad_scores * (S^T r + W^T (p * (a - <p, a>))) per row
//
// The forward reads each row of features once, through one GEMM against [W; S] (2K x D); the
// softmax, the residual and the dot product are a per-row epilogue on the (N, 2K) result. The
// backward needs no features: the same epilogue gives the coefficients of the rows of [W; S],
// and one GEMM writes the gradient. The (N, K, D) per-sample gradients are never formed.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/Optional.h>

namespace infaug {

// Shape, dtype and device checks shared by every backend; errors name the argument and the
// expected and received values. Label values are checked by the kernels (they need the data).
// features: (N, D), or the (N, 2K) projections when `projections` is true (the backward).
void check_influence_args(const at::Tensor& features, const at::Tensor& labels,
                          const at::Tensor& weight, const c10::optional<at::Tensor>& bias,
                          const at::Tensor& s_weight, const c10::optional<at::Tensor>& s_bias,
                          bool projections = false);

// Label values in [0, K) (reads the labels: one reduction).
void check_label_range(const at::Tensor& labels, int64_t K);

// grad_scores (N,) like the projections (N, 2K) of the backward.
void check_grad_scores(const at::Tensor& grad_scores, const at::Tensor& projections);

}  // namespace infaug
