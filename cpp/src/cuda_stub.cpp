// Built only without CUDA: the CUDA entry points exist, and say clearly that they were not built.

#include "dlopt/cuda/step.hpp"
#include "dlopt/optim/registry.hpp"

namespace dlopt::cuda {

bool is_available() { return false; }

template <class Rule, class T>
void run(const cpu::Segment<Rule, T>*, std::size_t, void*) {
  throw NotCompiled("dlopt::cuda::run");
}

#define DLOPT_INSTANTIATE_CUDA_STUB(Rule)                                                 \
  template void run<Rule, float>(const cpu::Segment<Rule, float>*, std::size_t, void*); \
  template void run<Rule, double>(const cpu::Segment<Rule, double>*, std::size_t, void*);
DLOPT_FOR_EACH_RULE(DLOPT_INSTANTIATE_CUDA_STUB)
#undef DLOPT_INSTANTIATE_CUDA_STUB

}  // namespace dlopt::cuda
