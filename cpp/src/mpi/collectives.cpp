// The collectives of dlopt_mpi (dlopt/distributed/mpi.hpp): agreement on errors, and the mean over
// ranks made in rank order on top of MPI's byte-moving collectives.

#include <algorithm>
#include <climits>
#include <cstring>
#include <string>
#include <vector>

#include "dlopt/distributed/mpi.hpp"

namespace dlopt::distributed {
namespace detail {
namespace {

void check(int rc, const char* what) {
  if (rc != MPI_SUCCESS) {
    char text[MPI_MAX_ERROR_STRING];
    int n = 0;
    MPI_Error_string(rc, text, &n);
    throw std::runtime_error(std::string(what) + ": " + std::string(text, std::size_t(n)));
  }
}

int as_int(int64_t bytes) {
  if (bytes > INT_MAX) throw InvalidArgument("a bucket part exceeds 2 GiB: use a smaller bucket_bytes");
  return int(bytes);
}

}  // namespace

void agree(MPI_Comm comm, const std::string& error, uint64_t signature, const std::string& what) {
  // A fixed-size record per rank: error flag, signature, the start of the message.
  constexpr std::size_t kText = 240;
  struct Record {
    uint64_t failed, signature;
    char text[kText];
  } mine{};
  mine.failed = error.empty() ? 0 : 1;
  mine.signature = signature;
  std::strncpy(mine.text, error.c_str(), kText - 1);
  int n = 1;
  MPI_Comm_size(comm, &n);
  std::vector<Record> all(static_cast<std::size_t>(n));
  check(MPI_Allgather(&mine, sizeof mine, MPI_BYTE, all.data(), sizeof mine, MPI_BYTE, comm), "MPI_Allgather");
  for (int r = 0; r < n; ++r)
    if (all[std::size_t(r)].failed) {
      if (!error.empty()) throw InvalidArgument(error);
      throw InvalidArgument("rank " + std::to_string(r) + ": " + all[std::size_t(r)].text);
    }
  for (int r = 1; r < n; ++r)
    if (all[std::size_t(r)].signature != all[0].signature)
      throw InvalidArgument(what + ": ranks disagree (rank " + std::to_string(r) + " differs from rank 0)");
}

template <class T>
void reduce_scatter_mean(MPI_Comm comm, const T* send, const std::vector<int64_t>& counts, T* out,
                         std::vector<T>& scratch) {
  int rank = 0, n = 1;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &n);
  const int64_t mine = counts[std::size_t(rank)];
  if (scratch.size() < std::size_t(n * mine)) scratch.resize(std::size_t(n * mine));
  if (n == 1) {
    std::copy(send, send + mine, out);
    return;
  }
  std::vector<int> scount(static_cast<std::size_t>(n)), sdispl(static_cast<std::size_t>(n)), rcount(static_cast<std::size_t>(n)), rdispl(static_cast<std::size_t>(n));
  int64_t displ = 0;
  for (int r = 0; r < n; ++r) {
    scount[std::size_t(r)] = as_int(counts[std::size_t(r)] * int64_t(sizeof(T)));
    sdispl[std::size_t(r)] = as_int(displ * int64_t(sizeof(T)));
    displ += counts[std::size_t(r)];
    rcount[std::size_t(r)] = as_int(mine * int64_t(sizeof(T)));
    rdispl[std::size_t(r)] = as_int(r * mine * int64_t(sizeof(T)));
  }
  check(MPI_Alltoallv(send, scount.data(), sdispl.data(), MPI_BYTE, scratch.data(), rcount.data(), rdispl.data(),
                      MPI_BYTE, comm),
        "MPI_Alltoallv");
  // (c_0 + c_1 + ... + c_{N-1}) / N, added in rank order: the same bits as dlopt.distributed.
  const T* c = scratch.data();
  std::copy(c, c + mine, out);
  for (int r = 1; r < n; ++r) {
    const T* x = c + int64_t(r) * mine;
    for (int64_t i = 0; i < mine; ++i) out[i] = out[i] + x[i];
  }
  const T count = T(n);
  for (int64_t i = 0; i < mine; ++i) out[i] = out[i] / count;
}

template <class T>
void allgather_inplace(MPI_Comm comm, T* buf, const std::vector<int64_t>& counts) {
  const int n = int(counts.size());
  std::vector<int> count(static_cast<std::size_t>(n)), displ(static_cast<std::size_t>(n));
  int64_t d = 0;
  for (int r = 0; r < n; ++r) {
    count[std::size_t(r)] = as_int(counts[std::size_t(r)] * int64_t(sizeof(T)));
    displ[std::size_t(r)] = as_int(d * int64_t(sizeof(T)));
    d += counts[std::size_t(r)];
  }
  check(MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_BYTE, buf, count.data(), displ.data(), MPI_BYTE, comm), "MPI_Allgatherv");
}

