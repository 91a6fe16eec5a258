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
/// (LAMB, LARS), in every storage format; not the whole-matrix updates (Muon, Adafactor).
template <class Rule>
inline constexpr bool has_step = !Rule::matrix;

/// The refusal of optimizer `name` on the GPU.
inline InvalidArgument cpu_only(const std::string& name) {
  return InvalidArgument(name + " runs on the CPU only for now (no CUDA kernel for its "
                         "matrix products or line search yet): use NumPy arrays / device='cpu'");
}

/// Throws cpu_only(name) unless optimizer `name` (any case; "lbfgs" included) has a CUDA step.
/// An unknown name passes: make_optimizer names the known ones. Defined with the registry
/// (any_optimizer.cpp).
void require_step(const std::string& name);

/// For the Python device plan, which keeps every slot in the parameters' own dtype: a state_dtype
/// asking for another one (bfloat16 or int8, float32 for float64 parameters) is refused (`where`
/// prefixes the message). make_device_optimizer and the GPU linear model allocate every format.
/// master_weights concerns 16-bit parameters only, which the GPU does not take: there, as on the
/// CPU for float32/float64 parameters, it changes nothing.
inline void require_native_state(const std::string& where, StateDType requested, Storage param) {
  if (requested == StateDType::Default || (requested == StateDType::Float32 && param == Storage::Float32)) return;
  throw InvalidArgument(where + "state_dtype=" + state_dtype_name(requested) +
                        " runs on the CPU only for now (on the GPU, state is kept in the parameters' dtype, " +
                        storage_name(param) + ")");
}

}  // namespace dlopt::cuda
