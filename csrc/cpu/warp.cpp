// CPU kernels of warp and augment: forward and backward, one pass per image.
//
// Per image, in thread-local scratch that stays in cache: the displacement of the affine flow and
// its box filter, as flat passes over the plane; then, a block of pixels at a time, the sampling
// points are located and the four bilinear taps of every channel gathered, by loops the compiler
// vectorises (warp_spans.h) or, for float32 on AVX2 CPUs, by intrinsics that load the two taps of
// a row together (taps_avx2.h); taps outside the image are masked off. grad_x is scattered by
// pairs of taps into scratch planes and folded into place once per image. No (N, 2, H, W) grid
// reaches memory. Parallel over the batch: each image is owned by one thread, so the scatter of
// grad_x needs no atomics and every result is deterministic.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <algorithm>
#include <atomic>
#include <limits>
#include <type_traits>
#include <vector>

#include "../warp.h"
#include "box_filter.h"
#include "cpu_features.h"
#include "taps_avx2.h"
#include "warp_spans.h"

namespace infaug::cpu {
namespace {

// Pixels located and gathered at a time: the per-point arrays of a block stay in L1/L2.
constexpr int64_t kBlock = 1024;

// What is fixed for all images of one call: flat (H, W) planes shared by every thread.
template <typename T>
struct Geometry {
  int64_t C, H, W, HW, radius;
  bool smooth, align_corners;
  T scale_x, scale_y;            // d(pixel index) / d(grid coordinate)
  std::vector<T> u, v;           // base grid at every pixel
  std::vector<T> pixel_x;        // j as T
  std::vector<T> pixel_y;        // i as T
  std::vector<int32_t> column;   // j
  std::vector<T> inv_count;      // 1 / number of in-bounds pixels in the box window
  bool pair_taps = false;        // gather with taps_avx2.h (float32, AVX2, unit column stride)
  bool pair_scatter = false;     // backward: grad_x by pairs of taps (warp_spans.h)

  Geometry(int64_t C_, int64_t H_, int64_t W_, int64_t smooth_size, bool align)
      : C(C_), H(H_), W(W_), HW(H_ * W_), radius(smooth_size / 2), smooth(smooth_size > 1),
        align_corners(align),
        scale_x(grid_to_pixel_scale<T>(W_, align)), scale_y(grid_to_pixel_scale<T>(H_, align)),
        u(HW), v(HW), pixel_x(HW), pixel_y(HW), column(HW), inv_count(HW) {
    const int64_t rw = std::min(radius, W - 1), rh = std::min(radius, H - 1);
    for (int64_t i = 0; i < H; ++i) {
      for (int64_t j = 0; j < W; ++j) {
        const int64_t p = i * W + j;
        u[p] = base_coordinate(j, W);
        v[p] = base_coordinate(i, H);
        pixel_x[p] = T(j);
        pixel_y[p] = T(i);
        column[p] = int32_t(j);
        inv_count[p] = T(1) / T(window_count(i, rh, H) * window_count(j, rw, W));
      }
    }
  }

  T base_coordinate(int64_t i, int64_t size) const {
    if (align_corners) return size > 1 ? T(2 * i) / T(size - 1) - T(1) : T(0);
    return T(2 * i + 1) / T(size) - T(1);
  }
};

// Strides of x in elements: x may be non-contiguous or channels-last, it is only gathered from.
// Within a plane, offsets are int32 (see addressable).
struct Strides {
  int64_t n, c;
  int32_t h, w;
};

// Per-thread working memory, reused image after image (see Carver for why it is one allocation).
template <typename T>
struct ScratchLayout {
  const Geometry<T>& g;
  int64_t block;          // points per block: min(HW, kBlock)
  T *raw_x, *raw_y;       // (H, W) displacement before the box filter / its gradient; readable
                          // `radius` elements beyond both ends (box_sum_rows), which stay zero
  T* box_tmp;             // (H, W), with radius rows of zeros before and after (box_filter)
  T *disp_x, *disp_y;     // (H, W) smoothed displacement / its gradient
  Points<T> points;       // (block) sampling points
  T* rows;                // (C, block) warped values (augment)
  T* grad_rows;           // (C, block) gradient of the warped values (augment)
  T *grad_ix, *grad_iy;   // (block) gradient of the sampling points
  PairPlanes pair_planes;  // grad_x by pairs of taps (warp_spans.h)
  T* pair_buffer;          // (C, pair_planes.channel_stride), zero between images
  int32_t *pair_top, *pair_bottom;  // (block) where each point's pairs go
  T *pair_top_w, *pair_bottom_w;    // (2 block) their weights, interleaved
  std::vector<double> color_w_acc;  // (C, C) colour gradients of one image, summed in double
  std::vector<double> color_b_acc;  // (C)

