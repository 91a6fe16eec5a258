#pragma once
/// @file resume.hpp
/// dlopt::save / dlopt::load: a training run (parameters, optimizer state, schedule position) in
/// one checkpoint file (docs/checkpoint-format.md) laid out exactly as Python's `dlopt.save` lays
/// it out, so a run started in C++ resumes in Python and the other way round, bit for bit.
///
/// @code
///   dlopt::Adam<float> opt({{w.data(), n}, {b.data(), 1}});
///   dlopt::StepDecay schedule{1e-3, 100, 0.5};
///   int64_t epoch = 0;                      // the schedule's step (Python's last_epoch)
///   ... opt.step(grads); opt.config().lr = schedule.lr(++epoch); ...
///   dlopt::SaveOptions save;
///   save.names = {"w", "b"};
///   save.scheduler = dlopt::SchedulerState{"StepLR", epoch, {1e-3}};
///   dlopt::save("run.dlopt", opt, save);
///   std::optional<dlopt::SchedulerState> s = dlopt::load("run.dlopt", opt, {"w", "b"});
///   epoch = s->last_epoch;                  // parameters, state and config are restored
/// @endcode

#include <algorithm>
#include <cstring>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "dlopt/checkpoint.hpp"
#include "dlopt/param_group_keys.hpp"
#include "dlopt/optim/optimizer.hpp"

