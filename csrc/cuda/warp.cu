// CUDA kernels of warp and augment.
//
// One thread block per tile of 32 x 8 output pixels of one image. The block computes the raw
// displacement of the flow over the tile and a halo of the box radius into shared memory, box-filters
// it there (separable sums, divided by avg_pool2d's in-bounds count), and each thread samples its
// pixel's C channels: no (N, 2, H, W) grid reaches memory.
//
// The backward block recomputes the same over a halo twice as wide, gets the gradient of every
// sampling point in the tile and one radius around it, applies the adjoint of the box filter in
// shared memory, and writes theta's gradients for its tile. grad_x is scattered with atomics:
//   - default: floating-point atomicAdd (float32 accumulation for half/bfloat16): fast, but the
//     order of additions varies from run to run;
//   - deterministic (torch.are_deterministic_algorithms_enabled()): every contribution is rounded
//     to a 64-bit fixed-point integer on a scale chosen so that no sum can overflow (|sum| <=
//     H * W * max|grad|), and integer additions commute: bitwise-identical results run to run.
//     The rounding step is 2^-62 of H * W * max|grad|, far below float32 resolution.
#include <ATen/Context.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/core/Tensor.h>
#include <ATen/cuda/CUDAContext.h>
#include <ATen/ops/baddbmm.h>
#include <ATen/ops/bmm.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "../warp.h"

namespace infaug::cuda {
namespace {

constexpr int kTileW = 32, kTileH = 8, kThreads = kTileW * kTileH;

struct Shape {
  int N, C, H, W, radius;
  int tiles_x, tiles_y;
  bool align_corners;
};

struct XStrides {
  int64_t n, c, h, w;
};

// Base grid coordinate of pixel i on an axis of `size`.
template <typename A>
__device__ __forceinline__ A base_coordinate(int i, int size, bool align_corners) {
  if (align_corners) return size > 1 ? A(2 * i) / A(size - 1) - A(1) : A(0);
  return A(2 * i + 1) / A(size) - A(1);
}

// A rectangle of pixels in image coordinates (it may extend beyond the image).
struct Region {
  int top, left, rows, cols;
  __device__ int size() const { return rows * cols; }
};

// Raw displacement D = (a u + b v + e - u, c u + d v + f - v) over a region, zero outside the image.
template <typename scalar_t, typename A>
__device__ void load_displacement(const Shape& s, const scalar_t* theta_w, const scalar_t* theta_b,
                                  const Region& r, A* dx, A* dy) {
  const int64_t HW = int64_t(s.H) * s.W;
  for (int e = threadIdx.x; e < r.size(); e += kThreads) {
    const int i = r.top + e / r.cols, j = r.left + e % r.cols;
    A x = A(0), y = A(0);
    if (i >= 0 && i < s.H && j >= 0 && j < s.W) {
      const int64_t p = int64_t(i) * s.W + j;
      const A u = base_coordinate<A>(j, s.W, s.align_corners), v = base_coordinate<A>(i, s.H, s.align_corners);
      const A a = A(theta_w[p]), b = A(theta_w[HW + p]), c = A(theta_w[2 * HW + p]), d = A(theta_w[3 * HW + p]);
      x = (a - A(1)) * u + b * v + A(theta_b[p]);
      y = c * u + (d - A(1)) * v + A(theta_b[HW + p]);
    }
    dx[e] = x;
    dy[e] = y;
  }
}

// Window sums: out (over `to`) = sum of `in` (over `from`, which extends `to` by `radius` on each
// side) within `radius`, first along rows into tmp, then along columns. Divided by the in-bounds
// count of each output pixel when `average`. Zero entries of `in` outside the image make the sums
// those of avg_pool2d with count_include_pad=False.
template <typename A>
__device__ void box_sums(const Shape& s, const Region& from, const Region& to, const A* in,
                         A* tmp, A* out, bool average) {
  const int r = s.radius;
  // tmp: from.rows x to.cols
  for (int e = threadIdx.x; e < from.rows * to.cols; e += kThreads) {
    const int row = e / to.cols, col = e % to.cols;
    const A* src = in + row * from.cols + col;  // column `col - r` relative to `to`, i.e. col in `from`
    A sum = A(0);
    for (int d = 0; d <= 2 * r; ++d) sum += src[d];
    tmp[e] = sum;
  }
  __syncthreads();
  for (int e = threadIdx.x; e < to.size(); e += kThreads) {
    const int row = e / to.cols, col = e % to.cols;
    A sum = A(0);
    for (int d = 0; d <= 2 * r; ++d) sum += tmp[(row + d) * to.cols + col];
    if (average) {
      const int i = to.top + row, j = to.left + col;
      const int count = int(window_count(i, r, s.H) * window_count(j, r, s.W));
      sum = (i >= 0 && i < s.H && j >= 0 && j < s.W) ? sum / A(count) : A(0);
    }
    out[e] = sum;
  }
  __syncthreads();
}

// Sampling point of pixel (i, j) with smoothed displacement (sx, sy), after padding; d(point)/d(s)
// in (gx, gy) (zero where padding clips).
template <Padding P, typename A>
__device__ __forceinline__ void sampling_point(const Shape& s, int i, int j, A sx, A sy, A* ix, A* iy,
                                               A* gx, A* gy) {
  const A scale_x = grid_to_pixel_scale<A>(s.W, s.align_corners);
  const A scale_y = grid_to_pixel_scale<A>(s.H, s.align_corners);
  *ix = pad_coordinate<P>(A(j) + scale_x * sx, s.W, s.align_corners, gx);
  *iy = pad_coordinate<P>(A(i) + scale_y * sy, s.H, s.align_corners, gy);
  *gx *= scale_x;
  *gy *= scale_y;
}

template <typename scalar_t, typename A>
struct TapSet {
  int64_t o00, o01, o10, o11;  // offsets within a plane of x (valid only where inside)
  int64_t x0, y0;               // top-left tap
  bool in00, in01, in10, in11;
  A tx, ty;

