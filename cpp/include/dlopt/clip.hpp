#pragma once
/// @file clip.hpp
/// Gradient clipping over lists of caller-owned buffers, as torch.nn.utils.clip_grad_norm_ /
/// clip_grad_value_: fused multi-tensor passes, in place.
///
/// Norms are accumulated in double (as torch does on the CPU) in fixed 16K-element blocks whose
/// partial results are combined in block order, so a norm is bitwise identical for any thread
/// count. For float32 gradients the result agrees with torch's to about 1e-7 relative.
///
/// @code
///   std::vector<float> gw(1000), gb(10);
///   dlopt::Span<float> grads[] = {{gw.data(), 1000}, {gb.data(), 10}};
///   double total = dlopt::clip_grad_norm(grads, 2, /*max_norm=*/1.0);   // 2-norm before clipping
/// @endcode

#include <cmath>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <stdexcept>
#include <string>

#include "dlopt/core/error.hpp"
#include "dlopt/core/span.hpp"

namespace dlopt {

/// The total norm is NaN or infinite and the caller asked for an error (error_if_nonfinite).
struct NonFiniteNorm : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// torch.linalg.vector_norm(x, p) of each tensor: out[i] = ||tensors[i]||_p.
/// p = inf: max |x|; p = -inf: min |x|; p = 0: number of non-zeros; otherwise (sum |x|^p)^(1/p).
/// NaN anywhere in a tensor gives NaN (inf/-inf norms included).
template <class T>
void tensor_norms(const Span<const T>* tensors, std::size_t count, double norm_type, double* out);

/// vector_norm of `count` values (how torch combines per-tensor norms into the total norm).
double vector_norm(const double* values, std::size_t count, double norm_type);

/// The norm of all tensors viewed as one vector (0 for an empty list).
template <class T>
double total_norm(const Span<const T>* tensors, std::size_t count, double norm_type = 2.0);

/// torch's clip coefficient: min(max_norm / (total_norm + 1e-6), 1).
inline double clip_coefficient(double max_norm, double total_norm) {
  const double c = max_norm / (total_norm + 1e-6);
  return c < 1.0 ? c : (c == c ? 1.0 : c);  // NaN stays NaN, as torch.clamp keeps it
}

/// x *= factor for every element of every tensor, in one fused pass.
template <class T>
void scale(const Span<T>* tensors, std::size_t count, T factor);

namespace detail {
/// x as Python's repr(float) writes it ("2.0", "inf", "1e-05"): the shortest %g that reads back
/// as x, with ".0" added to an integral value; for messages that must read as torch's.
inline std::string float_repr(double x) {
  if (std::isnan(x)) return "nan";
  if (std::isinf(x)) return x > 0 ? "inf" : "-inf";
  char buf[32];
  for (int precision = 1; precision <= 17; ++precision) {
    std::snprintf(buf, sizeof buf, "%.*g", precision, x);
    if (std::strtod(buf, nullptr) == x) break;
  }
  std::string s = buf;
  if (s.find_first_of(".e") == std::string::npos) s += ".0";
  return s;
}
}  // namespace detail

/// Throws NonFiniteNorm with torch's message when `total` is NaN or infinite.
inline void require_finite_norm(double total, double norm_type) {
  if (!std::isfinite(total)) {
    throw NonFiniteNorm("The total norm of order " + detail::float_repr(norm_type) +
                        " for gradients from `parameters` is non-finite, so it cannot be clipped. "
                        "To disable this error and scale the gradients by the non-finite norm "
                        "anyway, set `error_if_nonfinite=False`");
  }
}

/// Scales the gradients in place by clip_coefficient(max_norm, total) and returns the total
/// norm before clipping (in T's precision, as torch returns it). Gradients are always multiplied,
/// by 1 when no clipping is needed, as in torch. With error_if_nonfinite a NaN/inf total throws
/// NonFiniteNorm before anything is changed.
template <class T>
double clip_grad_norm(const Span<T>* grads, std::size_t count, double max_norm,
                      double norm_type = 2.0, bool error_if_nonfinite = false);

/// Clamps every element to [-clip_value, clip_value] in place (torch.clamp_: min(max(x, -c), c);
/// NaN stays NaN).
template <class T>
void clip_grad_value(const Span<T>* grads, std::size_t count, double clip_value);

}  // namespace dlopt
