// Resuming from C++: Optimizer::state_dict / load_state_dict (every rule, every state storage),
// lr changed between steps through config(), and dlopt::save / dlopt::load of parameters, optimizer
// and schedule, bit for bit; bad state and mismatched checkpoints change nothing.

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "dlopt/dlopt.hpp"
#include "harness.hpp"

namespace {

using namespace dlopt_test;

/// Exact gradients of step t (small multiples of 1/64).
template <class T>
std::vector<T> grad(int64_t n, int64_t t, int64_t salt) {
  std::vector<T> g(static_cast<std::size_t>(n));
  for (int64_t j = 0; j < n; ++j) {
    const float x = float((j * 37 + t * 101 + salt * 13) % 199 - 99) / 64.0f;
    if constexpr (std::is_same_v<T, dlopt::bfloat16>) g[std::size_t(j)] = dlopt::bfloat16{dlopt::formats::float_to_bf16(x)};
    else g[std::size_t(j)] = T(x);
  }
  return g;
}

/// The parameters of a run: a 6 x 40 matrix and, unless the rule takes matrices only, a vector.
template <class Rule, class T>
struct Run {
  std::vector<std::vector<T>> values;
  std::vector<dlopt::ParamView<T>> views;
  explicit Run(int64_t start = 1) {
    values.push_back(grad<T>(240, start, 1));
    if (!(Rule::matrix && Rule::matrix_2d)) values.push_back(grad<T>(300, start, 2));
    views.push_back({values[0].data(), 240, 6, 1});
    if (values.size() > 1) views.push_back({values[1].data(), 300});
  }
  void steps(dlopt::Optimizer<Rule, T>& opt, int64_t from, int64_t to) {
    for (int64_t t = from; t < to; ++t) {
      std::vector<std::vector<T>> g;
      std::vector<const T*> ptrs;
      for (std::size_t i = 0; i < values.size(); ++i) g.push_back(grad<T>(int64_t(values[i].size()), t, int64_t(i)));
      for (auto& x : g) ptrs.push_back(x.data());
      opt.step(ptrs);
    }
  }
  std::vector<std::string> names() const { return values.size() > 1 ? std::vector<std::string>{"w", "b"} : std::vector<std::string>{"w"}; }
};

template <class T>
bool same_bytes(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0;
}

template <class Rule>
bool same_state(const dlopt::OptimizerState<Rule>& a, const dlopt::OptimizerState<Rule>& b) {
  if (a.tensors.size() != b.tensors.size()) return false;
  for (std::size_t i = 0; i < a.tensors.size(); ++i) {
    const auto &x = a.tensors[i], &y = b.tensors[i];
    if (x.scalars.step != y.scalars.step || x.scalars.value != y.scalars.value) return false;
    if (x.master.size() != y.master.size() || !std::equal(x.master.begin(), x.master.end(), y.master.begin())) return false;
    for (std::size_t k = 0; k < x.slots.size(); ++k)
      if (x.slots[k].storage != y.slots[k].storage || x.slots[k].bytes.size() != y.slots[k].bytes.size() ||
          !std::equal(x.slots[k].bytes.begin(), x.slots[k].bytes.end(), y.slots[k].bytes.begin()) ||
          x.slots[k].scales.size() != y.slots[k].scales.size() ||
          !std::equal(x.slots[k].scales.begin(), x.slots[k].scales.end(), y.slots[k].scales.begin()))
        return false;
  }
  return true;
}

/// A run stopped after 3 steps and resumed into a fresh optimizer (state_dict, or a checkpoint file)
/// ends bit for bit where the uninterrupted run ends.
template <class Rule, class T = float>
void resumes_bitwise(const dlopt::StorageOptions& options = {}, const std::string& label = "") {
  const std::string name = std::string(Rule::name) + label;
  Run<Rule, T> straight, resumed, from_file;
  dlopt::Optimizer<Rule, T> a(straight.views, {}, options), b(resumed.views, {}, options),
      c(from_file.views, {}, options);
  const dlopt::StepDecay schedule{a.config().lr, 2, 0.5};
  int64_t epoch = 0;
  auto train = [&](dlopt::Optimizer<Rule, T>& opt, Run<Rule, T>& run, int64_t& e, int64_t to) {
    for (; e < to; ++e) {
      run.steps(opt, e, e + 1);
      opt.config().lr = schedule.lr(e + 1);  // what the next step uses, as Python's sched.step()
    }
  };
  train(a, straight, epoch, 3);
  const std::string path = "resume_" + name + ".dlopt";
  dlopt::SaveOptions save;
  save.names = straight.names();
  save.scheduler = dlopt::SchedulerState{"StepLR", epoch, {schedule.base_lr}};
  dlopt::save(path, a, save);
  for (std::size_t i = 0; i < straight.values.size(); ++i)
    std::copy(straight.values[i].begin(), straight.values[i].end(), resumed.values[i].begin());
  b.load_state_dict(a.state_dict());
  int64_t epoch_b = epoch;
  const std::optional<dlopt::SchedulerState> s = dlopt::load(path, c, from_file.names());
  int64_t epoch_c = s ? s->last_epoch : -1;
  check(s && s->base_lrs.size() == 1 && s->base_lrs[0] == schedule.base_lr && s->last_lrs.size() == 1 &&
            s->last_lrs[0] == a.config().lr && s->type == "StepLR",
        name + ": the schedule's position comes back");
  check(same_state(c.state_dict(), a.state_dict()) && same_bytes(from_file.values[0], straight.values[0]),
        name + ": load restores the state and the parameters");
  train(a, straight, epoch, 6);
  train(b, resumed, epoch_b, 6);
  train(c, from_file, epoch_c, 6);
  bool same = true;
  for (std::size_t i = 0; i < straight.values.size(); ++i)
    same = same && same_bytes(resumed.values[i], straight.values[i]) && same_bytes(from_file.values[i], straight.values[i]);
  check(same && same_state(b.state_dict(), a.state_dict()) && same_state(c.state_dict(), a.state_dict()),
        name + ": resumed through state_dict and through a file, bit for bit");
  std::remove(path.c_str());
}

void every_rule_resumes() {
#define DLOPT_RESUME(Rule) resumes_bitwise<dlopt::Rule>();
  DLOPT_FOR_EACH_RULE(DLOPT_RESUME)
#undef DLOPT_RESUME
  dlopt::StorageOptions int8, bf16, master;
  int8.state_dtype = dlopt::StateDType::Int8;
  bf16.state_dtype = dlopt::StateDType::BFloat16;
  master.master_weights = true;
  resumes_bitwise<dlopt::AdamRule>(int8, " int8 state");
  resumes_bitwise<dlopt::NAdamRule>(bf16, " bfloat16 state");
  resumes_bitwise<dlopt::AdafactorRule>(bf16, " bfloat16 state");
  resumes_bitwise<dlopt::AdamWRule, dlopt::bfloat16>(master, " bfloat16 params, master weights");
  resumes_bitwise<dlopt::AdamRule, double>({}, " float64");
}

/// Each bad state is refused with an InvalidArgument naming it, and the optimizer is unchanged.
void bad_state_changes_nothing() {
  dlopt::StorageOptions int8;
  int8.state_dtype = dlopt::StateDType::Int8;
  Run<dlopt::NAdamRule, float> run;
  dlopt::NAdam<float> opt(run.views, {}, int8);
  run.steps(opt, 0, 2);
  const dlopt::OptimizerState<dlopt::NAdamRule> before = opt.state_dict();
  auto refused = [&](const std::string& what, const std::string& needle, auto edit) {
    dlopt::OptimizerState<dlopt::NAdamRule> s = opt.state_dict();
    edit(s);
    check(throws<dlopt::InvalidArgument>([&] { opt.load_state_dict(s); }, needle), what + " is refused");
    check(same_state(opt.state_dict(), before) && opt.config().lr == before.config.lr &&
              opt.options().state_dtype == dlopt::StateDType::Int8,
          what + ": nothing changed");
  };
  using S = dlopt::OptimizerState<dlopt::NAdamRule>;
  refused("a tensor too few", "holds 1 tensors", [](S& s) { s.tensors.pop_back(); });
  refused("a negative step", "outside [0, 2^53)", [](S& s) { s.tensors[1].scalars.step = -1; });
  refused("step 2^53", "outside [0, 2^53)", [](S& s) { s.tensors[0].scalars.step = int64_t(1) << 53; });
  refused("a NaN mu_product", "['mu_product']: must be finite", [](S& s) { s.tensors[0].scalars.value[0] = NAN; });
  refused("an invalid config", "lr", [](S& s) { s.config.lr = -1; s.tensors[0].scalars.step = 5; });
  refused("float32 state under state_dtype int8", "stored as float32, expected int8",
          [](S& s) { s.tensors[0].slots[0].storage = dlopt::Storage::Float32; });
  refused("another state_dtype than the buffers'", "expected bfloat16",
          [](S& s) { s.options.state_dtype = dlopt::StateDType::BFloat16; });
  refused("a slot a byte short", "bytes, expected", [](S& s) { s.tensors[1].slots[1].bytes.pop_back(); });
  refused("8-bit codes without scales", "block scales", [](S& s) { s.tensors[0].slots[0].scales.clear(); });
  refused("a missing slot after steps", "missing", [](S& s) { s.tensors[0].slots[1] = {}; });
  refused("master weights for float32 parameters", "master_weights",
          [](S& s) { s.options.master_weights = true; });
  dlopt::Adam<float> adam(run.views);
  dlopt::OptimizerState<dlopt::AdamRule> s = adam.state_dict();
  s.tensors[0].slots[2].bytes.resize(240 * 4);  // max_exp_avg_sq without amsgrad
  check(throws<dlopt::InvalidArgument>([&] { adam.load_state_dict(s); }, "does not use the slot"),
        "an unused slot holding data is refused");
  dlopt::OptimizerState<dlopt::AdamRule> fresh = adam.state_dict();
  fresh.config.lr = 0.25;
  adam.load_state_dict(fresh);
  check(adam.config().lr == 0.25 && adam.scalars(0).step == 0, "a state before any step loads (the config with it)");
}

/// opt.config().lr changes the next step's lr; a bad value throws at that step and changes nothing.
void lr_changes_between_steps() {
  std::vector<double> w = {1.0}, g = {1.0};
  dlopt::SGD<double> opt({{w.data(), 1}});
  opt.config().lr = 0.5;
  opt.step({g.data()});
  opt.config().lr = 0.25;
  opt.step({g.data()});
  check(w[0] == 0.25, "config().lr set between steps is the lr of the next step");
  opt.config().lr = -1;
  check(throws<dlopt::InvalidArgument>([&] { opt.step({g.data()}); }) && w[0] == 0.25 && opt.scalars(0).step == 2,
        "a negative lr is refused at the step, which changes nothing");
  auto any = dlopt::make_optimizer<double>("sgd", {{w.data(), 1}}, {{"lr", 0.125}});
  any->step({g.data()});
  any->set("lr", 0.0625);
  any->step({g.data()});
  check(w[0] == 0.25 - 0.125 - 0.0625, "AnyOptimizer::set(\"lr\", ...) between steps");
}

/// A checkpoint that does not fit is refused before anything changes.
void mismatched_checkpoint_changes_nothing() {
  Run<dlopt::AdamRule, float> run;
  dlopt::Adam<float> adam(run.views);
  run.steps(adam, 0, 2);
  dlopt::SaveOptions save;
  save.names = {"w", "b"};
  dlopt::save("resume_mismatch.dlopt", adam, save);
  check(throws<dlopt::InvalidArgument>([&] { dlopt::save("x.dlopt", adam, dlopt::SaveOptions{}); }, "names"),
        "save without names is refused");

  Run<dlopt::AdamRule, float> other(7);
  const std::vector<float> w0 = other.values[0];
  auto unchanged = [&](auto& opt) { return same_bytes(other.values[0], w0) && opt.scalars(0).step == 0; };
  dlopt::SGD<float> sgd(other.views);
  check(throws<dlopt::CheckpointError>([&] { dlopt::load("resume_mismatch.dlopt", sgd, {"w", "b"}); }, "not a SGD"),
        "an Adam checkpoint does not load into SGD");
  check(unchanged(sgd), "SGD: nothing changed");
  dlopt::Adam<float> target(other.views);
  check(throws<dlopt::CheckpointError>([&] { dlopt::load("resume_mismatch.dlopt", target, {"w", "c"}); }, "'c'"),
        "an unknown parameter name is refused");
  check(throws<dlopt::InvalidArgument>([&] { dlopt::load("resume_mismatch.dlopt", target, {"w"}); }, "names"),
        "too few names are refused");
  check(throws<dlopt::InvalidArgument>([&] { dlopt::load("resume_mismatch.dlopt", target, {"w", "w"}); }, "twice"),
        "a name given twice is refused");
  std::vector<float> longer(301);
  dlopt::Adam<float> wrong_shape({other.views[0], {longer.data(), 301}});
  check(throws<dlopt::CheckpointError>([&] { dlopt::load("resume_mismatch.dlopt", wrong_shape, {"w", "b"}); },
                                       "parameter 'b'"),
        "a parameter of another size is refused");
  check(unchanged(wrong_shape) && unchanged(target), "refused loads changed nothing");
  dlopt::StorageOptions int8;
  int8.state_dtype = dlopt::StateDType::Int8;
  dlopt::Adam<float> quantized(other.views, {}, int8);
  dlopt::load("resume_mismatch.dlopt", quantized, {"w", "b"});
  check(quantized.options().state_dtype == dlopt::StateDType::Default && same_bytes(other.values[1], run.values[1]),
        "a load takes the parameters and the checkpoint's storage options (as Python's param groups)");
  std::remove("resume_mismatch.dlopt");
}

/// Python's keywords that are not one Config field (dlopt/param_group_keys.hpp) are written in
/// Python's form and read back to the same Config; a choice that names neither choice is refused.
void python_keywords_round_trip() {
  // the Config read back (absent fields at their defaults, as a load builds it) is the one written
  auto round_trip = [](const std::string& type, const auto& written) {
    using Config = std::decay_t<decltype(written)>;
    dlopt::TrainingCheckpoint c;
    c.optimizer.emplace();
    c.optimizer->type = type;
    c.optimizer->config = dlopt::detail::config_values(written);
    dlopt::write_training_checkpoint("resume_keys.dlopt", c);
    const Config read = dlopt::detail::config_from_values<Config>(
        dlopt::read_training_checkpoint("resume_keys.dlopt").optimizer->config);
    bool same = true;
    const std::vector<dlopt::ConfigValue> a = dlopt::detail::config_values(written), b = dlopt::detail::config_values(read);
    for (std::size_t i = 0; i < a.size(); ++i) same &= a[i].name == b[i].name && a[i].value == b[i].value;
    return same;
  };
  dlopt::MuonConfig muon;
  muon.adjust_lr = 1;
  muon.ns_bfloat16 = true;
  muon.ns_a = 3.0;
  check(round_trip("Muon", muon) && round_trip("Muon", dlopt::MuonConfig{}),
        "Muon's ns_coefficients, adjust_lr_fn and ns_dtype round-trip");
  dlopt::ADOPTConfig adopt;
  adopt.clip = false;
  check(round_trip("ADOPT", adopt) && round_trip("ADOPT", dlopt::ADOPTConfig{}),
        "ADOPT's clip_exponent=None round-trips");
  dlopt::AdEMAMixConfig ademamix;
  ademamix.alpha_warmup = 5;
  ademamix.beta3 = 0.95;
  check(round_trip("AdEMAMix", ademamix) &&
            round_trip("AdEMAMix", dlopt::AdEMAMixConfig{}),
        "AdEMAMix's three betas and warmups (None: 0) round-trip");
  dlopt::AdafactorConfig adafactor;
  check(round_trip("Adafactor", adafactor), "Adafactor's eps=(None, eps2) round-trips");
  adafactor.eps1 = 1e-20;
  check(round_trip("Adafactor", adafactor), "Adafactor's eps pair round-trips");
  dlopt::RpropConfig rprop;
  rprop.etaminus = 0.4;
  rprop.step_size_max = 10;
  check(round_trip("Rprop", rprop), "Rprop's etas and step_sizes round-trip");

  const std::string header =
      "{\"format\": \"dlopt-checkpoint\", \"version\": 1, \"types\": {\"optimizer\": \"Muon\"}, "
      "\"contents\": {\"optimizer\": {\"state\": {}, \"param_groups\": [{\"adjust_lr_fn\": \"bogus\", "
      "\"params\": []}]}}}";
  dlopt::write_checkpoint("resume_keys.dlopt", header, {});
  check(throws<dlopt::CheckpointError>([] { dlopt::read_training_checkpoint("resume_keys.dlopt"); },
                                       "adjust_lr_fn']: expected None, 'original' or 'match_rms_adamw'"),
        "a choice keyword naming neither choice is refused");
  std::remove("resume_keys.dlopt");
}

}  // namespace

