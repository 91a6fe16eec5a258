#pragma once
/// @file bf16_matmul.hpp
/// bfloat16 matrix products through a library made for them: oneDNN's matmul (its AVX512-BF16 /
/// AMX kernels), when libdlopt was built with it (CMake's DLOPT_ONEDNN, found → used). Muon's
/// Newton–Schulz iteration in bfloat16 (muon.hpp) runs on it; without it, Muon's Eigen path.
///
/// The product is cut into fixed 256 × 256 output tiles, each computed by one thread with the whole
/// inner dimension (oneDNN single-threaded inside dlopt's OpenMP loop): the tiling depends on the
/// shape only, so the bits do not depend on the thread count.

#include <cstdint>

namespace dlopt {

/// The library bfloat16 products run with: "oneDNN X.Y.Z", or "none" in a build without it or on a CPU
/// oneDNN has no bfloat16 matmul for (Muon's ns_dtype="bfloat16" then uses Eigen's float GEMM and
/// rounds each product to bfloat16).
const char* bf16_matmul_library();

namespace detail {

/// True when bf16_matmul can run: libdlopt was built with oneDNN and oneDNN has a bfloat16 matmul for
/// this CPU (probed once).
bool has_bf16_matmul();

/// out ← bf16(beta·add + alpha·(L·R)), row-major bfloat16 (uint16_t) matrices, the product
/// accumulated in float32 and each element rounded once, to nearest even:
///   L: m × k;  R: k × n, or when `r_transposed` its transpose (n × k, R = that matrix's ᵀ);
///   add: m × n or null (then beta is ignored); out: m × n, may not alias L, R or add.
/// `symmetric` (m == n, L·R and add symmetric, as X·Xᵀ and polynomials of it): only the tiles on
/// and above the diagonal are computed, each mirrored below it. Throws std::logic_error when
/// !has_bf16_matmul().
void bf16_matmul(const uint16_t* L, const uint16_t* R, bool r_transposed, int64_t m, int64_t k, int64_t n,
                 bool symmetric, float alpha, const uint16_t* add, float beta, uint16_t* out);

}  // namespace detail
}  // namespace dlopt
