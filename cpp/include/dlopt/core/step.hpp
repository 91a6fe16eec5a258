#pragma once
/// @file step.hpp
/// The functional core: one fused, multi-tensor optimizer step over caller-owned flat buffers.
/// Every front end (the C++ Optimizer class, the Python bindings, the benchmark) goes through
/// dlopt::step, so validation, the step counter and the kernel dispatch live here only.

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "dlopt/core/rule.hpp"

namespace dlopt {

/// Number of per-element state buffers a rule may use.
template <class Rule>
constexpr std::size_t num_slots = std::tuple_size<decltype(Rule::slots)>::value;

/// One parameter tensor's part in a step. Buffers are contiguous and hold `size` elements;
/// `slots[k]` may be null only where the rule does not use slot k under `config`.
template <class Rule, class T>
struct TensorStep {
  T* param = nullptr;
  const T* grad = nullptr;
  std::array<T*, num_slots<Rule>> slots{};
  int64_t size = 0;
  const typename Rule::Config* config = nullptr;
  TensorScalars* scalars = nullptr;
};

namespace cpu {

/// A tensor with its per-step coefficients resolved: what the CPU kernel loops over.
template <class Rule, class T>
struct Segment {
  T* param;
  const T* grad;
  std::array<T*, num_slots<Rule>> slots;
  int64_t size;
  typename Rule::template Coeffs<T> coeffs;
};

/// Applies Rule::update to every element of every segment in one parallel pass.
/// Work is split into fixed-size blocks, so results do not depend on the thread count.
/// Compiled into libdlopt for every rule and for float and double.
template <class Rule, class T>
void run(const Segment<Rule, T>* segments, std::size_t count);

}  // namespace cpu

namespace detail {

/// The checks of a step, shared by every backend: throws before anything is modified.
template <class Rule, class T>
void check_step(const TensorStep<Rule, T>* tensors, std::size_t count) {
  for (std::size_t i = 0; i < count; ++i) {
    const TensorStep<Rule, T>& t = tensors[i];
    if (!t.config || !t.scalars || t.size < 0 || (t.size > 0 && (!t.param || !t.grad)))
      throw InvalidArgument("tensor " + std::to_string(i) + ": missing buffer or config");
    t.config->validate();
    for (std::size_t k = 0; k < num_slots<Rule>; ++k)
      if (t.size > 0 && !t.slots[k] && Rule::uses_slot(*t.config, int(k)))
        throw InvalidArgument("tensor " + std::to_string(i) + ": state buffer '" +
                              Rule::slots[k] + "' is missing");
  }
}

/// Advances each tensor's step counter and resolves its coefficients (after check_step): the
/// segments every backend runs. The vector is thread-local scratch, reused by the next step.
template <class Rule, class T>
std::vector<cpu::Segment<Rule, T>>& begin_step(const TensorStep<Rule, T>* tensors,
                                               std::size_t count) {
  thread_local std::vector<cpu::Segment<Rule, T>> segments;
  segments.clear();
  for (std::size_t i = 0; i < count; ++i) {
    const TensorStep<Rule, T>& t = tensors[i];
    t.scalars->step += 1;
    segments.push_back(
        {t.param, t.grad, t.slots, t.size, Rule::template coeffs<T>(*t.config, *t.scalars)});
  }
  return segments;
}

}  // namespace detail

/// Validates every tensor's config and buffers, then advances each tensor's step counter and
/// updates parameters and state in place. Throws before touching anything if an argument is bad.
/// Buffers are host memory; dlopt::cuda::step (dlopt/cuda/step.hpp) is the device counterpart.
template <class Rule, class T>
void step(const TensorStep<Rule, T>* tensors, std::size_t count) {
  detail::check_step(tensors, count);
  std::vector<cpu::Segment<Rule, T>>& segments = detail::begin_step(tensors, count);
  cpu::run(segments.data(), segments.size());
}

/// Threads used by CPU kernels (OpenMP); 1 in a build without OpenMP.
int get_num_threads();
/// Sets the threads used by CPU kernels; n < 1 is an error.
void set_num_threads(int n);

}  // namespace dlopt
