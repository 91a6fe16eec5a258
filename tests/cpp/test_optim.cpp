// C++ API tests: the owning Optimizer class, AnyOptimizer, validation before mutation.
// Numerical parity with published algorithms is covered in depth by the Python tests, which
// drive the same kernels; here each check has a hand-computed expected value.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstdio>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "dlopt/core/bf16_matmul.hpp"
#include "dlopt/core/formats.hpp"
#include "dlopt/dlopt.hpp"
#include "harness.hpp"

namespace {

using namespace dlopt_test;

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
  check(dlopt::optimizer_names().size() == 21, "registry lists every optimizer");
}

void sixteen_bit_parameters_and_low_precision_state() {
  // SGD on bf16 parameters: w = 1 - 0.5·g, with g = 1 exactly representable: no rounding at all.
  std::vector<dlopt::bfloat16> w(1000, dlopt::bfloat16{0x3f80}), g(1000, dlopt::bfloat16{0x3f80});  // 1.0
  dlopt::SGDConfig sgd;
  sgd.lr = 0.5;
  dlopt::SGD<dlopt::bfloat16> opt({{w.data(), 1000}}, sgd);
  opt.step({g.data()});
  check(w[0].bits == 0x3f00 && w[999].bits == 0x3f00, "bf16 SGD step: 1 - 0.5 = 0.5 exactly");

  // Adam on float32 parameters with int8 state: codes and scales, close to the float32 result.
  std::vector<float> a(600), b(600), grad(600);
  for (int i = 0; i < 600; ++i) a[i] = b[i] = 0.01f * float(i % 17), grad[i] = std::sin(0.1f * float(i));
  dlopt::StorageOptions int8;
  int8.state_dtype = dlopt::StateDType::Int8;
  dlopt::Adam<float> q({{a.data(), 600}}, dlopt::AdamConfig{0.01}, int8);
  dlopt::Adam<float> f({{b.data(), 600}}, dlopt::AdamConfig{0.01});
  for (int s = 0; s < 3; ++s) q.step({grad.data()}), f.step({grad.data()});
  const dlopt::StateBuffer& m = q.state(0, 0);
  const dlopt::StateBuffer& v = q.state(0, 1);
  check(m.storage == dlopt::Storage::Int8 && v.storage == dlopt::Storage::UInt8, "int8 state: int8 m, uint8 v");
  check(m.bytes.size() == 600 && m.scales.size() == 3, "int8 state: one byte per element, a scale per 256");
  // Each step moves an element by at most ~lr; quantization perturbs the step of elements far
  // below their block's maximum most, so the mean is the meaningful bound.
  double worst = 0, mean = 0;
  for (int i = 0; i < 600; ++i) {
    const double d = std::abs(double(a[i]) - double(b[i]));
    worst = std::max(worst, d), mean += d / 600;
  }
  std::printf("int8 vs float32 Adam after 3 steps: mean |diff| %.2e, max %.2e\n", mean, worst);
  check(mean < 1e-3 && worst < 0.03, "int8-state Adam stays close to float32 Adam (3 steps of lr 0.01)");
  std::vector<float> mf(600), mref(600);
  dlopt::to_float(const_cast<dlopt::StateBuffer&>(m).view(), 600, mf.data());
  for (int i = 0; i < 600; ++i) mref[i] = f.state(0, 0).data<float>()[i];
  // 3 mantissa bits, stochastically rounded: one code step is at most 1/8 of the value; over three
  // steps the mean error stays a few percent of the mean magnitude.
  double err = 0, mag = 0;
  for (int i = 0; i < 600; ++i) err += std::abs(double(mf[i]) - double(mref[i])), mag += std::abs(double(mref[i]));
  check(err < 0.05 * mag, "dequantized int8 m is within 5% (mean) of float32 Adam's m");

  // By name, with options; Adagrad's sum stays float32 whatever is asked.
  std::vector<dlopt::bfloat16> p16(10, dlopt::bfloat16{0x3f80}), g16(10, dlopt::bfloat16{0x3f80});
  dlopt::StorageOptions bf16;
  bf16.state_dtype = dlopt::StateDType::BFloat16;
  auto any = dlopt::make_optimizer<dlopt::bfloat16>("adagrad", {{p16.data(), 10}}, {{"lr", 0.1}}, bf16);
  any->step({g16.data()});
  check(p16[0].bits != 0x3f80, "make_optimizer<bfloat16> steps");

  // A gradient stored unlike its parameter is a WrongType, before anything changes.
  std::vector<float> p(8, 1.0f);
  std::vector<dlopt::float16> h(8, dlopt::float16{0x3c00});
  dlopt::SGDConfig config;
  dlopt::TensorScalars scalars;
  dlopt::TensorStep<dlopt::SGDRule, float> t;
  t.param = p.data();
  t.grad = h.data();
  t.size = 8;
  t.config = &config;
  t.scalars = &scalars;
  check(throws<dlopt::WrongType>([&] { dlopt::step(&t, 1); }) && scalars.step == 0 && p[0] == 1.0f,
        "a float16 gradient for a float32 parameter is refused");
  check(throws<dlopt::InvalidArgument>([&] {
          dlopt::StorageOptions master;
          master.master_weights = true;
          dlopt::SGD<float>({{p.data(), 8}}, {}, master);
        }), "master weights need 16-bit parameters");
}

