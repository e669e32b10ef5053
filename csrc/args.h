// Argument checks shared by every op and backend, so that all fail the same way: a ValueError
// (shape, device, value) or TypeError (dtype) naming the op and the argument, with what was
// expected and what was received.
#pragma once

#include <ATen/core/Tensor.h>

#include <initializer_list>
#include <string>

namespace infaug {

// torch's Python spelling of a dtype ("torch.float32") and of a shape ("(2, 3)", "(4,)").
std::string dtype_name(at::ScalarType dtype);
std::string shape_string(const at::Tensor& t);

// `t` must have exactly the sizes `expected`; `layout` names them in the message ("(N, 4, H, W)").
void check_shape(const char* op, const char* name, const at::Tensor& t,
                 std::initializer_list<int64_t> expected, const char* layout);

// `t` must have the dtype and device of the argument `reference_name`, `reference`.
void check_like(const char* op, const char* name, const at::Tensor& t, const char* reference_name,
                const at::Tensor& reference);

// The dtypes a backend supports for argument `name` ("float32 and float64" on CPU).
void check_supported_dtype(const char* op, const char* name, const at::Tensor& t,
                           std::initializer_list<at::ScalarType> supported);

}  // namespace infaug
