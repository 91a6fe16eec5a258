// make_schedule: a closed-form schedule (dlopt/schedule.hpp) from a name and its arguments, with
// defaults derived from the run length; every key is checked and named in errors.

#include <algorithm>
#include <cctype>
#include <cmath>
#include <set>
#include <sstream>

#include "dlopt/schedule.hpp"

namespace dlopt {
namespace {

std::string fmt(double v) {
  std::ostringstream s;
  s << v;
  return s.str();
}

/// Reads a spec's arguments, remembering which keys were used so unknown ones can be reported.
class Args {
 public:
  explicit Args(const ScheduleSpec& s) : s_(s) {}

  [[noreturn]] static void bad(const std::string& key, const std::string& value, const std::string& why) {
    throw InvalidArgument("Invalid lr_schedule['" + key + "']: " + value + " (" + why + ")");
  }

  double real(const std::string& key, double fallback) {
    used_.insert(key);
    auto it = s_.params.find(key);
    if (it == s_.params.end()) {
      if (s_.options.count(key)) bad(key, "'" + s_.options.at(key) + "'", "expected a number");
      return fallback;
    }
    if (!std::isfinite(it->second)) bad(key, fmt(it->second), "must be finite");
    return it->second;
  }
  /// A real in [lo, hi] (bounds are closed unless open_lo / open_hi).
  double real(const std::string& key, double fallback, double lo, double hi, bool open_lo, bool open_hi,
              const char* why) {
    const double v = real(key, fallback);
    if (v < lo || v > hi || (open_lo && v == lo) || (open_hi && v == hi)) bad(key, fmt(v), why);
    return v;
  }
  int64_t integer(const std::string& key, int64_t fallback, int64_t min, const char* why) {
    const double v = real(key, double(fallback));
    if (v != std::floor(v)) bad(key, fmt(v), "expected an integer");
    if (v < double(min)) bad(key, fmt(v), why);
    return int64_t(v);
  }
  bool flag(const std::string& key, bool fallback) {
    const double v = real(key, fallback ? 1.0 : 0.0);
    if (v != 0 && v != 1) bad(key, fmt(v), "expected a bool");
    return v != 0;
  }
  std::string option(const std::string& key, const std::string& fallback,
                     const std::vector<std::string>& allowed) {
    used_.insert(key);
    if (s_.params.count(key)) bad(key, fmt(s_.params.at(key)), "expected a string");
    auto it = s_.options.find(key);
    if (it == s_.options.end()) return fallback;
    if (std::find(allowed.begin(), allowed.end(), it->second) == allowed.end()) {
      std::string list;
      for (const auto& a : allowed) list += (list.empty() ? "'" : ", '") + a + "'";
      bad(key, "'" + it->second + "'", "expected one of " + list);
    }
    return it->second;
  }
  std::vector<int64_t> milestones(const std::vector<int64_t>& fallback) {
    used_.insert("milestones");
    if (s_.params.count("milestones") || s_.options.count("milestones"))
      bad("milestones", "a scalar", "expected a list of epoch indices");
    if (!s_.has_milestones) return fallback;
    std::vector<int64_t> m = s_.milestones;
    for (int64_t v : m)
      if (v < 0) bad("milestones", std::to_string(v), "epoch indices must be >= 0");
    std::sort(m.begin(), m.end());
    return m;
  }
  /// Throws for a key the schedule does not take.
  void finish(const std::string& name) const {
    std::vector<std::string> keys;
    for (const auto& kv : s_.params) keys.push_back(kv.first);
    for (const auto& kv : s_.options) keys.push_back(kv.first);
    if (s_.has_milestones) keys.push_back("milestones");
    for (const auto& k : keys)
      if (!used_.count(k)) {
        std::string list;
        for (const auto& u : used_) list += (list.empty() ? "" : ", ") + u;
        throw InvalidArgument("Invalid lr_schedule['" + k + "']: unknown key for schedule '" + name +
                              "' (it takes: " + (list.empty() ? "no arguments" : list) + ")");
      }
  }

