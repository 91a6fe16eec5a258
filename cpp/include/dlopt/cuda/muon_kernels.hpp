#pragma once
/// @file cuda/muon_kernels.hpp
/// The CUDA step of Muon (optim/muon.hpp) as DLOPT_HD kernel bodies and the sequence of launches
/// of one tensor (muon_tensor), written once: cuda/muon.cu runs it with CUDA kernels, the C++ tests
/// (tests/cpp/test_cuda_muon.cpp) with a host emulation that runs every body for every (block,
/// thread) of the launch, so the indexing is checked without a GPU. Internal to dlopt.
///
/// The elementwise parts call MuonRule's own functions (momentum_of, look_ahead, ns_round,
/// ns_divisor, decayed_step), as update_matrix does, so they equal the CPU's bit for bit. The rest
/// differs from the CPU's Eigen / oneDNN in summation order only:
///   - ‖X‖_F: each block sums a kNormChunk-element chunk in double (thread t adds elements t,
///     t + kThreads, … in order; thread 0 adds the threads' sums in order), and one thread adds
///     the chunks' sums in order;
///   - the products: a kBlockTile × kBlockTile tile of the output per block, kMicro × kMicro
///     elements per thread, each element's dot product over the inner index in order (acc += l·r,
///     each product and sum rounded: the kernels are built with --fmad=false), in the accumulation
///     type (float for the bfloat16 mode, as torch's bfloat16 GEMM and oneDNN's accumulate; else
///     the compute type), then
///     out = beta·add + alpha·acc, rounded once to bfloat16 in that mode. No TF32, no library: the
///     bits depend on the shape only.

#include <cmath>
#include <cstddef>
#include <cstdint>

#include "dlopt/core/device.hpp"
#include "dlopt/core/step.hpp"
#include "dlopt/optim/muon.hpp"

#if defined(__CUDA_ARCH__)
#define DLOPT_MUON_UNROLL _Pragma("unroll")
#else
#define DLOPT_MUON_UNROLL
#endif