  __device__ TapSet(A ix, A iy, const Shape& s, const XStrides& xs) {
    const Taps<A> t = bilinear_taps(ix, iy, int64_t(s.W), int64_t(s.H));
    x0 = t.x0;
    y0 = t.y0;
    tx = t.tx;
    ty = t.ty;
    in00 = t.x0_in && t.y0_in;
    in01 = t.x1_in && t.y0_in;
    in10 = t.x0_in && t.y1_in;
    in11 = t.x1_in && t.y1_in;
    o00 = t.y0 * xs.h + t.x0 * xs.w;
    o01 = o00 + xs.w;
    o10 = o00 + xs.h;
    o11 = o10 + xs.w;
  }

  __device__ void values(const scalar_t* plane, A* v) const {
    v[0] = in00 ? A(plane[o00]) : A(0);
    v[1] = in01 ? A(plane[o01]) : A(0);
    v[2] = in10 ? A(plane[o10]) : A(0);
    v[3] = in11 ? A(plane[o11]) : A(0);
  }

  __device__ A sample(const A* v) const {
    return (A(1) - tx) * (A(1) - ty) * v[0] + tx * (A(1) - ty) * v[1] + (A(1) - tx) * ty * v[2] + tx * ty * v[3];
  }
};

__device__ __forceinline__ void tile_of(const Shape& s, int* n, int* top, int* left) {
  const int per_image = s.tiles_x * s.tiles_y;
  const int b = blockIdx.x;
  *n = b / per_image;
  const int t = b % per_image;
  *top = (t / s.tiles_x) * kTileH;
  *left = (t % s.tiles_x) * kTileW;
}

// ---- forward ---------------------------------------------------------------------------------

template <typename scalar_t, Padding P, bool kColor>
__global__ void __launch_bounds__(kThreads) forward_kernel(Shape s, XStrides xs, const scalar_t* __restrict__ x,
                                                           const scalar_t* __restrict__ theta_w,
                                                           const scalar_t* __restrict__ theta_b,
                                                           const scalar_t* __restrict__ color_w,
                                                           const scalar_t* __restrict__ color_b, scalar_t* __restrict__ y) {
  using A = at::opmath_type<scalar_t>;
  extern __shared__ unsigned char shared_bytes[];
  A* shared = reinterpret_cast<A*>(shared_bytes);
  int n, top, left;
  tile_of(s, &n, &top, &left);
  const int r = s.radius;
  const int64_t HW = int64_t(s.H) * s.W;
  const Region tile{top, left, kTileH, kTileW};
  const Region outer{top - r, left - r, kTileH + 2 * r, kTileW + 2 * r};
  A* raw_x = shared;
  A* raw_y = raw_x + outer.size();
  A* tmp = raw_y + outer.size();
  A* smooth_x = tmp + outer.rows * tile.cols;
  A* smooth_y = smooth_x + tile.size();
  A* warped = smooth_y + tile.size();  // kColor: (C, kThreads)

  load_displacement(s, theta_w + int64_t(n) * 4 * HW, theta_b + int64_t(n) * 2 * HW, outer, raw_x, raw_y);
  __syncthreads();
  box_sums(s, outer, tile, raw_x, tmp, smooth_x, true);
  box_sums(s, outer, tile, raw_y, tmp, smooth_y, true);

  const int i = top + threadIdx.x / kTileW, j = left + threadIdx.x % kTileW;
  if (i >= s.H || j >= s.W) return;
  A ix, iy, gx, gy;
  sampling_point<P>(s, i, j, smooth_x[threadIdx.x], smooth_y[threadIdx.x], &ix, &iy, &gx, &gy);
  const TapSet<scalar_t, A> taps(ix, iy, s, xs);
  const scalar_t* xn = x + n * xs.n;
  const int64_t p = int64_t(i) * s.W + j;
  scalar_t* yn = y + int64_t(n) * s.C * HW + p;
  A v[4];
  for (int c = 0; c < s.C; ++c) {
    taps.values(xn + c * xs.c, v);
    if constexpr (kColor) {
      warped[c * kThreads + threadIdx.x] = taps.sample(v);
    } else {
      yn[c * HW] = scalar_t(taps.sample(v));
    }
  }
  if constexpr (kColor) {
    const scalar_t* w = color_w + int64_t(n) * s.C * s.C;
    for (int c = 0; c < s.C; ++c) {
      A out = A(color_b[int64_t(n) * s.C + c]);
      for (int k = 0; k < s.C; ++k) out += A(w[c * s.C + k]) * warped[k * kThreads + threadIdx.x];
      yn[c * HW] = scalar_t(out);
    }
  }
}

// ---- backward --------------------------------------------------------------------------------

// Where grad_x goes: floating-point atomics, or 64-bit fixed point (deterministic).
template <typename A>
struct GradX {
  A* values;                      // (N, C, H, W) accumulator, or null
  unsigned long long* fixed;      // (N, C, H, W) fixed-point accumulator, or null
  double scale;