/// The newer rules by hand, through their C++ aliases (Python checks them against the references).
void newer_rules_by_hand() {
  std::vector<double> w = {0.0, 0.0};
  dlopt::Rprop<double> rprop({{w.data(), 2}}, {0.1});
  std::vector<double> g1 = {1.0, -1.0}, g2 = {1.0, 1.0};
  rprop.step({g1.data()});
  rprop.step({g2.data()});  // element 0 keeps its sign: step 0.12; element 1 flips: no move
  check(near(w[0], -0.22) && near(w[1], 0.1), "Rprop grows the step and skips a sign flip");

  std::vector<double> a = {1.0};
  dlopt::ASGDConfig asgd;
  asgd.lr = 0.1, asgd.lambd = 0.5;
  dlopt::ASGD<double> avg({{a.data(), 1}}, asgd);
  std::vector<double> ga = {1.0};
  avg.step({ga.data()});  // p (1 - 0.5 * 0.1) - 0.1 = 0.85; eta and mu then move on for step 2
  check(near(a[0], 0.85) && near(avg.scalars(0).value[0], 0.1 / std::pow(1.05, 0.75)) &&
            near(avg.scalars(0).value[1], 1.0),
        "ASGD uses eta = lr on its first step and updates it afterwards");

  std::vector<float> y = {1.0f};
  dlopt::ScheduleFreeSGDConfig sf;
  sf.lr = 0.1;
  dlopt::ScheduleFreeSGD<float> sgd({{y.data(), 1}}, sf);
  std::vector<float> gy = {1.0f};
  sgd.step({gy.data()});  // c = 1: y = z + 0.1 (0.9 * 0 - 1) g, z = 1 - 0.1
  check(near(y[0], 0.9, 1e-7) && near(sgd.state(0, 0).data<float>()[0], 0.9, 1e-7), "Schedule-Free SGD's first step from z = y");

  std::vector<double> m = {3.0, 4.0}, v = {3.0, 4.0}, gm = {1.0, 0.0};
  dlopt::LARSConfig lars;
  lars.lr = 1.0, lars.momentum = 0.0, lars.trust_coefficient = 0.1, lars.exclude_1d = true;
  dlopt::LARS<double> layer({{m.data(), 2, 1}, {v.data(), 2}}, lars);
  layer.step({gm.data(), gm.data()});  // the 1 x 2 matrix: trust 0.1 * 5 / 1; the vector: plain SGD
  check(near(m[0], 2.5) && near(v[0], 2.0), "LARS scales matrices by the trust ratio, not excluded vectors");
}