 private:
  const ScheduleSpec& s_;
  std::set<std::string> used_;
};

}  // namespace

ScheduleFn make_schedule(const ScheduleSpec& spec, double base_lr, int64_t length) {
  std::string name = spec.name;
  std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  const int64_t L = std::max<int64_t>(length, 1);
  Args a(spec);
  ScheduleFn f;
  const char* positive = "must be > 0";
  if (name == "constant" || name == "none") {
    f = Constant{base_lr};
  } else if (name == "constant_factor") {
    f = ConstantFactor{base_lr, a.real("factor", 1.0 / 3.0, 0, 1, true, false, "must be in (0, 1]"),
                       a.integer("total_iters", 5, 0, "must be >= 0")};
  } else if (name == "step") {
    f = StepDecay{base_lr, a.integer("step_size", std::max<int64_t>(1, L / 3), 1, positive),
                  a.real("gamma", 0.1, 0, HUGE_VAL, true, false, positive)};
  } else if (name == "multistep") {
    f = MultiStepDecay{base_lr, a.milestones({L / 2, 3 * L / 4}),
                       a.real("gamma", 0.1, 0, HUGE_VAL, true, false, positive)};
  } else if (name == "exponential") {
    f = ExponentialDecay{base_lr, a.real("gamma", std::pow(0.01, 1.0 / double(L)), 0, HUGE_VAL, true, false,
                                         positive)};
  } else if (name == "linear" || name == "linear_warmup") {
    f = LinearWarmup{base_lr, a.real("start_factor", 1.0 / 3.0, 0, 1, true, false, "must be in (0, 1]"),
                     a.real("end_factor", 1.0, 0, 1, false, false, "must be in [0, 1]"),
                     a.integer("total_iters", 5, 0, "must be >= 0")};
  } else if (name == "polynomial") {
    f = PolynomialDecay{base_lr, a.integer("total_iters", L, 1, positive),
                        a.real("power", 1.0, 0, HUGE_VAL, false, false, "must be >= 0")};
  } else if (name == "cosine") {
    f = CosineAnnealing{base_lr, a.integer("T_max", L, 1, positive),
                        a.real("eta_min", 0.0, 0, HUGE_VAL, false, false, "must be >= 0")};
  } else if (name == "warmup_cosine") {
    const int64_t w = a.integer("warmup_steps", L / 10, 0, "must be >= 0");
    const double start = a.real("start_factor", 0.0, 0, 1, false, false, "must be in [0, 1]");
    f = Warmup<CosineAnnealing>{w, start,
                                {base_lr, a.integer("T_max", std::max<int64_t>(1, L - w), 1, positive),
                                 a.real("eta_min", 0.0, 0, HUGE_VAL, false, false, "must be >= 0")}};
  } else if (name == "wsd") {
    const int64_t w = a.integer("warmup_steps", L / 10, 0, "must be >= 0");
    const int64_t d = a.integer("decay_steps", L / 5, 0, "must be >= 0");
    const int64_t s = a.integer("stable_steps", std::max<int64_t>(0, L - w - d), 0, "must be >= 0");
    const double final_factor = a.real("final_lr_factor", 0.0, 0, HUGE_VAL, false, false, "must be >= 0");
    const double start = a.real("warmup_start_factor", 0.0, 0, 1, false, false, "must be in [0, 1]");
    const std::string decay = a.option("decay", "linear", {"linear", "cosine", "sqrt"});
    f = WarmupStableDecay{base_lr, w, s, d, final_factor, start,
                          decay == "cosine" ? WarmupStableDecay::Decay::Cosine
                          : decay == "sqrt" ? WarmupStableDecay::Decay::Sqrt
                                            : WarmupStableDecay::Decay::Linear};
  } else if (name == "one_cycle" || name == "onecycle") {
    OneCycle o{a.real("max_lr", base_lr, 0, HUGE_VAL, false, false, "must be >= 0"),
               a.integer("total_steps", L, 1, positive)};
    o.pct_start = a.real("pct_start", 0.3, 0, 1, false, false, "must be in [0, 1]");
    o.cosine = a.option("anneal_strategy", "cos", {"cos", "linear"}) == "cos";
    o.div_factor = a.real("div_factor", 25.0, 0, HUGE_VAL, true, false, positive);
    o.final_div_factor = a.real("final_div_factor", 1e4, 0, HUGE_VAL, true, false, positive);
    o.three_phase = a.flag("three_phase", false);
    f = o;
  } else {
    throw InvalidArgument("Invalid lr_schedule: unknown schedule '" + spec.name +
                          "' (expected 'constant', 'constant_factor', 'step', 'multistep', 'exponential', "
                          "'linear', 'linear_warmup', 'polynomial', 'cosine', 'warmup_cosine', 'wsd' or "
                          "'one_cycle')");
  }
  a.finish(name);
  return f;
}

}  // namespace dlopt
