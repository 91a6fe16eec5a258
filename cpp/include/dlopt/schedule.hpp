#pragma once
/// @file schedule.hpp
/// Closed-form learning-rate schedules: small structs with `double lr(int64_t step) const`,
/// equal to the closed forms of torch.optim.lr_scheduler (and dlopt.lr_scheduler) for one param
/// group whose initial lr is `base_lr`. `step` is the scheduler's `last_epoch`: 0 before the first
/// optimizer step. Every struct is also callable, so it converts to ScheduleFn.
///
/// @code
///   dlopt::Warmup<dlopt::CosineAnnealing> s{100, 0.0, {3e-4, 10000}};   // warmup, then cosine
///   for (int64_t t = 0; t < 10100; ++t) { config.lr = s.lr(t); /* ... step ... */ }
/// @endcode
///
/// Where torch's schedulers compute a chainable recursion (StepLR, CosineAnnealingLR, ...), the
/// values here are the closed forms torch documents; they agree with the recursion to rounding.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "dlopt/core/error.hpp"

namespace dlopt {

/// Any schedule: step -> lr.
using ScheduleFn = std::function<double(int64_t)>;

namespace detail {
constexpr double kPi = 3.14159265358979323846;
inline void require_step(int64_t t) {
  if (t < 0) throw InvalidArgument("Invalid step: " + std::to_string(t) + " (must be >= 0)");
}
}  // namespace detail

/// A fixed learning rate.
struct Constant {
  double base_lr;
  double lr(int64_t t) const { detail::require_step(t); return base_lr; }
  double operator()(int64_t t) const { return lr(t); }
};

/// torch ConstantLR: base_lr * factor for t < total_iters, then base_lr.
struct ConstantFactor {
  double base_lr;
  double factor = 1.0 / 3.0;
  int64_t total_iters = 5;
  double lr(int64_t t) const {
    detail::require_step(t);
    return base_lr * (factor + (t >= total_iters ? 1.0 : 0.0) * (1.0 - factor));
  }
  double operator()(int64_t t) const { return lr(t); }
};

/// torch StepLR: base_lr * gamma^floor(t / step_size).
struct StepDecay {
  double base_lr;
  int64_t step_size;
  double gamma = 0.1;
  double lr(int64_t t) const {
    detail::require_step(t);
    if (step_size <= 0) throw InvalidArgument("Invalid step_size: must be > 0");
    return base_lr * std::pow(gamma, double(t / step_size));
  }
  double operator()(int64_t t) const { return lr(t); }
};

/// torch MultiStepLR: base_lr * gamma^(number of milestones <= t).
struct MultiStepDecay {
  double base_lr;
  std::vector<int64_t> milestones;  ///< sorted; repeats count twice, as in torch
  double gamma = 0.1;
  double lr(int64_t t) const {
    detail::require_step(t);
    const auto k = std::upper_bound(milestones.begin(), milestones.end(), t) - milestones.begin();
    return base_lr * std::pow(gamma, double(k));
  }
  double operator()(int64_t t) const { return lr(t); }
};

/// torch ExponentialLR: base_lr * gamma^t.
struct ExponentialDecay {
  double base_lr;
  double gamma;
  double lr(int64_t t) const { detail::require_step(t); return base_lr * std::pow(gamma, double(t)); }
  double operator()(int64_t t) const { return lr(t); }
};

/// torch LinearLR: base_lr * (start + (end - start) * min(t, total_iters) / total_iters).
/// With end_factor = 1 it is a linear warmup from start_factor * base_lr.
struct LinearWarmup {
  double base_lr;
  double start_factor = 1.0 / 3.0;
  double end_factor = 1.0;
  int64_t total_iters = 5;
  double lr(int64_t t) const {
    detail::require_step(t);
    if (total_iters <= 0) return base_lr * end_factor;
    return base_lr * (start_factor + (end_factor - start_factor) *
                                         double(std::min(total_iters, t)) / double(total_iters));
  }
  double operator()(int64_t t) const { return lr(t); }
};

/// torch PolynomialLR: base_lr * (1 - min(t, total_iters) / total_iters)^power.
struct PolynomialDecay {
  double base_lr;
  int64_t total_iters = 5;
  double power = 1.0;
  double lr(int64_t t) const {
    detail::require_step(t);
    if (total_iters <= 0) throw InvalidArgument("Invalid total_iters: must be > 0");
    return base_lr * std::pow(1.0 - double(std::min(total_iters, t)) / double(total_iters), power);
  }
  double operator()(int64_t t) const { return lr(t); }
};

/// torch CosineAnnealingLR (closed form, SGDR without restarts):
/// eta_min + (base_lr - eta_min) * (1 + cos(pi * t / T_max)) / 2.
struct CosineAnnealing {
  double base_lr;
  int64_t T_max;
  double eta_min = 0.0;
  double lr(int64_t t) const {
    detail::require_step(t);
    if (T_max <= 0) throw InvalidArgument("Invalid T_max: must be > 0");
    return eta_min + (base_lr - eta_min) * (1.0 + std::cos(detail::kPi * double(t) / double(T_max))) / 2.0;
  }
  double operator()(int64_t t) const { return lr(t); }
};

/// A linear warmup followed by another schedule, as torch's
/// SequentialLR([LinearLR(start_factor, 1, warmup_steps), inner], milestones=[warmup_steps]):
/// inner.lr(0) * (start + (1 - start) * t / W) for t < W, then inner.lr(t - W).
template <class Inner>
struct Warmup {
  int64_t warmup_steps;
  double start_factor;
  Inner inner;
  double lr(int64_t t) const {
    detail::require_step(t);
    if (t >= warmup_steps) return inner.lr(t - warmup_steps);
    return inner.lr(0) * (start_factor + (1.0 - start_factor) * double(t) / double(warmup_steps));
  }
  double operator()(int64_t t) const { return lr(t); }
};

/// Warmup-stable-decay (dlopt.lr_scheduler.WarmupStableDecayLR): linear warmup over W steps from
/// warmup_start_factor, a plateau of S steps, a decay over D steps to final_lr_factor * base_lr.
struct WarmupStableDecay {
  enum class Decay { Linear, Cosine, Sqrt };
  double base_lr;
  int64_t warmup_steps;
  int64_t stable_steps;
  int64_t decay_steps;
  double final_lr_factor = 0.0;
  double warmup_start_factor = 0.0;
  Decay decay = Decay::Linear;
  double factor(int64_t t) const {
    const int64_t decay_start = warmup_steps + stable_steps;
    if (t < warmup_steps)
      return warmup_start_factor + (1.0 - warmup_start_factor) * double(t) / double(warmup_steps);
    if (t < decay_start) return 1.0;
    if (t >= decay_start + decay_steps) return final_lr_factor;
    const double progress = double(t - decay_start) / double(decay_steps);
    double remaining;
    switch (decay) {
      case Decay::Cosine: remaining = (1.0 + std::cos(detail::kPi * progress)) / 2.0; break;
      case Decay::Sqrt: remaining = 1.0 - std::sqrt(progress); break;
      default: remaining = 1.0 - progress;
    }
    return final_lr_factor + (1.0 - final_lr_factor) * remaining;
  }
  double lr(int64_t t) const { detail::require_step(t); return base_lr * factor(t); }
  double operator()(int64_t t) const { return lr(t); }
};

/// torch OneCycleLR (Smith & Topin, 2017): from max_lr / div_factor up to max_lr over the first
/// pct_start of total_steps, then down to max_lr / (div_factor * final_div_factor)
/// (three_phase: back to the initial lr first). Defined for 0 <= t <= total_steps.
struct OneCycle {
  double max_lr;
  int64_t total_steps;
  double pct_start = 0.3;
  bool cosine = true;  ///< anneal_strategy "cos" (true) or "linear"
  double div_factor = 25.0;
  double final_div_factor = 1e4;
  bool three_phase = false;

