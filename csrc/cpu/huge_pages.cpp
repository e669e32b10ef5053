#include "huge_pages.h"

#include <ATen/ops/empty.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace infaug::cpu {
namespace {

bool advice_enabled() {
  static const bool yes = [] {
    const char* setting = std::getenv("INFAUG_HUGE_PAGES");
    return setting == nullptr || std::strcmp(setting, "0") != 0;
  }();
  return yes;
}

}  // namespace

at::Tensor empty_on_huge_pages(at::IntArrayRef sizes, const at::TensorOptions& options) {
  at::Tensor out = at::empty(sizes, options);
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  constexpr uintptr_t kHuge = uintptr_t(2) << 20;
  const uintptr_t bytes = uintptr_t(out.nbytes());
  if (advice_enabled() && bytes >= 4 * kHuge) {
    const auto start = reinterpret_cast<uintptr_t>(out.data_ptr());
    const uintptr_t first = (start + kHuge - 1) & ~(kHuge - 1);
    const uintptr_t last = (start + bytes) & ~(kHuge - 1);
    // Advice only: where it is refused (huge pages off, memory from the heap) nothing changes.
    if (last > first) madvise(reinterpret_cast<void*>(first), last - first, MADV_HUGEPAGE);
  }
#endif
  return out;
}

}  // namespace infaug::cpu
