// C++ tests of the linear models' one fit loop (cpp/src/models/fit_loop.cpp) driving a fake device,
// as the CPU LinearModel and the CUDA LinearTrainer drive it: the epochs and their lrs, the plateau
// rule, early stopping (its split and the best epoch's parameters), the callback, and the rollback
// with its message after a divergence. Also the batches and row orders both devices share.

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>
#include <string>
#include <vector>

#include "common.hpp"
#include "epoch_threads.hpp"
#include "fit_loop.hpp"
#include "harness.hpp"

namespace {

using namespace dlopt_test;
using dlopt::detail::FitHistory;

/// A device whose "parameters" count its epochs, whose losses and scores are scripted.
struct FakeDevice final : dlopt::detail::FitBackend<float> {
  std::vector<double> losses, scores;  // per epoch; past the end: the last one
  std::vector<float> params = {0.0f, 0.0f};
  std::vector<double> lrs;             // every set_lr
  std::vector<std::size_t> epoch_rows, score_rows;
  std::string bad;
  int epochs = 0, scored = 0, resets = 0;
  bool made = false;
  bool train_mode = false;             // as after a previous fit's eval()
  std::string modes;                   // every set_train_mode: 't' / 'e'; 's' for a score
  std::vector<bool> epoch_modes;       // the mode each epoch ran in

