// The collectives of dlopt_mpi (dlopt/distributed/mpi.hpp): agreement on errors, and the mean over
// ranks made in rank order on top of MPI's byte-moving collectives.

#include <algorithm>
#include <climits>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include "dlopt/distributed/mpi.hpp"

namespace dlopt::distributed {
namespace detail {

void check(int rc, const char* what) {
  if (rc != MPI_SUCCESS) {
    char text[MPI_MAX_ERROR_STRING];
    int n = 0;
    MPI_Error_string(rc, text, &n);
    throw std::runtime_error(std::string(what) + ": " + std::string(text, std::size_t(n)));
  }
}

namespace {

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
void ordered_mean(const std::vector<const T*>& c, int64_t n, T* out) {
  const std::size_t ranks = c.size();
  if constexpr (std::is_same_v<compute_t<T>, T>) {
    // (c_0 + c_1 + ... + c_{N-1}) / N, added in rank order: the same bits as dlopt.distributed.
    if (ranks == 1) {
      std::copy(c[0], c[0] + n, out);
      return;
    }
    for (int64_t i = 0; i < n; ++i) out[i] = c[0][i] + c[1][i];
    for (std::size_t r = 2; r < ranks; ++r)
      for (int64_t i = 0; i < n; ++i) out[i] = out[i] + c[r][i];
    const T count = T(ranks);
    for (int64_t i = 0; i < n; ++i) out[i] = out[i] / count;
  } else {  // 16-bit: summed in float, the mean rounded to nearest once (as NumPy's float32 sum)
    constexpr int64_t kChunk = 1024;
    float acc[kChunk], x[kChunk];
    const float count = float(ranks);
    for (int64_t a = 0; a < n; a += kChunk) {
      const int64_t m = std::min(kChunk, n - a);
      to_float(Buffer(c[0] + a), m, acc);
      for (std::size_t r = 1; r < ranks; ++r) {
        to_float(Buffer(c[r] + a), m, x);
        for (int64_t i = 0; i < m; ++i) acc[i] = acc[i] + x[i];
      }
      if (ranks > 1)
        for (int64_t i = 0; i < m; ++i) acc[i] = acc[i] / count;
      from_float(Buffer(out + a), m, acc);
    }
  }
}

void Messages::add(bool receive, const void* data, int64_t bytes, int peer) {
  auto* p = static_cast<unsigned char*>(const_cast<void*>(data));
  do {  // MPI counts are ints: pieces of at most 1 GiB (cut the same way on both sides)
    const int64_t n = std::min<int64_t>(bytes, int64_t(1) << 30);
    requests.emplace_back();
    if (receive)
      check(MPI_Irecv(p, int(n), MPI_BYTE, peer, kTag, comm, &requests.back()), "MPI_Irecv");
    else
      check(MPI_Isend(p, int(n), MPI_BYTE, peer, kTag, comm, &requests.back()), "MPI_Isend");
    p += n;
    bytes -= n;
  } while (bytes > 0);
}

void Messages::wait() {
  check(MPI_Waitall(int(requests.size()), requests.data(), MPI_STATUSES_IGNORE), "MPI_Waitall");
  requests.clear();
}

void send_blob(MPI_Comm comm, int dest, const std::vector<unsigned char>& blob) {
  uint64_t n = blob.size();
  check(MPI_Send(&n, 1, MPI_UINT64_T, dest, kTag, comm), "MPI_Send");
  Messages m{comm, {}};
  if (n) m.send(blob.data(), int64_t(n), dest);
  m.wait();
}

std::vector<unsigned char> recv_blob(MPI_Comm comm, int source) {
  uint64_t n = 0;
  check(MPI_Recv(&n, 1, MPI_UINT64_T, source, kTag, comm, MPI_STATUS_IGNORE), "MPI_Recv");
  std::vector<unsigned char> blob(n);
  Messages m{comm, {}};
  if (n) m.receive(blob.data(), int64_t(n), source);
  m.wait();
  return blob;
}

void bcast_blob(MPI_Comm comm, int root, std::vector<unsigned char>& blob) {
  uint64_t n = blob.size();
  check(MPI_Bcast(&n, 1, MPI_UINT64_T, root, comm), "MPI_Bcast");
  blob.resize(n);
  for (uint64_t a = 0; a < n; a += uint64_t(1) << 30) {
    const uint64_t m = std::min<uint64_t>(n - a, uint64_t(1) << 30);
    check(MPI_Bcast(blob.data() + a, int(m), MPI_BYTE, root, comm), "MPI_Bcast");
  }
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
  std::vector<const T*> c;
  for (int r = 0; r < n; ++r) c.push_back(scratch.data() + int64_t(r) * mine);
  ordered_mean(c, mine, out);
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

#define DLOPT_MPI_INSTANTIATE(T)                                                                              \
  template void ordered_mean<T>(const std::vector<const T*>&, int64_t, T*);                                 \
  template void reduce_scatter_mean<T>(MPI_Comm, const T*, const std::vector<int64_t>&, T*, std::vector<T>&); \
  template void allgather_inplace<T>(MPI_Comm, T*, const std::vector<int64_t>&);
DLOPT_MPI_INSTANTIATE(float)
DLOPT_MPI_INSTANTIATE(double)
DLOPT_MPI_INSTANTIATE(bfloat16)
DLOPT_MPI_INSTANTIATE(float16)
#undef DLOPT_MPI_INSTANTIATE

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
template void allreduce_mean<bfloat16>(MPI_Comm, const std::vector<Span<bfloat16>>&, std::size_t);
template void allreduce_mean<float16>(MPI_Comm, const std::vector<Span<float16>>&, std::size_t);

}  // namespace dlopt::distributed
