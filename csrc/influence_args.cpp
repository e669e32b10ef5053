// Argument checks of influence, shared by the CPU and CUDA launchers (see args.h).
#include <ATen/ops/aminmax.h>
#include <c10/util/Exception.h>

#include "args.h"
#include "influence.h"

namespace infaug {

void check_influence_args(const at::Tensor& features, const at::Tensor& labels,
                          const at::Tensor& weight, const c10::optional<at::Tensor>& bias,
                          const at::Tensor& s_weight, const c10::optional<at::Tensor>& s_bias,
                          bool projections) {
  const char* op = "influence";
  TORCH_CHECK_VALUE(features.dim() == 2, "infaug.influence: features must have shape (N, D), got ",
                    shape_string(features));
  TORCH_CHECK_TYPE(at::isFloatingType(features.scalar_type()),
                   "infaug.influence: features must be a floating point tensor, got ",
                   dtype_name(features.scalar_type()));
  TORCH_CHECK_VALUE(weight.dim() == 2 && weight.size(0) >= 1,
                    "infaug.influence: weight must have shape (K, D) with K >= 1, got ",
                    shape_string(weight));
  const int64_t N = features.size(0), K = weight.size(0);
  const int64_t D = projections ? weight.size(1) : features.size(1);
  if (projections) check_shape(op, "projections", features, {N, 2 * K}, "(N, 2K)");
  check_shape(op, "weight", weight, {K, D}, "(K, D)");
  check_shape(op, "s_weight", s_weight, {K, D}, "(K, D)");
  check_like(op, "weight", weight, "features", features);
  check_like(op, "s_weight", s_weight, "features", features);
  for (const auto& [name, vector] : {std::pair{"bias", &bias}, std::pair{"s_bias", &s_bias}}) {
    if (!vector->has_value()) continue;
    check_shape(op, name, **vector, {K}, "(K,)");
    check_like(op, name, **vector, "features", features);
  }
  check_shape(op, "labels", labels, {N}, "(N,)");
  TORCH_CHECK_TYPE(labels.scalar_type() == at::kLong,
                   "infaug.influence: labels must be torch.int64, got ",
                   dtype_name(labels.scalar_type()));
  TORCH_CHECK_VALUE(labels.device() == features.device(),
                    "infaug.influence: labels must be on the same device as features (",
                    features.device(), "), got ", labels.device());
}

void check_label_range(const at::Tensor& labels, int64_t K) {
  if (labels.numel() == 0) return;
  const auto [low, high] = at::aminmax(labels);
  const int64_t lo = low.item<int64_t>(), hi = high.item<int64_t>();
  TORCH_CHECK_VALUE(lo >= 0 && hi < K, "infaug.influence: labels must lie in [0, K) = [0, ", K,
                    "), got values from ", lo, " to ", hi);
}

void check_grad_scores(const at::Tensor& grad_scores, const at::Tensor& projections) {
  check_shape("influence", "grad_scores", grad_scores, {projections.size(0)}, "(N,)");
  check_like("influence", "grad_scores", grad_scores, "projections", projections);
}

}  // namespace infaug
