#pragma once
/// @file storage.hpp
/// How a step's buffers are stored. A rule computes in its compute type (float for float32 and
/// 16-bit parameters, double for float64 ones) and never sees storage: the backend loads each
/// buffer into the compute type and stores it back in its own format (core/formats.hpp).
///
///   Float64, Float32     IEEE binary64 / binary32
///   BFloat16, Float16    16-bit parameters and gradients (bf16 also for state); a 16-bit
///                        parameter is written back with stochastic rounding or to nearest even
///   Int8, UInt8          8-bit blockwise state: one code per element and one float32 scale
///                        (the block's absolute maximum) per kQuantBlock elements

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>

#include "dlopt/core/error.hpp"

namespace dlopt {

/// How a buffer's elements are stored: IEEE formats, or 8-bit codes with per-block scales (docs/formats.md).
enum class Storage : uint8_t { Float64, Float32, BFloat16, Float16, Int8, UInt8 };

/// Elements per scale of the 8-bit formats: 256, as bitsandbytes' and torchao's blockwise 8-bit
/// optimizers. It divides the CPU block (4096), its staging chunk (1024) and the CUDA chunk, so
/// every work unit quantizes whole blocks of its own and no two threads share a scale.
constexpr int64_t kQuantBlock = 256;

/// Number of scales of an 8-bit buffer of `size` elements.
constexpr int64_t scale_count(int64_t size) { return (size + kQuantBlock - 1) / kQuantBlock; }

/// The format's NumPy-style name ("float32", "bfloat16", "int8", ...).
inline const char* storage_name(Storage s) {
  switch (s) {
    case Storage::Float64: return "float64";
    case Storage::Float32: return "float32";
    case Storage::BFloat16: return "bfloat16";
    case Storage::Float16: return "float16";
    case Storage::Int8: return "int8";
    case Storage::UInt8: return "uint8";
  }
  return "?";
}

/// Bytes per element of the format.
inline std::size_t storage_bytes(Storage s) {
  switch (s) {
    case Storage::Float64: return 8;
    case Storage::Float32: return 4;
    case Storage::BFloat16:
    case Storage::Float16: return 2;
    default: return 1;
  }
}

constexpr bool is_16bit(Storage s) { return s == Storage::BFloat16 || s == Storage::Float16; }  ///< bfloat16 or float16
constexpr bool is_8bit(Storage s) { return s == Storage::Int8 || s == Storage::UInt8; }  ///< int8 or uint8 codes

/// bfloat16 bits (arithmetic happens in float): the C++ type of Storage::BFloat16.
struct bfloat16 {
  uint16_t bits;  ///< the upper 16 bits of a float32
};
/// IEEE binary16 bits (arithmetic happens in float): the C++ type of Storage::Float16.
struct float16 {
  uint16_t bits;  ///< the binary16 bits
};

/// The Storage of C++ type T (`value`), for the four types that have one.
template <class T> struct StorageOf;
/// double: Float64.
template <> struct StorageOf<double> {
  static constexpr Storage value = Storage::Float64;  ///< the format
};
/// float: Float32.
template <> struct StorageOf<float> {
  static constexpr Storage value = Storage::Float32;  ///< the format
};
/// bfloat16: BFloat16.
template <> struct StorageOf<bfloat16> {
  static constexpr Storage value = Storage::BFloat16;  ///< the format
};
/// float16: Float16.
template <> struct StorageOf<float16> {
  static constexpr Storage value = Storage::Float16;  ///< the format
};
/// The Storage of C++ type T (const ignored).
template <class T>
constexpr Storage storage_of = StorageOf<std::remove_const_t<T>>::value;

/// The type a rule computes in for parameters of type T: double for double, float otherwise.
template <class T>
using compute_t = std::conditional_t<std::is_same_v<T, double>, double, float>;

/// One buffer of a step: where it is and how it is stored. `scale` holds scale_count(size)
/// float32 block scales for the 8-bit formats and is null otherwise. A typed pointer converts
/// implicitly, so native buffers are written as before: `t.param = w; t.slots = {m, v, nullptr};`.
struct Buffer {
  void* data = nullptr;  ///< the elements (null: no buffer)
  Storage storage = Storage::Float32;  ///< how they are stored
  float* scale = nullptr;  ///< block scales of the 8-bit formats, else null

