// Argument checks shared by the CPU and CUDA launchers of warp/augment, so that every backend fails
// the same way: a ValueError (shape, device, value) or TypeError (dtype) naming the argument, with
// what was expected and what was received.
#include "warp.h"

#include <c10/util/Exception.h>

#include <sstream>

namespace infaug {

namespace {

std::string shape_str(const at::Tensor& t) {
  std::ostringstream out;
  out << "(";
  for (int64_t d = 0; d < t.dim(); ++d) out << (d ? ", " : "") << t.size(d);
  out << (t.dim() == 1 ? ",)" : ")");
  return out.str();
}

// Checks that `t` is a `dims`-D tensor whose sizes equal `expected` where expected[d] >= 0.
void check_shape(const char* op, const char* name, const at::Tensor& t,
                 std::initializer_list<int64_t> expected, const char* layout) {
  bool ok = t.dim() == static_cast<int64_t>(expected.size());
  int64_t d = 0;
  for (int64_t size : expected) {
    if (!ok) break;
    ok = size < 0 || t.size(d) == size;
    ++d;
  }
  if (ok) return;
  std::ostringstream want;
  want << "(";
  d = 0;
  for (int64_t size : expected) want << (d++ ? ", " : "") << size;
  want << ")";
  TORCH_CHECK_VALUE(false, "infaug.", op, ": ", name, " must have shape ", layout, " = ", want.str(),
                    ", got ", shape_str(t));
}

void check_like_x(const char* op, const char* name, const at::Tensor& t, const at::Tensor& x) {
  TORCH_CHECK_TYPE(t.scalar_type() == x.scalar_type(), "infaug.", op, ": ", name,
                   " must have the same dtype as x (", dtype_name(x.scalar_type()), "), got ",
                   dtype_name(t.scalar_type()));
  TORCH_CHECK_VALUE(t.device() == x.device(), "infaug.", op, ": ", name,
                    " must be on the same device as x (", x.device(), "), got ", t.device());
}

}  // namespace

std::string dtype_name(at::ScalarType dtype) {
  switch (dtype) {
    case at::kFloat: return "torch.float32";
    case at::kDouble: return "torch.float64";
    case at::kHalf: return "torch.float16";
    case at::kBFloat16: return "torch.bfloat16";
    case at::kLong: return "torch.int64";
    case at::kInt: return "torch.int32";
    case at::kShort: return "torch.int16";
    case at::kChar: return "torch.int8";
    case at::kByte: return "torch.uint8";
    case at::kBool: return "torch.bool";
    case at::kComplexFloat: return "torch.complex64";
    case at::kComplexDouble: return "torch.complex128";
    default: return std::string("torch.") + c10::toString(dtype);
  }
}

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
                    shape_str(x));
  TORCH_CHECK_TYPE(at::isFloatingType(x.scalar_type()), "infaug.", op,
                   ": x must be a floating point tensor, got ", dtype_name(x.scalar_type()));
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  check_shape(op, "theta_w", theta_w, {N, 4, H, W}, "(N, 4, H, W)");
  check_shape(op, "theta_b", theta_b, {N, 2, H, W}, "(N, 2, H, W)");
  check_like_x(op, "theta_w", theta_w, x);
  check_like_x(op, "theta_b", theta_b, x);
  if (color_w != nullptr) {
    check_shape(op, "color_w", *color_w, {N, C, C}, "(N, C, C)");
    check_like_x(op, "color_w", *color_w, x);
  }
  if (color_b != nullptr) {
    check_shape(op, "color_b", *color_b, {N, C}, "(N, C)");
    check_like_x(op, "color_b", *color_b, x);
  }
  TORCH_CHECK_VALUE(smooth >= 1 && smooth % 2 == 1, "infaug.", op,
                    ": smooth must be a positive odd integer, got ", smooth);
}

void check_grad_output(const char* op, const at::Tensor& grad, const at::Tensor& x) {
  check_shape(op, "grad_output", grad, {x.size(0), x.size(1), x.size(2), x.size(3)}, "(N, C, H, W)");
  check_like_x(op, "grad_output", grad, x);
}

void check_supported_dtype(const char* op, const at::Tensor& x,
                           std::initializer_list<at::ScalarType> supported) {
  for (auto dtype : supported)
    if (x.scalar_type() == dtype) return;
  std::ostringstream names;
  int i = 0;
  for (auto dtype : supported) names << (i++ ? ", " : "") << dtype_name(dtype);
  TORCH_CHECK_TYPE(false, "infaug.", op, " on ", x.device().type(), " supports x of dtype ",
                   names.str(), ", got ", dtype_name(x.scalar_type()));
}

}  // namespace infaug