  double initial_lr() const { return max_lr / div_factor; }
  double min_lr() const { return initial_lr() / final_div_factor; }

  /// torch's anneal from `start` to `end` at fraction `pct`: cosine or linear.
  static double anneal(bool cosine, double start, double end, double pct) {
    if (cosine) return end + (start - end) / 2.0 * (std::cos(detail::kPi * pct) + 1.0);
    return (end - start) * pct + start;
  }
  /// The step at which each phase ends (torch's end_step); returns the number of phases, 2 or 3.
  static int phase_ends(int64_t total_steps, double pct_start, bool three_phase, double ends[3]) {
    const double T = double(total_steps);
    ends[0] = pct_start * T - 1;
    if (!three_phase) {
      ends[1] = T - 1;
      return 2;
    }
    ends[1] = 2 * pct_start * T - 2;
    ends[2] = T - 1;
    return 3;
  }
  /// The phase holding step t (the first that ends at or after it, else the last) and the
  /// fraction of it done at t: {phase, pct}.
  static std::pair<int, double> locate(int64_t t, const double* ends, int n) {
    double start = 0.0;
    int i = 0;
    for (; i < n - 1 && !(double(t) <= ends[i]); ++i) start = ends[i];
    return {i, (double(t) - start) / (ends[i] - start)};
  }

