// C++ tests of the linear models (dlopt/models/linear.hpp): the seed example y = 2x + 1 with SGD and
// in closed form, logistic regression on a separable set, softmax regression, the per-epoch lr
// schedule (lr_schedule) and the argument checks. Prints "N passed, M failed".

#include <cmath>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "dlopt/dlopt.hpp"
#include "harness.hpp"

namespace {

using namespace dlopt_test;

/// y = 2x + 1 at 100 points of [-1, 1], no noise.
struct Line {
  std::vector<double> x, y;
  Line() {
    for (int i = 0; i < 100; ++i) {
      x.push_back(-1.0 + 2.0 * i / 99);
      y.push_back(2 * x.back() + 1);
    }
  }
  dlopt::DataView<double> view() const { return {x.data(), 100, 1, y.data(), nullptr}; }
};

void seed_example_sgd() {
  const Line line;
  {  // full-batch gradient descent
    std::vector<double> w(1, 0.0), b(1, 0.0);
    dlopt::TrainConfig cfg;
    cfg.optimizer = "sgd";
    cfg.lr = 0.1;
    cfg.epochs = 1000;
    dlopt::LinearModel<double> m(dlopt::Objective::SquaredError, 1, 1, w.data(), b.data(), cfg);
    check(m.fit(line.view()) == 1000, "full batch: runs every epoch");
    check(near_abs(w[0], 2.0, 1e-6) && near_abs(b[0], 1.0, 1e-6), "full batch SGD reaches w = 2, b = 1");
    check(m.loss(line.view()) < 1e-12, "full batch: loss ~ 0");
    check(m.steps() == 1000 && m.epochs_trained() == 1000, "full batch: one step per epoch");
    check(m.loss_curve().front() > m.loss_curve().back(), "loss decreases");
  }
  {  // shuffled mini-batches of 10 (10 steps per epoch), float
    std::vector<float> xf(line.x.begin(), line.x.end()), yf(line.y.begin(), line.y.end());
    std::vector<float> w(1, 0.0f), b(1, 0.0f);
    dlopt::TrainConfig cfg;
    cfg.optimizer = "sgd";
    cfg.lr = 0.05;
    cfg.batch_size = 10;
    cfg.epochs = 300;
    cfg.seed = 7;
    dlopt::LinearModel<float> m(dlopt::Objective::SquaredError, 1, 1, w.data(), b.data(), cfg);
    m.fit({xf.data(), 100, 1, yf.data(), nullptr});
    check(near_abs(w[0], 2.0, 1e-4) && near_abs(b[0], 1.0, 1e-4), "mini-batch SGD (float) reaches w = 2, b = 1");
    check(m.steps() == 300 * 10, "mini-batch: 10 steps per epoch");
  }
}

void closed_form() {
  const Line line;
  double w = 0, b = 0;
  const bool deficient = dlopt::solve_least_squares(line.view(), {}, &w, &b);
  check(!deficient, "closed form: full rank");
  check(near_abs(w, 2.0, 1e-12) && near_abs(b, 1.0, 1e-12), "closed form gives w = 2, b = 1");
  // ... and agrees with gradient descent on a noisy, 3-feature problem
  std::vector<double> X, y;
  uint64_t s = 1;
  auto u = [&] { s = s * 6364136223846793005ull + 1442695040888963407ull; return double(s >> 11) / 9007199254740992.0 - 0.5; };
  for (int i = 0; i < 300; ++i) {
    double t = 0.3;
    for (int j = 0; j < 3; ++j) {
      X.push_back(u());
      t += (j + 1) * X.back();
    }
    y.push_back(t + 0.05 * u());
  }
  const dlopt::DataView<double> d{X.data(), 300, 3, y.data(), nullptr};
  std::vector<double> wc(3), bc(1), wg(3, 0.0), bg(1, 0.0);
  dlopt::solve_least_squares(d, {}, wc.data(), bc.data());
  dlopt::TrainConfig cfg;
  cfg.optimizer = "adam";
  cfg.lr = 0.05;
  cfg.epochs = 3000;
  dlopt::LinearModel<double> m(dlopt::Objective::SquaredError, 3, 1, wg.data(), bg.data(), cfg);
  m.fit(d);
  bool same = near_abs(bc[0], bg[0], 1e-4);
  for (int j = 0; j < 3; ++j) same = same && near_abs(wc[j], wg[j], 1e-4);
  check(same, "closed form matches the gradient-descent optimum");
}

void logistic_separable() {
  // Two clouds on either side of the line x0 + x1 = 0, with a margin.
  std::vector<double> X, y;
  for (int i = 0; i < 200; ++i) {
    const double a = std::sin(i * 1.7) * 2, c = std::cos(i * 0.9) * 2;
    const double label = i % 2;
    const double shift = label ? 0.6 : -0.6;
    X.push_back(a + shift);
    X.push_back(-a + c * 0.1 + shift);
    y.push_back(label);
  }
  std::vector<double> w(2, 0.0), b(1, 0.0);
  dlopt::TrainConfig cfg;
  cfg.optimizer = "adam";
  cfg.lr = 0.1;
  cfg.epochs = 500;
  dlopt::LinearModel<double> m(dlopt::Objective::Logistic, 2, 1, w.data(), b.data(), cfg);
  const dlopt::DataView<double> d{X.data(), 200, 2, y.data(), nullptr};
  m.fit(d);
  std::vector<double> z(200);
  m.decision_function(X.data(), 200, z.data());
  int correct = 0;
  for (int i = 0; i < 200; ++i) correct += (z[i] > 0) == (y[i] == 1);
  check(correct == 200, "logistic regression separates a separable set (" + std::to_string(correct) + "/200)");
  check(m.loss(d) < 0.05, "logistic loss small on separable data");
  check(throws<dlopt::InvalidArgument>([&] {
          std::vector<double> bad = y;
          bad[3] = 2;
          m.fit({X.data(), 200, 2, bad.data(), nullptr});
        }, "labels 0 or 1"), "logistic rejects labels other than 0/1");
}

void softmax_three_classes() {
  std::vector<double> X, y;
  const double centres[3][2] = {{0, 0}, {4, 0}, {0, 4}};
  for (int i = 0; i < 90; ++i) {
    const int k = i % 3;
    X.push_back(centres[k][0] + 0.5 * std::sin(i * 1.3));
    X.push_back(centres[k][1] + 0.5 * std::cos(i * 2.1));
    y.push_back(k);
  }
  std::vector<double> W(6, 0.0), b(3, 0.0);
  dlopt::TrainConfig cfg;
  cfg.lr = 0.1;
  cfg.epochs = 300;
  dlopt::LinearModel<double> m(dlopt::Objective::Softmax, 2, 3, W.data(), b.data(), cfg);
  m.fit({X.data(), 90, 2, y.data(), nullptr});
  std::vector<double> z(270);
  m.decision_function(X.data(), 90, z.data());
  int correct = 0;
  for (int i = 0; i < 90; ++i) {
    int best = 0;
    for (int k = 1; k < 3; ++k)
      if (z[i * 3 + k] > z[i * 3 + best]) best = k;
    correct += best == int(y[i]);
  }
  check(correct == 90, "softmax regression classifies three clouds");
}

void lr_schedule() {
  const Line line;
  std::vector<double> w(1, 0.0), b(1, 0.0);
  dlopt::TrainConfig cfg;
  cfg.optimizer = "sgd";
  cfg.lr = 0.1;
  cfg.epochs = 20;
  cfg.lr_schedule.name = "cosine";
  cfg.lr_schedule.params = {{"eta_min", 0.001}};
  dlopt::LinearModel<double> m(dlopt::Objective::SquaredError, 1, 1, w.data(), b.data(), cfg);
  m.fit(line.view());
  bool ok = m.lr_curve().size() == 20;
  for (int e = 0; ok && e < 20; ++e)
    ok = near_abs(m.lr_curve()[e], 0.001 + (0.1 - 0.001) * (1 + std::cos(3.14159265358979323846 * e / 20)) / 2, 1e-15);
  check(ok, "cosine lr_schedule: lr of epoch e is schedule.lr(e), T_max defaults to epochs");

  // the same as setting lr by hand every epoch
  std::vector<double> w2(1, 0.0), b2(1, 0.0);
  dlopt::TrainConfig manual = cfg;
  manual.lr_schedule = {};
  dlopt::LinearModel<double> m2(dlopt::Objective::SquaredError, 1, 1, w2.data(), b2.data(), manual);
  for (int e = 0; e < 20; ++e) {
    m2.config().lr = m.lr_curve()[e];
    m2.partial_fit(line.view());
  }
  check(w2[0] == w[0] && b2[0] == b[0], "scheduled fit equals a manual loop setting lr each epoch");

  // partial_fit continues the schedule, with defaults from the configured epochs
  std::vector<double> w3(1, 0.0), b3(1, 0.0);
  dlopt::TrainConfig step = cfg;
  step.lr_schedule = {};
  step.lr_schedule.name = "step";
  step.lr_schedule.params = {{"step_size", 2}, {"gamma", 0.5}};
  dlopt::LinearModel<double> m3(dlopt::Objective::SquaredError, 1, 1, w3.data(), b3.data(), step);
  for (int e = 0; e < 5; ++e) m3.partial_fit(line.view());
  const std::vector<double> want = {0.1, 0.1, 0.05, 0.05, 0.025};
  check(m3.lr_curve() == want, "partial_fit continues the step schedule");

  auto bad = [&](dlopt::ScheduleSpec spec, const std::string& needle) {
    dlopt::TrainConfig c = cfg;
    c.lr_schedule = std::move(spec);
    return throws<dlopt::InvalidArgument>([&] { c.validate(); }, needle);
  };
  check(bad({"nope", {}, {}, {}, false}, "unknown schedule 'nope'"), "unknown schedule name");
  check(bad({"cosine", {{"T_max", 0}}, {}, {}, false}, "lr_schedule['T_max']"), "T_max <= 0 named");
  check(bad({"cosine", {{"Tmax", 3}}, {}, {}, false}, "lr_schedule['Tmax']: unknown key"), "unknown key named");
  check(bad({"wsd", {}, {{"decay", "exp"}}, {}, false}, "lr_schedule['decay']"), "bad option named");
  check(bad({"step", {{"step_size", 1.5}}, {}, {}, false}, "lr_schedule['step_size']"), "non-integer named");
  dlopt::TrainConfig oc = cfg;
  oc.lr_schedule = {"one_cycle", {{"total_steps", 10}}, {}, {}, false};
  std::vector<double> w4(1, 0.0), b4(1, 0.0);
  dlopt::LinearModel<double> m4(dlopt::Objective::SquaredError, 1, 1, w4.data(), b4.data(), oc);
  check(throws<dlopt::InvalidArgument>([&] { m4.fit(line.view()); }, "total steps") && w4[0] == 0 &&
            m4.epochs_trained() == 0,
        "a schedule that cannot cover every epoch fails before training");
}

void argument_checks() {
  std::vector<double> w(2), b(1);
  check(throws<dlopt::InvalidArgument>([&] {
          dlopt::LinearModel<double>(dlopt::Objective::Logistic, 2, 2, w.data(), b.data());
        }, "n_outputs"), "logistic needs one output");
  dlopt::TrainConfig cfg;
  cfg.lr = -1;
  check(throws<dlopt::InvalidArgument>([&] { cfg.validate(); }, "lr"), "negative lr");
  const Line line;
  dlopt::LinearModel<double> m(dlopt::Objective::SquaredError, 2, 1, w.data(), b.data());
  check(throws<dlopt::InvalidArgument>([&] { m.fit(line.view()); }, "features"), "feature count mismatch");
}

}  // namespace

int main() {
  seed_example_sgd();
  closed_form();
  logistic_separable();
  softmax_three_classes();
  lr_schedule();
  argument_checks();
  return summary();
}