  Buffer() = default;
  Buffer(std::nullptr_t) {}  ///< no buffer
  /// A typed pointer, stored as its type.
  template <class T, class = decltype(storage_of<T>)>
  Buffer(T* p) : data(const_cast<std::remove_const_t<T>*>(p)), storage(storage_of<T>) {}
  Buffer(void* p, Storage s, float* sc = nullptr) : data(p), storage(s), scale(sc) {}  ///< any format
  explicit operator bool() const { return data != nullptr; }  ///< whether there is a buffer
};

/// What a state slot holds, which decides the formats it may take:
///   Signed       signed values (first moments, momentum): float, bfloat16, or Int8 codes;
///   NonNegative  values >= 0 (second moments, maxima): float, bfloat16, or UInt8 codes;
///   Wide         kept in the compute type whatever is asked (e.g. Adagrad's ever-growing sum,
///                whose small increments a 16- or 8-bit format would round away).
enum class SlotKind : uint8_t { Signed, NonNegative, Wide };

/// The state format a user asks for (`state_dtype=`): Default is the compute type.
enum class StateDType : uint8_t { Default, Float32, BFloat16, Int8 };

/// The StateDType of a `state_dtype=` value ("" or "None", "float32", "bfloat16", "int8"); InvalidArgument otherwise.
inline StateDType parse_state_dtype(const std::string& name) {
  if (name.empty() || name == "None") return StateDType::Default;
  if (name == "float32") return StateDType::Float32;
  if (name == "bfloat16") return StateDType::BFloat16;
  if (name == "int8") return StateDType::Int8;
  throw InvalidArgument("Invalid state_dtype: '" + name +
                        "' (expected None, 'float32', 'bfloat16' or 'int8')");
}

/// The name of a StateDType as Python writes it (None, 'float32', ...), for messages.
inline const char* state_dtype_name(StateDType d) {
  switch (d) {
    case StateDType::Default: return "None";
    case StateDType::Float32: return "'float32'";
    case StateDType::BFloat16: return "'bfloat16'";
    case StateDType::Int8: return "'int8'";
  }
  return "?";
}

/// Storage of the compute type of parameters stored as `param`.
inline Storage compute_storage(Storage param) {
  return param == Storage::Float64 ? Storage::Float64 : Storage::Float32;
}

/// The one place that decides how a state slot of kind `kind` is stored, for parameters stored
/// as `param` and state_dtype `requested`. Allocation, validation and checkpoints all ask here.
inline Storage slot_storage(SlotKind kind, StateDType requested, Storage param) {
  if (kind == SlotKind::Wide) return compute_storage(param);
  switch (requested) {
    case StateDType::Default: return compute_storage(param);
    case StateDType::Float32: return Storage::Float32;
    case StateDType::BFloat16: return Storage::BFloat16;
    case StateDType::Int8: return kind == SlotKind::Signed ? Storage::Int8 : Storage::UInt8;
  }
  return compute_storage(param);
}

/// How the rounding of 16-bit parameters is done, per tensor.
struct Rounding {
  bool stochastic = true;  ///< false: round to nearest even
  uint64_t seed = 0;       ///< with the step and `tensor`, keys the counter-based random bits
  uint64_t tensor = 0;     ///< the tensor's index in its optimizer
};

/// Options of an optimizer's storage (Python: the param-group keys of the same names).
struct StorageOptions {
  StateDType state_dtype = StateDType::Default;  ///< the state format asked for
  bool stochastic_rounding = true;  ///< round 16-bit parameters stochastically (else to nearest even)
  bool master_weights = false;  ///< keep a float32 copy of 16-bit parameters in the state
  uint64_t seed = 0;  ///< keys the stochastic rounding's random bits

  /// Every field equal.
  bool operator==(const StorageOptions& o) const {
    return state_dtype == o.state_dtype && stochastic_rounding == o.stochastic_rounding &&
           master_weights == o.master_weights && seed == o.seed;
  }
  bool operator!=(const StorageOptions& o) const { return !(*this == o); }  ///< some field differs
};

/// Elements [0, n) of `b` as float32 (dequantized for 8 bits): for inspection and checkpoints.
void to_float(const Buffer& b, int64_t n, float* out);
/// Stores n float32 values into `b` in its storage (16-bit to nearest even, 8 bits quantized).
void from_float(const Buffer& b, int64_t n, const float* in);
/// Fills n elements of `b` with `value` (exactly for float64).
void fill_state(const Buffer& b, int64_t n, double value);

}  // namespace dlopt