/// Muon's bfloat16 products (core/bf16_matmul.hpp): each element within half a bfloat16 ulp (and
/// the float32 summation's error) of beta·add + alpha·L·R summed in double; a symmetric product
/// exactly symmetric; the same bits on 1 and 2 threads. Without oneDNN: "none", and a clear error.
void bf16_products_through_the_library() {
  namespace f = dlopt::formats;
  if (!dlopt::detail::has_bf16_matmul()) {
    check(std::string(dlopt::bf16_matmul_library()) == "none", "bf16_matmul_library() without oneDNN is none");
    check(throws<std::logic_error>([] { dlopt::detail::bf16_matmul(nullptr, nullptr, false, 1, 1, 1, false, 1, nullptr, 0, nullptr); },
                                   "bf16_matmul"), "bf16_matmul without oneDNN (or its bf16 kernels) throws");
    return;
  }
  check(std::string(dlopt::bf16_matmul_library()).rfind("oneDNN ", 0) == 0, "bf16_matmul_library() names oneDNN");
  const int64_t m = 300, k = 200, n = 270;  // edge tiles in every dimension (tiles of 256)
  uint64_t seed = 7;
  const auto draw = [&seed] {
    seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
    return f::float_to_bf16(float(int64_t(seed >> 40) - (int64_t(1) << 23)) / float(1 << 23));
  };
  std::vector<uint16_t> L(m * k), R(k * n), add(m * n), out(m * n), out1(m * n);
  for (auto* v : {&L, &R, &add})
    for (uint16_t& x : *v) x = draw();
  const auto within = [&](const std::vector<uint16_t>& got, const uint16_t* l, const uint16_t* r, bool rt, int64_t rows,
                          int64_t cols, float alpha, const uint16_t* a, float beta) {
    bool ok = true;
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t j = 0; j < cols; ++j) {
        double sum = 0, mag = 0;
        for (int64_t q = 0; q < k; ++q) {
          const double t = double(f::bf16_to_float(l[i * k + q])) * f::bf16_to_float(rt ? r[j * k + q] : r[q * cols + j]);
          sum += t, mag += std::abs(t);
        }
        const double want = (a ? beta * double(f::bf16_to_float(a[i * cols + j])) : 0.0) + alpha * sum;
        ok = ok && std::abs(f::bf16_to_float(got[i * cols + j]) - want) <= std::abs(want) / 256 * 1.001 + 1e-5 * mag;
      }
    return ok;
  };
  dlopt::detail::bf16_matmul(L.data(), R.data(), false, m, k, n, false, 0.5f, add.data(), -1.25f, out.data());
  check(within(out, L.data(), R.data(), false, m, n, 0.5f, add.data(), -1.25f), "bf16_matmul: beta*add + alpha*L*R");
  // X·Xᵀ: symmetric, through the transposed layout
  std::vector<uint16_t> gram(m * m), gram1(m * m);
  dlopt::detail::bf16_matmul(L.data(), L.data(), true, m, k, m, true, 1.0f, nullptr, 0.0f, gram.data());
  check(within(gram, L.data(), L.data(), true, m, m, 1.0f, nullptr, 0.0f), "bf16_matmul: X*X^T");
  bool symmetric = true;
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < m; ++j) symmetric = symmetric && gram[i * m + j] == gram[j * m + i];
  check(symmetric, "bf16_matmul: a symmetric product is exactly symmetric");
  const int threads = dlopt::get_num_threads();
  dlopt::set_num_threads(threads == 1 ? 2 : 1);
  dlopt::detail::bf16_matmul(L.data(), R.data(), false, m, k, n, false, 0.5f, add.data(), -1.25f, out1.data());
  dlopt::detail::bf16_matmul(L.data(), L.data(), true, m, k, m, true, 1.0f, nullptr, 0.0f, gram1.data());
  dlopt::set_num_threads(threads);
  check(out == out1 && gram == gram1, "bf16_matmul: the same bits on another thread count");
}

/// The instruction set the kernels run with is one of the documented names; when the caller says
/// which to expect (tests/cpp/test_portable.sh under an emulated pre-AVX CPU), it is that one.
void cpu_kernels_reported() {
  const std::string level = dlopt::cpu_kernels();
  check(level == "native" || level == "x86-64-v4" || level == "x86-64-v3" || level == "x86-64" || level == "generic",
        "cpu_kernels() names a known instruction set: " + level);
  if (const char* expected = std::getenv("DLOPT_EXPECT_CPU_KERNELS"))
    check(level == expected, "cpu_kernels() is " + level + ", expected " + expected);
}

}  // namespace

int main() {
  cpu_kernels_reported();
  sixteen_bit_parameters_and_low_precision_state();
  sgd_momentum_by_hand();
  adam_first_step_is_lr_sign();
  null_gradient_skips();
  invalid_config_changes_nothing();
  any_optimizer_by_name();
  newer_rules_by_hand();
  bf16_products_through_the_library();
  return summary();
}