  void ensure_optimizer() override { made = true; }
  void reset_optimizer() override { ++resets; }
  void set_lr(double lr) override { lrs.push_back(lr); }
  void set_train_mode(bool train) override {
    train_mode = train;
    modes += train ? 't' : 'e';
  }
  double epoch(std::vector<uint32_t>& rows) override {
    epoch_modes.push_back(train_mode);
    epoch_rows.push_back(rows.size());
    params[0] += 1.0f;  // the epoch's update
    const double l = losses[std::min<std::size_t>(std::size_t(epochs++), losses.size() - 1)];
    if (std::isnan(l)) throw dlopt::detail::NonFinite{};
    return l;
  }
  double score(const std::vector<uint32_t>& rows) override {
    score_rows.push_back(rows.size());
    modes += train_mode ? 'S' : 's';
    return scores[std::min<std::size_t>(std::size_t(scored++), scores.size() - 1)];
  }
  void save(std::vector<float>& out) override { out = params; }
  void restore(const std::vector<float>& in) override { params = in; }
  std::string bad_input() override { return bad; }
};

int64_t fit(FakeDevice& device, const dlopt::TrainConfig& c, FitHistory& h, int64_t n = 20,
            const dlopt::EpochCallback& callback = {}, dlopt::Objective obj = dlopt::Objective::SquaredError,
            const std::vector<float>& labels = {}) {
  std::vector<float> y = labels.empty() ? std::vector<float>(std::size_t(n), 0.0f) : labels;
  return dlopt::detail::fit_loop<float>(device, c, obj, 1, {y.data(), nullptr, n}, h, callback);
}

void epochs_and_schedule() {
  FakeDevice device;
  device.losses = {4, 3, 2, 1};
  dlopt::TrainConfig c;
  c.epochs = 4;
  c.lr = 0.1;
  c.lr_schedule.name = "step";
  c.lr_schedule.params["step_size"] = 2;
  FitHistory h;
  const int64_t run = fit(device, c, h);
  check(run == 4 && h.loss_curve == std::vector<double>({4, 3, 2, 1}), "every epoch runs, its loss recorded");
  check(device.made && device.params[0] == 4.0f, "the optimizer is made before the first epoch");
  check(device.lrs.size() == 1 && near(device.lrs[0], 0.01) && near(h.lr_curve[2], 0.01),
        "the schedule's lr is set when it changes (step: 0.1, 0.1, 0.01, 0.01)");
  check(device.epoch_rows == std::vector<std::size_t>(4, 0), "full batch: no row index array");
  FakeDevice again;
  again.losses = {1};
  fit(again, c, h);
  check(h.loss_curve.size() == 8 && near(h.lr_curve[4], 0.001), "a second fit continues the schedule");
}

void plateau_and_callback() {
  FakeDevice device;
  device.losses = {5, 4, 4, 4, 4, 4, 4};
  dlopt::TrainConfig c;
  c.epochs = 7;
  c.tol = 0.5;
  c.n_iter_no_change = 2;
  FitHistory h;
  check(fit(device, c, h) == 4, "the plateau rule stops after n_iter_no_change epochs without improvement");
  FakeDevice stopped;
  stopped.losses = {1};
  c.tol = std::numeric_limits<double>::quiet_NaN();
  FitHistory h2;
  int64_t seen = 0;
  const int64_t run = fit(stopped, c, h2, 20, [&](const dlopt::EpochInfo& e) {
    seen = e.epoch;
    return e.epoch == 3;
  });
  check(run == 3 && seen == 3, "the callback stops training");
}

void early_stopping() {
  FakeDevice device;
  device.losses = {1};
  device.scores = {0.5, 0.7, 0.6, 0.6, 0.6, 0.6};
  dlopt::TrainConfig c;
  c.epochs = 10;
  c.early_stopping = true;
  c.n_iter_no_change = 3;
  FitHistory h;
  const int64_t run = fit(device, c, h);
  check(run == 5 && h.validation_scores.size() == 5, "early stopping stops after n_iter_no_change worse scores");
  check(device.params[0] == 2.0f, "early stopping keeps the best epoch's parameters");
  check(h.val.size() == 2 && h.train.size() == 18 && device.epoch_rows[0] == 18 && device.score_rows[0] == 2,
        "the validation split: ceil(0.1 n) rows scored, the rest trained");
  std::set<uint32_t> all(h.val.begin(), h.val.end());
  all.insert(h.train.begin(), h.train.end());
  check(all.size() == 20, "the split is a partition of the rows");
  FakeDevice classes;
  classes.losses = {1};
  classes.scores = {1};
  c.epochs = 1;
  std::vector<float> labels(20, 0.0f);
  std::fill(labels.begin() + 10, labels.end(), 1.0f);
  FitHistory h2;
  fit(classes, c, h2, 20, {}, dlopt::Objective::Logistic, labels);
  const auto ones = std::count_if(h2.val.begin(), h2.val.end(), [](uint32_t r) { return r >= 10; });
  check(h2.val.size() == 2 && ones == 1, "classifiers: a stratified split");
  c.validation_fraction = 0.01;
  FakeDevice tiny;
  tiny.losses = {1};
  FitHistory h3;
  check(throws<dlopt::InvalidArgument>([&] { fit(tiny, c, h3, 1); }, "Invalid validation_fraction"),
        "a split that leaves no training rows is refused");
}

void divergence() {
  FakeDevice device;
  device.params = {7.0f, 8.0f};
  device.losses = {3, 2, std::numeric_limits<double>::quiet_NaN()};
  dlopt::TrainConfig c;
  c.epochs = 5;
  c.lr = 0.5;
  FitHistory h;
  h.loss_curve = {9};  // an earlier fit
  h.lr_curve = {0.5};
  check(throws<dlopt::InvalidArgument>([&] { fit(device, c, h); },
                                       "Training diverged at epoch 4: the loss became inf or NaN. Lower lr (now 0.5)"),
        "a divergence names the epoch (counting earlier fits) and the lr");
  check(device.params == std::vector<float>({7.0f, 8.0f}) && device.resets == 1 && h.loss_curve.size() == 1 &&
            h.lr_curve.size() == 1,
        "after a divergence: parameters restored, optimizer reset, curves as before");
  FakeDevice bad_x;
  bad_x.losses = {std::numeric_limits<double>::infinity()};
  bad_x.bad = "Input X contains NaN (row 1, column 0)";
  check(throws<dlopt::InvalidArgument>([&] { fit(bad_x, c, h); }, "Input X contains NaN (row 1, column 0)"),
        "a non-finite X is named instead (a returned inf counts as a divergence too)");
}

void shuffled_rows() {
  FakeDevice device;
  device.losses = {1};
  dlopt::TrainConfig c;
  c.epochs = 1;
  c.batch_size = 4;
  FitHistory h;
  fit(device, c, h, 10);
  check(device.epoch_rows[0] == 10, "mini-batches: every row's index, to shuffle");
  c.shuffle = false;
  FakeDevice in_place;
  in_place.losses = {1};
  fit(in_place, c, h, 10);
  check(in_place.epoch_rows[0] == 0, "without shuffling: the rows in place");
}

void batches() {
  dlopt::TrainConfig c;
  c.batch_size = 4;
  const dlopt::detail::BatchPlan fixed_size(c, 10);
  check(fixed_size.count == 3 && fixed_size.first(1) == 4 && fixed_size.first(3) == 10,
        "batches of batch_size rows, the last one short");
  c.batches = 3;
  const dlopt::detail::BatchPlan fixed_count(c, 10);
  check(fixed_count.count == 3 && fixed_count.first(1) == 3 && fixed_count.first(2) == 6 && fixed_count.first(3) == 10,
        "exactly `batches` batches (data-parallel)");
  c.batches = 0;
  c.batch_size = 0;
  check(dlopt::detail::BatchPlan(c, 10).count == 1, "full batch: one batch");
  std::vector<uint32_t> rows = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, tiles, order;
  uint64_t state = 1;
  c.batch_size = 4;
  const uint32_t* idx = dlopt::detail::epoch_order(c, dlopt::detail::BatchPlan(c, 10), rows, state, tiles, order);
  std::vector<uint32_t> seen(idx, idx + 10);
  std::sort(seen.begin(), seen.end());
  check(state != 1 && seen == std::vector<uint32_t>({0, 1, 2, 3, 4, 5, 6, 7, 8, 9}), "an epoch's order permutes the rows");
  std::vector<uint32_t> none;
  check(dlopt::detail::epoch_order(c, dlopt::detail::BatchPlan(c, 10), none, state, tiles, order) == nullptr,
        "no index array: the rows in place");
}

}  // namespace

