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

}  // namespace dlopt
