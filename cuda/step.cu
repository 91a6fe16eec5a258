// CUDA backend of dlopt::step: one multi-tensor kernel launch per step, over the very same
// Rule::update as the CPU loop.
//
// Launch layout. Every tensor of the step is cut into chunks of kChunk elements; chunks are
// numbered across tensors (first_chunk[k] = index of tensor k's first chunk, a prefix sum) and
// the grid has one block per chunk (a grid-stride loop covers grids beyond the hardware limit).
// A block finds its tensor by binary search in first_chunk. In a native tensor (every buffer in
// the compute type) its threads walk the chunk in 16-byte packs (float4 / double2 loads and stores)
// when every buffer of that tensor is 16-byte aligned, or element by element otherwise; other
// storage formats (bfloat16 / float16 parameters, bfloat16 / 8-bit state) are staged through
// registers and shared memory as multi_tensor.hpp describes. Chunks are small (4096 elements) so that a large
// step is many short blocks: the hardware scheduler balances them and the last wave is short.
//
// A rule with per-tensor reductions (LAMB, LARS) launches two kernels first: reduce_kernel writes
// each chunk's sums (cpu::reduce's blocks and order) into scratch behind the block table, and
// finish_kernel adds them per tensor and runs Rule::finish on the device copy of the table, whose
// coefficients step_kernel then reads; no host round trip.
//
// The block table (the Segment array and first_chunk) is written into pinned host memory and
// copied to device memory with one cudaMemcpyAsync on the step's stream, ahead of the kernel.
// Both buffers are cached per device in a ring of kRing slots, each guarded by an event recorded
// after its kernel: a slot is rewritten only once the launch that read it has finished, so the host
// never waits for the step it just enqueued.

#include <cuda_runtime.h>

#include <climits>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "dlopt/cuda/multi_tensor.hpp"
#include "dlopt/cuda/muon_kernels.hpp"
#include "dlopt/cuda/step.hpp"
#include "dlopt/optim/registry.hpp"

namespace dlopt::cuda {
namespace {

using detail::kChunk;
using detail::kThreads;
constexpr int kRing = 4;

void check(cudaError_t status, const char* what) {
  if (status != cudaSuccess)
    throw std::runtime_error(std::string("dlopt CUDA error in ") + what + ": " +
                             cudaGetErrorString(status));
}

template <class Rule, class T>
__global__ void __launch_bounds__(kThreads)
    step_kernel(const int64_t* __restrict__ first_chunk,
                const cpu::Segment<Rule, T>* __restrict__ segments, int64_t count,
                int64_t total_chunks) {
  __shared__ detail::StageShared<Rule> shared;  // staged chunks' 8-bit values (multi_tensor.hpp)
  const int thread = int(threadIdx.x);
  // A phase of the chunk in this thread, then the block's barrier (chunk is uniform over the block).
  const auto all_threads = [thread](const auto& phase) {
    phase(thread);
    __syncthreads();
  };
  for (int64_t chunk = blockIdx.x; chunk < total_chunks; chunk += gridDim.x)
    detail::process_chunk<Rule, T>(first_chunk, segments, count, chunk, shared, all_threads);
}

/// The reduction phase of a rule with Rule::reductions > 0: each chunk's sums into `partial`
/// (multi_tensor.hpp: cpu::reduce's order).
template <class Rule, class T>
__global__ void __launch_bounds__(kThreads)
    reduce_kernel(const int64_t* __restrict__ first_chunk, const cpu::Segment<Rule, T>* __restrict__ segments,
                  int64_t count, int64_t total_chunks, double* __restrict__ partial) {
  __shared__ detail::ReduceShared<Rule> shared;
  const int thread = int(threadIdx.x);
  const auto all_threads = [thread](const auto& phase) {
    phase(thread);
    __syncthreads();
  };
  for (int64_t chunk = blockIdx.x; chunk < total_chunks; chunk += gridDim.x)
    detail::reduce_chunk<Rule, T>(first_chunk, segments, count, chunk, shared, all_threads, partial);
}

/// Rule::finish of every tensor from its chunks' sums, into the block table's coefficients that
/// step_kernel reads next (one thread per tensor).
template <class Rule, class T>
__global__ void finish_kernel(const int64_t* __restrict__ first_chunk, cpu::Segment<Rule, T>* segments,
                              int64_t count, const double* __restrict__ partial) {
  const int64_t k = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (k < count) detail::finish_tensor<Rule, T>(first_chunk, segments, k, partial);
}

/// One slot of the table ring: pinned staging memory, device memory, and the event recorded
/// after the kernel that last read them.
struct TableSlot {
  void* host = nullptr;
  void* device = nullptr;
  std::size_t capacity = 0;
  cudaEvent_t done = nullptr;
  bool pending = false;
};

struct DeviceTables {
  TableSlot slot[kRing];
  int next = 0;
  bool ready = false;
};

std::mutex tables_mutex;
// Never destroyed: at process exit the CUDA runtime may already be gone.
std::vector<DeviceTables>& all_tables() {
  static auto* tables = new std::vector<DeviceTables>();
  return *tables;
}

constexpr std::size_t round_up(std::size_t n, std::size_t a) { return (n + a - 1) / a * a; }

}  // namespace

bool is_available() { return device_count() > 0; }

int device_count() {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess) {
    cudaGetLastError();  // clear: "no driver" / "no device" is an answer here, not an error
    return 0;
  }
  return devices;
}

