// Gradient clipping: a blocked norm reduction (per-block partials in double, combined in block
// order: deterministic for any thread count) and fused in-place scaling / clamping passes.

#include "dlopt/clip.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

#include "blocks.hpp"

namespace dlopt {
namespace {

enum class NormKind { Two, One, Inf, NegInf, Zero, General };

NormKind kind_of(double p) {
  if (p == 2.0) return NormKind::Two;
  if (p == 1.0) return NormKind::One;
  if (p == std::numeric_limits<double>::infinity()) return NormKind::Inf;
  if (p == -std::numeric_limits<double>::infinity()) return NormKind::NegInf;
  if (p == 0.0) return NormKind::Zero;
  if (std::isnan(p)) throw InvalidArgument("Invalid norm_type: nan");
  return NormKind::General;
}

// Partial result of one block: a sum (p-norms, p = 0) or an extremum (+-inf), and a NaN flag.
struct Partial {
  double value;
  bool nan;
};

template <class T>
Partial block_partial(const T* __restrict x, int64_t n, NormKind kind, double p) {
  double acc = 0.0;
  int nan = 0;
  switch (kind) {
    case NormKind::Two:
#pragma omp simd reduction(+ : acc)
      for (int64_t i = 0; i < n; ++i) acc += double(x[i]) * double(x[i]);
      return {acc, false};
    case NormKind::One:
#pragma omp simd reduction(+ : acc)
      for (int64_t i = 0; i < n; ++i) acc += std::abs(double(x[i]));
      return {acc, false};
    case NormKind::Zero:
#pragma omp simd reduction(+ : acc)
      for (int64_t i = 0; i < n; ++i) acc += x[i] != T(0) ? 1.0 : 0.0;
      return {acc, false};
    case NormKind::General:
      for (int64_t i = 0; i < n; ++i) acc += std::pow(std::abs(double(x[i])), p);
      return {acc, false};
    case NormKind::Inf:
#pragma omp simd reduction(max : acc) reduction(| : nan)
      for (int64_t i = 0; i < n; ++i) {
        const double a = std::abs(double(x[i]));
        nan |= int(a != a);
        acc = a > acc ? a : acc;
      }
      return {acc, nan != 0};
    case NormKind::NegInf: {
      acc = std::numeric_limits<double>::infinity();
#pragma omp simd reduction(min : acc) reduction(| : nan)
      for (int64_t i = 0; i < n; ++i) {
        const double a = std::abs(double(x[i]));
        nan |= int(a != a);
        acc = a < acc ? a : acc;
      }
      return {acc, nan != 0};
    }
  }
  return {acc, false};
}

// Folds partials (in order) into a norm.
struct Folder {
  NormKind kind;
  double p;
  double acc;
  bool nan = false;
  Folder(NormKind k, double p_) : kind(k), p(p_) {
    acc = k == NormKind::NegInf ? std::numeric_limits<double>::infinity() : 0.0;
  }
  void add(const Partial& part) {
    nan = nan || part.nan;
    if (kind == NormKind::Inf) acc = std::max(acc, part.value);
    else if (kind == NormKind::NegInf) acc = std::min(acc, part.value);
    else acc += part.value;
  }
  double result() const {
    if (nan) return std::numeric_limits<double>::quiet_NaN();
    switch (kind) {
      case NormKind::Two: return std::sqrt(acc);
      case NormKind::General: return std::pow(acc, 1.0 / p);
      default: return acc;
    }
  }
};

template <class T>
void require_buffers(const Span<T>* tensors, std::size_t count, const char* what) {
  for (std::size_t k = 0; k < count; ++k)
    if (tensors[k].size < 0 || (tensors[k].size > 0 && !tensors[k].data))
      throw InvalidArgument(std::string(what) + "[" + std::to_string(k) +
                            "]: null or negative-size buffer");
}

}  // namespace

template <class T>
void tensor_norms(const Span<const T>* tensors, std::size_t count, double norm_type, double* out) {
  const NormKind kind = kind_of(norm_type);
  require_buffers(tensors, count, "tensors");
  auto size_of = [tensors](std::size_t k) { return tensors[k].size; };
  std::vector<int64_t> first;
  std::vector<Partial> partials;
  first.resize(count + 1);
  partials.resize(std::size_t(blocks::number<cpu::detail::kPassBlock>(count, size_of, first.data())));
  cpu::detail::for_each_pass_block(count, size_of, first, [&](int64_t b, std::size_t k, int64_t begin, int64_t len) {
    partials[std::size_t(b)] = block_partial(tensors[k].data + begin, len, kind, norm_type);
  });
  for (std::size_t k = 0; k < count; ++k) {
    Folder f(kind, norm_type);
    for (int64_t b = first[k]; b < first[k + 1]; ++b) f.add(partials[std::size_t(b)]);
    out[k] = f.result();
  }
}

double vector_norm(const double* values, std::size_t count, double norm_type) {
  const NormKind kind = kind_of(norm_type);
  Folder f(kind, norm_type);
  for (std::size_t i = 0; i < count; ++i) f.add(block_partial(values + i, 1, kind, norm_type));
  return f.result();
}

template <class T>
double total_norm(const Span<const T>* tensors, std::size_t count, double norm_type) {
  if (count == 0) {
    kind_of(norm_type);
    return 0.0;
  }
  std::vector<double> norms(count);
  tensor_norms(tensors, count, norm_type, norms.data());
  return vector_norm(norms.data(), count, norm_type);
}

template <class T>
void scale(const Span<T>* tensors, std::size_t count, T factor) {
  require_buffers(tensors, count, "tensors");
  auto size_of = [tensors](std::size_t k) { return tensors[k].size; };
  std::vector<int64_t> first;
  cpu::detail::for_each_pass_block(count, size_of, first, [&](int64_t, std::size_t k, int64_t begin, int64_t len) {
    T* __restrict x = tensors[k].data + begin;
#pragma omp simd
    for (int64_t i = 0; i < len; ++i) x[i] *= factor;
  });
}

template <class T>
double clip_grad_norm(const Span<T>* grads, std::size_t count, double max_norm, double norm_type,
                      bool error_if_nonfinite) {
  require_buffers(grads, count, "grads");
  std::vector<Span<const T>> views(count);
  for (std::size_t k = 0; k < count; ++k) views[k] = {grads[k].data, grads[k].size};
  // The total in T's precision, as torch returns (and then clips by) it.
  const double total = double(T(total_norm(views.data(), count, norm_type)));
  if (error_if_nonfinite) require_finite_norm(total, norm_type);
  if (count > 0) scale(grads, count, T(clip_coefficient(max_norm, total)));
  return total;
}

template <class T>
void clip_grad_value(const Span<T>* grads, std::size_t count, double clip_value) {
  require_buffers(grads, count, "grads");
  const T lo = T(-clip_value), hi = T(clip_value);
  auto size_of = [grads](std::size_t k) { return grads[k].size; };
  std::vector<int64_t> first;
  cpu::detail::for_each_pass_block(count, size_of, first, [&](int64_t, std::size_t k, int64_t begin, int64_t len) {
    T* __restrict x = grads[k].data + begin;
#pragma omp simd
    for (int64_t i = 0; i < len; ++i) {
      const T v = x[i] < lo ? lo : x[i];  // max(x, lo), NaN kept
      x[i] = hi < v ? hi : v;             // min(v, hi), NaN kept
    }
  });
}

#define DLOPT_INSTANTIATE_CLIP(T)                                                          \
  template void tensor_norms<T>(const Span<const T>*, std::size_t, double, double*);     \
  template double total_norm<T>(const Span<const T>*, std::size_t, double);              \
  template void scale<T>(const Span<T>*, std::size_t, T);                                \
  template double clip_grad_norm<T>(const Span<T>*, std::size_t, double, double, bool);  \
  template void clip_grad_value<T>(const Span<T>*, std::size_t, double);
DLOPT_INSTANTIATE_CLIP(float)
DLOPT_INSTANTIATE_CLIP(double)
#undef DLOPT_INSTANTIATE_CLIP

}  // namespace dlopt
