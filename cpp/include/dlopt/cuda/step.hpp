#pragma once
/// @file cuda/step.hpp
/// The CUDA backend of dlopt::step: the same rules, run on device buffers.
/// In a build without CUDA (DLOPT_HAS_CUDA == 0) these functions throw dlopt::NotCompiled.

#include <cstddef>

#include "dlopt/core/step.hpp"

namespace dlopt::cuda {

/// True when this build has the CUDA kernels and a CUDA device is visible.
bool is_available();

/// Device counterpart of cpu::run: segments live in host memory, their buffers on the device.
/// Enqueued on `stream` (a cudaStream_t; nullptr is the default stream), asynchronously.
template <class Rule, class T>
void run(const cpu::Segment<Rule, T>* segments, std::size_t count, void* stream);

}  // namespace dlopt::cuda