  explicit ScratchLayout(const Geometry<T>& geometry)
      : g(geometry), block(std::min(geometry.HW, kBlock)), pair_planes(geometry.HW),
        color_w_acc(geometry.C * geometry.C),
        color_b_acc(geometry.C) {}

  void carve(Carver& c) {
    const int64_t guard = g.radius;
    raw_x = c.take<T>(g.HW + 2 * guard, guard);
    raw_y = c.take<T>(g.HW + 2 * guard, guard);
    box_tmp = c.take<T>(g.HW + 2 * g.radius * g.W, g.radius * g.W);
    disp_x = c.take<T>(g.HW);
    disp_y = c.take<T>(g.HW);
    points.carve(c, block);
    rows = c.take<T>(g.C * block);
    grad_rows = c.take<T>(g.C * block);
    grad_ix = c.take<T>(block);
    grad_iy = c.take<T>(block);
    const int64_t pair_block = g.pair_scatter ? block : 0;  // empty when unused
    pair_buffer = c.take<T>(g.pair_scatter ? g.C * pair_planes.channel_stride : 0);
    pair_top = c.take<int32_t>(pair_block);
    pair_bottom = c.take<int32_t>(pair_block);
    pair_top_w = c.take<T>(2 * pair_block);
    pair_bottom_w = c.take<T>(2 * pair_block);
  }
};

template <typename T>
using Scratch = Carved<ScratchLayout<T>>;

// The displacement of the flow into s.disp_x/disp_y, box-filtered when
// smooth > 1. theta_w (4, H, W) and theta_b (2, H, W) contiguous.
template <typename T>
INFAUG_INLINE void smoothed_displacement(const Geometry<T>& g, const T* theta_w, const T* theta_b,
                                         Scratch<T>& s) {
  const int64_t HW = g.HW;
  T* dx = g.smooth ? s.raw_x : s.disp_x;
  T* dy = g.smooth ? s.raw_y : s.disp_y;
  displacement_span(HW, g.u.data(), g.v.data(), theta_w, theta_w + HW, theta_w + 2 * HW,
                    theta_w + 3 * HW, theta_b, theta_b + HW, dx, dy);
  if (!g.smooth) return;
  box_filter(g.H, g.W, g.radius, g.column.data(), dx, s.box_tmp, s.disp_x,
             g.inv_count.data());
  box_filter(g.H, g.W, g.radius, g.column.data(), dy, s.box_tmp, s.disp_y,
             g.inv_count.data());
}

// Locates the sampling points of pixels [p0, p0 + n).
template <Padding P, bool kGrad, typename T>
INFAUG_INLINE void locate(const Geometry<T>& g, int64_t p0, int64_t n, Scratch<T>& s) {
  Points<T>& q = s.points;
  locate_span<P, kGrad>(n, g.W, g.H, g.align_corners, g.scale_x, g.scale_y,
                        g.pixel_x.data() + p0, g.pixel_y.data() + p0, s.disp_x + p0,
                        s.disp_y + p0, q.cx0, q.cx1, q.cy0, q.cy1, q.inside, q.w00, q.w01, q.w10,
                        q.w11, q.tx, q.ty, q.dix, q.diy);
}

// The bilinear samples of every channel of x at the n located points: channel k to
// out + k * out_stride.
template <typename T>
INFAUG_INLINE void gather_channels(const Geometry<T>& g, const Strides& xs, const T* x,
                                   const Points<T>& q, int64_t n, T* out, int64_t out_stride) {
  if constexpr (std::is_same_v<T, float>) {
    if (g.pair_taps)
      return gather_span_avx2(n, g.C, x, xs.c, xs.h, int32_t(g.W), q, out, out_stride);
  }
  for (int64_t k = 0; k < g.C; ++k)
    gather_span(n, x + k * xs.c, xs.h, xs.w, q.cx0, q.cx1, q.cy0, q.cy1, q.inside, q.w00, q.w01,
                q.w10, q.w11, out + k * out_stride);
}

// Pointers of one image: x (C, H, W) with strides xs; theta_w (4, H, W), theta_b (2, H, W),
// color_w (C, C), color_b (C), y / grad_out / grad_x (C, H, W) contiguous; null when unused.
template <typename T>
struct Image {
  const T *x, *theta_w, *theta_b, *color_w, *color_b, *grad_out;
  T *y, *grad_x, *grad_theta_w, *grad_theta_b, *grad_color_w, *grad_color_b;
};

// ---- forward of one image --------------------------------------------------------------------

template <Padding P, bool kColor, typename T>
INFAUG_INLINE void forward_image(const Geometry<T>& g, const Strides& xs, const Image<T>& im,
                                 Scratch<T>& s) {
  const int64_t C = g.C, HW = g.HW;
  const Points<T>& q = s.points;
  smoothed_displacement(g, im.theta_w, im.theta_b, s);
  for (int64_t p0 = 0; p0 < HW; p0 += kBlock) {
    const int64_t n = std::min(kBlock, HW - p0);
    locate<P, false>(g, p0, n, s);
    // Channel k's warped values go to y, or to scratch for the colour transform.
    T* out = kColor ? s.rows : im.y + p0;
    const int64_t out_stride = kColor ? n : HW;
    gather_channels(g, xs, im.x, q, n, out, out_stride);
    if constexpr (kColor)
      mix_span<false>(C, n, im.color_w, im.color_b, s.rows, n, im.y + p0, HW);
  }
}

// ---- backward of one image -------------------------------------------------------------------

struct NeedGrad {
  bool x, theta_w, theta_b, color_w, color_b;
  bool theta() const { return theta_w || theta_b; }
};

// grad_out is the gradient of warp's output, or of augment's when kColor; each gradient is
// written only when needed.
template <Padding P, bool kColor, typename T>
INFAUG_INLINE void backward_image(const Geometry<T>& g, const Strides& xs, const NeedGrad& need,
                                  const Image<T>& im, Scratch<T>& s) {
  const int64_t C = g.C, H = g.H, W = g.W, HW = g.HW;
  const Points<T>& q = s.points;
  const bool need_point = need.theta();             // d loss / d sampling point
  const bool need_values = kColor && need.color_w;  // the warped values themselves
  T* grad_ix = s.grad_ix;
  T* grad_iy = s.grad_iy;
  T* values = s.rows;
  // The gradient of the displacement before the box filter (pre-divided by the window count: the
  // adjoint of a window average is the window sum of the gradient divided by each output's
  // count, the window being symmetric), or the final one when there is no filter. The final one
  // is theta_b's gradient itself, so it is written there when that is wanted; otherwise to the
  // raw planes, free once smoothed_displacement has run.
  T* const gtb = im.grad_theta_b;
  T* grad_disp_x = g.smooth || !gtb ? s.raw_x : gtb;
  T* grad_disp_y = g.smooth || !gtb ? s.raw_y : gtb + HW;
  // grad_x by pairs of taps into scratch, folded into grad_x at the end, or by single taps
  // straight into grad_x (see use_pair_scatter).
  const bool pairs = g.pair_scatter;
  if (need.x && !pairs) std::fill(im.grad_x, im.grad_x + C * HW, T(0));
  std::fill(s.color_w_acc.begin(), s.color_w_acc.end(), 0.0);
  std::fill(s.color_b_acc.begin(), s.color_b_acc.end(), 0.0);

  smoothed_displacement(g, im.theta_w, im.theta_b, s);
  for (int64_t p0 = 0; p0 < HW; p0 += kBlock) {
    const int64_t n = std::min(kBlock, HW - p0);
    locate<P, true>(g, p0, n, s);
    // The gradient of warp's output at these points: go[k * go_stride + p].
    const T* go = im.grad_out + p0;
    int64_t go_stride = HW;
    if constexpr (kColor) {
      mix_span<true>(C, n, im.color_w, static_cast<const T*>(nullptr), go, HW,
                     s.grad_rows, n);
      go = s.grad_rows;
      go_stride = n;
    }

    // The sampling points' gradient (summed over the channels) and the warped values.
    if (need_point || need_values) {
      auto run = [&](auto point, auto value) {
        constexpr bool kPoint = decltype(point)::value, kValues = decltype(value)::value;
        if constexpr (std::is_same_v<T, float>) {
          if (g.pair_taps)
            return sample_grad_span_avx2<kPoint, kValues>(n, C, im.x, xs.c, xs.h, int32_t(W), q,
                                                          go, go_stride, grad_ix, grad_iy,
                                                          values, n);
        }
        if (kPoint) {
          std::fill(grad_ix, grad_ix + n, T(0));
          std::fill(grad_iy, grad_iy + n, T(0));
        }
        for (int64_t k = 0; k < C; ++k)
          sample_grad_span<kPoint, kValues>(n, im.x + k * xs.c, xs.h, xs.w, q.cx0, q.cx1, q.cy0,
                                            q.cy1, q.inside, q.tx, q.ty, q.w00, q.w01, q.w10,
                                            q.w11, go + k * go_stride, grad_ix, grad_iy,
                                            values + k * n);
      };
      using yes = std::true_type;
      using no = std::false_type;
      if (need_point && need_values) run(yes{}, yes{});
      else if (need_point) run(yes{}, no{});
      else run(no{}, yes{});
    }
    // augment's colour gradients: sums over the image of grad_out times the warped values
    if constexpr (kColor) {
      for (int64_t c = 0; c < C; ++c) {
        const T* gc = im.grad_out + c * HW + p0;
        if (need.color_b) s.color_b_acc[c] += double(sum_span(n, gc));
        if (need.color_w)
          for (int64_t k = 0; k < C; ++k)
            s.color_w_acc[c * C + k] += double(dot_span(n, gc, values + k * n));
      }
    }

    // grad_x: scatter the taps' weights. This image belongs to this thread alone, so a plain +=
    // is race-free and the result deterministic.
    if (pairs && all_finite(C, n, go, go_stride)) {
      pair_targets_span(n, int32_t(W), int32_t(s.pair_planes.odd_shift), q.cx0, q.cx1, q.cy0,
                        q.cy1, q.inside, q.w00, q.w01, q.w10, q.w11, s.pair_top, s.pair_bottom,
                        s.pair_top_w, s.pair_bottom_w);
      scatter_pairs_span(n, C, s.pair_planes.channel_stride, s.pair_top, s.pair_bottom,
                         s.pair_top_w, s.pair_bottom_w, go, go_stride, s.pair_buffer);
    } else if (pairs) {  // tap by tap, so that a tap outside adds nothing, into the even planes
      scatter_span(n, C, W, s.pair_planes.channel_stride, q.cx0, q.cx1, q.cy0, q.cy1, q.inside,
                   q.w00, q.w01, q.w10, q.w11, go, go_stride, s.pair_buffer);
    } else if (need.x) {
      scatter_span(n, C, W, HW, q.cx0, q.cx1, q.cy0, q.cy1, q.inside, q.w00, q.w01, q.w10,
                   q.w11, go, go_stride, im.grad_x);
    }

    if (need_point) {
      const T* scale = g.smooth ? g.inv_count.data() + p0 : nullptr;
      product_span(n, grad_ix, q.dix, scale, grad_disp_x + p0);
      product_span(n, grad_iy, q.diy, scale, grad_disp_y + p0);
    }
  }

  if (pairs) fold_pairs(C, HW, s.pair_planes, s.pair_buffer, im.grad_x);

  if (need_point) {
    if (g.smooth) {  // the box filter is symmetric: its adjoint is the same window sum
      T* out_x = gtb ? gtb : s.disp_x;
      T* out_y = gtb ? gtb + HW : s.disp_y;
      box_filter(H, W, g.radius, g.column.data(), grad_disp_x, s.box_tmp, out_x,
                 static_cast<const T*>(nullptr));
      box_filter(H, W, g.radius, g.column.data(), grad_disp_y, s.box_tmp, out_y,
                 static_cast<const T*>(nullptr));
      grad_disp_x = out_x;
      grad_disp_y = out_y;
    }
    if (T* gtw = im.grad_theta_w)
      theta_w_grad_span(HW, g.u.data(), g.v.data(), grad_disp_x, grad_disp_y, gtw, gtw + HW,
                        gtw + 2 * HW, gtw + 3 * HW);
  }
  if constexpr (kColor) {
    if (need.color_w)
      for (int64_t k = 0; k < C * C; ++k) im.grad_color_w[k] = T(s.color_w_acc[k]);
    if (need.color_b)
      for (int64_t c = 0; c < C; ++c) im.grad_color_b[c] = T(s.color_b_acc[c]);
  }
}

// ---- one kernel per instruction set ----------------------------------------------------------
//
// The per-image kernels above are always inlined, so each function below is a complete copy of
// them compiled for its own instruction set; the copy to run is picked once from the CPU. Only
// these functions carry the target attribute, so no code for a newer instruction set can leak
// into the generic copy.

// Image n of a batch: the pointers of Image<T> advanced by n images.
template <typename T>
struct Batch {
  Image<T> first;
  int64_t x_stride, C, HW;

