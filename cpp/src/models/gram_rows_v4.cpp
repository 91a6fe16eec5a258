// gram_rows.hpp's accumulation for x86-64-v4 (AVX-512); built by cpp/CMakeLists.txt with
// -march=x86-64-v4 and Eigen renamed, in portable builds only.
#define DLOPT_GRAM_LEVEL gram_x86_64_v4
#include "gram_rows_impl.hpp"
