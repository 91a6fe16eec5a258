#pragma once
// A small JSON reader and writer for checkpoint headers (internal: not installed). The reader takes
// what Python's json.dumps writes (RFC 8259); numbers keep whether they were written as integers.

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace dlopt::json {

struct Value {
  enum class Kind { Null, Bool, Int, Real, String, Array, Object };
  Kind kind = Kind::Null;
  bool boolean = false;
  int64_t integer = 0;
  double real = 0;
  std::string text;
  std::vector<Value> items;
  std::vector<std::pair<std::string, Value>> members;

  bool is(Kind k) const { return kind == k; }
  bool is_number() const { return kind == Kind::Int || kind == Kind::Real; }
  double number() const { return kind == Kind::Int ? double(integer) : real; }
  /// The member `key` of an object, or nullptr.
  const Value* find(const std::string& key) const;
};

/// Parses `text`; throws std::runtime_error saying where it is malformed.
Value parse(const std::string& text);

/// `s` as a JSON string literal (quotes included).
std::string quote(const std::string& s);
/// A finite double as the shortest text that reads back to it, always with a '.' or an exponent
/// (as Python's repr, so Python reads a float).
std::string real(double x);

}  // namespace dlopt::json
