#include <string>

#include "dlopt/core/step.hpp"

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace dlopt {

int get_num_threads() {
#if defined(_OPENMP)
  return omp_get_max_threads();
#else
  return 1;
#endif
}

void set_num_threads(int n) {
  if (n < 1) throw InvalidArgument("Invalid num_threads: " + std::to_string(n) + " (must be >= 1)");
#if defined(_OPENMP)
  omp_set_num_threads(n);
#endif
}

const char* cpu_kernels() {
#if defined(DLOPT_NATIVE_BUILD)
  return "native";
#elif defined(DLOPT_DISPATCH)
  // The same order of preference as the loader's choice among DLOPT_KERNEL's clones.
  if (__builtin_cpu_supports("x86-64-v4")) return "x86-64-v4";
  if (__builtin_cpu_supports("x86-64-v3")) return "x86-64-v3";
  return "x86-64";
#else
  return "generic";
#endif
}

}  // namespace dlopt
