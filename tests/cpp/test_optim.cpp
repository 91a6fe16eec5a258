// C++ API tests: the owning Optimizer class, AnyOptimizer, validation before mutation.
// Numerical parity with published algorithms is covered in depth by the Python tests, which
// drive the same kernels; here each check has a hand-computed expected value.

#include <cmath>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "dlopt/dlopt.hpp"

namespace {

int passed = 0, failed = 0;

void check(bool ok, const std::string& what) {
  (ok ? passed : failed) += 1;
  if (!ok) std::printf("FAILED: %s\n", what.c_str());
}

bool near(double a, double b, double tol = 1e-12) { return std::abs(a - b) <= tol * (1 + std::abs(b)); }

template <class E>
bool throws(const std::function<void()>& f) {
  try {
    f();
  } catch (const E&) {
    return true;
  } catch (...) {
  }
  return false;
}

void sgd_momentum_by_hand() {
  std::vector<double> w = {1.0, -2.0};
  dlopt::SGDConfig c;
  c.lr = 0.5;
  c.momentum = 0.9;
  dlopt::SGD<double> opt({{w.data(), 2}}, c);
  std::vector<double> g = {1.0, 2.0};
  opt.step({g.data()});  // b = g; w -= 0.5 b
  check(near(w[0], 0.5) && near(w[1], -3.0), "SGD first step uses b = g");
  opt.step({g.data()});  // b = 0.9 b + g = 1.9 g
  check(near(w[0], 0.5 - 0.95) && near(w[1], -3.0 - 1.9), "SGD second step uses momentum");
  check(opt.scalars(0).step == 2, "step counter advances");
}

void adam_first_step_is_lr_sign() {
  std::vector<float> w(37, 1.0f), g(37);
  for (int i = 0; i < 37; ++i) g[i] = float(i % 5) - 2.0f;  // includes zeros
  dlopt::Adam<float> opt({{w.data(), 37}}, dlopt::AdamConfig{0.1});
  opt.step({g.data()});
  bool ok = true;
  for (int i = 0; i < 37; ++i) {
    // First Adam step: m̂ = g, v̂ = g², so the update is lr·g/(|g| + eps).
    const double expected = 1.0 - 0.1 * g[i] / (std::abs(g[i]) + 1e-8);
    ok = ok && near(w[i], expected, 1e-6);
  }
  check(ok, "Adam's first step is lr * sign(g)");
  check(opt.state(0, 2).empty(), "AMSGrad buffer not allocated when amsgrad is off");
}

void null_gradient_skips() {
  std::vector<float> a = {1.0f}, b = {1.0f}, g = {1.0f};
  dlopt::Adagrad<float> opt({{a.data(), 1}, {b.data(), 1}});
  opt.step({g.data(), nullptr});
  check(a[0] != 1.0f && b[0] == 1.0f && opt.scalars(1).step == 0, "nullptr gradient skips a tensor");
}

void invalid_config_changes_nothing() {
  std::vector<float> w = {1.0f}, g = {1.0f};
  dlopt::AdamW<float> opt({{w.data(), 1}});
  opt.config().beta1 = 1.0;
  check(throws<dlopt::InvalidArgument>([&] { opt.step({g.data()}); }), "betas[0] = 1 is rejected");
  check(w[0] == 1.0f && opt.scalars(0).step == 0 && opt.state(0, 0).empty(),
        "a rejected step changes nothing");
  dlopt::SGDConfig bad;
  bad.lr = std::nan("");
  check(throws<dlopt::InvalidArgument>([&] { dlopt::SGD<float>({{w.data(), 1}}, bad); }), "NaN lr is rejected");
}

void any_optimizer_by_name() {
  std::vector<double> w = {0.0}, g = {4.0};
  auto opt = dlopt::make_optimizer<double>("dynamiclr", {{w.data(), 1}}, {{"lr", 0.5}, {"beta", 1.0}});
  opt->step({g.data()});  // w -= 0.5 / (1 + 16) * 4
  check(near(w[0], -2.0 / 17.0), "DynamicLR by name");
  check(std::string(opt->name()) == "DynamicLR", "name() is the registry name");
  opt->set("lr", 0.25);
  check(near(opt->get("lr"), 0.25), "set/get a hyperparameter");
  check(throws<dlopt::InvalidArgument>([&] { opt->set("lr", -1.0); }), "set validates");
  check(near(opt->get("lr"), 0.25), "a rejected set keeps the old value");
  check(throws<dlopt::InvalidArgument>([&] { dlopt::make_optimizer<double>("nope", {}); }),
        "unknown optimizer name");
  check(throws<dlopt::InvalidArgument>([&] { dlopt::make_optimizer<double>("adam", {}, {{"momentum", 0.9}}); }),
        "unknown hyperparameter");
  check(dlopt::optimizer_names().size() == 11, "registry lists every optimizer");
}

}  // namespace

int main() {
  sgd_momentum_by_hand();
  adam_first_step_is_lr_sign();
  null_gradient_skips();
  invalid_config_changes_nothing();
  any_optimizer_by_name();
  std::printf("%d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}
