// infaug::warp and infaug::augment: a smoothed per-pixel affine flow followed by a bilinear warp
//, optionally followed by a per-image colour transform.
//
// Schemas (declared once in infaug.cpp; each backend registers its kernels beside them):
//
//   warp(x, theta_w, theta_b, smooth, align_corners, padding_mode) -> y
//     x:       (N, C, H, W) images
//     theta_w: (N, 4, H, W) per-pixel 2x2 matrix [[a, b], [c, d]] stored as channels (a, b, c, d)
//     theta_b: (N, 2, H, W) per-pixel bias (e, f)
//     smooth:  odd box-filter size applied to the displacement (1 = no smoothing)
//     y:       (N, C, H, W)
//
//   _warp_backward(grad_y, x, theta_w, theta_b, smooth, align_corners, padding_mode, output_mask)
//     -> (grad_x, grad_theta_w, grad_theta_b)
//     output_mask: which of the three gradients to compute; a gradient not asked for is returned as
//     an empty (0,) tensor and costs nothing.
//
//   augment(x, theta_w, theta_b, color_w, color_b, smooth, align_corners, padding_mode) -> out
//     color_w: (N, C, C), color_b: (N, C);  out[n, c] = sum_k color_w[n, c, k] * y[n, k] + color_b[n, c]
//
//   _augment_backward(grad_out, x, theta_w, theta_b, color_w, color_b, smooth, align_corners,
//                     padding_mode, output_mask) -> (grad_x, grad_theta_w, grad_theta_b,
//                                                     grad_color_w, grad_color_b)
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/string_view.h>

#include <initializer_list>
#include <string>

#include "args.h"
#include "warp_math.h"

namespace infaug {

// "zeros" | "border" | "reflection", as torch.nn.functional.grid_sample; anything else is a ValueError.
Padding parse_padding(c10::string_view padding_mode);

// The argument checks every backend runs before launching (shape, dtype, device, smooth); the error
// names the operator, the argument, and the expected and received values. color_w/color_b are
// checked only when given (augment).
void check_warp_args(const char* op, const at::Tensor& x, const at::Tensor& theta_w,
                     const at::Tensor& theta_b, int64_t smooth,
                     const at::Tensor* color_w = nullptr, const at::Tensor* color_b = nullptr);

// grad: the incoming gradient of an (N, C, H, W) output computed from x.
void check_grad_output(const char* op, const at::Tensor& grad, const at::Tensor& x);

}  // namespace infaug
