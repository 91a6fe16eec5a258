#pragma once
// BatchGate: where the threads of a mini-batch epoch wait for the batch's optimizer step (linear.cpp).
// A waiter spins briefly (on a free machine the step takes microseconds), then sleeps on a condition
// variable: a sleeping waiter frees its core, so on a loaded machine the scheduler can run the thread
// the batch waits for there instead of leaving it queued behind other work (OpenMP's barrier spins
// for much longer first: issue 17, bench/bench_busy_core.py).

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace dlopt::detail {

class BatchGate {
 public:
  /// How many times the gate was opened (what was done before each open() is visible).
  uint32_t generation() const { return generation_.load(std::memory_order_acquire); }

  /// Returns once open() has been called since the gate's generation was `seen`.
  void wait(uint32_t seen) {
    for (int i = 0; i < kSpins; ++i) {
      if (generation_.load(std::memory_order_acquire) != seen) return;
#if defined(__x86_64__) || defined(__i386__)
      _mm_pause();
#endif
    }
    std::unique_lock<std::mutex> lock(mutex_);
    sleepers_.fetch_add(1);  // seq_cst with open()'s two operations: a wake-up is never lost
    wake_.wait(lock, [&] { return generation_.load() != seen; });
    sleepers_.fetch_sub(1);
  }

  /// Lets every waiter of the current generation go (what the thread that stepped did before is
  /// visible to them) and starts the next generation.
  void open() {
    generation_.fetch_add(1);
    if (sleepers_.load() > 0) {
      std::lock_guard<std::mutex> lock(mutex_);
      wake_.notify_all();
    }
  }

 private:
  static constexpr int kSpins = 2000;  // tens of microseconds of pause instructions
  std::atomic<uint32_t> generation_{0};
  std::atomic<int> sleepers_{0};
  std::mutex mutex_;
  std::condition_variable wake_;
};

}  // namespace dlopt::detail
