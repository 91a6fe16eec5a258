#pragma once
/// @file cuda/step.hpp
/// The CUDA backend of dlopt::step: the same rules, run on device buffers by one multi-tensor
/// kernel launch per step. In a build without CUDA (DLOPT_HAS_CUDA == 0) these functions exist
/// and throw dlopt::NotCompiled (is_available() is false, device_count() is 0).
///
/// @code
///   // d_w, d_g, d_m, d_v: device buffers of n floats (cudaMalloc), state zero-initialised.
///   dlopt::AdamConfig config;
///   dlopt::TensorScalars scalars;
///   dlopt::TensorStep<dlopt::AdamRule, float> t;
///   t.param = d_w; t.grad = d_g; t.slots = {d_m, d_v, nullptr}; t.size = n;
///   t.config = &config; t.scalars = &scalars;
///   dlopt::cuda::step(&t, 1, stream);   // asynchronous on `stream`
/// @endcode

#include <cstddef>
#include <vector>

#include "dlopt/core/step.hpp"
#include "dlopt/cuda/support.hpp"

namespace dlopt::cuda {

/// True when this build has the CUDA kernels and a CUDA device is visible.
bool is_available();

/// Number of visible CUDA devices (0 in a build without CUDA or when the driver reports none).
int device_count();

/// Throws dlopt::NotCompiled in a build without CUDA, std::runtime_error when no device is usable.
void require_device();

/// Device counterpart of cpu::run: `segments` live in host memory, their buffers on the current
/// device. Every segment of the call is processed by one kernel launch, enqueued asynchronously
/// on `stream` (a cudaStream_t; nullptr is the legacy default stream).
template <class Rule, class T>
void run(const cpu::Segment<Rule, T>* segments, std::size_t count, void* stream);

/// dlopt::step on device buffers (param, grad, slots, 8-bit slots' scales and the master copy are
/// device or managed pointers of the current device): the same checks, storage formats, rounding
/// (stochastic rounding draws the same bits) and step counters as dlopt::step (shared code), then
/// one launch on `stream`; the results equal the CPU's bit for bit. Host scalars (step counters) are advanced when the call returns; the
/// buffers are updated when the stream reaches the kernel. If the launch fails, the counters are
/// restored and the error is rethrown.
template <class Rule, class T>
void step(const TensorStep<Rule, T>* tensors, std::size_t count, void* stream = nullptr) {
  dlopt::detail::check_step(tensors, count);
  if constexpr (!has_step<Rule>) throw cpu_only(Rule::name);
  require_device();
  thread_local std::vector<TensorScalars> saved;
  saved.clear();
  for (std::size_t i = 0; i < count; ++i) saved.push_back(*tensors[i].scalars);
  std::vector<cpu::Segment<Rule, T>>& segments = dlopt::detail::begin_step(tensors, count);
  try {
    run(segments.data(), segments.size(), stream);
  } catch (...) {
    for (std::size_t i = count; i-- > 0;) *tensors[i].scalars = saved[i];  // reverse: shared scalars
    throw;
  }
}

}  // namespace dlopt::cuda
