// bfloat16 products through oneDNN's matmul (see bf16_matmul.hpp); a stub without DLOPT_HAS_ONEDNN.
#include "dlopt/core/bf16_matmul.hpp"

#include <stdexcept>

#if defined(DLOPT_HAS_ONEDNN)
#include <omp.h>

#include <algorithm>
#include <cstring>
#include <exception>
#include <string>
#include <utility>
#include <vector>

#include <oneapi/dnnl/dnnl.hpp>

#include "dlopt/core/formats.hpp"
#endif

namespace dlopt {

#if defined(DLOPT_HAS_ONEDNN)

namespace detail {
namespace {

using dnnl::memory;
constexpr int64_t kTile = 256;  // output tile side: the unit of work of one thread

const dnnl::engine& cpu_engine() {
  static const dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

/// One tile shape's single-threaded matmul primitive (bf16 × bf16 → f32, user scratchpad: the
/// primitive then keeps no state between calls).
struct TileKernel {
  int64_t rows, cols, depth, r_stride;  // r_stride 0: R transposed
  dnnl::matmul primitive;
  std::size_t scratch_bytes;
};

TileKernel make_kernel(int64_t rows, int64_t cols, int64_t depth, int64_t r_stride) {
  const memory::desc l({rows, depth}, memory::data_type::bf16, memory::dims{depth, 1});
  const memory::desc r({depth, cols}, memory::data_type::bf16,
                       r_stride ? memory::dims{r_stride, 1} : memory::dims{1, depth});
  const memory::desc d({rows, cols}, memory::data_type::f32, memory::dims{cols, 1});
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
#if DNNL_VERSION_MAJOR >= 3
  const dnnl::matmul::primitive_desc pd(cpu_engine(), l, r, d, attr);
#else
  const dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(l, r, d), attr, cpu_engine());
#endif
  return {rows, cols, depth, r_stride, dnnl::matmul(pd), pd.scratchpad_desc().get_size()};
}

/// This thread's kernel for a tile shape (a product has at most four: full and edge tiles).
const TileKernel& kernel_for(int64_t rows, int64_t cols, int64_t depth, int64_t r_stride) {
  thread_local std::vector<TileKernel> cache;
  for (const TileKernel& t : cache)
    if (t.rows == rows && t.cols == cols && t.depth == depth && t.r_stride == r_stride) return t;
  if (cache.size() >= 64) cache.clear();
  cache.push_back(make_kernel(rows, cols, depth, r_stride));
  return cache.back();
}

}  // namespace

bool has_bf16_matmul() {
  // oneDNN has bfloat16 matmul kernels only for some CPUs (AVX-512 and newer): elsewhere making the
  // primitive throws, and Muon keeps its Eigen path. Asked once, on a small product.
  static const bool available = [] {
    try {
      make_kernel(16, 16, 16, 16);
      return true;
    } catch (const dnnl::error&) {
      return false;
    }
  }();
  return available;
}

void bf16_matmul(const uint16_t* L, const uint16_t* R, bool r_transposed, int64_t m, int64_t k, int64_t n,
                 bool symmetric, float alpha, const uint16_t* add, float beta, uint16_t* out) {
  if (!has_bf16_matmul())
    throw std::logic_error("dlopt::detail::bf16_matmul: oneDNN has no bfloat16 matmul for this CPU");
  if (m <= 0 || n <= 0 || k <= 0) throw std::invalid_argument("dlopt::detail::bf16_matmul: empty product");
  const int64_t tm = (m + kTile - 1) / kTile, tn = (n + kTile - 1) / kTile;
  std::vector<std::pair<int64_t, int64_t>> tiles;
  for (int64_t i = 0; i < tm; ++i)
    for (int64_t j = symmetric ? i : 0; j < tn; ++j) tiles.emplace_back(i, j);
  const int64_t count = int64_t(tiles.size());
  std::exception_ptr error;  // an exception must not leave the parallel region (std::terminate)
#pragma omp parallel if (count > 1)  // one tile (a small matrix): no threads to wake
  {
    // oneDNN (OpenMP runtime) reads the thread count when a primitive is made and run: one thread
    // per tile, so a tile's summation order is the same whatever dlopt's thread count.
    omp_set_num_threads(1);
    dnnl::stream stream(cpu_engine());
    std::vector<float> acc(std::size_t(kTile * kTile));
    std::vector<unsigned char> scratch;
#pragma omp for schedule(dynamic, 1)
    for (int64_t t = 0; t < count; ++t) try {
      const int64_t i0 = tiles[t].first * kTile, j0 = tiles[t].second * kTile;
      const int64_t rows = std::min(kTile, m - i0), cols = std::min(kTile, n - j0);
      const TileKernel& kern = kernel_for(rows, cols, k, r_transposed ? 0 : n);
      if (scratch.size() < kern.scratch_bytes) scratch.resize(kern.scratch_bytes);
      const dnnl::engine& eng = cpu_engine();
      const memory::desc ld({rows, k}, memory::data_type::bf16, memory::dims{k, 1});
      const memory::desc rd({k, cols}, memory::data_type::bf16,
                            r_transposed ? memory::dims{1, k} : memory::dims{n, 1});
      const memory::desc dd({rows, cols}, memory::data_type::f32, memory::dims{cols, 1});
      const memory::desc sd({int64_t(kern.scratch_bytes)}, memory::data_type::u8, memory::dims{1});
      memory lm(ld, eng, const_cast<uint16_t*>(L + i0 * k));
      memory rm(rd, eng, const_cast<uint16_t*>(r_transposed ? R + j0 * k : R + j0));
      memory dm(dd, eng, acc.data());
      memory sm(sd, eng, scratch.data());
      kern.primitive.execute(stream, {{DNNL_ARG_SRC, lm}, {DNNL_ARG_WEIGHTS, rm}, {DNNL_ARG_DST, dm},
                                      {DNNL_ARG_SCRATCHPAD, sm}});
      stream.wait();
      const bool mirror = symmetric && i0 != j0;
      for (int64_t x = 0; x < rows; ++x)
        for (int64_t y = 0; y < cols; ++y) {
          float v = alpha * acc[std::size_t(x * cols + y)];
          if (add) v = beta * formats::bf16_to_float(add[(i0 + x) * n + j0 + y]) + v;
          const uint16_t h = formats::float_to_bf16(v);
          out[(i0 + x) * n + j0 + y] = h;
          if (mirror) out[(j0 + y) * n + i0 + x] = h;
        }
    } catch (...) {
#pragma omp critical(dlopt_bf16_matmul_error)
      if (!error) error = std::current_exception();
    }
  }
  if (error) std::rethrow_exception(error);
}

}  // namespace detail

const char* bf16_matmul_library() {
  static const std::string name = [] {
    if (!detail::has_bf16_matmul()) return std::string("none");
    const dnnl_version_t* v = dnnl_version();
    return "oneDNN " + std::to_string(v->major) + "." + std::to_string(v->minor) + "." + std::to_string(v->patch);
  }();
  return name.c_str();
}

#else  // built without oneDNN

const char* bf16_matmul_library() { return "none"; }

namespace detail {

bool has_bf16_matmul() { return false; }

void bf16_matmul(const uint16_t*, const uint16_t*, bool, int64_t, int64_t, int64_t, bool, float, const uint16_t*,
                 float, uint16_t*) {
  throw std::logic_error("dlopt::detail::bf16_matmul: libdlopt was built without oneDNN");
}

}  // namespace detail

#endif

}  // namespace dlopt
