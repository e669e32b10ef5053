#include "cpu_features.h"

#include <cstdlib>
#include <string>

namespace infaug::cpu {

bool use_avx2() {
#ifdef INFAUG_HAS_AVX2
  static const bool yes = [] {
    const char* forced = std::getenv("ATEN_CPU_CAPABILITY");
    if (forced != nullptr && std::string(forced) == "default") return false;
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  }();
  return yes;
#else
  return false;
#endif
}

}  // namespace infaug::cpu
