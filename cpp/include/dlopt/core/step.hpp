#pragma once
/// @file step.hpp
/// The functional core: one fused, multi-tensor optimizer step over caller-owned flat buffers.
/// Every front end (the C++ Optimizer class, the Python bindings, the benchmark) goes through
/// dlopt::step, so validation, the step counter and the kernel dispatch live here only.

#include <array>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "dlopt/core/formats.hpp"
#include "dlopt/core/rule.hpp"
#include "dlopt/core/storage.hpp"

namespace dlopt {

/// Number of per-element state buffers a rule may use.
template <class Rule>
constexpr std::size_t num_slots = std::tuple_size<decltype(Rule::slots)>::value;

/// One parameter tensor's part in a step, with the compute type C (float or double). Buffers hold
/// `size` elements each in their own storage (core/storage.hpp): the parameter in C or, for
/// C = float, bfloat16 / float16 (then the gradient has the parameter's format); each state slot
/// in C, float32, bfloat16 or 8 bits as slot_storage allows. `slots[k]` may be null only where
/// the rule does not use slot k under `config`. `master` (16-bit parameters only, optional) is a
/// float32 copy the rule reads and writes instead of the parameter, which then receives it
/// rounded to nearest.
template <class Rule, class C>
struct TensorStep {
  Buffer param;                                  ///< the parameters, updated in place
  Buffer grad;                                   ///< their gradient (read only)
  std::array<Buffer, num_slots<Rule>> slots{};   ///< the rule's state slots, in Rule::slots order
  float* master = nullptr;                       ///< float32 master copy of 16-bit parameters, or null
  int64_t size = 0;                              ///< elements of the parameter
  const typename Rule::Config* config = nullptr; ///< the tensor's hyperparameters
  TensorScalars* scalars = nullptr;              ///< its step count and host scalars (advanced by the step)
  Rounding rounding;                             ///< how 16-bit parameters are rounded
  int64_t rows = 0;   ///< TensorShape::rows: all dimensions but the last (≥ 2-D tensors), 0 for a vector
  int64_t batch = 1;  ///< TensorShape::batch: all dimensions but the last two
  /// The tensor's shape as rules see it.
  TensorShape shape() const { return {size, rows, batch}; }
};

namespace cpu {

/// A tensor with its per-step coefficients resolved: what the kernels loop over. `native`: every
/// buffer is stored in C (the direct loop); otherwise the CPU loop stages blocks through C.
template <class Rule, class C>
struct Segment {
  Buffer param;                               ///< TensorStep::param
  Buffer grad;                                ///< TensorStep::grad
  std::array<Buffer, num_slots<Rule>> slots;  ///< TensorStep::slots
  float* master;                              ///< TensorStep::master
  int64_t size;                               ///< TensorStep::size
  typename Rule::template Coeffs<C> coeffs;   ///< this step's coefficients of the tensor
  int64_t rows;           ///< TensorStep::rows
  int64_t batch;          ///< TensorStep::batch
  uint64_t rounding_key;  ///< formats::rounding_key(seed, step, tensor); 0 without stochastic rounding
  bool stochastic;        ///< rounding of 16-bit parameters (not from a master copy), bf16 and 8-bit state
  bool native;           ///< every buffer stored in C: the direct loop, no staging
};

/// Applies Rule::update to every element of every segment in one parallel pass.
/// Work is split into fixed-size blocks, so results do not depend on the thread count.
/// Compiled into libdlopt for every rule and for float and double.
template <class Rule, class T>
void run(const Segment<Rule, T>* segments, std::size_t count);

/// The reduction phase of a rule with `reductions` > 0: for each segment, the sums of the terms of
/// Rule::reduce over its elements, folded into its coefficients by Rule::finish. The order is fixed:
/// within each 4096-element block, element j adds to lane j % 16 (in double), the 16 lanes combine
/// pairwise (l += l + 8, then l + 4, l + 2, l + 1), and the blocks add up in order; so the sums do
/// not depend on the thread count.
template <class Rule, class T>
void reduce(Segment<Rule, T>* segments, std::size_t count);

}  // namespace cpu

namespace detail {

/// Throws unless buffer `b` may hold what `what` names: `allowed` storages, a scale for 8 bits.
inline void check_buffer(const Buffer& b, std::initializer_list<Storage> allowed, const std::string& what) {
  bool ok = false;
  for (Storage s : allowed) ok = ok || b.storage == s;
  if (!ok) {
    std::string list;
    for (Storage s : allowed) list += std::string(list.empty() ? "" : ", ") + storage_name(s);
    throw WrongType(what + ": stored as " + storage_name(b.storage) + ", expected " + list);
  }
  if (is_8bit(b.storage) && !b.scale) throw InvalidArgument(what + ": 8-bit state without its scales");
}

/// The checks of a step, shared by every backend: throws before anything is modified.
template <class Rule, class C>
void check_step(const TensorStep<Rule, C>* tensors, std::size_t count) {
  constexpr Storage wide = storage_of<C>;
  for (std::size_t i = 0; i < count; ++i) {
    const TensorStep<Rule, C>& t = tensors[i];
    const std::string name = "tensor " + std::to_string(i);
    if (!t.config || !t.scalars || t.size < 0 || (t.size > 0 && (!t.param || !t.grad)))
      throw InvalidArgument(name + ": missing buffer or config");
    if (t.scalars->step < 0 || t.scalars->step >= (int64_t(1) << 53))
      throw InvalidArgument(name + ": step count " + std::to_string(t.scalars->step) + " is outside [0, 2^53)");
    t.config->validate();
    if (wide == Storage::Float64) check_buffer(t.param, {Storage::Float64}, name + " param");
    else check_buffer(t.param, {Storage::Float32, Storage::BFloat16, Storage::Float16}, name + " param");
    if (t.grad.storage != t.param.storage)
      throw WrongType(name + ": a " + storage_name(t.grad.storage) + " gradient for a " +
                      storage_name(t.param.storage) + " parameter");
    if (t.master && !is_16bit(t.param.storage))
      throw InvalidArgument(name + ": master weights are for 16-bit parameters only");
    if constexpr (Rule::matrix) {
      const bool matrix = t.rows > 0 && t.batch > 0 && t.size % t.rows == 0 && t.rows % t.batch == 0;
      if (t.size > 0 && (Rule::matrix_2d ? !matrix || t.batch != 1 : !matrix && (t.rows != 0 || t.batch != 1)))
        throw InvalidArgument(name + ": " + Rule::name + (Rule::matrix_2d ? " updates 2-D parameters only" : "") +
                              " (rows " + std::to_string(t.rows) + ", batch " + std::to_string(t.batch) +
                              ", size " + std::to_string(t.size) + ")");
      bool native = t.param.storage == storage_of<C> && !t.master;
      for (std::size_t k = 0; k < num_slots<Rule>; ++k)
        native = native && (slot_elements<Rule>(*t.config, int(k), t.shape()) == 0 || t.slots[k].storage == storage_of<C>);
      if (t.size > 0 && !native)
        throw InvalidArgument(name + ": " + Rule::name +
                              " takes float32/float64 parameters with state of the same dtype for now");
    }
    for (std::size_t k = 0; k < num_slots<Rule>; ++k) {
      if (t.size == 0 || slot_elements<Rule>(*t.config, int(k), t.shape()) == 0) continue;
      const std::string what = name + " state '" + Rule::slots[k] + "'";
      if (!t.slots[k]) throw InvalidArgument(what + " is missing");
      switch (Rule::slot_kind(int(k))) {
        case SlotKind::Wide: check_buffer(t.slots[k], {wide}, what); break;
        case SlotKind::Signed: check_buffer(t.slots[k], {wide, Storage::Float32, Storage::BFloat16, Storage::Int8}, what); break;
        case SlotKind::NonNegative: check_buffer(t.slots[k], {wide, Storage::Float32, Storage::BFloat16, Storage::UInt8}, what); break;
      }
    }
  }
}

/// Advances each tensor's step counter and resolves its coefficients (after check_step): the
/// segments every backend runs. The vector is thread-local scratch, reused by the next step.
template <class Rule, class C>
std::vector<cpu::Segment<Rule, C>>& begin_step(const TensorStep<Rule, C>* tensors, std::size_t count) {
  thread_local std::vector<cpu::Segment<Rule, C>> segments;
  segments.clear();
  for (std::size_t i = 0; i < count; ++i) {
    const TensorStep<Rule, C>& t = tensors[i];
    TensorScalars& s = *t.scalars;
    if (s.step == 0)
      for (std::size_t k = 0; k < Rule::scalars.size(); ++k) s.value[k] = Rule::scalar_init(*t.config, int(k));
    s.step += 1;
    if constexpr (!Rule::advance_after_coeffs) Rule::advance(*t.config, s);
    cpu::Segment<Rule, C> seg{t.param, t.grad, {}, t.master, t.size,
                              Rule::template coeffs<C>(*t.config, s), t.rows, t.batch, 0, false, true};
    if constexpr (Rule::advance_after_coeffs) Rule::advance(*t.config, s);
    bool native = t.param.storage == storage_of<C> && !t.master;
    for (std::size_t k = 0; k < num_slots<Rule>; ++k) {  // only the slots in use: no traffic for others
      if (slot_elements<Rule>(*t.config, int(k), t.shape()) == 0) continue;
      seg.slots[k] = t.slots[k];
      native = native && t.slots[k].storage == storage_of<C>;
    }
    seg.native = native;
    seg.stochastic = t.rounding.stochastic;
    if (seg.stochastic && !native)
      seg.rounding_key = formats::rounding_key(t.rounding.seed, t.scalars->step, t.rounding.tensor);
    segments.push_back(seg);
  }
  return segments;
}

}  // namespace detail

/// Validates every tensor's config and buffers, then advances each tensor's step counter and
/// updates parameters and state in place. Throws before touching anything if an argument is bad.
/// Buffers are host memory; dlopt::cuda::step (dlopt/cuda/step.hpp) is the device counterpart.
template <class Rule, class C>
void step(const TensorStep<Rule, C>* tensors, std::size_t count) {
  detail::check_step(tensors, count);
  std::vector<cpu::Segment<Rule, C>>& segments = detail::begin_step(tensors, count);
  if constexpr (Rule::reductions > 0) cpu::reduce(segments.data(), segments.size());
  cpu::run(segments.data(), segments.size());
}

/// Threads used by CPU kernels (OpenMP); 1 in a build without OpenMP.
int get_num_threads();
/// Sets the threads used by CPU kernels; n < 1 is an error.
void set_num_threads(int n);
/// The instruction set the CPU kernels run with: "native" (built with DLOPT_NATIVE=ON for the build
/// machine), "x86-64-v4" (AVX-512), "x86-64-v3" (AVX2) or "x86-64" (SSE2) as picked at load time in a
/// portable x86-64 build, or "generic" (a portable build elsewhere: the compiler's baseline).
const char* cpu_kernels();

}  // namespace dlopt
