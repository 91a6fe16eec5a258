#pragma once
/// @file cuda/adafactor.hpp
/// The bodies of Adafactor's CUDA step (cuda/adafactor.cu), as DLOPT_HD functions: the kernels call
/// them for their block and thread, and the C++ tests run them on the host for every (block, thread)
/// of each launch. The maths is AdafactorRule::Rows' (optim/adafactor.hpp), the very functions
/// AdafactorRule::update_matrix runs on the CPU, over the same 64-row blocks with every sum taken in
/// the CPU's order, so the device step equals the CPU step bit for bit. Internal to dlopt.
///
/// Five launches per step, each over every tensor of the step:
///   1. sums (one block per row block): each row's Σp² and Σg² in LaneSum's order (thread per
///      (row, lane), LaneSum::add_lane, then LaneSum::combine per row), R and 1/√R per row, and the
///      block's column Σg² and Σg²/R (thread per column, rows in order): Rows::sums' numbers;
///   2. statistics (one block per tensor): C per column (Rows::column_statistic), max(mean(R), ε₁)
///      per matrix, √(mean/C) per column, then one thread takes αₜ, the factored Σ U², the cap check
///      and, when the cap binds nowhere, the step — the serial part of update_matrix; V of a vector;
///   3. Σ U² (one block per row block, only for tensors whose cap check failed, and vectors):
///      Rows::u_squares' sums, a thread per (row, lane);
///   4. the step of tensors that took launch 3 (one thread per tensor);
///   5. apply (one block per row block): p ← p·(1 − γλ) + step·U (Rows::apply_row), elementwise.
/// Between launches everything lives in device scratch: the per-tensor table (AdafactorTensor,
/// whose Rows the launches fill in) and its buffers; no host round trip.

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "dlopt/core/blocks.hpp"
#include "dlopt/core/lane_sum.hpp"
#include "dlopt/core/step.hpp"
#include "dlopt/optim/adafactor.hpp"