  Image<T> image(int64_t n) const {
    auto at = [](auto* p, int64_t step) { return p ? p + step : p; };
    const int64_t CHW = C * HW, CC = C * C;
    return {at(first.x, n * x_stride),       at(first.theta_w, n * 4 * HW),
            at(first.theta_b, n * 2 * HW),   at(first.color_w, n * CC),
            at(first.color_b, n * C),        at(first.grad_out, n * CHW),
            at(first.y, n * CHW),            at(first.grad_x, n * CHW),
            at(first.grad_theta_w, n * 4 * HW), at(first.grad_theta_b, n * 2 * HW),
            at(first.grad_color_w, n * CC),  at(first.grad_color_b, n * C)};
  }
};

#define INFAUG_IMAGE_LOOPS(SUFFIX, TARGET)                                                      \
  template <Padding P, bool kColor, typename T>                                                 \
  TARGET void forward_images_##SUFFIX(const Geometry<T>& g, const Strides& xs,                  \
                                      const Batch<T>& b, int64_t begin, int64_t end,            \
                                      Scratch<T>& s) {                                          \
    for (int64_t n = begin; n < end; ++n) forward_image<P, kColor>(g, xs, b.image(n), s);       \
  }                                                                                             \
  template <Padding P, bool kColor, typename T>                                                 \
  TARGET void backward_images_##SUFFIX(const Geometry<T>& g, const Strides& xs,                 \
                                       const NeedGrad& need, const Batch<T>& b, int64_t begin,  \
                                       int64_t end, Scratch<T>& s) {                            \
    for (int64_t n = begin; n < end; ++n) backward_image<P, kColor>(g, xs, need, b.image(n), s); \
  }