  double lr(int64_t t) const {
    detail::require_step(t);
    if (total_steps <= 0) throw InvalidArgument("Invalid total_steps: must be > 0");
    if (t > total_steps)
      throw InvalidArgument("Tried to step " + std::to_string(t) +
                            " times. The specified number of total steps is " +
                            std::to_string(total_steps));
    double ends[3];
    const int n = phase_ends(total_steps, pct_start, three_phase, ends);
    // (start lr, end lr) of each phase
    const double lrs[3][2] = {{initial_lr(), max_lr},
                              {max_lr, three_phase ? initial_lr() : min_lr()},
                              {initial_lr(), min_lr()}};
    const auto [i, pct] = locate(t, ends, n);
    return anneal(cosine, lrs[i][0], lrs[i][1], pct);
  }
  double operator()(int64_t t) const { return lr(t); }
};

/// A schedule chosen by name at run time (the linear models' `lr_schedule`): `name` plus its
/// arguments by the field names above (torch's keyword names). Numbers (bools as 0/1) go to `params`,
/// string arguments (`anneal_strategy`, `decay`) to `options`, MultiStep's list to `milestones`.
struct ScheduleSpec {
  std::string name = "constant";
  std::map<std::string, double> params;
  std::map<std::string, std::string> options;
  std::vector<int64_t> milestones;
  bool has_milestones = false;
};

/// Builds the schedule a spec names, for a base lr and a run of `length` steps (the linear models
/// pass their epoch count), which sets the defaults torch leaves to the caller. Names (case-insensitive)
/// and defaults, L = length:
///   constant; constant_factor (factor 1/3, total_iters 5); step (step_size max(1, L/3), gamma 0.1);
///   multistep (milestones [L/2, 3L/4], gamma 0.1); exponential (gamma 0.01^(1/L): 100x down over L);
///   linear / linear_warmup (torch LinearLR: start_factor 1/3, end_factor 1, total_iters 5);
///   polynomial (total_iters L, power 1); cosine (T_max L, eta_min 0);
///   warmup_cosine (warmup_steps L/10, start_factor 0, T_max L - warmup_steps, eta_min 0);
///   wsd (warmup_steps L/10, decay_steps L/5, stable_steps the rest, final_lr_factor 0,
///        warmup_start_factor 0, decay "linear" | "cosine" | "sqrt");
///   one_cycle / onecycle (max_lr base_lr, total_steps L, pct_start 0.3, anneal_strategy "cos",
///        div_factor 25, final_div_factor 1e4, three_phase 0).
/// Throws InvalidArgument naming `lr_schedule['key']` for an unknown key or an invalid value, or the
/// name for an unknown schedule.
ScheduleFn make_schedule(const ScheduleSpec& spec, double base_lr, int64_t length);

}  // namespace dlopt
