// Argument checks of warp/augment, shared by the CPU and CUDA launchers (see args.h).
#include <c10/util/Exception.h>

#include "warp.h"

namespace infaug {

Padding parse_padding(c10::string_view padding_mode) {
  if (padding_mode == "zeros") return Padding::Zeros;
  if (padding_mode == "border") return Padding::Border;
  if (padding_mode == "reflection") return Padding::Reflection;
  TORCH_CHECK_VALUE(false, "infaug: padding_mode must be one of 'zeros', 'border', 'reflection', got '",
                    std::string(padding_mode), "'");
  return Padding::Zeros;  // unreachable
}

void check_warp_args(const char* op, const at::Tensor& x, const at::Tensor& theta_w,
                     const at::Tensor& theta_b, int64_t smooth, const at::Tensor* color_w,
                     const at::Tensor* color_b) {
  TORCH_CHECK_VALUE(x.dim() == 4, "infaug.", op, ": x must have shape (N, C, H, W), got ",
                    shape_string(x));
  TORCH_CHECK_TYPE(at::isFloatingType(x.scalar_type()), "infaug.", op,
                   ": x must be a floating point tensor, got ", dtype_name(x.scalar_type()));
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  check_shape(op, "theta_w", theta_w, {N, 4, H, W}, "(N, 4, H, W)");
  check_shape(op, "theta_b", theta_b, {N, 2, H, W}, "(N, 2, H, W)");
  check_like(op, "theta_w", theta_w, "x", x);
  check_like(op, "theta_b", theta_b, "x", x);
  if (color_w != nullptr) {
    check_shape(op, "color_w", *color_w, {N, C, C}, "(N, C, C)");
    check_like(op, "color_w", *color_w, "x", x);
  }
  if (color_b != nullptr) {
    check_shape(op, "color_b", *color_b, {N, C}, "(N, C)");
    check_like(op, "color_b", *color_b, "x", x);
  }
  TORCH_CHECK_VALUE(smooth >= 1 && smooth % 2 == 1, "infaug.", op,
                    ": smooth must be a positive odd integer, got ", smooth);
}

void check_grad_output(const char* op, const at::Tensor& grad, const at::Tensor& x) {
  check_shape(op, "grad_output", grad, {x.size(0), x.size(1), x.size(2), x.size(3)}, "(N, C, H, W)");
  check_like(op, "grad_output", grad, "x", x);
}

}  // namespace infaug