void require_device() {
  int devices = 0;
  const cudaError_t status = cudaGetDeviceCount(&devices);
  if (status != cudaSuccess || devices == 0) {
    cudaGetLastError();
    throw std::runtime_error(std::string("dlopt: no CUDA device is available (") +
                             (status != cudaSuccess ? cudaGetErrorString(status) : "no devices") +
                             "); dlopt.cuda.is_available() says whether one is");
  }
}

template <class Rule, class T>
void run_elementwise(const cpu::Segment<Rule, T>* segments, std::size_t count, void* stream_ptr);

// ---- matrix rules with a CUDA step of their own (has_step: Rule::device_matrix) ----------------------

/// Adafactor's launches (cuda/adafactor.cu).
template <class T>
void run_adafactor(const cpu::Segment<AdafactorRule, T>* segments, std::size_t count, void* stream_ptr);

/// The CUDA step of a matrix rule that has one.
template <class Rule, class T>
void run_matrix(const cpu::Segment<Rule, T>* segments, std::size_t count, void* stream_ptr) {
  if constexpr (std::is_same_v<Rule, AdafactorRule>) {
    run_adafactor(segments, count, stream_ptr);
  } else if constexpr (std::is_same_v<Rule, MuonRule>) {  // its own launches (cuda/muon.cu)
    detail::muon::run(segments, count, stream_ptr);
  } else {  // no kernel (dlopt::cuda::step refuses it)
    (void)segments, (void)count, (void)stream_ptr;
    throw std::runtime_error(std::string(Rule::name) + ": no CUDA kernel");
  }
}

// ----------------------------------------------------------------------------------------------------

template <class Rule, class T>
void run(const cpu::Segment<Rule, T>* segments, std::size_t count, void* stream_ptr) {
  if constexpr (Rule::matrix) {
    run_matrix(segments, count, stream_ptr);
  } else {
    run_elementwise(segments, count, stream_ptr);
  }
}

