// Whole-buffer conversions between a Buffer's storage and float32 (core/storage.hpp).

#include <vector>

#include "convert.hpp"
#include "dlopt/core/storage.hpp"

namespace dlopt {

void to_float(const Buffer& b, int64_t n, float* out) { cpu::load(b, 0, n, out); }

void from_float(const Buffer& b, int64_t n, const float* in) { cpu::store(b, 0, n, in); }

void fill_state(const Buffer& b, int64_t n, double value) {
  if (b.storage == Storage::Float64) {
    std::fill_n(static_cast<double*>(b.data), n, value);
    return;
  }
  const std::vector<float> values(static_cast<std::size_t>(n), static_cast<float>(value));
  from_float(b, n, values.data());
}

}  // namespace dlopt
