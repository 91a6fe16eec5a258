// A training run in C++ that tests/test_resume_cpp.py resumes in Python and the other way round:
//
//   dlopt_resume_tool <optimizer> <state_dtype: none|float32|bfloat16|int8> <from: checkpoint|-> <steps> <out> [eval]
//
// Parameters "w" (4 x 8) and "b" (8; not for Muon, which takes matrices only), float32, start from
// fixed values (or from <from>), take <steps> steps of fixed exact gradients with lr 0.01 under
// StepLR(step_size=3, gamma=0.5) (dlopt::StepDecay), and are saved with the optimizer and the
// schedule to <out> by AnyOptimizer::save (dlopt::save). tests/test_resume_cpp.py holds the same
// values and gradients. The run calls train() before its steps (Schedule-Free: from a checkpoint
// saved in eval mode) and, with "eval", eval() before saving (a no-op for other optimizers).

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "dlopt/dlopt.hpp"

namespace {

float initial(int64_t j) { return float((j * 5) % 11 - 5) / 4.0f; }
float gradient(int64_t j, int64_t t, int64_t i) { return float((j * 7 + t * 13 + i * 3) % 17 - 8) / 8.0f; }

}  // namespace

int main(int argc, char** argv) {
  if (argc != 6 && !(argc == 7 && std::string(argv[6]) == "eval")) {
    std::fprintf(stderr, "usage: %s <optimizer> <state_dtype|none> <from|-> <steps> <out> [eval]\n", argv[0]);
    return 2;
  }
  const std::string name = argv[1], state_dtype = argv[2], from = argv[3], out = argv[5];
  const int64_t steps = std::atoll(argv[4]);
  try {
    const bool matrices_only = name == "Muon";
    std::vector<std::vector<float>> values = {std::vector<float>(32)};
    if (!matrices_only) values.emplace_back(8);
    for (auto& v : values)
      for (std::size_t j = 0; j < v.size(); ++j) v[j] = initial(int64_t(j));
    std::vector<dlopt::ParamView<float>> views = {{values[0].data(), 32, 4, 1}};
    if (!matrices_only) views.push_back({values[1].data(), 8});
    std::vector<std::string> names = {"w", "b"};
    names.resize(values.size());

    dlopt::StorageOptions options;
    options.state_dtype = dlopt::parse_state_dtype(state_dtype == "none" ? "" : state_dtype);
    const dlopt::StepDecay schedule{0.01, 3, 0.5};
    auto opt = dlopt::make_optimizer<float>(name, views, {{"lr", schedule.lr(0)}}, options);
    int64_t epoch = 0;
    if (from != "-") epoch = opt->load(from, names).value().last_epoch;
    opt->train();

    std::vector<std::vector<float>> grads(values.size());
    for (int64_t s = 0; s < steps; ++s, ++epoch) {
      std::vector<const float*> g;
      for (std::size_t i = 0; i < values.size(); ++i) {
        grads[i].resize(values[i].size());
        for (std::size_t j = 0; j < values[i].size(); ++j) grads[i][j] = gradient(int64_t(j), epoch, int64_t(i));
        g.push_back(grads[i].data());
      }
      opt->step(g);
      opt->set("lr", schedule.lr(epoch + 1));  // as Python's scheduler.step() after optimizer.step()
    }
    dlopt::SaveOptions save;
    save.names = names;
    save.shapes = {{4, 8}, {8}};
    save.shapes.resize(values.size());
    save.scheduler = dlopt::SchedulerState{"StepLR", epoch, {schedule.base_lr}};
    if (argc == 7) opt->eval();
    opt->save(out, save);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
  return 0;
}