INFAUG_IMAGE_LOOPS(generic, )
#ifdef INFAUG_HAS_AVX2
INFAUG_IMAGE_LOOPS(avx2, INFAUG_AVX2)
#endif

// Whether gathers can use taps_avx2.h: float32 on an AVX2 CPU, rows contiguous and 2+ wide.
template <typename T>
bool use_pair_taps(const Strides& xs, int64_t W) {
#ifdef INFAUG_HAS_AVX2
  return std::is_same_v<T, float> && use_avx2() && xs.w == 1 && W >= 2;
#else
  return false;
#endif
}

// Whether the backward scatters grad_x by pairs of taps: not for images one pixel wide, nor for
// planes too large for the pairs' int32 offsets.
bool use_pair_scatter(const NeedGrad& need, int64_t H, int64_t W) {
  return need.x && W >= 2 && H * W < (int64_t(1) << 30);
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

// Images per task: enough work per task to amortise waking a thread.
int64_t grain_size(const at::Tensor& x) {
  const int64_t per_image = std::max<int64_t>(1, x.size(1) * x.size(2) * x.size(3));
  return std::max<int64_t>(1, 8192 / per_image);
}

// Runs run(begin, end, scratch) over all images [0, N) on torch's intra-op threads, handing out
// chunks of `grain` images from a shared counter rather than splitting the batch evenly up front:
// on a shared, noisy machine an even split leaves every thread waiting for the slowest. Each image
// is still computed by one thread alone, so results do not depend on the schedule.
template <typename T, typename Run>
void for_each_image_chunk(const Geometry<T>& g, int64_t N, int64_t grain, const Run& run) {
  const int64_t chunks = (N + grain - 1) / grain;
  std::atomic<int64_t> next{0};
  const int64_t workers = std::min<int64_t>(at::get_num_threads(), chunks);
  at::parallel_for(0, workers, 1, [&](int64_t, int64_t) {
    Scratch<T> s(g);
    for (int64_t chunk = next++; chunk < chunks; chunk = next++)
      run(chunk * grain, std::min(N, (chunk + 1) * grain), s);
  });
}

// x itself, or a contiguous copy when the offsets of its planes overflow int32 (the taps are
// addressed with int32 arithmetic, which vectorises). A plane of 2^31 elements or more is refused.
at::Tensor addressable(const char* op, const at::Tensor& x) {
  constexpr int64_t limit = std::numeric_limits<int32_t>::max();
  auto extent = [](const at::Tensor& t) {
    return (t.size(2) - 1) * t.stride(2) + (t.size(3) - 1) * t.stride(3) + 1;
  };
  if (extent(x) < limit) return x;
  TORCH_CHECK_VALUE(x.size(2) * x.size(3) < limit, "infaug.", op,
                    ": an image plane must have fewer than 2^31 - 1 elements, got ", x.size(2),
                    " x ", x.size(3));
  return x.contiguous();
}

Strides strides_of(const at::Tensor& x) {
  return {x.stride(0), x.stride(1), int32_t(x.stride(2)), int32_t(x.stride(3))};
}

at::Tensor empty_grad(const at::Tensor& like, bool needed) {
  // empty() ignores like's strides: gradients come out contiguous whatever the input's layout.
  return needed ? at::empty(like.sizes(), like.options()) : at::empty({0}, like.options());
}

template <bool kColor>
at::Tensor forward(const char* op, const at::Tensor& x_in, const at::Tensor& theta_w_in,
                   const at::Tensor& theta_b_in, const at::Tensor* color_w_in,
                   const at::Tensor* color_b_in, int64_t smooth, bool align_corners,
                   c10::string_view padding_mode) {
  check_warp_args(op, x_in, theta_w_in, theta_b_in, smooth, color_w_in, color_b_in);
  check_supported_dtype(op, "x", x_in, {at::kFloat, at::kDouble});
  const Padding padding = parse_padding(padding_mode);
  at::Tensor y = at::empty(x_in.sizes(), x_in.options());
  if (y.numel() == 0) return y;
  const at::Tensor x = addressable(op, x_in);

  const at::Tensor theta_w = theta_w_in.contiguous(), theta_b = theta_b_in.contiguous();
  const at::Tensor color_w = kColor ? color_w_in->contiguous() : at::Tensor();
  const at::Tensor color_b = kColor ? color_b_in->contiguous() : at::Tensor();
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  const Strides xs = strides_of(x);

  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "infaug_warp_forward_cpu", [&] {
    using T = scalar_t;
    Geometry<T> g(C, H, W, smooth, align_corners);
    g.pair_taps = use_pair_taps<T>(xs, W);
    Batch<T> batch{};
    batch.first.x = x.const_data_ptr<T>();
    batch.first.theta_w = theta_w.const_data_ptr<T>();
    batch.first.theta_b = theta_b.const_data_ptr<T>();
    batch.first.color_w = kColor ? color_w.const_data_ptr<T>() : nullptr;
    batch.first.color_b = kColor ? color_b.const_data_ptr<T>() : nullptr;
    batch.first.y = y.mutable_data_ptr<T>();
    batch.x_stride = xs.n;
    batch.C = C;
    batch.HW = H * W;
    const bool avx2 = use_avx2();
    dispatch_padding(padding, [&](auto pad) {
      constexpr Padding P = decltype(pad)::value;
      for_each_image_chunk(g, N, grain_size(x), [&](int64_t begin, int64_t end, Scratch<T>& s) {
#ifdef INFAUG_HAS_AVX2
        if (avx2) return forward_images_avx2<P, kColor>(g, xs, batch, begin, end, s);
#endif
        forward_images_generic<P, kColor>(g, xs, batch, begin, end, s);
      });
    });
  });
  return y;
}

