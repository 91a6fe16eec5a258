#pragma once
// The C++ tests' harness, shared by every tests/cpp file: check() counts and reports,
// near() (relative) / near_abs() compare, throws<E>() expects an exception (and optionally a
// message fragment), summary() prints "N passed, M failed" and is main's exit status.

#include <cmath>
#include <cstdio>
#include <functional>
#include <string>

namespace dlopt_test {

inline int passed = 0, failed = 0;

inline void check(bool ok, const std::string& what) {
  (ok ? passed : failed) += 1;
  if (!ok) std::printf("FAILED: %s\n", what.c_str());
}

/// |a - b| <= tol * (1 + |b|).
inline bool near(double a, double b, double tol = 1e-12) { return std::abs(a - b) <= tol * (1 + std::abs(b)); }

/// |a - b| <= tol.
inline bool near_abs(double a, double b, double tol) { return std::abs(a - b) <= tol; }

/// Whether f throws an E (whose message contains `needle`, when given).
template <class E>
bool throws(const std::function<void()>& f, const std::string& needle = "") {
  try {
    f();
  } catch (const E& e) {
    return needle.empty() || std::string(e.what()).find(needle) != std::string::npos;
  } catch (...) {
  }
  return false;
}

inline int summary() {
  std::printf("%d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}

}  // namespace dlopt_test
