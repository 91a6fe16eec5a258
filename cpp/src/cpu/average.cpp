// Fused pairwise passes for accumulation, EMA and Lookahead (see dlopt/average.hpp).

#include "dlopt/average.hpp"

#include <string>

#include "blocks.hpp"
#include "dlopt/core/error.hpp"

namespace dlopt {
namespace {

template <class D, class S>
void require_pairs(const Span<D>* dst, const Span<S>* src, std::size_t count, const char* dst_what,
                   const char* src_what) {
  for (std::size_t k = 0; k < count; ++k) {
    const std::string at = "[" + std::to_string(k) + "]";
    if (dst[k].size < 0 || (dst[k].size > 0 && (!dst[k].data || !src[k].data)))
      throw InvalidArgument(std::string(dst_what) + at + ": null or negative-size buffer");
    if (src[k].size != dst[k].size)
      throw InvalidArgument(std::string(src_what) + at + " has " + std::to_string(src[k].size) +
                            " elements, " + dst_what + at + " has " + std::to_string(dst[k].size));
  }
}

// Calls op(d, s, len) on matching blocks of every pair.
template <class D, class S, class Op>
void pairwise(const Span<D>* dst, const Span<S>* src, std::size_t count, Op op) {
  auto size_of = [dst](std::size_t k) { return dst[k].size; };
  std::vector<int64_t> first;
  cpu::detail::for_each_pass_block(count, size_of, first, [&](int64_t, std::size_t k, int64_t begin, int64_t len) {
    op(dst[k].data + begin, src[k].data + begin, len);
  });
}

}  // namespace

template <class T>
void accumulate(const Span<T>* dst, const Span<const T>* src, std::size_t count, bool overwrite) {
  require_pairs(dst, src, count, "buffers", "grads");
  pairwise(dst, src, count, [overwrite](T* __restrict d, const T* __restrict s, int64_t n) {
    if (overwrite) {
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) d[i] = s[i];
    } else {
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) d[i] += s[i];
    }
  });
}

template <class T>
void ema_update(const Span<T>* shadow, const Span<const T>* params, std::size_t count, double decay) {
  require_pairs(shadow, params, count, "shadow", "params");
  const T a = T(decay), b = T(1.0 - decay);
  pairwise(shadow, params, count, [a, b](T* __restrict s, const T* __restrict p, int64_t n) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) s[i] = a * s[i] + b * p[i];
  });
}

template <class T>
void lookahead_update(const Span<T>* slow, const Span<T>* fast, std::size_t count, double alpha) {
  require_pairs(slow, fast, count, "slow", "fast");
  const T a = T(alpha);
  pairwise(slow, fast, count, [a](T* __restrict s, T* __restrict f, int64_t n) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) {
      s[i] += a * (f[i] - s[i]);
      f[i] = s[i];
    }
  });
}

#define DLOPT_INSTANTIATE_AVERAGE(T)                                                          \
  template void accumulate<T>(const Span<T>*, const Span<const T>*, std::size_t, bool);     \
  template void ema_update<T>(const Span<T>*, const Span<const T>*, std::size_t, double);   \
  template void lookahead_update<T>(const Span<T>*, const Span<T>*, std::size_t, double);
DLOPT_INSTANTIATE_AVERAGE(float)
DLOPT_INSTANTIATE_AVERAGE(double)
#undef DLOPT_INSTANTIATE_AVERAGE

}  // namespace dlopt
