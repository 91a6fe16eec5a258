#pragma once
/// @file state.hpp
/// An optimizer's whole state as C++ values: what Optimizer::state_dict() returns and
/// load_state_dict() takes, and what dlopt::save / dlopt::load (dlopt/train_checkpoint.hpp) write
/// and read. Every buffer is kept in its stored form (core/storage.hpp), never converted.

#include <array>
#include <cmath>
#include <string>
#include <vector>

#include "dlopt/core/aligned.hpp"
#include "dlopt/core/step.hpp"

namespace dlopt {

/// One state buffer of one tensor, in its storage (core/storage.hpp): the raw elements and, for
/// the 8-bit formats, the block scales. Empty until the tensor's first step.
struct StateBuffer {
  Storage storage = Storage::Float32;  ///< the element format
  AlignedVector<unsigned char> bytes;  ///< the raw elements
  AlignedVector<float> scales;         ///< one scale per block of the 8-bit formats; empty otherwise

  /// True before the tensor's first step (or where the slot is unused).
  bool empty() const { return bytes.empty(); }
  /// The buffer as the step functions take it (null pointers where empty).
  Buffer view() { return {bytes.empty() ? nullptr : bytes.data(), storage, scales.empty() ? nullptr : scales.data()}; }
  /// The elements as T (T must be the storage's type).
  template <class T>
  const T* data() const { return reinterpret_cast<const T*>(bytes.data()); }
};

/// A new state buffer for slot k of a tensor of `shape` (n = slot_elements elements, n > 0), stored
/// as slot_storage(kind, requested, param) says, holding the slot's initial value (8-bit slots with
/// their block scales). The one allocator of C++ state: Optimizer keeps it, the device optimizer
/// (make_device_optimizer) uploads it.
template <class Rule>
StateBuffer new_slot(const typename Rule::Config& config, int k, int64_t n, StateDType requested, Storage param) {
  StateBuffer buf;
  buf.storage = slot_storage(Rule::slot_kind(k), requested, param);
  buf.bytes.resize(std::size_t(n) * storage_bytes(buf.storage));
  if (is_8bit(buf.storage)) buf.scales.resize(std::size_t(scale_count(n)));
  fill_state(buf.view(), n, Rule::slot_init(config, k));
  return buf;
}

/// One parameter's state: its host scalars (the step count and the rule's `scalars`, e.g. NAdam's
/// mu_product), its slots in Rule::slots order (empty where unused, or before its first step) and,
/// with master_weights, its float32 master copy (empty before its first step).
template <class Rule>
struct TensorState {
  TensorScalars scalars;                           ///< the step count and the rule's scalars
  std::array<StateBuffer, num_slots<Rule>> slots;  ///< in Rule::slots order
  AlignedVector<float> master;                     ///< the float32 master copy (master_weights)
};

/// An optimizer's hyperparameters, storage options and per-parameter state.
template <class Rule>
struct OptimizerState {
  typename Rule::Config config;            ///< the hyperparameters
  StorageOptions options;                  ///< the state format, the rounding of 16-bit parameters, master weights
  std::vector<TensorState<Rule>> tensors;  ///< one per parameter, in the optimizer's order
  /// Rules with modes (Schedule-Free): false when saved after eval(), the parameters then holding
  /// the average x (Python's param group key "train_mode"). Always true for other rules.
  bool train_mode = true;
};

namespace detail {

/// Throws InvalidArgument (naming the tensor and slot) unless `s` is a state an optimizer over
/// parameters of `shapes`, stored as `param`, could have reached: a valid config and options, step
/// counts in [0, 2^53) as check_step wants, finite scalars, and each slot present where a tensor
/// has stepped and uses it, with the element count, storage and scales slot_elements and
/// slot_storage give.
template <class Rule>
void check_state(const OptimizerState<Rule>& s, const std::vector<TensorShape>& shapes, Storage param) {
  if (s.tensors.size() != shapes.size())
    throw InvalidArgument("state: holds " + std::to_string(s.tensors.size()) + " tensors, the optimizer has " +
                          std::to_string(shapes.size()));
  s.config.validate();
  if (!s.train_mode && !Rule::has_modes)
    throw InvalidArgument(std::string("state: train_mode is false, but ") + Rule::name + " has no eval mode");
  if (s.options.master_weights && !is_16bit(param))
    throw InvalidArgument("state: master_weights: only for 16-bit parameters");
  for (std::size_t i = 0; i < shapes.size(); ++i) {
    const TensorState<Rule>& t = s.tensors[i];
    const std::string where = "state[" + std::to_string(i) + "]";
    if (t.scalars.step < 0 || t.scalars.step >= (int64_t(1) << 53))
      throw InvalidArgument(where + ": step count " + std::to_string(t.scalars.step) + " is outside [0, 2^53)");
    for (std::size_t j = 0; j < Rule::scalars.size(); ++j)
      if (!std::isfinite(t.scalars.value[j]))
        throw InvalidArgument(where + "['" + Rule::scalars[j] + "']: must be finite");
    for (std::size_t k = 0; k < num_slots<Rule>; ++k) {
      const StateBuffer& b = t.slots[k];
      const std::string what = where + "['" + Rule::slots[k] + "']";
      const int64_t n = slot_elements<Rule>(s.config, int(k), shapes[i]);
      if (b.empty()) {
        if (n > 0 && t.scalars.step > 0) throw InvalidArgument(what + ": missing (the tensor has stepped)");
        continue;
      }
      if (n == 0) throw InvalidArgument(what + ": holds data, but this tensor does not use the slot");
      const Storage want = slot_storage(Rule::slot_kind(int(k)), s.options.state_dtype, param);
      if (b.storage != want)
        throw InvalidArgument(what + ": stored as " + storage_name(b.storage) + ", expected " + storage_name(want));
      if (b.bytes.size() != std::size_t(n) * storage_bytes(want))
        throw InvalidArgument(what + ": " + std::to_string(b.bytes.size()) + " bytes, expected " +
                              std::to_string(std::size_t(n) * storage_bytes(want)));
      if (b.scales.size() != std::size_t(is_8bit(want) ? scale_count(n) : 0))
        throw InvalidArgument(what + ": " + std::to_string(b.scales.size()) + " block scales, expected " +
                              std::to_string(is_8bit(want) ? scale_count(n) : 0));
    }
    if (!t.master.empty() && (!s.options.master_weights || int64_t(t.master.size()) != shapes[i].size))
      throw InvalidArgument(where + "['master_param']: " + std::to_string(t.master.size()) +
                            " elements, expected " + (s.options.master_weights ? std::to_string(shapes[i].size) : "none"));
  }
}

}  // namespace detail
}  // namespace dlopt