namespace dlopt::cuda::detail::muon {

constexpr int kThreads = 256;       ///< threads per block of the elementwise and norm kernels
constexpr int kGrid = 16;            ///< a product block is kGrid × kGrid threads (= kThreads)
constexpr int kMicro = 4;            ///< each computing kMicro × kMicro output elements
constexpr int kBlockTile = kGrid * kMicro;  ///< the output tile of a product block, kBlockTile square
constexpr int kSlice = 16;           ///< the inner extent of the slices a block stages at a time
static_assert(kGrid * kGrid == kThreads, "a product block has kThreads threads");
constexpr int64_t kNormChunk = 4096;  ///< elements per block of the norm's first pass
constexpr int64_t kMaxGrid = 65535;   ///< blocks of a grid-stride elementwise launch, at most

/// Where element i of the rows × cols matrix (row-major) lies in X, the wide orientation
/// (its transpose when rows > cols): X is min × max.
DLOPT_HD int64_t wide_index(int64_t rows, int64_t cols, int64_t i) {
  return rows > cols ? (i % cols) * rows + i / cols : i;
}

/// The device buffers of one tensor's step (cudaMallocAsync'd by muon.cu, host memory in the tests).
template <class T>
struct Workspace {
  T* x;            ///< X, m × n (m ≤ n)
  T* next;         ///< the next X
  T* gram;         ///< A = X·Xᵀ, m × m
  T* poly;         ///< b·A + c·A·A, m × m
  double* partial; ///< the norm's chunk sums
  T* divisor;      ///< max(‖X‖_F, ε), one element
  /// Elements of each buffer for an m × n X, in the order above (partial in doubles, divisor 1).
  static void sizes(int64_t m, int64_t n, int64_t out[6]) {
    out[0] = out[1] = m * n, out[2] = out[3] = m * m, out[4] = (m * n + kNormChunk - 1) / kNormChunk, out[5] = 1;
  }
};

// ---- elementwise bodies: f(i) for every element, grid-stride -----------------------------------------

/// B ← momentum, X[wide] ← U rounded as the iteration rounds: update_matrix's first lines.
template <class T>
struct Prepare {
  MuonRule::Coeffs<T> c;
  int64_t rows, cols;
  const T* grad;
  T* buf;
  T* x;
  DLOPT_HD void operator()(int64_t i) const {
    const T b = MuonRule::momentum_of(c, buf[i], grad[i]);
    buf[i] = b;
    x[wide_index(rows, cols, i)] = MuonRule::ns_round(c.bf16, MuonRule::look_ahead(c, grad[i], b));
  }
};

/// X ← X / max(‖X‖_F, ε), rounded as the iteration rounds.
template <class T>
struct Normalize {
  bool bf16;
  const T* divisor;
  T* x;
  DLOPT_HD void operator()(int64_t i) const { x[i] = MuonRule::ns_round(bf16, x[i] / divisor[0]); }
};

/// P ← P·(1 − γλ) − γ'·X (X transposed back).
template <class T>
struct Apply {
  MuonRule::Coeffs<T> c;
  T lr_step;
  int64_t rows, cols;
  const T* x;
  T* param;
  DLOPT_HD void operator()(int64_t i) const {
    param[i] = MuonRule::decayed_step(c, lr_step, param[i], x[wide_index(rows, cols, i)]);
  }
};

/// Blocks of an elementwise launch over n elements.
inline int64_t elementwise_grid(int64_t n) {
  const int64_t blocks = (n + kThreads - 1) / kThreads;
  return blocks < kMaxGrid ? blocks : kMaxGrid;
}

/// Thread `thread` of block `block` (of `grid`) runs f over its elements of [0, n).
template <class F>
DLOPT_HD void elementwise(const F& f, int64_t n, int64_t block, int64_t grid, int thread) {
  for (int64_t i = block * kThreads + thread; i < n; i += grid * kThreads) f(i);
}

// ---- ‖X‖_F² in a fixed order -------------------------------------------------------------------------

/// Shared memory of a norm block: each thread's sum.
struct NormShared {
  double lane[kThreads];
};

/// Chunk `chunk` of x (n elements): thread t's sum of squares into sh.lane[t].
template <class T>
DLOPT_HD void norm_lanes(const T* x, int64_t n, int64_t chunk, NormShared& sh, int thread) {
  const int64_t begin = chunk * kNormChunk, end = begin + kNormChunk < n ? begin + kNormChunk : n;
  double sum = 0;
  for (int64_t i = begin + thread; i < end; i += kThreads) sum += double(x[i]) * double(x[i]);
  sh.lane[thread] = sum;
}

/// After a barrier, thread 0 adds the lanes in order into partial[chunk].
DLOPT_HD void norm_chunk(const NormShared& sh, int64_t chunk, double* partial, int thread) {
  if (thread != 0) return;
  double sum = 0;
  for (int t = 0; t < kThreads; ++t) sum += sh.lane[t];
  partial[chunk] = sum;
}

/// One thread: the chunks' sums in order, then divisor[0] = ns_divisor(√sum) (one thread's work).
template <class T>
struct Divisor {
  MuonRule::Coeffs<T> c;
  const double* partial;
  int64_t chunks;
  T* divisor;
  DLOPT_HD void operator()(int64_t) const {
    double sum = 0;
    for (int64_t k = 0; k < chunks; ++k) sum += partial[k];
    divisor[0] = MuonRule::ns_divisor(c, T(std::sqrt(sum)));
  }
};

// ---- the products: out ← round(beta·add + alpha·(L·R)) ------------------------------------------------

/// One product: L is m × k, R is k × n (or, `r_transposed`, the n × k matrix whose transpose R is);
/// add is m × n or null. Row-major; out aliases none of them.
template <class T, class Acc>
struct Gemm {
  const T* L;
  const T* R;
  bool r_transposed;
  int64_t m, k, n;
  Acc alpha;
  const T* add;
  Acc beta;
  bool bf16;  ///< round out to bfloat16
  T* out;
};

/// Shared memory of a product block: the current kSlice-wide slices of L (kBlockTile rows) and R
/// (kBlockTile columns), in Acc.
template <class Acc>
struct GemmShared {
  Acc l[kBlockTile][kSlice + 1];
  Acc r[kSlice][kBlockTile + 1];  // + 1: a transposed load writes down columns without bank conflicts
};

/// A thread's kMicro × kMicro output elements: rows ty + kGrid·a, columns tx + kGrid·b of the block's
/// tile (ty = thread / kGrid, tx = thread % kGrid), so a warp reads shared memory without conflicts.
template <class Acc>
struct GemmAccumulators {
  Acc v[kMicro][kMicro];
};

/// Thread `thread` loads its elements of the slices at inner offset k0 of tile (bi, bj) (kLoads of L
/// and of R, consecutive threads on consecutive addresses); zeros outside the matrices.
template <class T, class Acc>
DLOPT_HD void gemm_load(const Gemm<T, Acc>& g, int64_t bi, int64_t bj, int64_t k0, GemmShared<Acc>& sh, int thread) {
  for (int e = thread; e < kBlockTile * kSlice; e += kThreads) {
    const int row = e / kSlice, j = e % kSlice;  // L: along its rows
    const int64_t gr = bi * kBlockTile + row, gk = k0 + j;
    sh.l[row][j] = gr < g.m && gk < g.k ? Acc(g.L[gr * g.k + gk]) : Acc(0);
    if (g.r_transposed) {  // R[k0 + j][col] = stored[bj·kBlockTile + col][k0 + j]: along the stored rows
      const int col = e / kSlice;
      const int64_t gc = bj * kBlockTile + col;
      sh.r[j][col] = gc < g.n && gk < g.k ? Acc(g.R[gc * g.k + gk]) : Acc(0);
    } else {
      const int kr = e / kBlockTile, col = e % kBlockTile;
      const int64_t gc = bj * kBlockTile + col, gkr = k0 + kr;
      sh.r[kr][col] = gkr < g.k && gc < g.n ? Acc(g.R[gkr * g.n + gc]) : Acc(0);
    }
  }
}

/// Thread `thread` adds the slices' terms of each of its output elements, in inner order.
template <class T, class Acc>
DLOPT_HD void gemm_accumulate(const Gemm<T, Acc>& g, int64_t k0, const GemmShared<Acc>& sh, int thread,
                              GemmAccumulators<Acc>& acc) {
  const int ty = thread / kGrid, tx = thread % kGrid;
  const int len = g.k - k0 < kSlice ? int(g.k - k0) : kSlice;
  for (int j = 0; j < len; ++j) {
    Acc l[kMicro], r[kMicro];
    DLOPT_MUON_UNROLL
    for (int a = 0; a < kMicro; ++a) l[a] = sh.l[ty + kGrid * a][j], r[a] = sh.r[j][tx + kGrid * a];
    DLOPT_MUON_UNROLL
    for (int a = 0; a < kMicro; ++a) {
      DLOPT_MUON_UNROLL
      for (int b = 0; b < kMicro; ++b) acc.v[a][b] = acc.v[a][b] + l[a] * r[b];
    }
  }
}

/// Thread `thread` writes its output elements.
template <class T, class Acc>
DLOPT_HD void gemm_store(const Gemm<T, Acc>& g, int64_t bi, int64_t bj, int thread, const GemmAccumulators<Acc>& acc) {
  const int ty = thread / kGrid, tx = thread % kGrid;
  for (int a = 0; a < kMicro; ++a)
    for (int b = 0; b < kMicro; ++b) {
      const int64_t row = bi * kBlockTile + ty + kGrid * a, col = bj * kBlockTile + tx + kGrid * b;
      if (row >= g.m || col >= g.n) continue;
      Acc v = g.alpha * acc.v[a][b];
      if (g.add) v = g.beta * Acc(g.add[row * g.n + col]) + v;
      g.out[row * g.n + col] = T(MuonRule::ns_round(g.bf16, v));
    }
}

/// The block of tile (bi, bj): `all_threads(f)` runs f(thread) for every thread, then a barrier;
/// `acc(thread)` is that thread's GemmAccumulators (registers on the GPU), zero at the start.
template <class T, class Acc, class AccOf, class AllThreads>
DLOPT_HD void gemm_tile(const Gemm<T, Acc>& g, int64_t bi, int64_t bj, GemmShared<Acc>& sh, const AccOf& acc,
                        const AllThreads& all_threads) {
  for (int64_t k0 = 0; k0 < g.k; k0 += kSlice) {
    all_threads([&](int thread) { gemm_load(g, bi, bj, k0, sh, thread); });
    all_threads([&](int thread) { gemm_accumulate(g, k0, sh, thread, acc(thread)); });
  }
  all_threads([&](int thread) { gemm_store(g, bi, bj, thread, acc(thread)); });
}

// ---- one tensor's step -----------------------------------------------------------------------------

/// Muon's step of one rows × cols tensor as a sequence of launches on `launch`, which provides
///   elementwise(n, f)           f(i) for i in [0, n) (grid elementwise_grid(n), kThreads threads);
///   norm(x, n, partial)         the chunk sums of ‖x‖² (one block per chunk: norm_lanes, norm_chunk);
///   single(f)                   f(0) on one thread;
///   gemm(Gemm<T, Acc>)          one product (a block of kThreads per kBlockTile² tile: gemm_tile).
/// Acc: float in the bfloat16 mode, else T (muon.cu and the tests pick it).
template <class T, class Acc, class Launch>
void muon_tensor(const MuonRule::Coeffs<T>& c, int64_t rows, int64_t cols, T* param, const T* grad, T* buf,
                 const Workspace<T>& w, Launch& launch) {
  const int64_t size = rows * cols, m = rows < cols ? rows : cols, n = size / m;
  launch.elementwise(size, Prepare<T>{c, rows, cols, grad, buf, w.x});
  const int64_t chunks = (size + kNormChunk - 1) / kNormChunk;
  launch.norm(static_cast<const T*>(w.x), size, w.partial);
  launch.single(Divisor<T>{c, w.partial, chunks, w.divisor});
  launch.elementwise(size, Normalize<T>{c.bf16, w.divisor, w.x});
  T* x = w.x;
  T* next = w.next;
  for (int s = 0; s < c.steps; ++s) {  // A ← X·Xᵀ;  P ← b·A + c·A·A;  X ← a·X + P·X
    launch.gemm(Gemm<T, Acc>{x, x, true, m, n, m, Acc(1), nullptr, Acc(0), c.bf16, w.gram});
    launch.gemm(Gemm<T, Acc>{w.gram, w.gram, false, m, m, m, Acc(c.c), w.gram, Acc(c.b), c.bf16, w.poly});
    launch.gemm(Gemm<T, Acc>{w.poly, x, false, m, m, n, Acc(1), x, Acc(c.a), c.bf16, next});
    T* t = x;
    x = next, next = t;
  }
  launch.elementwise(size, Apply<T>{c, MuonRule::adjusted_lr(c, rows, cols), rows, cols, x, param});
}

/// The device step of Muon's segments (cuda/muon.cu): muon_tensor of each, on `stream`, with its
/// workspace from the stream's memory pool (cudaMallocAsync, freed in stream order).
template <class T>
void run(const cpu::Segment<MuonRule, T>* segments, std::size_t count, void* stream);

}  // namespace dlopt::cuda::detail::muon
