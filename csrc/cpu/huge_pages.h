// Large outputs on transparent huge pages.
//
// A tensor of hundreds of megabytes is a fresh mmap from the C allocator on every call, and its
// first write takes one page fault per 4 KiB page: for the (50000, 512) float32 gradient of
// influence that is 25,000 faults, which cost more than the kernel that fills it. Asking the
// kernel for 2 MiB pages (madvise MADV_HUGEPAGE, honoured where transparent huge pages are set to
// "madvise" or "always") before the first write takes 512 times fewer faults.
// torch's own allocator does the same for every allocation when THP_MEM_ALLOC_ENABLE=1.
#pragma once

#include <ATen/core/Tensor.h>

namespace infaug::cpu {

// at::empty(sizes, options), with the 2 MiB-aligned part of a large (>= 8 MiB) allocation
// advised onto huge pages on Linux. INFAUG_HUGE_PAGES=0 turns the advice off.
at::Tensor empty_on_huge_pages(at::IntArrayRef sizes, const at::TensorOptions& options);

}  // namespace infaug::cpu