template <bool kColor>
std::vector<at::Tensor> backward(const char* op, const at::Tensor& grad_out_in, const at::Tensor& x_in,
                                 const at::Tensor& theta_w_in, const at::Tensor& theta_b_in,
                                 const at::Tensor* color_w_in, const at::Tensor* color_b_in,
                                 int64_t smooth, bool align_corners,
                                 c10::string_view padding_mode, const NeedGrad& need) {
  check_warp_args(op, x_in, theta_w_in, theta_b_in, smooth, color_w_in, color_b_in);
  check_supported_dtype(op, "x", x_in, {at::kFloat, at::kDouble});
  check_grad_output(op, grad_out_in, x_in);
  const Padding padding = parse_padding(padding_mode);

  std::vector<at::Tensor> grads{empty_grad(x_in, need.x), empty_grad(theta_w_in, need.theta_w),
                                empty_grad(theta_b_in, need.theta_b)};
  if (kColor) {
    grads.push_back(empty_grad(*color_w_in, need.color_w));
    grads.push_back(empty_grad(*color_b_in, need.color_b));
  }
  const int64_t N = x_in.size(0), C = x_in.size(1), H = x_in.size(2), W = x_in.size(3);
  if (N == 0) return grads;
  if (C * H * W == 0) {  // nothing is sampled: every gradient is zero
    for (auto& t : grads) t.zero_();
    return grads;
  }

  const at::Tensor grad_out = grad_out_in.contiguous();
  const at::Tensor x = addressable(op, x_in);
  const at::Tensor theta_w = theta_w_in.contiguous(), theta_b = theta_b_in.contiguous();
  const at::Tensor color_w = kColor ? color_w_in->contiguous() : at::Tensor();
  const Strides xs = strides_of(x);

  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "infaug_warp_backward_cpu", [&] {
    using T = scalar_t;
    Geometry<T> g(C, H, W, smooth, align_corners);
    g.pair_taps = use_pair_taps<T>(xs, W);
    g.pair_scatter = use_pair_scatter(need, H, W);
    auto out = [&](size_t k, bool needed) -> T* {
      return needed ? grads[k].mutable_data_ptr<T>() : nullptr;
    };
    Batch<T> batch{};
    batch.first.x = x.const_data_ptr<T>();
    batch.first.theta_w = theta_w.const_data_ptr<T>();
    batch.first.theta_b = theta_b.const_data_ptr<T>();
    batch.first.color_w = kColor ? color_w.const_data_ptr<T>() : nullptr;
    batch.first.grad_out = grad_out.const_data_ptr<T>();
    batch.first.grad_x = out(0, need.x);
    batch.first.grad_theta_w = out(1, need.theta_w);
    batch.first.grad_theta_b = out(2, need.theta_b);
    batch.first.grad_color_w = kColor ? out(3, need.color_w) : nullptr;
    batch.first.grad_color_b = kColor ? out(4, need.color_b) : nullptr;
    batch.x_stride = xs.n;
    batch.C = C;
    batch.HW = H * W;
    const bool avx2 = use_avx2();
    dispatch_padding(padding, [&](auto pad) {
      constexpr Padding P = decltype(pad)::value;
      for_each_image_chunk(g, N, grain_size(x), [&](int64_t begin, int64_t end, Scratch<T>& s) {
#ifdef INFAUG_HAS_AVX2
        if (avx2) return backward_images_avx2<P, kColor>(g, xs, need, batch, begin, end, s);
#endif
        backward_images_generic<P, kColor>(g, xs, need, batch, begin, end, s);
      });
    });
  });
  return grads;
}

