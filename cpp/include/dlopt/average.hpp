#pragma once
/// @file average.hpp
/// Fused multi-tensor passes behind gradient accumulation, parameter averaging (EMA) and
/// Lookahead. Each takes lists of caller-owned buffers, pairs `dst[k]` with `src[k]` (same size),
/// and updates `dst` in place in one pass split into fixed blocks (bitwise identical results
/// for any thread count). Sizes are checked before anything is written.

#include <cstddef>

#include "dlopt/core/span.hpp"

namespace dlopt {

/// Gradient accumulation: dst = src (overwrite, the first micro-batch) or dst += src.
template <class T>
void accumulate(const Span<T>* dst, const Span<const T>* src, std::size_t count, bool overwrite);

/// Exponential moving average of parameters:
/// shadow = decay * shadow + (1 - decay) * param, with both coefficients rounded to T.
template <class T>
void ema_update(const Span<T>* shadow, const Span<const T>* params, std::size_t count, double decay);

/// Lookahead synchronisation (Zhang et al., 2019, Algorithm 1):
/// slow = slow + alpha * (fast - slow); fast = slow.
template <class T>
void lookahead_update(const Span<T>* slow, const Span<T>* fast, std::size_t count, double alpha);

}  // namespace dlopt
