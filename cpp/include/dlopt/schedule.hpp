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
  double base_lr;  ///< the base learning rate
  /// The learning rate at step t >= 0 (throws InvalidArgument for a negative t or an invalid field).
  double lr(int64_t t) const { detail::require_step(t); return base_lr; }
  double operator()(int64_t t) const { return lr(t); }  ///< lr(t)
};

/// torch ConstantLR: base_lr * factor for t < total_iters, then base_lr.
struct ConstantFactor {
  double base_lr;  ///< the base learning rate
  double factor = 1.0 / 3.0;  ///< the factor applied before total_iters
  int64_t total_iters = 5;  ///< steps with the factor applied
  /// The learning rate at step t >= 0 (throws InvalidArgument for a negative t or an invalid field).
  double lr(int64_t t) const {
    detail::require_step(t);
    return base_lr * (factor + (t >= total_iters ? 1.0 : 0.0) * (1.0 - factor));
  }
  double operator()(int64_t t) const { return lr(t); }  ///< lr(t)
};

/// torch StepLR: base_lr * gamma^floor(t / step_size).
struct StepDecay {
  double base_lr;  ///< the base learning rate
  int64_t step_size;  ///< steps between decays (> 0)
  double gamma = 0.1;  ///< the factor of each decay
  /// The learning rate at step t >= 0 (throws InvalidArgument for a negative t or an invalid field).
  double lr(int64_t t) const {
    detail::require_step(t);
    if (step_size <= 0) throw InvalidArgument("Invalid step_size: must be > 0");
    return base_lr * std::pow(gamma, double(t / step_size));
  }
  double operator()(int64_t t) const { return lr(t); }  ///< lr(t)
};

/// torch MultiStepLR: base_lr * gamma^(number of milestones <= t).
struct MultiStepDecay {
  double base_lr;  ///< the base learning rate
  std::vector<int64_t> milestones;  ///< sorted; repeats count twice, as in torch
  double gamma = 0.1;  ///< the factor of each decay
  /// The learning rate at step t >= 0 (throws InvalidArgument for a negative t or an invalid field).
  double lr(int64_t t) const {
    detail::require_step(t);
    const auto k = std::upper_bound(milestones.begin(), milestones.end(), t) - milestones.begin();
    return base_lr * std::pow(gamma, double(k));
  }
  double operator()(int64_t t) const { return lr(t); }  ///< lr(t)
};

/// torch ExponentialLR: base_lr * gamma^t.
struct ExponentialDecay {
  double base_lr;  ///< the base learning rate
  double gamma;  ///< the factor per step
  /// The learning rate at step t >= 0 (throws InvalidArgument for a negative t or an invalid field).
  double lr(int64_t t) const { detail::require_step(t); return base_lr * std::pow(gamma, double(t)); }
  double operator()(int64_t t) const { return lr(t); }  ///< lr(t)
};

/// torch LinearLR: base_lr * (start + (end - start) * min(t, total_iters) / total_iters).
/// With end_factor = 1 it is a linear warmup from start_factor * base_lr.
struct LinearWarmup {
  double base_lr;  ///< the base learning rate
  double start_factor = 1.0 / 3.0;  ///< the factor at step 0
  double end_factor = 1.0;  ///< the factor from total_iters on
  int64_t total_iters = 5;  ///< steps of the linear ramp
  /// The learning rate at step t >= 0 (throws InvalidArgument for a negative t or an invalid field).
  double lr(int64_t t) const {
    detail::require_step(t);
    if (total_iters <= 0) return base_lr * end_factor;
    return base_lr * (start_factor + (end_factor - start_factor) *
                                         double(std::min(total_iters, t)) / double(total_iters));
  }
  double operator()(int64_t t) const { return lr(t); }  ///< lr(t)
};

/// torch PolynomialLR: base_lr * (1 - min(t, total_iters) / total_iters)^power.
struct PolynomialDecay {
  double base_lr;  ///< the base learning rate
  int64_t total_iters = 5;  ///< steps until the rate reaches 0 (> 0)
  double power = 1.0;  ///< the polynomial's power
  /// The learning rate at step t >= 0 (throws InvalidArgument for a negative t or an invalid field).
  double lr(int64_t t) const {
    detail::require_step(t);
    if (total_iters <= 0) throw InvalidArgument("Invalid total_iters: must be > 0");
    return base_lr * std::pow(1.0 - double(std::min(total_iters, t)) / double(total_iters), power);
  }
  double operator()(int64_t t) const { return lr(t); }  ///< lr(t)
};

