// gram_rows.hpp's accumulation at the library's own instruction set: the baseline of a portable
// build (where gram_rows_v3.cpp and gram_rows_v4.cpp add the AVX levels), everything in a native one.
#define DLOPT_GRAM_LEVEL gram_baseline
#include "gram_rows_impl.hpp"