namespace dlopt {

/// Where a learning-rate schedule stands. The closed forms of dlopt/schedule.hpp are functions of
/// the step alone, so this is all a resumed run needs; it is saved in the keys of Python's
/// LRScheduler.state_dict(): last_epoch, base_lrs, _last_lr and _step_count (= last_epoch + 1).
struct SchedulerState {
  std::string type;              ///< Python's class name ("StepLR", ...): Python refuses another; may be empty
  int64_t last_epoch = 0;        ///< the schedule's step: the next optimizer step uses lr(last_epoch)
  std::vector<double> base_lrs;  ///< the initial lr of each param group (C++ optimizers have one)
  std::vector<double> last_lrs;  ///< the lrs at last_epoch (Python's _last_lr); empty: the optimizer's lr
};

/// A hyperparameter as a checkpoint holds it, by its Config field name.
struct ConfigValue {
  using Kind = group_keys::ValueKind;  ///< Real, Integer or Boolean
  std::string name;        ///< the Config field, e.g. "beta1"
  double value = 0;        ///< its value (an integer or a boolean as a double)
  Kind kind = Kind::Real;  ///< its type as Python sees it
};

/// One parameter's optimizer state as a checkpoint holds it: Python's state entry.
struct TensorStateRecord {
  int64_t step = 0;  ///< Python's state["step"]
  std::vector<std::pair<std::string, double>> scalars;  ///< the rule's scalars by name
  std::vector<CheckpointArray> arrays;  ///< named by state key: a slot, "<slot>_scale", "master_param"
};

/// An optimizer with one param group, whatever its rule and parameter type.
struct OptimizerRecord {
  std::string type;  ///< the registry name (Python's class name): "Adam", ...
  std::vector<ConfigValue> config;  ///< every Config field
  StorageOptions options;           ///< the state format, the rounding of 16-bit parameters, master weights
  std::optional<double> initial_lr;  ///< Python's group["initial_lr"], which its schedulers set
  std::vector<std::string> param_names;  ///< the group's parameters; empty when saved by index
  std::vector<std::optional<TensorStateRecord>> state;  ///< per parameter, in the group's order
  /// Python's group["train_mode"] for optimizers with modes (Schedule-Free; OptimizerState::train_mode).
  bool train_mode = true;
};

/// The parts of a checkpoint a training run resumes from. `params` are named by parameter name.
struct TrainingCheckpoint {
  std::vector<CheckpointArray> params;       ///< the parameters, named by parameter name
  std::optional<OptimizerRecord> optimizer;  ///< absent in a checkpoint of parameters only
  std::optional<SchedulerState> scheduler;   ///< absent without a scheduler
};

/// Writes `c` atomically (as write_checkpoint) in Python's layout: the optimizer state keyed by
/// parameter name, the param group in Python's keys (betas, eps pairs, ...), types recorded.
void write_training_checkpoint(const std::string& path, const TrainingCheckpoint& c);
/// Reads a checkpoint written by dlopt.save (one param group) or write_training_checkpoint. Throws
/// CheckpointError for a file that is not one, or whose optimizer has several param groups.
TrainingCheckpoint read_training_checkpoint(const std::string& path);

/// The checkpoint dtype of a storage: "<f4", "bfloat16", "|i1", ...
const char* storage_dtype(Storage s);
/// The storage of a checkpoint dtype; nullopt when no storage has it.
std::optional<Storage> storage_from_dtype(const std::string& dtype);

/// What dlopt::save needs besides the optimizer.
struct SaveOptions {
  std::vector<std::string> names;            ///< one distinct name per parameter, in the optimizer's order
  std::vector<std::vector<int64_t>> shapes;  ///< each parameter's dims; empty: from ParamView (rank <= 3)
  std::optional<SchedulerState> scheduler;  ///< the scheduler to save with it, if any
};

namespace detail {

/// A parameter's dims from its view: a vector, a matrix (rows x cols), or batch x (rows / batch) x cols.
inline std::vector<int64_t> view_dims(const TensorShape& t) {
  if (t.rows <= 0) return {t.size};
  if (t.batch <= 1) return {t.rows, t.cols()};
  return {t.batch, t.rows / t.batch, t.cols()};
}

/// TensorShape of a parameter of `dims` (as the Python binding sees an array).
inline TensorShape shape_of_dims(const std::vector<int64_t>& dims) {
  TensorShape t{1, 0, 1};
  for (int64_t d : dims) t.size *= d;
  if (dims.size() >= 2) t.rows = t.size / std::max<int64_t>(dims.back(), 1);
  for (std::size_t i = 0; i + 2 < dims.size(); ++i) t.batch *= dims[i];
  if (dims.size() >= 2 && dims.back() == 0) t.rows = 0;
  return t;
}

/// Slot k's dims for a parameter of `dims` (torch's (..., R, 1) and (..., 1, C) for factored slots).
template <class Rule>
std::vector<int64_t> slot_dims(int k, const std::vector<int64_t>& dims, const TensorShape& t) {
  switch (Rule::slot_shape(k, t.rows)) {
    case SlotShape::Rows: {
      std::vector<int64_t> d(dims.begin(), dims.end() - 1);
      d.push_back(1);
      return d;
    }
    case SlotShape::Cols: {
      std::vector<int64_t> d(dims.begin(), dims.end() - 2);
      d.push_back(1);
      d.push_back(dims.back());
      return d;
    }
    default: return dims;
  }
}

template <class Config>
std::vector<ConfigValue> config_values(Config c) {
  std::vector<ConfigValue> out;
  c.visit([&](const char* name, auto& field) {
    using F = std::decay_t<decltype(field)>;
    const auto kind = std::is_same_v<F, bool> ? ConfigValue::Kind::Boolean
                      : std::is_integral_v<F> ? ConfigValue::Kind::Integer
                                              : ConfigValue::Kind::Real;
    out.push_back({name, double(field), kind});
  });
  return out;
}

/// The Config whose fields `values` names (others keep their defaults; names that are no field of
/// it are ignored, as Python ignores param-group keys that are not hyperparameters).
template <class Config>
Config config_from_values(const std::vector<ConfigValue>& values) {
  Config c;
  for (const ConfigValue& v : values)
    c.visit([&](const char* name, auto& field) {
      if (v.name == name) field = static_cast<std::decay_t<decltype(field)>>(v.value);
    });
  return c;
}

inline CheckpointArray owned_array(std::string name, Storage s, std::vector<int64_t> dims, const void* data,
                                   std::size_t nbytes) {
  CheckpointArray a{std::move(name), storage_dtype(s), std::move(dims), {}};
  a.data.resize(nbytes);
  if (nbytes) std::memcpy(a.data.data(), data, nbytes);
  return a;
}

template <class Rule>
TensorStateRecord tensor_record(const TensorState<Rule>& t, const std::vector<int64_t>& dims) {
  const TensorShape shape = shape_of_dims(dims);
  TensorStateRecord r;
  r.step = t.scalars.step;
  for (std::size_t j = 0; j < Rule::scalars.size(); ++j) r.scalars.emplace_back(Rule::scalars[j], t.scalars.value[j]);
  for (std::size_t k = 0; k < num_slots<Rule>; ++k) {
    const StateBuffer& b = t.slots[k];
    if (b.empty()) continue;
    r.arrays.push_back(owned_array(Rule::slots[k], b.storage, slot_dims<Rule>(int(k), dims, shape), b.bytes.data(),
                                   b.bytes.size()));
    if (!b.scales.empty())
      r.arrays.push_back(owned_array(std::string(Rule::slots[k]) + "_scale", Storage::Float32,
                                     {int64_t(b.scales.size())}, b.scales.data(), b.scales.size() * sizeof(float)));
  }
  if (!t.master.empty())
    r.arrays.push_back(owned_array("master_param", Storage::Float32, dims, t.master.data(), t.master.size() * sizeof(float)));
  return r;
}

/// Parameter `what`'s state from its record: throws CheckpointError for an entry the rule does not
/// have or an array of the wrong kind; the sizes and storages are check_state's to judge.
template <class Rule>
TensorState<Rule> tensor_state(const TensorStateRecord& r, const std::string& what) {
  TensorState<Rule> t;
  t.scalars.step = r.step;
  for (const auto& [name, value] : r.scalars) {
    std::size_t j = 0;
    while (j < Rule::scalars.size() && name != Rule::scalars[j]) ++j;
    if (j == Rule::scalars.size()) throw CheckpointError(what + ": unknown entry '" + name + "'");
    t.scalars.value[j] = value;
  }
  for (const CheckpointArray& a : r.arrays) {
    const std::string where = what + "['" + a.name + "']";
    if (a.name == "master_param") {
      t.master.resize(std::size_t(a.numel()));
      std::memcpy(t.master.data(), a.as<float>(), t.master.size() * sizeof(float));
      continue;
    }
    bool found = false;
    for (std::size_t k = 0; k < num_slots<Rule> && !found; ++k) {
      StateBuffer& b = t.slots[k];
      if (a.name == Rule::slots[k]) {
        const std::optional<Storage> s = storage_from_dtype(a.dtype);
        if (!s) throw CheckpointError(where + ": dtype " + a.dtype + " is no state storage");
        b.storage = *s;
        b.bytes.assign(a.data.begin(), a.data.end());
        found = true;
      } else if (a.name == std::string(Rule::slots[k]) + "_scale") {
        b.scales.resize(std::size_t(a.numel()));
        std::memcpy(b.scales.data(), a.as<float>(), b.scales.size() * sizeof(float));
        found = true;
      }
    }
    if (!found) throw CheckpointError(what + ": unknown entry '" + a.name + "'");
  }
  return t;
}

}  // namespace detail

/// Saves the optimizer's parameters (named `options.names`), its state and config, and the
/// schedule's position to `path`, in the layout `dlopt.load` reads (Python can resume the run).
template <class Rule, class T>
void save(const std::string& path, const Optimizer<Rule, T>& opt, const SaveOptions& options) {
  const std::vector<ParamView<T>>& params = opt.params();
  if (options.names.size() != params.size())
    throw InvalidArgument("names: expected " + std::to_string(params.size()) + " parameter names, got " +
                          std::to_string(options.names.size()));
  if (!options.shapes.empty() && options.shapes.size() != params.size())
    throw InvalidArgument("shapes: expected " + std::to_string(params.size()) + " shapes, got " +
                          std::to_string(options.shapes.size()));
  const OptimizerState<Rule> state = opt.state_dict();
  TrainingCheckpoint c;
  OptimizerRecord& r = c.optimizer.emplace();
  r.type = Rule::name;
  r.config = detail::config_values(state.config);
  r.options = state.options;
  r.train_mode = state.train_mode;
  r.param_names = options.names;
  for (std::size_t i = 0; i < params.size(); ++i) {
    std::vector<int64_t> dims = options.shapes.empty() ? detail::view_dims(params[i].shape()) : options.shapes[i];
    if (detail::shape_of_dims(dims).size != params[i].size)
      throw InvalidArgument("shapes[" + std::to_string(i) + "]: does not hold " + std::to_string(params[i].size) +
                            " elements");
    const TensorState<Rule>& t = state.tensors[i];
    bool stepped = t.scalars.step > 0 || !t.master.empty();
    for (const StateBuffer& b : t.slots) stepped = stepped || !b.empty();
    r.state.push_back(stepped ? std::optional(detail::tensor_record(t, dims)) : std::nullopt);
    c.params.push_back(detail::owned_array(options.names[i], storage_of<T>, std::move(dims), params[i].data,
                                           std::size_t(params[i].size) * sizeof(T)));
  }
  if (options.scheduler) {
    c.scheduler = options.scheduler;
    if (c.scheduler->last_lrs.empty()) c.scheduler->last_lrs = {double(state.config.lr)};
    if (!c.scheduler->base_lrs.empty()) r.initial_lr = c.scheduler->base_lrs[0];
  }
  write_training_checkpoint(path, c);
}

/// Restores parameters (by `names`, the optimizer's order), optimizer state and config from a
/// checkpoint written by dlopt::save or Python's dlopt.save; returns the schedule's position if one
/// was saved. Everything is checked first (optimizer type, names, shapes, dtypes, every state
/// buffer as load_state_dict checks it): on error nothing changes.
template <class Rule, class T>
std::optional<SchedulerState> load(const std::string& path, Optimizer<Rule, T>& opt,
                                   const std::vector<std::string>& names) {
  const std::vector<ParamView<T>>& params = opt.params();
  if (names.size() != params.size())
    throw InvalidArgument("names: expected " + std::to_string(params.size()) + " parameter names, got " +
                          std::to_string(names.size()));
  for (std::size_t i = 0; i < names.size(); ++i)
    if (std::find(names.begin(), names.begin() + std::ptrdiff_t(i), names[i]) != names.begin() + std::ptrdiff_t(i))
      throw InvalidArgument("names: '" + names[i] + "' appears twice");
  const TrainingCheckpoint c = read_training_checkpoint(path);
  auto mismatch = [&](const std::string& why) { return CheckpointError("checkpoint '" + path + "' does not match: " + why); };
  if (!c.optimizer) throw mismatch("it holds no optimizer state");
  const OptimizerRecord& r = *c.optimizer;
  if (r.type != Rule::name) throw mismatch("its optimizer is a " + r.type + ", not a " + Rule::name);
  if (r.state.size() != params.size())
    throw mismatch("its optimizer has " + std::to_string(r.state.size()) + " parameters, this one " +
                   std::to_string(params.size()));
  OptimizerState<Rule> state{detail::config_from_values<typename Rule::Config>(r.config), r.options,
                             std::vector<TensorState<Rule>>(params.size()), r.train_mode};
  std::vector<const CheckpointArray*> values(params.size());
  for (std::size_t i = 0; i < params.size(); ++i) {
    std::size_t saved = i;  // by index unless the state is keyed by name
    if (!r.param_names.empty()) {
      saved = std::find(r.param_names.begin(), r.param_names.end(), names[i]) - r.param_names.begin();
      if (saved == r.param_names.size()) throw mismatch("its optimizer has no parameter '" + names[i] + "'");
    }
    for (const CheckpointArray& a : c.params)
      if (a.name == names[i]) values[i] = &a;
    if (!values[i]) throw mismatch("it holds no parameter '" + names[i] + "'");
    const CheckpointArray& a = *values[i];
    const TensorShape shape = detail::shape_of_dims(a.shape);
    if (a.dtype != storage_dtype(storage_of<T>) || shape.size != params[i].size ||
        (params[i].rows > 0 && (shape.rows != params[i].rows || shape.batch != params[i].batch)))
      throw mismatch("parameter '" + names[i] + "' is " + a.dtype + " of " + std::to_string(shape.size) +
                     " elements in the checkpoint, " + storage_dtype(storage_of<T>) + " of " +
                     std::to_string(params[i].size) + " (rows " + std::to_string(params[i].rows) + ") here");
    if (r.state[saved]) state.tensors[i] = detail::tensor_state<Rule>(*r.state[saved], "state['" + names[i] + "']");
  }
  opt.check_state(state);
  opt.load_state_dict(std::move(state));  // cannot fail now
  for (std::size_t i = 0; i < params.size(); ++i)
    if (params[i].size) std::memcpy(params[i].data, values[i]->data.data(), values[i]->data.size());
  return c.scheduler;
}

}  // namespace dlopt