namespace dlopt::cuda::detail {

constexpr int kAdafactorThreads = 256;  ///< threads per block of every Adafactor launch
constexpr int64_t kBlockRows = AdafactorRule::kRowBlock;
constexpr int kLanes = dlopt::detail::LaneSum::kLanes;

/// One tensor of a device step: its Rows (buffers and scratch on the device; `rows.s` points at
/// `slot` in the device table) and what passes between the launches.
template <class T>
struct AdafactorTensor {
  AdafactorRule::Rows<T> rows;  ///< the tensor's pass state, as update_matrix keeps it
  T* slot[3];                   ///< R, C, V
  T* means;                     ///< max(mean(R), ε₁) of each matrix (launch 2)
  double alpha;                 ///< αₜ (launch 2)
  int64_t first_block;          ///< its first row block in the launch
  bool u_pass;                  ///< Σ U² takes launch 3 (the cap binds somewhere, or a vector)
};

/// Where a launch's pieces sit in its one allocation (a device pointer, or host memory for the
/// emulation): first_block[count + 1] at 0, the table at `tensors_at`, each tensor's scratch behind
/// `table_bytes`, `bytes` in all.
struct AdafactorLayout {
  std::size_t tensors_at = 0;   ///< the offset of the AdafactorTensor table
  std::size_t table_bytes = 0;  ///< the bytes to copy from the host (first_block and the table)
  std::size_t bytes = 0;        ///< the allocation's size
};

/// The launch of the non-empty `segments` in an allocation at `base`: fills `first_block` (the
/// numbering of row blocks across tensors, count + 1 entries) and `tensors` (host copies of the
/// table, pointing into `base`), and says where they go.
template <class T>
AdafactorLayout adafactor_layout(const cpu::Segment<AdafactorRule, T>* segments, std::size_t count, uintptr_t base,
                                 std::vector<int64_t>& first_block, std::vector<AdafactorTensor<T>>& tensors) {
  const auto up = [](std::size_t n) { return (n + 15) / 16 * 16; };
  tensors.clear();
  first_block.assign(1, 0);
  std::size_t n = 0;
  for (std::size_t k = 0; k < count; ++k) n += segments[k].size > 0;
  AdafactorLayout l;
  l.tensors_at = up((n + 1) * sizeof(int64_t));
  l.table_bytes = l.tensors_at + n * sizeof(AdafactorTensor<T>);
  std::size_t at = up(l.table_bytes);
  const auto take = [&](std::size_t bytes) {
    const uintptr_t p = base + at;
    at += up(bytes);
    return p;
  };
  for (std::size_t k = 0; k < count; ++k) {
    const cpu::Segment<AdafactorRule, T>& seg = segments[k];
    if (seg.size == 0) continue;  // nothing to update (update_matrix is not called for it either)
    AdafactorTensor<T> t{};
    const uintptr_t self = base + l.tensors_at + tensors.size() * sizeof(AdafactorTensor<T>);
    for (int j = 0; j < 3; ++j) t.slot[j] = static_cast<T*>(seg.slots[j].data);
    t.rows = AdafactorRule::Rows<T>::make(seg.coeffs, TensorShape{seg.size, seg.rows, seg.batch},
                                         static_cast<T*>(seg.param.data), static_cast<const T*>(seg.grad.data),
                                         reinterpret_cast<T* const*>(self + offsetof(AdafactorTensor<T>, slot)),
                                         nullptr, nullptr);
    AdafactorRule::Rows<T>& r = t.rows;
    const std::size_t columns = std::size_t(r.factored ? r.batch * r.cols : 0);
    r.partial = reinterpret_cast<double*>(take(std::size_t(r.blocks() * r.stride) * sizeof(double)));
    r.weighted = reinterpret_cast<double*>(take(columns * sizeof(double)));
    r.row_rsqrt = reinterpret_cast<T*>(take(std::size_t(r.factored ? r.rows : 0) * sizeof(T)));
    r.col_rsqrt = reinterpret_cast<T*>(take(columns * sizeof(T)));
    t.means = reinterpret_cast<T*>(take(std::size_t(r.factored ? r.batch : 0) * sizeof(T)));
    t.first_block = first_block.back();
    first_block.push_back(first_block.back() + r.blocks());
    tensors.push_back(t);
  }
  l.bytes = at;
  return l;
}

/// The first l.table_bytes of the allocation (first_block and the table), written to `out`.
template <class T>
void write_adafactor_table(const AdafactorLayout& l, const std::vector<int64_t>& first_block,
                           const std::vector<AdafactorTensor<T>>& tensors, unsigned char* out) {
  std::memcpy(out, first_block.data(), first_block.size() * sizeof(int64_t));
  std::memcpy(out + l.tensors_at, tensors.data(), tensors.size() * sizeof(AdafactorTensor<T>));
}

/// Shared memory of launches 1 and 3: one sum's lanes per row of the block (two sums in launch 1).
struct AdafactorShared {
  double lane[2][kBlockRows][kLanes];
  double row_p2[kBlockRows];
};

/// The tensor of row block `block` of the launch and the block's number within it.
template <class T>
DLOPT_HD const AdafactorTensor<T>& tensor_of_block(const int64_t* first_block, const AdafactorTensor<T>* tensors,
                                                   std::size_t count, int64_t block, int64_t& b) {
  const std::size_t k = blocks::tensor_of(first_block, count, block);
  b = block - first_block[k];
  return tensors[k];
}

/// Launch 1, row block `block`: Rows::sums' partial sums (`all_threads` as in multi_tensor.hpp: f
/// for every thread of the block, then a barrier).
template <class T, class AllThreads>
DLOPT_HD void adafactor_sums(const int64_t* first_block, const AdafactorTensor<T>* tensors, std::size_t count,
                             int64_t block, AdafactorShared& sh, const AllThreads& all_threads) {
  using Rows = AdafactorRule::Rows<T>;
  int64_t b = 0;
  const Rows x = tensor_of_block(first_block, tensors, count, block, b).rows;
  const int64_t first = b * kBlockRows, n = x.end(b) - first;
  all_threads([&](int thread) {  // each row's Σp² and Σg², lane by lane
    for (int64_t i = thread; i < n * kLanes; i += kAdafactorThreads) {
      const int64_t rr = i / kLanes;
      const int l = int(i % kLanes);
      const T* pr = x.p + (first + rr) * x.cols;
      const T* gr = x.g + (first + rr) * x.cols;
      sh.lane[0][rr][l] = dlopt::detail::LaneSum::add_lane(0.0, l, x.cols, [pr](int64_t j) { return Rows::square(pr[j]); });
      if (x.factored)
        sh.lane[1][rr][l] = dlopt::detail::LaneSum::add_lane(0.0, l, x.cols, [gr](int64_t j) { return Rows::square(gr[j]); });
    }
  });
  all_threads([&](int thread) {  // each row's totals: R and 1/√R
    if (thread >= n) return;
    sh.row_p2[thread] = dlopt::detail::LaneSum::combine(sh.lane[0][thread]);
    if (x.factored) x.row_statistic(first + thread, dlopt::detail::LaneSum::combine(sh.lane[1][thread]));
  });
  all_threads([&](int thread) {  // the block's column sums, rows in order, and its Σp²
    double* col = x.partial + b * x.stride;
    if (x.factored)
      for (int64_t j = thread; j < x.cols; j += kAdafactorThreads) {
        double sum = 0, wsum = 0;
        for (int64_t r = first; r < first + n; ++r) Rows::add_column(sum, wsum, x.row_weight(r), x.g[r * x.cols + j]);
        col[j] = sum;
        col[x.cols + j] = wsum;
      }
    if (thread == 0) {
      double p2 = 0;
      for (int64_t rr = 0; rr < n; ++rr) p2 += sh.row_p2[rr];
      col[x.stride - 1] = p2;
    }
  });
}

/// Launch 2, tensor k (one block): C, the column factors, the cap check and, when launch 3 is not
/// needed, the step; a vector's V. The serial sums run on thread 0 in update_matrix's order.
template <class T, class AllThreads>
DLOPT_HD void adafactor_statistics(AdafactorTensor<T>* tensors, std::size_t k, const AllThreads& all_threads) {
  AdafactorTensor<T>& t = tensors[k];
  const AdafactorRule::Rows<T> x = t.rows;
  const int64_t columns = x.batch * x.cols;
  all_threads([&](int thread) {
    if (x.factored)
      for (int64_t i = thread; i < columns; i += kAdafactorThreads) x.column_statistic(i / x.cols, i % x.cols);
    else
      for (int64_t j = thread; j < x.cols; j += kAdafactorThreads) x.vector_variance(j);
  });
  if (x.factored) {
    all_threads([&](int thread) {
      for (int64_t m = thread; m < x.batch; m += kAdafactorThreads) t.means[m] = x.matrix_mean(m);
    });
    all_threads([&](int thread) {  // each column's term of Σ U² replaces its Σᵢ g²/R
      for (int64_t i = thread; i < columns; i += kAdafactorThreads)
        x.weighted[i] = x.column_factor(i / x.cols, i % x.cols, t.means[i / x.cols]);
    });
  }
  all_threads([&](int thread) {
    if (thread != 0) return;
    AdafactorRule::Rows<T>& r = t.rows;
    r.set_limits();
    t.alpha = r.alpha(r.sum_p2());
    double factored_u2 = 0;
    T largest_row = 0, largest_col = 0;
    if (r.factored) {
      for (int64_t i = 0; i < columns; ++i) {
        factored_u2 += r.weighted[i];
        largest_col = AdafactorRule::nan_or_max(largest_col, r.col_rsqrt[i]);
      }
      for (int64_t i = 0; i < r.rows; ++i) largest_row = AdafactorRule::nan_or_max(largest_row, r.row_rsqrt[i]);
    }
    t.u_pass = r.needs_u_pass(largest_row, largest_col);
    if (!t.u_pass) r.set_step(t.alpha, factored_u2);
  });
}

/// Launch 3, row block `block`: Rows::u_squares' sum into partial[b], when the tensor takes it.
template <class T, class AllThreads>
DLOPT_HD void adafactor_u_squares(const int64_t* first_block, const AdafactorTensor<T>* tensors, std::size_t count,
                                  int64_t block, AdafactorShared& sh, const AllThreads& all_threads) {
  using Rows = AdafactorRule::Rows<T>;
  int64_t b = 0;
  const AdafactorTensor<T>& t = tensor_of_block(first_block, tensors, count, block, b);
  if (!t.u_pass) return;  // uniform over the block
  const Rows x = t.rows;
  const int64_t first = b * kBlockRows, n = x.end(b) - first;
  all_threads([&](int thread) {
    for (int64_t i = thread; i < n * kLanes; i += kAdafactorThreads) {
      const int64_t rr = i / kLanes;
      const int l = int(i % kLanes);
      x.for_row(first + rr, [&](const auto& u) {
        sh.lane[0][rr][l] = dlopt::detail::LaneSum::add_lane(0.0, l, x.cols, [&](int64_t j) { return Rows::square(u(j)); });
      });
    }
  });
  all_threads([&](int thread) {
    if (thread != 0) return;
    double sum = 0;
    for (int64_t rr = 0; rr < n; ++rr) sum += dlopt::detail::LaneSum::combine(sh.lane[0][rr]);
    x.partial[b] = sum;
  });
}

/// Launch 4, tensor k: the step from launch 3's Σ U².
template <class T>
DLOPT_HD void adafactor_finish(AdafactorTensor<T>* tensors, std::size_t k) {
  AdafactorTensor<T>& t = tensors[k];
  if (t.u_pass) t.rows.set_step(t.alpha, t.rows.sum_u2());
}

/// Launch 5, row block `block`, thread `thread`: its elements of the block's rows.
template <class T>
DLOPT_HD void adafactor_apply(const int64_t* first_block, const AdafactorTensor<T>* tensors, std::size_t count,
                              int64_t block, int thread) {
  int64_t b = 0;
  const AdafactorRule::Rows<T> x = tensor_of_block(first_block, tensors, count, block, b).rows;
  for (int64_t r = b * kBlockRows; r < x.end(b); ++r) x.template apply_row<kAdafactorThreads>(r, thread);
}

}  // namespace dlopt::cuda::detail
