// docs/training.md's C++ example (the part between the "docs/training.md" markers is shown there,
// and tests/test_training_docs.py checks that it is this code): a training loop with clipping, a
// learning-rate schedule set between steps, a checkpoint, and a resume that continues bit for bit.
// Built and run by ctest (tests/cpp) and by the install test (examples/cpp).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <vector>

#include <dlopt/dlopt.hpp>

namespace {

/// Gradients of the mean squared error of y = x . w + b against y = x . (1, -2, 3, 0.5) - 1 on a
/// fixed set of 64 points.
void gradients(const std::vector<float>& w, const std::vector<float>& b, std::vector<float>& gw,
               std::vector<float>& gb) {
  const float truth[4] = {1.0f, -2.0f, 3.0f, 0.5f};
  std::fill(gw.begin(), gw.end(), 0.0f);
  gb[0] = 0.0f;
  for (int i = 0; i < 64; ++i) {
    float x[4], err = b[0] + 1.0f;
    for (int j = 0; j < 4; ++j) {
      x[j] = float((i * (j + 3)) % 17 - 8) / 8.0f;
      err += x[j] * (w[j] - truth[j]);
    }
    for (int j = 0; j < 4; ++j) gw[j] += 2.0f * err * x[j] / 64.0f;
    gb[0] += 2.0f * err / 64.0f;
  }
}

// [docs/training.md]
/// Trains until the schedule's step `epoch` reaches `until`.
void train(dlopt::Adam<float>& opt, std::vector<float>& w, std::vector<float>& b,
           const dlopt::CosineAnnealing& schedule, int64_t& epoch, int64_t until) {
  std::vector<float> gw(4), gb(1);
  for (; epoch < until; ++epoch) {
    opt.config().lr = schedule.lr(epoch);  // the optimizer holds its config: set it, not a copy
    gradients(w, b, gw, gb);
    dlopt::Span<float> grads[] = {{gw.data(), 4}, {gb.data(), 1}};
    dlopt::clip_grad_norm(grads, 2, /*max_norm=*/1.0);
    opt.step({gw.data(), gb.data()});
  }
  opt.config().lr = schedule.lr(epoch);  // the next step's, as Python's scheduler.step() leaves it
}

int run() {
  const dlopt::CosineAnnealing schedule{/*base_lr=*/0.1, /*T_max=*/300};
  std::vector<float> w(4, 0.0f), b(1, 0.0f);
  dlopt::Adam<float> opt({{w.data(), 4}, {b.data(), 1}});
  int64_t epoch = 0;  // the schedule's step (Python's last_epoch)
  train(opt, w, b, schedule, epoch, 150);

  dlopt::SaveOptions save;  // parameters, optimizer state and config, schedule position
  save.names = {"w", "b"};
  save.scheduler = dlopt::SchedulerState{"CosineAnnealingLR", epoch, {schedule.base_lr}};
  dlopt::save("run.dlopt", opt, save);  // atomic; dlopt.load reads it in Python
  train(opt, w, b, schedule, epoch, 300);

  std::vector<float> w2(4), b2(1);  // after a restart: new buffers, a new optimizer
  dlopt::Adam<float> resumed({{w2.data(), 4}, {b2.data(), 1}});
  int64_t epoch2 = dlopt::load("run.dlopt", resumed, {"w", "b"})->last_epoch;  // all or nothing
  train(resumed, w2, b2, schedule, epoch2, 300);

  const bool exact = std::memcmp(w.data(), w2.data(), sizeof(float) * 4) == 0 && b[0] == b2[0];
  std::printf("w = (%.3f, %.3f, %.3f, %.3f), b = %.3f; resumed run %s\n", w[0], w[1], w[2], w[3], b[0],
              exact ? "identical" : "DIFFERS");
  return exact && std::abs(b[0] + 1.0f) < 1e-2f ? 0 : 1;
}
// [docs/training.md]

}  // namespace

int main() {
  const int status = run();
  std::remove("run.dlopt");
  return status;
}