template <class Rule, class T>
void run_elementwise(const cpu::Segment<Rule, T>* segments, std::size_t count, void* stream_ptr) {
  using Seg = cpu::Segment<Rule, T>;
  if (count == 0) return;
  int64_t total_chunks = 0;
  for (std::size_t k = 0; k < count; ++k) total_chunks += blocks::count_of<kChunk>(segments[k].size);
  if (total_chunks == 0) return;  // only empty tensors: nothing to launch

  const auto stream = static_cast<cudaStream_t>(stream_ptr);
  int device = 0;
  check(cudaGetDevice(&device), "cudaGetDevice");
  const std::size_t chunk_bytes = round_up((count + 1) * sizeof(int64_t), 16);
  const std::size_t table_bytes = round_up(chunk_bytes + count * sizeof(Seg), 16);
  // Behind the table, device scratch for the reduction phase's per-chunk sums (not copied).
  const std::size_t bytes = table_bytes + std::size_t(total_chunks) * std::size_t(Rule::reductions) * sizeof(double);

  std::lock_guard<std::mutex> lock(tables_mutex);
  std::vector<DeviceTables>& tables = all_tables();
  if (tables.size() <= std::size_t(device)) tables.resize(std::size_t(device) + 1);
  DeviceTables& dt = tables[std::size_t(device)];
  if (!dt.ready) {
    for (TableSlot& s : dt.slot) check(cudaEventCreateWithFlags(&s.done, cudaEventDisableTiming), "cudaEventCreate");
    dt.ready = true;
  }
  TableSlot& slot = dt.slot[dt.next];
  if (slot.pending) {  // the launch that last read this slot must be done before it is rewritten
    check(cudaEventSynchronize(slot.done), "cudaEventSynchronize");
    slot.pending = false;
  }
  if (slot.capacity < bytes) {
    if (slot.host) check(cudaFreeHost(slot.host), "cudaFreeHost");
    if (slot.device) check(cudaFree(slot.device), "cudaFree");
    slot.host = slot.device = nullptr;
    slot.capacity = 0;
    const std::size_t capacity = round_up(bytes, 4096);
    check(cudaMallocHost(&slot.host, capacity), "cudaMallocHost");
    check(cudaMalloc(&slot.device, capacity), "cudaMalloc");
    slot.capacity = capacity;
  }

  detail::chunk_prefix(segments, count, static_cast<int64_t*>(slot.host));
  std::memcpy(static_cast<char*>(slot.host) + chunk_bytes, segments, count * sizeof(Seg));

  check(cudaMemcpyAsync(slot.device, slot.host, table_bytes, cudaMemcpyHostToDevice, stream),
        "cudaMemcpyAsync (block table)");
  const int grid = int(total_chunks < int64_t(INT_MAX) ? total_chunks : int64_t(INT_MAX));
  const auto* first_chunk = static_cast<const int64_t*>(slot.device);
  auto* device_segments = reinterpret_cast<Seg*>(static_cast<char*>(slot.device) + chunk_bytes);
  cudaError_t launched = cudaSuccess;
  if constexpr (Rule::reductions > 0) {  // the sums, then the finished coefficients, then the update
    auto* partial = reinterpret_cast<double*>(static_cast<char*>(slot.device) + table_bytes);
    reduce_kernel<Rule, T><<<grid, kThreads, 0, stream>>>(first_chunk, device_segments, int64_t(count),
                                                          total_chunks, partial);
    launched = cudaGetLastError();
    if (launched == cudaSuccess) {
      finish_kernel<Rule, T><<<unsigned((count + kThreads - 1) / kThreads), kThreads, 0, stream>>>(
          first_chunk, device_segments, int64_t(count), partial);
      launched = cudaGetLastError();
    }
  }
  if (launched == cudaSuccess) {
    step_kernel<Rule, T><<<grid, kThreads, 0, stream>>>(first_chunk, device_segments, int64_t(count), total_chunks);
    launched = cudaGetLastError();
  }
  // Recorded even after a failed launch: the copy above may still be reading slot.host.
  const cudaError_t recorded = cudaEventRecord(slot.done, stream);
  slot.pending = recorded == cudaSuccess;
  dt.next = (dt.next + 1) % kRing;
  check(launched, Rule::name);
  check(recorded, "cudaEventRecord");
}

#define DLOPT_INSTANTIATE_CUDA_RUN(Rule)                                                  \
  template void run<Rule, float>(const cpu::Segment<Rule, float>*, std::size_t, void*); \
  template void run<Rule, double>(const cpu::Segment<Rule, double>*, std::size_t, void*);
DLOPT_FOR_EACH_RULE(DLOPT_INSTANTIATE_CUDA_RUN)
#undef DLOPT_INSTANTIATE_CUDA_RUN

}  // namespace dlopt::cuda