template void reduce_scatter_mean<float>(MPI_Comm, const float*, const std::vector<int64_t>&, float*, std::vector<float>&);
template void reduce_scatter_mean<double>(MPI_Comm, const double*, const std::vector<int64_t>&, double*, std::vector<double>&);
template void allgather_inplace<float>(MPI_Comm, float*, const std::vector<int64_t>&);
template void allgather_inplace<double>(MPI_Comm, double*, const std::vector<int64_t>&);

}  // namespace detail

template <class T>
void allreduce_mean(MPI_Comm comm, const std::vector<Span<T>>& tensors, std::size_t bucket_bytes) {
  int rank = 0, n = 1;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &n);
  std::string error;
  uint64_t sig = 1469598103934665603ULL;
  detail::FlatSpace<T> space;
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    if (error.empty() && (tensors[i].size < 0 || (tensors[i].size > 0 && !tensors[i].data)))
      error = "tensors[" + std::to_string(i) + "]: null or negative-size buffer";
    sig = detail::hash_value(sig, tensors[i].size);
    space.data.push_back(tensors[i].data);
    space.offsets.push_back(space.offsets.back() + std::max<int64_t>(tensors[i].size, 0));
  }
  if (error.empty() && bucket_bytes < sizeof(T)) error = "bucket_bytes: too small";
  detail::agree(comm, error, detail::hash_value(sig, bucket_bytes), "allreduce_mean");
  if (n == 1) return;
  const int64_t total = space.offsets.back();
  const int64_t per_bucket = std::max<int64_t>(n, int64_t(bucket_bytes / sizeof(T)));
  std::vector<T> buf, scratch;
  for (int64_t a = 0; a < total; a += per_bucket) {
    const int64_t b = std::min(total, a + per_bucket);
    buf.resize(std::size_t(b - a));
    T* dst = buf.data();
    space.for_pieces(a, b, [&](std::size_t i, int64_t s, int64_t e) {
      std::copy(space.data[i] + s, space.data[i] + e, dst);
      dst += e - s;
    });
    std::vector<int64_t> counts(static_cast<std::size_t>(n));
    int64_t start = 0;
    for (int r = 0; r < n; ++r) {
      counts[std::size_t(r)] = (b - a) / n + (r < (b - a) % n ? 1 : 0);  // as Python's even_counts
      if (r < rank) start += counts[std::size_t(r)];
    }
    detail::reduce_scatter_mean(comm, buf.data(), counts, buf.data() + start, scratch);
    detail::allgather_inplace(comm, buf.data(), counts);
    const T* src = buf.data();
    space.for_pieces(a, b, [&](std::size_t i, int64_t s, int64_t e) {
      std::copy(src, src + (e - s), space.data[i] + s);
      src += e - s;
    });
  }
}

template void allreduce_mean<float>(MPI_Comm, const std::vector<Span<float>>&, std::size_t);
template void allreduce_mean<double>(MPI_Comm, const std::vector<Span<double>>&, std::size_t);

}  // namespace dlopt::distributed
