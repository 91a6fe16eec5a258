#pragma once
/// @file
/// Python's param-group keywords that are not one Config field each, written once: torch's
/// composite keywords (betas -> beta1, beta2[, beta3]; eps -> eps1, eps2; ...), the keywords whose
/// None stands for a Config value (alpha_warmup=None -> 0, clip_exponent=None -> clip = false,
/// eps=(None, x) -> eps1 = -1), and the keywords that name one of two choices (adjust_lr_fn,
/// ns_dtype). The Python binding splits a live param group with this table (group_fields,
/// python/bindings/optim_fields.cpp) and the C++ checkpoint reader and writer translate Python's
/// keys with it (cpp/src/train/resume.cpp), so the two agree by construction. Plain C++: no Python.

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace dlopt::group_keys {

/// The type of a Config field as Python sees it (a checkpoint writes it so).
enum class ValueKind : uint8_t { Real, Integer, Boolean };

/// One keyword for several Config fields, in order: a value has min_parts to max_parts of them
/// (betas: two, or three for AdEMAMix's beta3; the Config decides which it needs).
struct Composite {
  const char* key;                    ///< the Python keyword, e.g. "betas"
  std::array<const char*, 3> fields;  ///< nullptr past the last
  std::size_t min_parts;              ///< fewest parts a value may have
  std::size_t max_parts;              ///< most parts a value may have
  bool scalar_is_field;  ///< a single number is the Config field of the same name (eps of every other optimizer)
  const char* expected;  ///< what a message says a value should be
};

/// Every composite keyword.
inline constexpr Composite kComposites[] = {
    {"betas", {"beta1", "beta2", "beta3"}, 2, 3, false, "a pair of floats"},
    {"eps", {"eps1", "eps2", nullptr}, 2, 2, true, "a pair (eps1 or None, eps2)"},  // Adafactor
    {"etas", {"etaminus", "etaplus", nullptr}, 2, 2, false, "a pair of floats (etaminus, etaplus)"},
    {"step_sizes", {"step_size_min", "step_size_max", nullptr}, 2, 2, false, "a pair of floats (min, max)"},
    {"ns_coefficients", {"ns_a", "ns_b", "ns_c"}, 3, 3, false, "three floats (a, b, c)"},
};

/// Python's `key` = None is the Config's `field` = `value`. A `key` unlike `field` hides the field:
/// Python has no keyword for it (clip is clip_exponent's None). "eps[0]" is the first part of the
/// eps pair (None: the dtype's machine epsilon), not a keyword.
struct NoneMeans {
  const char* key;    ///< the Python keyword (or "eps[0]")
  const char* field;  ///< the Config field None sets
  double value;       ///< what None sets it to (a negative value: any negative value means None)
  ValueKind kind;     ///< the keyword's type when it is not None
};

/// Every keyword that may be None.
inline constexpr NoneMeans kNoneMeans[] = {
    {"alpha_warmup", "alpha_warmup", 0, ValueKind::Integer},  // AdEMAMix: no warmup
    {"beta3_warmup", "beta3_warmup", 0, ValueKind::Integer},
    {"clip_exponent", "clip", 0, ValueKind::Boolean},  // ADOPT: no clipping
    {"eps[0]", "eps1", -1, ValueKind::Real},           // Adafactor: the dtype's machine epsilon
};

/// A keyword that names one of two choices: the Config's `field` is the choice's index (0 or 1).
/// With none_is_first, None is the first choice (and is what a writer writes for it).
struct Choice {
  const char* key;                   ///< the Python keyword, e.g. "adjust_lr_fn"
  const char* field;                 ///< the Config field holding the index
  std::array<const char*, 2> names;  ///< the two choices, index 0 then 1
  bool none_is_first;                ///< None means choice 0
  ValueKind kind;                    ///< the Config field's type as Python sees it
};

/// Every choice keyword.
inline constexpr Choice kChoices[] = {
    {"adjust_lr_fn", "adjust_lr", {"original", "match_rms_adamw"}, true, ValueKind::Real},  // Muon
    {"ns_dtype", "ns_bfloat16", {"float32", "bfloat16"}, false, ValueKind::Boolean},
};

/// The entry of `table` whose `member` is `name`, or nullptr.
template <class Entry, std::size_t N>
const Entry* find_entry(const Entry (&table)[N], const char* Entry::*member, std::string_view name) {
  for (const Entry& e : table)
    if (name == e.*member) return &e;
  return nullptr;
}

/// The composite keyword `key`, or nullptr.
inline const Composite* composite(std::string_view key) { return find_entry(kComposites, &Composite::key, key); }

/// The None meaning of keyword `key`, or nullptr.
inline const NoneMeans* none_for_key(std::string_view key) { return find_entry(kNoneMeans, &NoneMeans::key, key); }
/// The None meaning of Config field `field`, or nullptr.
inline const NoneMeans* none_for_field(std::string_view field) { return find_entry(kNoneMeans, &NoneMeans::field, field); }

/// Whether Config value `v` is what `n`'s None stands for (a negative sentinel: any negative value,
/// as Adafactor reads every eps1 < 0 as the machine epsilon).
inline bool means_none(const NoneMeans& n, double v) { return n.value < 0 ? v < 0 : v == n.value; }

/// The choice keyword `key`, or nullptr.
inline const Choice* choice(std::string_view key) { return find_entry(kChoices, &Choice::key, key); }
/// The choice keyword that sets Config field `field`, or nullptr.
inline const Choice* choice_for_field(std::string_view field) { return find_entry(kChoices, &Choice::field, field); }

/// The index of `name` among the choices, -1 if it is none of them.
inline int choice_index(const Choice& c, std::string_view name) {
  return name == c.names[0] ? 0 : name == c.names[1] ? 1 : -1;
}

/// What a message says a choice keyword should be: "None, 'original' or 'match_rms_adamw'".
inline std::string choice_expected(const Choice& c) {
  return std::string(c.none_is_first ? "None, " : "") + "'" + c.names[0] + "' or '" + c.names[1] + "'";
}

}  // namespace dlopt::group_keys