// ---- registered kernels ----------------------------------------------------------------------

at::Tensor warp_cpu(const at::Tensor& x, const at::Tensor& theta_w, const at::Tensor& theta_b,
                    int64_t smooth, bool align_corners, c10::string_view padding_mode) {
  return forward<false>("warp", x, theta_w, theta_b, nullptr, nullptr, smooth, align_corners,
                        padding_mode);
}

at::Tensor augment_cpu(const at::Tensor& x, const at::Tensor& theta_w, const at::Tensor& theta_b,
                       const at::Tensor& color_w, const at::Tensor& color_b, int64_t smooth,
                       bool align_corners, c10::string_view padding_mode) {
  return forward<true>("augment", x, theta_w, theta_b, &color_w, &color_b, smooth, align_corners,
                       padding_mode);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> warp_backward_cpu(
    const at::Tensor& grad_y, const at::Tensor& x, const at::Tensor& theta_w,
    const at::Tensor& theta_b, int64_t smooth, bool align_corners, c10::string_view padding_mode,
    std::array<bool, 3> output_mask) {
  const NeedGrad need{output_mask[0], output_mask[1], output_mask[2], false, false};
  auto g = backward<false>("warp", grad_y, x, theta_w, theta_b, nullptr, nullptr, smooth,
                           align_corners, padding_mode, need);
  return {g[0], g[1], g[2]};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> augment_backward_cpu(
    const at::Tensor& grad_out, const at::Tensor& x, const at::Tensor& theta_w,
    const at::Tensor& theta_b, const at::Tensor& color_w, const at::Tensor& color_b,
    int64_t smooth, bool align_corners, c10::string_view padding_mode,
    std::array<bool, 5> output_mask) {
  const NeedGrad need{output_mask[0], output_mask[1], output_mask[2], output_mask[3],
                      output_mask[4]};
  auto g = backward<true>("augment", grad_out, x, theta_w, theta_b, &color_w, &color_b, smooth,
                          align_corners, padding_mode, need);
  return {g[0], g[1], g[2], g[3], g[4]};
}

}  // namespace

TORCH_LIBRARY_IMPL(infaug, CPU, m) {
  m.impl("warp", &warp_cpu);
  m.impl("_warp_backward", &warp_backward_cpu);
  m.impl("augment", &augment_cpu);
  m.impl("_augment_backward", &augment_backward_cpu);
}

}  // namespace infaug::cpu