// The mini-batch epoch's thread choice: try the team and one thread, run the faster, probe the other.
void epoch_threads() {
  dlopt::detail::EpochThreads t;
  check(t.pick(1) == 1 && t.pick(1) == 1, "one thread set: always one");
  std::vector<int> seq;
  auto run = [&](int epochs, double one, double team) {
    for (int e = 0; e < epochs; ++e) {
      const int k = t.pick(4);
      seq.push_back(k);
      t.record(k, k == 1 ? one : team);
    }
  };
  run(2, 1.0, 2.0);  // the first two epochs measure the team, then one thread
  check(seq == std::vector<int>({4, 1}), "the team first, then one thread");
  seq.clear();
  run(62, 1.0, 2.0);  // one thread is faster (a busy core): it runs, the team is probed at epoch 32
  check(std::count(seq.begin(), seq.end(), 4) == 1 && seq[30] == 4, "one thread runs; the team probed every 32");
  seq.clear();
  run(40, 3.0, 2.0);  // the load went away: the probe of the team finds it faster, and it stays
  check(seq.back() == 4 && std::count(seq.begin(), seq.end(), 1) <= 4, "the team again once it is faster");
  dlopt::detail::EpochThreads u;
  u.pick(4), u.record(4, 1.0), u.pick(4), u.record(1, 2.0);
  const int first = u.pick(2);
  u.record(first, 1.0);
  check(first == 2 && u.pick(2) == 1, "a new thread setting starts measuring again");
}

/// Schedule-Free's switch: epochs in train mode, scores and the end of a fit in eval mode, and the
/// parameters saved for the rollback are those before train() (the average x of the last call).
void train_eval_modes() {
  FakeDevice device;
  device.losses = {3, 2, 1};
  dlopt::TrainConfig c;
  c.epochs = 3;
  FitHistory h;
  fit(device, c, h);
  check(device.modes == "te" && device.epoch_modes == std::vector<bool>(3, true),
        "train() before the first epoch, eval() after the last");
  FakeDevice stopping;
  stopping.losses = {3, 2, 1};
  stopping.scores = {0.5, 0.7, 0.6};
  c.early_stopping = true;
  c.n_iter_no_change = 10;
  fit(stopping, c, h);
  check(stopping.modes == "testesteste" && stopping.epoch_modes == std::vector<bool>(3, true),
        "each validation score in eval mode, training resumed in train mode");
  check(stopping.params[0] == 2.0f, "the best epoch's (eval-mode) parameters are restored after eval()");
  FakeDevice diverging;
  diverging.losses = {1, NAN};
  c.early_stopping = false;
  bool threw = false;
  try {
    fit(diverging, c, h);
  } catch (const dlopt::InvalidArgument&) {
    threw = true;
  }
  check(threw && diverging.params[0] == 0.0f && diverging.resets == 1,
        "a divergence restores the parameters saved before train() and resets the optimizer");
}

int main() {
  train_eval_modes();
  epoch_threads();
  epochs_and_schedule();
  plateau_and_callback();
  early_stopping();
  divergence();
  shuffled_rows();
  batches();
  return summary();
}
