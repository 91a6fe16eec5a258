#pragma once
/// @file error.hpp
/// Exceptions thrown by dlopt. The Python bindings map InvalidArgument to ValueError and
/// WrongType to TypeError; the message always names the offending argument.

#include <sstream>
#include <stdexcept>
#include <string>

namespace dlopt {

/// A value outside its domain (negative lr, betas outside [0, 1), a size mismatch, ...).
struct InvalidArgument : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

/// An argument of the wrong kind (a dtype or a type the API does not take).
struct WrongType : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

/// A backend this build does not contain (e.g. CUDA in a CPU-only build).
struct NotCompiled : std::runtime_error {
  /// `what`: the missing backend and the operation that needs it.
  explicit NotCompiled(const std::string& what)
      : std::runtime_error(what + ": dlopt was built without this backend") {}
};

namespace detail {
/// Throws InvalidArgument("Invalid <name>: <value> (<why>)") unless ok.
inline void require(bool ok, const char* name, double value, const char* why) {
  if (!ok)
  {
    std::ostringstream msg;
    msg << "Invalid " << name << ": " << value << " (" << why << ")";
    throw InvalidArgument(msg.str());
  }
}
}  // namespace detail

}  // namespace dlopt
