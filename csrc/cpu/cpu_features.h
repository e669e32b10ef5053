// Which instruction sets the CPU kernels may use, decided once per process.
#pragma once

// Marks the functions compiled for AVX2 with FMA (called only when use_avx2()).
#if defined(__x86_64__) && defined(__GNUC__)
#define INFAUG_AVX2 __attribute__((target("avx2,fma")))
#define INFAUG_HAS_AVX2 1
#else
#define INFAUG_AVX2
#endif

namespace infaug::cpu {

// AVX2 with FMA when the CPU has both, unless ATEN_CPU_CAPABILITY=default asks for generic code
// (the switch torch's own kernels obey). Always false off x86-64.
bool use_avx2();

}  // namespace infaug::cpu