/// torch CosineAnnealingLR (closed form, SGDR without restarts):
/// eta_min + (base_lr - eta_min) * (1 + cos(pi * t / T_max)) / 2.
struct CosineAnnealing {
  double base_lr;  ///< the base learning rate
  int64_t T_max;  ///< steps of the half cosine (> 0)
  double eta_min = 0.0;  ///< the rate at T_max
  /// The learning rate at step t >= 0 (throws InvalidArgument for a negative t or an invalid field).
  double lr(int64_t t) const {
    detail::require_step(t);
    if (T_max <= 0) throw InvalidArgument("Invalid T_max: must be > 0");
    return eta_min + (base_lr - eta_min) * (1.0 + std::cos(detail::kPi * double(t) / double(T_max))) / 2.0;
  }
  double operator()(int64_t t) const { return lr(t); }  ///< lr(t)
};

/// A linear warmup followed by another schedule, as torch's
/// SequentialLR([LinearLR(start_factor, 1, warmup_steps), inner], milestones=[warmup_steps]):
/// inner.lr(0) * (start + (1 - start) * t / W) for t < W, then inner.lr(t - W).
template <class Inner>
struct Warmup {
  int64_t warmup_steps;  ///< steps of the linear warmup
  double start_factor;  ///< the factor of inner.lr(0) at step 0
  Inner inner;  ///< the schedule after the warmup (its step 0 is warmup_steps)
  /// The learning rate at step t >= 0 (throws InvalidArgument for a negative t or an invalid field).
  double lr(int64_t t) const {
    detail::require_step(t);
    if (t >= warmup_steps) return inner.lr(t - warmup_steps);
    return inner.lr(0) * (start_factor + (1.0 - start_factor) * double(t) / double(warmup_steps));
  }
  double operator()(int64_t t) const { return lr(t); }  ///< lr(t)
};

/// Warmup-stable-decay (dlopt.lr_scheduler.WarmupStableDecayLR): linear warmup over W steps from
/// warmup_start_factor, a plateau of S steps, a decay over D steps to final_lr_factor * base_lr.
struct WarmupStableDecay {
  /// The shape of the decay phase: linear, half cosine, or 1 − √progress.
  enum class Decay { Linear, Cosine, Sqrt };
  double base_lr;  ///< the base learning rate
  int64_t warmup_steps;  ///< W: steps of the linear warmup
  int64_t stable_steps;  ///< S: steps at base_lr
  int64_t decay_steps;  ///< D: steps of the decay
  double final_lr_factor = 0.0;  ///< the factor at the end of the decay and after
  double warmup_start_factor = 0.0;  ///< the factor at step 0
  Decay decay = Decay::Linear;  ///< the decay's shape
  /// The factor of base_lr at step t (no check of t).
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
  /// The learning rate at step t >= 0 (throws InvalidArgument for a negative t or an invalid field).
  double lr(int64_t t) const { detail::require_step(t); return base_lr * factor(t); }
  double operator()(int64_t t) const { return lr(t); }  ///< lr(t)
};

/// torch OneCycleLR (Smith & Topin, 2017): from max_lr / div_factor up to max_lr over the first
/// pct_start of total_steps, then down to max_lr / (div_factor * final_div_factor)
/// (three_phase: back to the initial lr first). Defined for 0 <= t <= total_steps.
struct OneCycle {
  double max_lr;  ///< the peak learning rate
  int64_t total_steps;  ///< the steps of the whole cycle (> 0)
  double pct_start = 0.3;  ///< the fraction of total_steps spent rising
  bool cosine = true;  ///< anneal_strategy "cos" (true) or "linear"
  double div_factor = 25.0;  ///< initial lr = max_lr / div_factor
  double final_div_factor = 1e4;  ///< minimum lr = initial lr / final_div_factor
  bool three_phase = false;  ///< back down to the initial lr before the final annealing

  double initial_lr() const { return max_lr / div_factor; }  ///< the learning rate at step 0
  double min_lr() const { return initial_lr() / final_div_factor; }  ///< the learning rate at the end

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

  /// The learning rate at step t >= 0 (throws InvalidArgument for a negative t or an invalid field).
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
  double operator()(int64_t t) const { return lr(t); }  ///< lr(t)
};

/// A schedule chosen by name at run time (the linear models' `lr_schedule`): `name` plus its
/// arguments by the field names above (torch's keyword names). Numbers (bools as 0/1) go to `params`,
/// string arguments (`anneal_strategy`, `decay`) to `options`, MultiStep's list to `milestones`.
struct ScheduleSpec {
  std::string name = "constant";  ///< the schedule's name (make_schedule's list)
  std::map<std::string, double> params;  ///< numeric arguments by field name
  std::map<std::string, std::string> options;  ///< string arguments by name
  std::vector<int64_t> milestones;  ///< MultiStep's milestones
  bool has_milestones = false;  ///< whether milestones were given
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