/// Schedule-Free's modes: eval() moves the parameters to the average and back (train()), a step in
/// eval mode throws and changes nothing, the mode travels in state_dict and through dlopt::save /
/// load, and a rule without modes refuses a state in eval mode.
void schedule_free_modes() {
  std::vector<double> p = {1.0, -2.0, 0.5}, g = {0.25, 0.5, -1.0};
  dlopt::ScheduleFreeSGD<double> opt({{p.data(), 3}}, {});
  opt.eval();
  check(p == std::vector<double>({1.0, -2.0, 0.5}), "eval() before any step: y = x, nothing moves");
  opt.train();
  for (int t = 0; t < 3; ++t) opt.step({g.data()});
  const std::vector<double> y = p;
  const double* z = opt.state(0, 0).data<double>();
  opt.eval();
  check(!opt.train_mode() && p[1] == dlopt::detail::lerp(y[1], z[1], 1 - 1 / 0.9), "eval() moves p to lerp(y, z, 1 - 1/beta)");
  const std::vector<double> x = p;
  bool threw = false;
  try {
    opt.step({g.data()});
  } catch (const dlopt::InvalidArgument& e) {
    threw = std::string(e.what()).find("not in train mode") != std::string::npos;
  }
  check(threw && p == x && opt.scalars(0).step == 3, "a step in eval mode throws and changes nothing");
  const auto saved = opt.state_dict();
  check(!saved.train_mode, "state_dict holds the mode");
  dlopt::ScheduleFreeSGD<double> other({{p.data(), 3}}, {});
  other.load_state_dict(saved);
  check(!other.train_mode(), "load_state_dict restores the mode");
  const std::string path = "test_resume_modes.dlopt";
  dlopt::SaveOptions options;
  options.names = {"p"};
  dlopt::save(path, opt, options);
  std::vector<double> q(3);
  dlopt::ScheduleFreeSGD<double> loaded({{q.data(), 3}}, {});
  dlopt::load(path, loaded, {"p"});
  std::remove(path.c_str());
  check(!loaded.train_mode() && q == x, "an eval-mode checkpoint resumes in eval mode, at x");
  loaded.train();
  opt.train();
  check(q == p, "train() after resuming equals train() in the uninterrupted run");
  std::vector<double> a = {1.0};
  dlopt::SGD<double> sgd({{a.data(), 1}}, {});
  auto state = sgd.state_dict();
  state.train_mode = false;
  threw = false;
  try {
    sgd.load_state_dict(state);
  } catch (const dlopt::InvalidArgument& e) {
    threw = std::string(e.what()).find("has no eval mode") != std::string::npos;
  }
  check(threw && sgd.train_mode(), "a rule without modes refuses a state in eval mode");
  sgd.eval();
  check(sgd.train_mode(), "train() / eval() are no-ops for rules without modes");
}

int main() {
  schedule_free_modes();
  every_rule_resumes();
  bad_state_changes_nothing();
  lr_changes_between_steps();
  mismatched_checkpoint_changes_nothing();
  python_keywords_round_trip();
  return summary();
}