  __device__ __forceinline__ void add(int64_t index, A value) const {
    if (fixed != nullptr && isfinite(value)) {
      const long long q = llrint(double(value) * scale);
      atomicAdd(fixed + index, static_cast<unsigned long long>(q));
    } else {  // float atomics; in the deterministic mode only non-finite values come here, whose
              // sums (inf, -inf, NaN) do not depend on the order
      atomicAdd(values + index, value);
    }
  }
};

template <typename scalar_t, Padding P>
__global__ void __launch_bounds__(kThreads) backward_kernel(Shape s, XStrides xs, const scalar_t* __restrict__ x,
                                                            const scalar_t* __restrict__ theta_w,
                                                            const scalar_t* __restrict__ theta_b,
                                                            const scalar_t* __restrict__ grad_y,
                                                            GradX<at::opmath_type<scalar_t>> grad_x,
                                                            scalar_t* __restrict__ grad_theta_w,
                                                            scalar_t* __restrict__ grad_theta_b, bool need_point) {
  using A = at::opmath_type<scalar_t>;
  extern __shared__ unsigned char shared_bytes[];
  A* shared = reinterpret_cast<A*>(shared_bytes);
  int n, top, left;
  tile_of(s, &n, &top, &left);
  const int r = s.radius;
  const int64_t HW = int64_t(s.H) * s.W;
  const Region tile{top, left, kTileH, kTileW};
  const Region inner{top - r, left - r, kTileH + 2 * r, kTileW + 2 * r};
  const Region outer{top - 2 * r, left - 2 * r, kTileH + 4 * r, kTileW + 4 * r};
  A* raw_x = shared;
  A* raw_y = raw_x + outer.size();
  A* tmp = raw_y + outer.size();              // outer.rows x inner.cols
  A* smooth_x = tmp + outer.rows * inner.cols;  // inner
  A* smooth_y = smooth_x + inner.size();
  A* grad_s_x = raw_x;  // reused once the smoothed displacement is known: inner
  A* grad_s_y = raw_y;

  load_displacement(s, theta_w + int64_t(n) * 4 * HW, theta_b + int64_t(n) * 2 * HW, outer, raw_x, raw_y);
  __syncthreads();
  box_sums(s, outer, inner, raw_x, tmp, smooth_x, true);
  box_sums(s, outer, inner, raw_y, tmp, smooth_y, true);

  const scalar_t* xn = x + n * xs.n;
  const scalar_t* gn = grad_y + int64_t(n) * s.C * HW;
  // Every pixel of the inner region: the gradient of its sampling point (for theta), and for the
  // tile's own pixels the scatter into grad_x.
  for (int e = threadIdx.x; e < inner.size(); e += kThreads) {
    const int row = e / inner.cols, col = e % inner.cols;
    const int i = inner.top + row, j = inner.left + col;
    A gsx = A(0), gsy = A(0);
    if (i >= 0 && i < s.H && j >= 0 && j < s.W) {
      const bool own = row >= r && row < r + kTileH && col >= r && col < r + kTileW;
      A ix, iy, gx, gy;
      sampling_point<P>(s, i, j, smooth_x[e], smooth_y[e], &ix, &iy, &gx, &gy);
      const TapSet<scalar_t, A> taps(ix, iy, s, xs);
      const int64_t p = int64_t(i) * s.W + j;
      A gix = A(0), giy = A(0);
      for (int c = 0; c < s.C; ++c) {
        const A g = A(gn[c * HW + p]);
        if (need_point) {
          A v[4];
          taps.values(xn + c * xs.c, v);
          gix += g * ((v[1] - v[0]) * (A(1) - taps.ty) + (v[3] - v[2]) * taps.ty);
          giy += g * ((v[2] - v[0]) * (A(1) - taps.tx) + (v[3] - v[1]) * taps.tx);
        }
        if (own && (grad_x.values != nullptr || grad_x.fixed != nullptr)) {
          // grad_x is contiguous (N, C, H, W), whatever x's strides.
          const int64_t base = (int64_t(n) * s.C + c) * HW + taps.y0 * s.W + taps.x0;
          const A tx = taps.tx, ty = taps.ty;
          if (taps.in00) grad_x.add(base, (A(1) - tx) * (A(1) - ty) * g);
          if (taps.in01) grad_x.add(base + 1, tx * (A(1) - ty) * g);
          if (taps.in10) grad_x.add(base + s.W, (A(1) - tx) * ty * g);
          if (taps.in11) grad_x.add(base + s.W + 1, tx * ty * g);
        }
      }
      // Divided by the window count: the adjoint of an average is the window sum of grad / count.
      const A count = A(window_count(i, r, s.H) * window_count(j, r, s.W));
      gsx = gix * gx / count;
      gsy = giy * gy / count;
    }
    grad_s_x[e] = gsx;  // raw_x/raw_y are free: box_sums ended with a barrier
    grad_s_y[e] = gsy;
  }
  if (!need_point) return;
  __syncthreads();
  A* grad_raw_x = smooth_x;  // tile
  A* grad_raw_y = smooth_y;
  box_sums(s, inner, tile, grad_s_x, tmp, grad_raw_x, false);
  box_sums(s, inner, tile, grad_s_y, tmp, grad_raw_y, false);

  const int i = top + threadIdx.x / kTileW, j = left + threadIdx.x % kTileW;
  if (i >= s.H || j >= s.W) return;
  const int64_t p = int64_t(i) * s.W + j;
  const A u = base_coordinate<A>(j, s.W, s.align_corners), v = base_coordinate<A>(i, s.H, s.align_corners);
  const A gdx = grad_raw_x[threadIdx.x], gdy = grad_raw_y[threadIdx.x];
  if (grad_theta_w != nullptr) {
    scalar_t* g = grad_theta_w + int64_t(n) * 4 * HW + p;
    g[0] = scalar_t(gdx * u);
    g[HW] = scalar_t(gdx * v);
    g[2 * HW] = scalar_t(gdy * u);
    g[3 * HW] = scalar_t(gdy * v);
  }
  if (grad_theta_b != nullptr) {
    scalar_t* g = grad_theta_b + int64_t(n) * 2 * HW + p;
    g[0] = scalar_t(gdx);
    g[HW] = scalar_t(gdy);
  }
}

// ---- launchers -------------------------------------------------------------------------------

template <typename F>
void dispatch_padding(Padding padding, F&& f) {
  switch (padding) {
    case Padding::Zeros: return f(std::integral_constant<Padding, Padding::Zeros>{});
    case Padding::Border: return f(std::integral_constant<Padding, Padding::Border>{});
    case Padding::Reflection: return f(std::integral_constant<Padding, Padding::Reflection>{});
  }
}

Shape shape_of(const at::Tensor& x, int64_t smooth, bool align_corners) {
  TORCH_CHECK_VALUE(x.size(0) * ((x.size(2) + kTileH - 1) / kTileH) * ((x.size(3) + kTileW - 1) / kTileW) <
                        std::numeric_limits<int>::max(),
                    "infaug: too many images for one CUDA launch: ", x.sizes());
  TORCH_CHECK_VALUE(x.size(2) < (1 << 30) && x.size(3) < (1 << 30), "infaug: images too large: ", x.sizes());
  Shape s;
  s.N = int(x.size(0));
  s.C = int(x.size(1));
  s.H = int(x.size(2));
  s.W = int(x.size(3));
  // A window of radius >= size - 1 covers the whole axis: clamping changes no result (and keeps
  // int arithmetic and shared memory bounded for huge `smooth`). numel > 0 here.
  s.radius = int(std::min<int64_t>(smooth / 2, std::max(x.size(2), x.size(3)) - 1));
  s.tiles_x = (s.W + kTileW - 1) / kTileW;
  s.tiles_y = (s.H + kTileH - 1) / kTileH;
  s.align_corners = align_corners;
  return s;
}

int64_t blocks_of(const Shape& s) { return int64_t(s.N) * s.tiles_x * s.tiles_y; }

// Shared memory a kernel needs, checked against the device's limit (opting in above 48 KiB).
template <typename Kernel>
void reserve_shared(Kernel kernel, size_t bytes, const char* op, int64_t smooth, int64_t C) {
  const auto* props = at::cuda::getCurrentDeviceProperties();
  TORCH_CHECK_VALUE(bytes <= props->sharedMemPerBlockOptin, "infaug.", op, " on CUDA: smooth=", smooth,
                    " with C=", C, " needs ", bytes, " bytes of shared memory per block, more than the ",
                    props->sharedMemPerBlockOptin, " this GPU offers; use a smaller smooth");
  if (bytes > 48 * 1024)
    C10_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes)));
}

