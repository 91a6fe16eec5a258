// C++ tests of dlopt::LBFGS (dlopt/optim/lbfgs.hpp) on the Rosenbrock function: convergence with
// both line searches, torch 2.13's iterates (numbers below printed by torch.optim.LBFGS), the first
// step by hand, parameters split over buffers, bit-for-bit resume from a copied state, the error
// rules (a throwing or non-finite closure and bad options change nothing), and LinearModel's
// optimizer "lbfgs".
// Prints "N passed, M failed".

#include <cmath>
#include <cstdio>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "dlopt/dlopt.hpp"
#include "harness.hpp"

using namespace dlopt_test;

namespace {

/// Rosenbrock in n dimensions: Σ 100 (x[i+1] − x[i]²)² + (1 − x[i])², minimum 0 at (1, ..., 1).
/// Reads the parameters from `x` (all of them, whichever buffers the optimizer was given).
template <class T>
T rosenbrock(const std::vector<T>& x, std::vector<T>& g) {
  const std::size_t n = x.size();
  g.assign(n, T(0));
  T f = 0;
  for (std::size_t i = 0; i + 1 < n; ++i) {
    const T a = x[i + 1] - x[i] * x[i], b = T(1) - x[i];
    f += T(100) * a * a + b * b;
    g[i] += T(-400) * a * x[i] - T(2) * b;
    g[i + 1] += T(200) * a;
  }
  return f;
}

/// A closure over one buffer x.
template <class T>
typename dlopt::LBFGS<T>::Closure closure_for(std::vector<T>& x, int* calls = nullptr) {
  return [&x, calls](const std::vector<dlopt::Span<T>>& grad) {
    if (calls) ++*calls;
    std::vector<T> g;
    const T f = rosenbrock(x, g);
    std::copy(g.begin(), g.end(), grad[0].data);
    return double(f);
  };
}

std::vector<double> start(std::size_t n) {
  std::vector<double> x(n);
  for (std::size_t i = 0; i < n; ++i) x[i] = i % 2 ? 2.0 : -1.5;
  return x;
}

/// 20 steps from (-1.5, 2, -1.5, 2, ...); torch 2.13 takes 58 iterations with a fixed step (lr 1)
/// and 60 with the strong-Wolfe line search.
void converges(const std::string& line_search, int64_t torch_n_iter) {
  std::vector<double> x = start(6);
  dlopt::LBFGSOptions o;
  o.line_search_fn = line_search;
  o.max_iter = 200;
  o.max_eval = 400;
  o.tolerance_grad = 1e-10;
  o.tolerance_change = 0;
  dlopt::LBFGS<double> opt({{x.data(), 6}}, o);
  for (int k = 0; k < 20; ++k) opt.step(closure_for(x));
  double err = 0;
  for (double v : x) err = std::max(err, std::abs(v - 1));
  check(err < 1e-6, "Rosenbrock 6-D converges to (1, ..., 1) with line_search_fn='" + line_search +
                        "' (max error " + std::to_string(err) + ")");
  check(opt.state().has_history && opt.state().n_iter == torch_n_iter &&
            opt.state().func_evals >= opt.state().n_iter,
        "as many iterations as torch (" + std::to_string(opt.state().n_iter) + ")");
}

/// torch.optim.LBFGS([x], line_search_fn="strong_wolfe") from (-1.5, 2), float64, one step(), as
/// printed by torch 2.13 (CPU): x, n_iter, func_evals after it.
void matches_torch() {
  std::vector<double> x = {-1.5, 2.0};
  dlopt::LBFGSOptions o;
  o.line_search_fn = "strong_wolfe";
  dlopt::LBFGS<double> opt({{x.data(), 2}}, o);
  const double first = opt.step(closure_for(x));
  check(first == 12.5 && opt.state().n_iter == 19 &&
            opt.state().func_evals == 25,
        "one strong-Wolfe step takes torch's iterations and evaluations");
  check(std::abs(x[0] - -0.08511855589860293) <= 1e-12 && std::abs(x[1] - -0.028757058413769698) <= 1e-12,
        "one strong-Wolfe step ends where torch's does");
}

void first_step_by_hand() {
  // The first iteration moves by −min(1, 1/‖g‖₁)·lr·g; max_iter = 1 evaluates once.
  std::vector<double> x = {-1.5, 2.0}, g;
  rosenbrock(x, g);
  const double t = std::min(1.0, 1.0 / (std::abs(g[0]) + std::abs(g[1]))) * 0.5;
  const std::vector<double> expected = {std::fma(t, -g[0], x[0]), std::fma(t, -g[1], x[1])};
  dlopt::LBFGSOptions o;
  o.lr = 0.5;
  o.max_iter = 1;
  dlopt::LBFGS<double> opt({{x.data(), 2}}, o);
  int calls = 0;
  opt.step(closure_for(x, &calls));
  check(x == expected && calls == 1 && opt.state().func_evals == 1 && opt.state().n_iter == 1,
        "first step by hand, one evaluation");
  check(opt.state().t.tensor && opt.state().t.value == t && !opt.state().H_diag.tensor &&
            opt.state().H_diag.value == 1,
        "the first t is a tensor value, H_diag torch's int 1");
}

void split_buffers_match_one_buffer() {
  // The same 5-D problem with the parameters in one buffer and in two: identical iterates.
  std::vector<double> x = start(5), a = {x[0], x[1]}, b = {x[2], x[3], x[4]};
  dlopt::LBFGSOptions o;
  o.line_search_fn = "strong_wolfe";
  dlopt::LBFGS<double> one({{x.data(), 5}}, o);
  dlopt::LBFGS<double> two({{a.data(), 2}, {b.data(), 3}}, o);
  auto split = [&](const std::vector<dlopt::Span<double>>& grad) {
    std::vector<double> all = {a[0], a[1], b[0], b[1], b[2]}, g;
    const double f = rosenbrock(all, g);
    std::copy(g.begin(), g.begin() + 2, grad[0].data);
    std::copy(g.begin() + 2, g.end(), grad[1].data);
    return f;
  };
  for (int k = 0; k < 3; ++k) {
    one.step(closure_for(x));
    two.step(split);
  }
  check(x == std::vector<double>{a[0], a[1], b[0], b[1], b[2]}, "two buffers step as one flat vector");
}

void resume_is_bit_for_bit() {
  for (const std::string ls : {"", "strong_wolfe"}) {
    std::vector<double> x = start(4), y;
    dlopt::LBFGSOptions o;
    o.line_search_fn = ls;
    o.lr = ls.empty() ? 0.05 : 1.0;
    o.max_iter = 3;
    o.history_size = 2;  // the history wraps around
    dlopt::LBFGS<double> a({{x.data(), 4}}, o);
    for (int k = 0; k < 3; ++k) a.step(closure_for(x));
    y = x;
    dlopt::LBFGS<double> b({{y.data(), 4}}, o);
    b.set_state(a.state());
    for (int k = 0; k < 4; ++k) {
      a.step(closure_for(x));
      b.step(closure_for(y));
    }
    check(x == y && a.state().n_iter == b.state().n_iter && a.state().d == b.state().d,
          "a copied state resumes bit for bit (line_search_fn='" + ls + "')");
  }
}

void errors_change_nothing() {
  std::vector<float> x = {-1.5f, 2.0f};
  dlopt::LBFGSOptions o;
  o.line_search_fn = "strong_wolfe";
  dlopt::LBFGS<float> opt({{x.data(), 2}}, o);
  opt.step(closure_for(x));
  const std::vector<float> x_before = x;
  const dlopt::LBFGSState<float> s_before = opt.state();
  int calls = 0;
  auto fails_later = [&](const std::vector<dlopt::Span<float>>& grad) -> double {
    if (++calls == 3) throw std::runtime_error("closure failed");
    return closure_for(x)(grad);
  };
  auto same = [&] {
    return x == x_before && opt.state().n_iter == s_before.n_iter &&
           opt.state().func_evals == s_before.func_evals && opt.state().d == s_before.d &&
           opt.state().old_dirs.size() == s_before.old_dirs.size();
  };
  check(throws<std::runtime_error>([&] { opt.step(fails_later); }, "closure failed") && same(),
        "a closure that throws mid-step: parameters and state restored");
  calls = 0;
  auto nan_later = [&](const std::vector<dlopt::Span<float>>& grad) -> double {
    const double f = closure_for(x)(grad);
    return ++calls == 2 ? std::nan("") : f;
  };
  check(throws<dlopt::InvalidArgument>([&] { opt.step(nan_later); }, "non-finite loss") && same(),
        "a NaN loss: InvalidArgument, nothing changed");
  auto inf_grad = [&](const std::vector<dlopt::Span<float>>& grad) -> double {
    const double f = closure_for(x)(grad);
    grad[0].data[1] = INFINITY;
    return f;
  };
  check(throws<dlopt::InvalidArgument>([&] { opt.step(inf_grad); }, "element 1") && same(),
        "an infinite gradient: InvalidArgument naming the element, nothing changed");
  opt.options().history_size = 5;
  check(throws<dlopt::InvalidArgument>([&] { opt.step(closure_for(x)); }, "history_size") && same(),
        "history_size cannot change under a state");
  opt.options().history_size = 100;
  opt.options().line_search_fn = "backtracking";
  check(throws<dlopt::InvalidArgument>([&] { opt.step(closure_for(x)); }, "line_search_fn") && same(),
        "an unknown line search is refused");
  opt.options().line_search_fn = "strong_wolfe";
  using Edit = std::function<void(dlopt::LBFGSOptions&)>;
  for (const Edit& bad : {Edit([](dlopt::LBFGSOptions& b) { b.lr = -1; }),
                          Edit([](dlopt::LBFGSOptions& b) { b.max_iter = 0; }),
                          Edit([](dlopt::LBFGSOptions& b) { b.max_eval = 0; }),
                          Edit([](dlopt::LBFGSOptions& b) { b.history_size = 0; }),
                          Edit([](dlopt::LBFGSOptions& b) { b.tolerance_grad = NAN; })}) {
    dlopt::LBFGSOptions b;
    bad(b);
    check(throws<dlopt::InvalidArgument>([&] { dlopt::LBFGS<float>({{x.data(), 2}}, b); }),
          "invalid options are refused at construction");
  }
  dlopt::LBFGSState<float> wrong = opt.state();
  wrong.d.resize(3);
  check(throws<dlopt::InvalidArgument>([&] { opt.set_state(wrong); }, "d and prev_flat_grad") && same(),
        "a state of the wrong size is refused");
}

void linear_model_with_lbfgs() {
  // y = 2x + 1 at 100 points: LinearModel with optimizer "lbfgs" (full-batch L-BFGS) finds it.
  std::vector<double> x, y;
  for (int i = 0; i < 100; ++i) {
    x.push_back(-1.0 + 2.0 * i / 99);
    y.push_back(2 * x.back() + 1);
  }
  std::vector<double> w(1), b(1);
  dlopt::TrainConfig cfg;
  cfg.optimizer = "lbfgs";
  cfg.lr = 1;
  dlopt::LinearModel<double> model(dlopt::Objective::SquaredError, 1, 1, w.data(), b.data(), cfg);
  const int64_t iterations = model.fit({x.data(), 100, 1, y.data()});
  // (stopped by torch's tolerance_change = 1e-9 on the loss, which is 0 at the solution)
  check(std::abs(w[0] - 2) < 1e-5 && std::abs(b[0] - 1) < 1e-5 && iterations > 0 &&
            int64_t(model.loss_curve().size()) == iterations,
        "LinearModel with optimizer 'lbfgs' fits y = 2x + 1");
  model.config().batch_size = 10;
  check(throws<dlopt::InvalidArgument>([&] { model.fit({x.data(), 100, 1, y.data()}); }, "batch_size") &&
            int64_t(model.loss_curve().size()) == iterations,
        "L-BFGS refuses mini-batches, changing nothing");
}

}  // namespace

int main() {
  converges("", 58);
  converges("strong_wolfe", 60);
  matches_torch();
  first_step_by_hand();
  split_buffers_match_one_buffer();
  resume_is_bit_for_bit();
  errors_change_nothing();
  linear_model_with_lbfgs();
  return summary();
}
