#pragma once
// The row kernels of the linear models (row_kernels.cpp): loss and gradient sums over a set of rows
// of the caller's X, read in place or gathered, and the validation score. The CPU model's loop
// (linear.cpp) and full-batch passes call them; no training logic lives here.

#include <Eigen/Dense>
#include <algorithm>
#include <cstdint>
#include <vector>

#include "dlopt/core/step.hpp"
#include "dlopt/models/linear.hpp"

namespace dlopt::detail {

template <class T>
using RowMat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class T>
using Vec = Eigen::Matrix<T, Eigen::Dynamic, 1>;

constexpr int64_t kSub = 256;           // rows per gathered / scratch block (cache resident)
constexpr int64_t kMaxParts = 64;       // a batch is summed over at most this many fixed partitions
constexpr int64_t kMinPartRows = 128;   // ... of at least this many rows
constexpr int64_t kParallelWork = int64_t(1) << 14;  // rows·features·outputs worth a second thread

/// Fixed partitions of a batch (or a full pass) of `rows` rows: results do not depend on threads.
inline int64_t partitions(int64_t rows) { return std::clamp<int64_t>(rows / kMinPartRows, 1, kMaxParts); }

/// Whether `work` (rows·features·outputs) is worth more than one thread.
bool parallel_ok(int64_t work);

/// Rows of one step: idx[offset .. offset+count), or the range offset .. offset+count if idx is null.
/// For prefetching, a thread's rows form a stream: its share of this batch, which ends at idx
/// position `stream_end`, then its share of the next batch, `skip` positions further on.
struct RowSet {
  const uint32_t* idx;
  int64_t offset;
  int64_t count;
  int64_t end = 0;  ///< length of idx: rows up to here may be prefetched
  int64_t stream_end = 0;
  int64_t skip = 0;
  /// The row `ahead` places after row j in this thread's stream, or -1 past the end.
  int64_t row_ahead(int64_t j, int64_t ahead) const {
    int64_t pos = offset + j + ahead;
    if (pos >= stream_end) pos += skip;
    return pos < end ? int64_t(idx[pos]) : -1;
  }
};

/// Loss and gradient sums over the rows of `set`: random rows of one-output objectives row by row (a
/// DLOPT_KERNEL whose sums are the same bits at every x86-64 level), other rows with Eigen blocks of
/// kSub rows (gathered when not contiguous). Without gW only
/// the loss sums.
template <class T>
void rows_pass(Objective obj, int64_t d, int64_t K, const T* W, const T* b, const DataView<T>& data,
               const RowSet& set, T* gW, T* gb, double& loss, double& weight);

/// The softmax sums of rows [lo, hi) with the exponentials vectorised over blocks (full-batch
/// evaluations of L-BFGS only; the epochs use rows_pass, whose per-row formula the GPU shares).
template <class T>
void softmax_rows(int64_t d, int64_t K, const T* W, const T* b, const DataView<T>& data, int64_t lo,
                  int64_t hi, T* gW, T* gb, double& loss, double& weight);

/// R² (squared error) or accuracy (classifiers) of W, b on `rows` of host data: early stopping's score.
template <class T>
double validation_score(Objective obj, int64_t d, int64_t K, const T* W, const T* b, const DataView<T>& data,
                        const std::vector<uint32_t>& rows);

}  // namespace dlopt::detail
