#include "args.h"

#include <c10/util/Exception.h>

#include <sstream>

namespace infaug {
namespace {

std::string sizes_string(std::initializer_list<int64_t> sizes) {
  std::ostringstream out;
  out << "(";
  int64_t d = 0;
  for (int64_t size : sizes) out << (d++ ? ", " : "") << size;
  out << (sizes.size() == 1 ? ",)" : ")");
  return out.str();
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

std::string shape_string(const at::Tensor& t) {
  std::ostringstream out;
  out << "(";
  for (int64_t d = 0; d < t.dim(); ++d) out << (d ? ", " : "") << t.size(d);
  out << (t.dim() == 1 ? ",)" : ")");
  return out.str();
}

void check_shape(const char* op, const char* name, const at::Tensor& t,
                 std::initializer_list<int64_t> expected, const char* layout) {
  bool ok = t.dim() == static_cast<int64_t>(expected.size());
  int64_t d = 0;
  for (int64_t size : expected) {
    if (!ok) break;
    ok = t.size(d++) == size;
  }
  TORCH_CHECK_VALUE(ok, "infaug.", op, ": ", name, " must have shape ", layout, " = ",
                    sizes_string(expected), ", got ", shape_string(t));
}

void check_like(const char* op, const char* name, const at::Tensor& t, const char* reference_name,
                const at::Tensor& reference) {
  TORCH_CHECK_TYPE(t.scalar_type() == reference.scalar_type(), "infaug.", op, ": ", name,
                   " must have the same dtype as ", reference_name, " (",
                   dtype_name(reference.scalar_type()), "), got ", dtype_name(t.scalar_type()));
  TORCH_CHECK_VALUE(t.device() == reference.device(), "infaug.", op, ": ", name,
                    " must be on the same device as ", reference_name, " (", reference.device(),
                    "), got ", t.device());
}

void check_supported_dtype(const char* op, const char* name, const at::Tensor& t,
                           std::initializer_list<at::ScalarType> supported) {
  for (auto dtype : supported)
    if (t.scalar_type() == dtype) return;
  std::ostringstream names;
  int i = 0;
  for (auto dtype : supported) names << (i++ ? ", " : "") << dtype_name(dtype);
  TORCH_CHECK_TYPE(false, "infaug.", op, " on ", t.device().type(), " supports ", name,
                   " of dtype ", names.str(), ", got ", dtype_name(t.scalar_type()));
}

}  // namespace infaug