template <bool kColor>
at::Tensor forward(const char* op, const at::Tensor& x, const at::Tensor& theta_w_in, const at::Tensor& theta_b_in,
                   const at::Tensor* color_w_in, const at::Tensor* color_b_in, int64_t smooth, bool align_corners,
                   c10::string_view padding_mode) {
  check_warp_args(op, x, theta_w_in, theta_b_in, smooth, color_w_in, color_b_in);
  check_supported_dtype(op, "x", x, {at::kFloat, at::kDouble, at::kHalf, at::kBFloat16});
  const Padding padding = parse_padding(padding_mode);
  const c10::cuda::CUDAGuard guard(x.device());
  at::Tensor y = at::empty(x.sizes(), x.options());
  if (y.numel() == 0) return y;
  const at::Tensor theta_w = theta_w_in.contiguous(), theta_b = theta_b_in.contiguous();
  const at::Tensor color_w = kColor ? color_w_in->contiguous() : at::Tensor();
  const at::Tensor color_b = kColor ? color_b_in->contiguous() : at::Tensor();
  const Shape s = shape_of(x, smooth, align_corners);
  if constexpr (kColor) {
    // The fused colour transform keeps C values per thread in shared memory; for many channels
    // warp first and mix with a batched GEMM instead.
    const size_t per_channel = size_t(kThreads) * (x.scalar_type() == at::kDouble ? 8 : 4);
    if (size_t(s.C) * per_channel > 64 * 1024) {
      const at::Tensor warped = forward<false>(op, x, theta_w_in, theta_b_in, nullptr, nullptr, smooth,
                                               align_corners, padding_mode);
      const int64_t HW = x.size(2) * x.size(3);
      return at::baddbmm(color_b.unsqueeze(2), color_w, warped.view({s.N, s.C, HW})).view(x.sizes());
    }
  }
  const XStrides xs{x.stride(0), x.stride(1), x.stride(2), x.stride(3)};
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "infaug_warp_forward_cuda", [&] {
    using A = at::opmath_type<scalar_t>;
    const size_t r = size_t(s.radius);
    const size_t outer = (kTileH + 2 * r) * (kTileW + 2 * r);
    size_t elements = 2 * outer + (kTileH + 2 * r) * kTileW + 2 * kThreads;
    if (kColor) elements += size_t(s.C) * kThreads;
    const size_t bytes = elements * sizeof(A);
    dispatch_padding(padding, [&](auto pad) {
      constexpr Padding P = decltype(pad)::value;
      auto kernel = forward_kernel<scalar_t, P, kColor>;
      reserve_shared(kernel, bytes, op, smooth, s.C);
      kernel<<<blocks_of(s), kThreads, bytes, at::cuda::getCurrentCUDAStream()>>>(
          s, xs, x.const_data_ptr<scalar_t>(), theta_w.const_data_ptr<scalar_t>(),
          theta_b.const_data_ptr<scalar_t>(), kColor ? color_w.const_data_ptr<scalar_t>() : nullptr,
          kColor ? color_b.const_data_ptr<scalar_t>() : nullptr, y.mutable_data_ptr<scalar_t>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  });
  return y;
}

at::Tensor empty_grad(const at::Tensor& like, bool needed) {
  return needed ? at::empty(like.sizes(), like.options()) : at::empty({0}, like.options());
}

// warp's backward: (grad_x, grad_theta_w, grad_theta_b), each only when needed.
std::tuple<at::Tensor, at::Tensor, at::Tensor> warp_backward_impl(const char* op, const at::Tensor& grad_y_in,
                                                                  const at::Tensor& x, const at::Tensor& theta_w_in,
                                                                  const at::Tensor& theta_b_in, int64_t smooth,
                                                                  bool align_corners, Padding padding,
                                                                  std::array<bool, 3> need) {
  const c10::cuda::CUDAGuard guard(x.device());
  at::Tensor grad_theta_w = empty_grad(theta_w_in, need[1]);
  at::Tensor grad_theta_b = empty_grad(theta_b_in, need[2]);
  const bool need_x = need[0], need_point = need[1] || need[2];
  if (x.numel() == 0 || !(need_x || need_point)) {
    at::Tensor grad_x = need_x ? at::zeros(x.sizes(), x.options()) : at::empty({0}, x.options());
    if (need[1]) grad_theta_w.zero_();
    if (need[2]) grad_theta_b.zero_();
    return {grad_x, grad_theta_w, grad_theta_b};
  }
  const at::Tensor grad_y = grad_y_in.contiguous();
  const at::Tensor theta_w = theta_w_in.contiguous(), theta_b = theta_b_in.contiguous();
  const Shape s = shape_of(x, smooth, align_corners);
  const XStrides xs{x.stride(0), x.stride(1), x.stride(2), x.stride(3)};
  const bool deterministic = at::globalContext().deterministicAlgorithms();
  const bool low_precision = x.scalar_type() == at::kHalf || x.scalar_type() == at::kBFloat16;
  // The grad_x accumulator: x's dtype (float, double), float32 for half/bfloat16, or fixed point.
  at::Tensor accumulator, fixed;
  double scale = 0.0;
  if (need_x) {
    if (deterministic) {
      // Largest finite |grad|: the non-finite values go to a float accumulator (order-free sums).
      const double top = grad_y.abs().nan_to_num(0.0, 0.0, 0.0).max().item<double>();
      fixed = at::zeros(x.sizes(), x.options().dtype(at::kLong));
      // |sum| <= H * W * top, so scale * H * W * top <= 2^62; divided in two steps (no overflow),
      // capped so that value * scale stays finite for denormal gradients.
      scale = top > 0.0 ? std::min(std::ldexp(1.0, 62) / top / (double(s.H) * double(s.W)), std::ldexp(1.0, 1000)) : 1.0;
      if (!grad_y.isfinite().all().item<bool>())
        accumulator = at::zeros(x.sizes(), x.options().dtype(low_precision ? at::kFloat : x.scalar_type()));
    } else {
      // (non-finite gradients: float atomics; NaN and infinity propagate whatever the order)
      accumulator = at::zeros(x.sizes(), x.options().dtype(low_precision ? at::kFloat : x.scalar_type()));
    }
  }
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "infaug_warp_backward_cuda", [&] {
    using A = at::opmath_type<scalar_t>;
    GradX<A> gx{accumulator.defined() ? accumulator.mutable_data_ptr<A>() : nullptr,
                fixed.defined() ? reinterpret_cast<unsigned long long*>(fixed.mutable_data_ptr<int64_t>()) : nullptr,
                scale};
    const size_t r = size_t(s.radius);
    const size_t outer = (kTileH + 4 * r) * (kTileW + 4 * r);
    const size_t inner = (kTileH + 2 * r) * (kTileW + 2 * r);
    const size_t bytes = (2 * outer + (kTileH + 4 * r) * (kTileW + 2 * r) + 2 * inner) * sizeof(A);
    dispatch_padding(padding, [&](auto pad) {
      constexpr Padding P = decltype(pad)::value;
      auto kernel = backward_kernel<scalar_t, P>;
      reserve_shared(kernel, bytes, op, smooth, s.C);
      kernel<<<blocks_of(s), kThreads, bytes, at::cuda::getCurrentCUDAStream()>>>(
          s, xs, x.const_data_ptr<scalar_t>(), theta_w.const_data_ptr<scalar_t>(), theta_b.const_data_ptr<scalar_t>(),
          grad_y.const_data_ptr<scalar_t>(), gx, need[1] ? grad_theta_w.mutable_data_ptr<scalar_t>() : nullptr,
          need[2] ? grad_theta_b.mutable_data_ptr<scalar_t>() : nullptr, need_point);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  });
  at::Tensor grad_x = at::empty({0}, x.options());
  if (need_x) {
    if (fixed.defined()) {
      at::Tensor sum = fixed.to(at::kDouble).div_(scale);
      if (accumulator.defined()) sum.add_(accumulator);
      grad_x = sum.to(x.scalar_type());
    } else {
      grad_x = low_precision ? accumulator.to(x.scalar_type()) : accumulator;
    }
  }
  return {grad_x, grad_theta_w, grad_theta_b};
}

// ---- registered kernels ----------------------------------------------------------------------

at::Tensor warp_cuda(const at::Tensor& x, const at::Tensor& theta_w, const at::Tensor& theta_b, int64_t smooth,
                     bool align_corners, c10::string_view padding_mode) {
  return forward<false>("warp", x, theta_w, theta_b, nullptr, nullptr, smooth, align_corners, padding_mode);
}

at::Tensor augment_cuda(const at::Tensor& x, const at::Tensor& theta_w, const at::Tensor& theta_b,
                        const at::Tensor& color_w, const at::Tensor& color_b, int64_t smooth, bool align_corners,
                        c10::string_view padding_mode) {
  return forward<true>("augment", x, theta_w, theta_b, &color_w, &color_b, smooth, align_corners, padding_mode);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> warp_backward_cuda(const at::Tensor& grad_y, const at::Tensor& x,
                                                                  const at::Tensor& theta_w, const at::Tensor& theta_b,
                                                                  int64_t smooth, bool align_corners,
                                                                  c10::string_view padding_mode,
                                                                  std::array<bool, 3> output_mask) {
  check_warp_args("warp", x, theta_w, theta_b, smooth);
  check_supported_dtype("warp", "x", x, {at::kFloat, at::kDouble, at::kHalf, at::kBFloat16});
  check_grad_output("warp", grad_y, x);
  return warp_backward_impl("warp", grad_y, x, theta_w, theta_b, smooth, align_corners, parse_padding(padding_mode),
                            output_mask);
}

// augment's backward: the colour transform's adjoint around warp's backward kernel. grad of the
// warped images = color_w^T grad_out (a batched GEMM); the colour gradients need the warped images,
// which one forward launch recomputes, and a batched GEMM.
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> augment_backward_cuda(
    const at::Tensor& grad_out, const at::Tensor& x, const at::Tensor& theta_w, const at::Tensor& theta_b,
    const at::Tensor& color_w, const at::Tensor& color_b, int64_t smooth, bool align_corners,
    c10::string_view padding_mode, std::array<bool, 5> output_mask) {
  check_warp_args("augment", x, theta_w, theta_b, smooth, &color_w, &color_b);
  check_supported_dtype("augment", "x", x, {at::kFloat, at::kDouble, at::kHalf, at::kBFloat16});
  check_grad_output("augment", grad_out, x);
  const Padding padding = parse_padding(padding_mode);
  const c10::cuda::CUDAGuard guard(x.device());
  const int64_t N = x.size(0), C = x.size(1), HW = x.size(2) * x.size(3);
  const at::Tensor flat_grad = grad_out.reshape({N, C, HW});  // not -1: N or C may be 0
  at::Tensor grad_x = at::empty({0}, x.options()), grad_tw = at::empty({0}, x.options()),
             grad_tb = at::empty({0}, x.options());
  if (output_mask[0] || output_mask[1] || output_mask[2]) {
    const at::Tensor grad_warped = at::bmm(color_w.transpose(1, 2), flat_grad).view(x.sizes());
    std::tie(grad_x, grad_tw, grad_tb) = warp_backward_impl("augment", grad_warped, x, theta_w, theta_b, smooth,
                                                            align_corners, padding,
                                                            {output_mask[0], output_mask[1], output_mask[2]});
  }
  at::Tensor grad_cw = at::empty({0}, x.options()), grad_cb = at::empty({0}, x.options());
  if (output_mask[3]) {
    const at::Tensor warped = forward<false>("augment", x, theta_w, theta_b, nullptr, nullptr, smooth, align_corners,
                                             padding_mode);
    grad_cw = at::bmm(flat_grad, warped.reshape({N, C, HW}).transpose(1, 2));
  }
  if (output_mask[4]) grad_cb = flat_grad.sum(2);
  return {grad_x, grad_tw, grad_tb, grad_cw, grad_cb};
}

}  // namespace

TORCH_LIBRARY_IMPL(infaug, CUDA, m) {
  m.impl("warp", &warp_cuda);
  m.impl("_warp_backward", &warp_backward_cuda);
  m.impl("augment", &augment_cuda);
  m.impl("_augment_backward", &augment_backward_cuda);
}

}  // namespace infaug::cuda
