#pragma once
// EpochThreads: how many threads a linear model's CPU epoch runs on, chosen from measured epoch times.
// A team only pays when each thread has a core. On a machine whose cores are busy with other work, a
// 2-thread epoch can be slower than a 1-thread one (issue 17: 1.2–1.6× with one core busy, even with
// the batch gate). A model's results do not depend on its thread count (partition sums in a fixed
// order), so the choice can follow the clock: the first epochs try the team and one thread, the
// faster then runs, and every kProbe-th epoch tries the other again (the machine's load changes),
// which costs at most 1/kProbe of the difference. Internal to linear.cpp.

#include <chrono>
#include <cstdint>

namespace dlopt::detail {

class EpochThreads {
 public:
  /// The threads for the next epoch, out of a team of `team` (the dlopt thread setting).
  int pick(int team) {
    if (team <= 1) return 1;
    if (team != team_) *this = EpochThreads{}, team_ = team;  // the setting changed: measure again
    const int64_t n = epoch_++;
    if (team_seconds_ < 0) return team;
    if (one_seconds_ < 0) return 1;
    const bool one_faster = one_seconds_ <= team_seconds_;
    const bool probe = n % kProbe == 0;
    return one_faster != probe ? 1 : team;
  }

  /// Records how long an epoch on `threads` threads took (an average over the last few).
  void record(int threads, double seconds) {
    double& s = threads == 1 ? one_seconds_ : team_seconds_;
    s = s < 0 ? seconds : 0.5 * (s + seconds);
  }

  /// Seconds on a monotonic clock.
  static double now() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
  }

 private:
  static constexpr int64_t kProbe = 32;
  int team_ = 0;
  int64_t epoch_ = 0;
  double one_seconds_ = -1, team_seconds_ = -1;
};

}  // namespace dlopt::detail
