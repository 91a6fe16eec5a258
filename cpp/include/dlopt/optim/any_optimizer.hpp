#pragma once
/// @file any_optimizer.hpp
/// AnyOptimizer<T>: an optimizer chosen at run time by name ("adam", "SGD", ... case-insensitive),
/// with hyperparameters set by their Config field names. Used by the linear models, dlopt-bench
/// and applications that read their optimizer from a config file.
///
/// @code
///   auto opt = dlopt::make_optimizer<float>("adamw", {{w.data(), n}}, {{"lr", 1e-3}, {"beta2", 0.99}});
///   opt->step({g.data()});
///   opt->set("lr", 5e-4);                                  // e.g. from a schedule, between steps
///   dlopt::SaveOptions save;
///   save.names = {"w"};
///   opt->save("run.dlopt", save);                            // as dlopt::save (dlopt/resume.hpp)
/// @endcode

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "dlopt/optim/optimizer.hpp"
#include "dlopt/resume.hpp"

namespace dlopt {

/// An optimizer whose rule is chosen at run time (see make_optimizer); T is the parameters' type.
template <class T>
class AnyOptimizer {
 public:
  virtual ~AnyOptimizer() = default;
  /// One step; grads[i] belongs to params[i], nullptr skips it.
  virtual void step(const std::vector<const T*>& grads) = 0;
  /// Sets a hyperparameter by its Config field name (booleans as 0 / 1); validated at once.
  virtual void set(const std::string& key, double value) = 0;
  /// The hyperparameter `key` (a Config field name; booleans as 0 / 1).
  virtual double get(const std::string& key) const = 0;
  /// The registry name (PyTorch's class name, e.g. "Adam").
  virtual const char* name() const = 0;
  /// Schedule-Free's train / eval switch (Optimizer::train); no-ops for optimizers without modes.
  virtual void train() = 0;
  virtual void eval() = 0;  ///< see train()
  /// False after eval() (optimizers with modes only).
  virtual bool train_mode() const = 0;
  /// dlopt::save and dlopt::load (dlopt/resume.hpp) of this optimizer: parameters, state, config
  /// and a schedule's position, in the file Python's dlopt.save / dlopt.load read and write.
  /// Device optimizers copy through the host: the same file.
  virtual void save(const std::string& path, const SaveOptions& options) const = 0;
  /// Restores what save wrote (`names`: the parameters' names in the file, in order); returns the
  /// schedule's position when the file has one. Checks everything first: on error nothing changes.
  virtual std::optional<SchedulerState> load(const std::string& path, const std::vector<std::string>& names) = 0;
};

/// Builds the optimizer registered as `name` (case-insensitive) over caller-owned buffers of T
/// (float, double, dlopt::bfloat16, dlopt::float16), its state stored as `options` says.
/// Throws InvalidArgument for an unknown name, an unknown hyperparameter or an invalid value.
template <class T>
std::unique_ptr<AnyOptimizer<T>> make_optimizer(const std::string& name,
                                                std::vector<ParamView<T>> params,
                                                const std::map<std::string, double>& hyperparameters = {},
                                                const StorageOptions& options = {});

/// make_optimizer over device buffers of float or double (dlopt/cuda/step.hpp): the state lives in
/// device memory, stored as `options` says (state_dtype bfloat16 / int8 / float32 as on the CPU,
/// 8-bit block scales on the device too), and every step is one dlopt::cuda::step launch on `stream`
/// (a cudaStream_t; nullptr: the legacy default stream). train() / eval() move the parameters on the
/// device (Schedule-Free; a step after eval() throws), and save / load write and read the host
/// Optimizer's checkpoint (state in its stored form, the mode), copying through the host. Throws
/// InvalidArgument for what the GPU cannot run (dlopt/cuda/support.hpp), NotCompiled in a build
/// without CUDA (at the first step, save or load).
template <class T>
std::unique_ptr<AnyOptimizer<T>> make_device_optimizer(const std::string& name,
                                                       std::vector<ParamView<T>> params,
                                                       const std::map<std::string, double>& hyperparameters = {},
                                                       void* stream = nullptr, const StorageOptions& options = {});

/// Registry names of every optimizer.
std::vector<std::string> optimizer_names();

}  // namespace dlopt
