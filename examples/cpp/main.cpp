// Embedding dlopt: an application that owns its parameter buffers and lets dlopt step them.
//
// Fits y = X w + b (least squares) on synthetic data four ways: full-batch gradient descent with the
// typed optimizer class dlopt::Adam<float>; with an optimizer chosen by name at run time
// (dlopt::make_optimizer); with the library's own dlopt::LinearModel (mini-batch SGD with momentum and
// a cosine learning-rate schedule, over the application's X and y read in place); and in closed form
// (dlopt::solve_least_squares).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include <dlopt/dlopt.hpp>

namespace {

struct Data {
  int n = 512, d = 8;
  std::vector<float> x, y, w_true;
  float b_true = 0.5f;
};

Data make_data() {
  Data data;
  std::mt19937 rng(0);
  std::normal_distribution<float> normal;
  data.x.resize(std::size_t(data.n) * data.d);
  data.y.resize(std::size_t(data.n));
  for (int j = 0; j < data.d; ++j) data.w_true.push_back(float(j + 1) / data.d);
  for (float& v : data.x) v = normal(rng);
  for (int i = 0; i < data.n; ++i) {
    float yi = data.b_true;
    for (int j = 0; j < data.d; ++j) yi += data.x[std::size_t(i) * data.d + j] * data.w_true[j];
    data.y[i] = yi;
  }
  return data;
}

/// Mean squared error and its gradient with respect to w and b.
float loss_and_grad(const Data& data, const std::vector<float>& w, float b, std::vector<float>& gw, float& gb) {
  std::fill(gw.begin(), gw.end(), 0.0f);
  gb = 0;
  double loss = 0;
  for (int i = 0; i < data.n; ++i) {
    float r = b - data.y[i];
    for (int j = 0; j < data.d; ++j) r += data.x[std::size_t(i) * data.d + j] * w[j];
    loss += double(r) * r;
    for (int j = 0; j < data.d; ++j) gw[j] += 2 * r * data.x[std::size_t(i) * data.d + j] / data.n;
    gb += 2 * r / data.n;
  }
  return float(loss / data.n);
}

template <class StepFn>
float train(const Data& data, std::vector<float>& w, std::vector<float>& b, StepFn step, int epochs) {
  std::vector<float> gw(w.size()), gb(1);
  float loss = 0;
  for (int e = 0; e < epochs; ++e) {
    loss = loss_and_grad(data, w, b[0], gw, gb[0]);
    step(gw.data(), gb.data());
  }
  return loss_and_grad(data, w, b[0], gw, gb[0]);
}

}  // namespace

int main() {
  const Data data = make_data();
  std::printf("dlopt %s (CUDA %s)\n", DLOPT_VERSION, DLOPT_HAS_CUDA ? "built" : "not built");
  int failures = 0;

  {  // 1. The typed class: Config fields by name, state owned by the optimizer.
    std::vector<float> w(data.d, 0.0f), b(1, 0.0f);
    dlopt::AdamConfig config;
    config.lr = 0.05;
    dlopt::Adam<float> opt({{w.data(), int64_t(w.size())}, {b.data(), 1}}, config);
    float loss = train(data, w, b, [&](const float* gw, const float* gb) { opt.step({gw, gb}); }, 400);
    std::printf("Adam<float>:        loss %.3g after 400 steps, b = %.4f (true %.1f)\n", loss, b[0], data.b_true);
    failures += !(loss < 1e-4f);
  }
  {  // 2. By name, as an application reading its optimizer from a config file would.
    std::vector<float> w(data.d, 0.0f), b(1, 0.0f);
    auto opt = dlopt::make_optimizer<float>("sgd", {{w.data(), int64_t(w.size())}, {b.data(), 1}},
                                            {{"lr", 0.1}, {"momentum", 0.9}});
    float loss = train(data, w, b, [&](const float* gw, const float* gb) { opt->step({gw, gb}); }, 200);
    std::printf("make_optimizer(\"sgd\"): loss %.3g after 200 steps, w[7] = %.4f (true %.1f)\n", loss, w[7],
                data.w_true[7]);
    failures += !(loss < 1e-4f);
  }
  {  // 3. The library's linear model: loss, gradient, mini-batches and schedule done by dlopt.
    std::vector<float> w(data.d, 0.0f), b(1, 0.0f);
    dlopt::TrainConfig config;
    config.optimizer = "sgd";
    config.lr = 0.05;
    config.optimizer_params = {{"momentum", 0.9}};
    config.epochs = 60;
    config.batch_size = 32;
    config.lr_schedule.name = "cosine";  // T_max defaults to the 60 epochs
    dlopt::LinearModel<float> model(dlopt::Objective::SquaredError, data.d, 1, w.data(), b.data(), config);
    const dlopt::DataView<float> view{data.x.data(), data.n, data.d, data.y.data(), nullptr};
    model.fit(view);
    const double loss = model.loss(view);
    std::printf("LinearModel (sgd):  loss %.3g after %lld epochs (%lld steps), b = %.4f, final lr %.3g\n", loss,
                (long long)model.epochs_trained(), (long long)model.steps(), b[0], model.lr_curve().back());
    failures += !(loss < 1e-4);
  }
  {  // 4. The closed form.
    std::vector<float> w(data.d, 0.0f);
    float b = 0;
    dlopt::solve_least_squares<float>({data.x.data(), data.n, data.d, data.y.data(), nullptr}, {}, w.data(), &b);
    float err = std::abs(b - data.b_true);
    for (int j = 0; j < data.d; ++j) err = std::max(err, std::abs(w[j] - data.w_true[j]));
    std::printf("solve_least_squares: max |error| %.2g, b = %.4f\n", err, b);
    failures += !(err < 1e-4f);
  }
  std::printf(failures ? "FAILED\n" : "OK\n");
  return failures ? 1 : 0;
}
