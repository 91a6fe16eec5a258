// Built only without CUDA: the CUDA entry points exist, and say clearly that they were not built.

#include "dlopt/cuda/linear.hpp"
#include "dlopt/cuda/memory.hpp"
#include "dlopt/cuda/schedule_free.hpp"
#include "dlopt/cuda/step.hpp"
#include "dlopt/optim/registry.hpp"

namespace dlopt::cuda {

namespace {
[[noreturn]] void not_compiled(const char* what) {
  throw NotCompiled(std::string("CUDA (") + what + ")");
}
}  // namespace

bool is_available() { return false; }
int device_count() { return 0; }
void require_device() { not_compiled("dlopt::cuda::step"); }

template <class Rule, class T>
void run(const cpu::Segment<Rule, T>*, std::size_t, void*) {
  not_compiled("dlopt::cuda::run");
}

#define DLOPT_INSTANTIATE_CUDA_STUB(Rule)                                                 \
  template void run<Rule, float>(const cpu::Segment<Rule, float>*, std::size_t, void*); \
  template void run<Rule, double>(const cpu::Segment<Rule, double>*, std::size_t, void*);
DLOPT_FOR_EACH_RULE(DLOPT_INSTANTIATE_CUDA_STUB)
#undef DLOPT_INSTANTIATE_CUDA_STUB

PointerInfo pointer_info(const void*) { not_compiled("dlopt::cuda::pointer_info"); }
int current_device() { not_compiled("dlopt::cuda::current_device"); }
std::string device_name(int) { not_compiled("dlopt::cuda::device_name"); }
void synchronize() { not_compiled("dlopt::cuda::synchronize"); }
DeviceGuard::DeviceGuard(int) { not_compiled("dlopt::cuda::DeviceGuard"); }
DeviceGuard::~DeviceGuard() = default;
Buffer::Buffer(std::size_t, int) { not_compiled("dlopt::cuda::Buffer"); }
Buffer::~Buffer() = default;
void copy(void*, const void*, std::size_t) { not_compiled("dlopt::cuda::copy"); }
void copy_async(void*, const void*, std::size_t, void*) { not_compiled("dlopt::cuda::copy_async"); }
EventTimer::EventTimer(void*) { not_compiled("dlopt::cuda::EventTimer"); }
EventTimer::~EventTimer() = default;
void EventTimer::start() { not_compiled("dlopt::cuda::EventTimer"); }
double EventTimer::stop_ms() { not_compiled("dlopt::cuda::EventTimer"); }
void stream_wait(void*, void*) { not_compiled("dlopt::cuda::stream_wait"); }
void stream_synchronize(void*) { not_compiled("dlopt::cuda::stream_synchronize"); }
template <class T>
void launch_batch(const detail::LinearBatch<T>&, void*) { not_compiled("dlopt::cuda::launch_batch"); }
template void launch_batch<float>(const detail::LinearBatch<float>&, void*);
template void launch_batch<double>(const detail::LinearBatch<double>&, void*);
template <class T>
void fill(T*, int64_t, T, void*) { not_compiled("dlopt::cuda::fill"); }
template void fill<float>(float*, int64_t, float, void*);
template void fill<double>(double*, int64_t, double, void*);
template <class T>
void schedule_free_move(T*, const T*, int64_t, T, void*) { not_compiled("dlopt::cuda::schedule_free_move"); }
template void schedule_free_move<float>(float*, const float*, int64_t, float, void*);
template void schedule_free_move<double>(double*, const double*, int64_t, double, void*);
void schedule_free_move_16bit(const dlopt::Buffer&, float*, const float*, int64_t, float, void*) {
  not_compiled("dlopt::cuda::schedule_free_move_16bit");
}

}  // namespace dlopt::cuda
