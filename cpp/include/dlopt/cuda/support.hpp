#pragma once
/// @file
/// What the CUDA backend can run, decided once, with the one message for what it cannot. The
/// Python device plan (python/bindings/device_plan.hpp), dlopt::cuda::step, make_device_optimizer
/// and the GPU linear model (cuda::LinearTrainer, and Python's estimators with device="cuda"
/// through cuda::check_config) all ask here, so an option the GPU cannot honour fails with the
/// same words whichever front end reached it. Plain C++ (no CUDA): the checks run, and are tested,
/// in every build.

#include <string>

#include "dlopt/core/error.hpp"
#include "dlopt/core/storage.hpp"

namespace dlopt::cuda {

/// Whether Rule has a CUDA step: the elementwise rules, with or without per-tensor reductions
/// (LAMB, LARS), in every storage format, and the matrix rules with a CUDA step of their own
/// (Rule::device_matrix: Adafactor, cuda/adafactor.cu; Muon, cuda/muon.cu).
template <class Rule>
inline constexpr bool has_step = !Rule::matrix || Rule::device_matrix;

/// The refusal of optimizer `name` on the GPU.
inline InvalidArgument cpu_only(const std::string& name) {
  return InvalidArgument(name + " runs on the CPU only for now (no CUDA kernel for its "
                         "matrix products or line search yet): use NumPy arrays / device='cpu'");
}

/// Throws cpu_only(name) unless optimizer `name` (any case; "lbfgs" included) has a CUDA step.
/// An unknown name passes: make_optimizer names the known ones. Defined with the registry
/// (any_optimizer.cpp).
void require_step(const std::string& name);

}  // namespace dlopt::cuda
