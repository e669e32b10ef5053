#include <c10/util/Exception.h>

#include <sstream>
#include <string>

#include "influence.h"
#include "warp.h"

namespace infaug {
namespace {

std::string shape_of(const at::Tensor& t) {
  std::ostringstream out;
  out << "(";
  for (int64_t d = 0; d < t.dim(); ++d) out << (d ? ", " : "") << t.size(d);
  out << (t.dim() == 1 ? ",)" : ")");
  return out.str();
}

void check_matrix_like(const char* name, const at::Tensor& t, int64_t rows, int64_t cols,
                       const at::Tensor& features) {
  TORCH_CHECK_VALUE(t.dim() == 2 && t.size(0) == rows && t.size(1) == cols, "infaug.influence: ",
                    name, " must have shape (K, D) = (", rows, ", ", cols, "), got ", shape_of(t));
  TORCH_CHECK_TYPE(t.scalar_type() == features.scalar_type(), "infaug.influence: ", name,
                   " must have the same dtype as features (", dtype_name(features.scalar_type()),
                   "), got ", dtype_name(t.scalar_type()));
  TORCH_CHECK_VALUE(t.device() == features.device(), "infaug.influence: ", name,
                    " must be on the same device as features (", features.device(), "), got ",
                    t.device());
}

void check_vector_like(const char* name, const at::Tensor& t, int64_t size,
                       const at::Tensor& features) {
  TORCH_CHECK_VALUE(t.dim() == 1 && t.size(0) == size, "infaug.influence: ", name,
                    " must have shape (K,) = (", size, ",), got ", shape_of(t));
  TORCH_CHECK_TYPE(t.scalar_type() == features.scalar_type(), "infaug.influence: ", name,
                   " must have the same dtype as features (", dtype_name(features.scalar_type()),
                   "), got ", dtype_name(t.scalar_type()));
  TORCH_CHECK_VALUE(t.device() == features.device(), "infaug.influence: ", name,
                    " must be on the same device as features (", features.device(), "), got ",
                    t.device());
}

}  // namespace

void check_influence_args(const at::Tensor& features, const at::Tensor& labels,
                          const at::Tensor& weight, const c10::optional<at::Tensor>& bias,
                          const at::Tensor& s_weight, const c10::optional<at::Tensor>& s_bias,
                          bool projections) {
  TORCH_CHECK_VALUE(features.dim() == 2, "infaug.influence: features must have shape (N, D), got ",
                    shape_of(features));
  TORCH_CHECK_TYPE(at::isFloatingType(features.scalar_type()),
                   "infaug.influence: features must be a floating point tensor, got ",
                   dtype_name(features.scalar_type()));
  TORCH_CHECK_VALUE(weight.dim() == 2, "infaug.influence: weight must have shape (K, D), got ",
                    shape_of(weight));
  const int64_t N = features.size(0), K = weight.size(0);
  const int64_t D = projections ? weight.size(1) : features.size(1);
  TORCH_CHECK_VALUE(!projections || features.size(1) == 2 * K,
                    "infaug.influence: projections must have shape (N, 2K) = (", N, ", ", 2 * K,
                    "), got ", shape_of(features));
  TORCH_CHECK_VALUE(K >= 1, "infaug.influence: weight must have at least one class (row), got ",
                    shape_of(weight));
  check_matrix_like("weight", weight, K, D, features);
  check_matrix_like("s_weight", s_weight, K, D, features);
  if (bias.has_value()) check_vector_like("bias", *bias, K, features);
  if (s_bias.has_value()) check_vector_like("s_bias", *s_bias, K, features);
  TORCH_CHECK_VALUE(labels.dim() == 1 && labels.size(0) == N,
                    "infaug.influence: labels must have shape (N,) = (", N, ",), got ",
                    shape_of(labels));
  TORCH_CHECK_TYPE(labels.scalar_type() == at::kLong,
                   "infaug.influence: labels must be torch.int64, got ",
                   dtype_name(labels.scalar_type()));
  TORCH_CHECK_VALUE(labels.device() == features.device(),
                    "infaug.influence: labels must be on the same device as features (",
                    features.device(), "), got ", labels.device());
}

}  // namespace infaug
