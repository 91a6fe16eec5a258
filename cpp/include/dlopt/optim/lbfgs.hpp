#pragma once
/// @file lbfgs.hpp
/// L-BFGS as torch.optim.LBFGS (2.13): the same options, defaults, state and algorithm (two-loop
/// recursion over at most history_size (s, y) pairs; a fixed step lr, or torch's strong-Wolfe line
/// search with cubic interpolation), written once here for C++ and Python (dlopt.optim.LBFGS).
///
/// It is not an elementwise rule of the optimizer registry: a step evaluates the objective several
/// times through a closure and needs dot products over all parameters at once, so it runs over one
/// flat vector. The parameters stay in the caller's buffers (updated in place); the gradient is
/// gathered into a flat buffer, as torch gathers p.grad with torch.cat: the closure writes each
/// parameter's gradient straight into its part of that buffer.
///
/// Numbers: torch's L-BFGS mixes Python floats (double) and 0-dim tensors of the parameters' dtype,
/// and in float32 the two round differently (torch rounds a Python float to float32 before an
/// operation with a tensor, compares in float32, and computes `x / tensor` as
/// `reciprocal(tensor) * x`). The implementation follows every such operation, so float32 runs
/// take torch's branches; the step length `t` and the Hessian scale `H_diag` keep their kind in the
/// state (LBFGSScalar).
///
/// @code
///   std::vector<double> x = {-1.5, 2.0};
///   dlopt::LBFGSOptions o;  o.line_search_fn = "strong_wolfe";
///   dlopt::LBFGS<double> opt({{x.data(), 2}}, o);
///   double loss = opt.step([&](const std::vector<dlopt::Span<double>>& g) {
///     g[0].data[0] = ...;  g[0].data[1] = ...;   // the gradient at x
///     return f(x);
///   });
/// @endcode

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "dlopt/core/span.hpp"

namespace dlopt {

/// torch.optim.LBFGS's keywords and defaults.
struct LBFGSOptions {
  double lr = 1;                   ///< step length (the line search's first trial step)
  int64_t max_iter = 20;           ///< iterations per step()
  int64_t max_eval = -1;           ///< closure calls per step(); -1: max_iter * 5 / 4 (torch's None)
  double tolerance_grad = 1e-7;    ///< stop when max |g| <= tolerance_grad
  double tolerance_change = 1e-9;  ///< stop when the loss or the step changes less than this
  int64_t history_size = 100;      ///< (s, y) pairs kept
  std::string line_search_fn;      ///< "" (torch's None: fixed step lr) or "strong_wolfe"

  /// max_eval, or max_iter * 5 / 4 when it is -1.
  int64_t resolved_max_eval() const { return max_eval < 0 ? max_iter * 5 / 4 : max_eval; }
  /// Throws InvalidArgument naming the first invalid field.
  void validate() const;
};

/// A number as torch's L-BFGS holds it: a Python float (`tensor` false) or a 0-dim tensor of the
/// parameters' dtype (`tensor` true; `value` is then exactly a float or double).
struct LBFGSScalar {
  double value = 0;     ///< the number
  bool tensor = false;  ///< a 0-dim tensor of the parameters' dtype (true) or a Python float (false)
};

/// The state torch keeps in `optimizer.state[first param]`, with its names.
template <class T>
struct LBFGSState {
  int64_t func_evals = 0;  ///< closure calls, all steps
  int64_t n_iter = 0;      ///< iterations, all steps
  /// The rest is set by the first iteration (n_iter >= 1), as torch stores it at the end of a step.
  bool has_history = false;
  std::vector<T> d;               ///< the last search direction
  LBFGSScalar t;                  ///< the last step length
  /// The y of each (y, s) pair, oldest first: y = g_k+1 − g_k. Immutable once stored, so a copy of
  /// the state (taken by step() to roll back on an error) shares them.
  std::deque<std::shared_ptr<const std::vector<T>>> old_dirs;
  std::deque<std::shared_ptr<const std::vector<T>>> old_stps;  ///< the s of each pair: s = t·d (shared as old_dirs)
  std::deque<T> ro;               ///< 1 / (yᵀs) of each pair
  LBFGSScalar H_diag;             ///< initial inverse Hessian scale yᵀs / yᵀy (the int 1 at first)
  std::vector<T> prev_flat_grad;  ///< the gradient at the start of the last iteration
  double prev_loss = 0;           ///< the loss there
  /// torch's "al": history_size two-loop coefficients (NaN where torch holds None); empty until
  /// the second iteration. Always written before it is read; kept for a faithful state.
  std::vector<T> al;
};

/// torch.optim.LBFGS over caller-owned parameter buffers of float or double (the file comment
/// says how it matches torch, and shows a use).
template <class T>
class LBFGS {
 public:
  using Scalar = T;  ///< the parameters' type
  /// Evaluates the objective at the current parameters: writes the gradient of parameter i into
  /// grad[i] (grad[i].size == params[i].size; all parts of one flat buffer) and returns the loss.
  /// An exception it throws leaves the parameters and the state as they were before step().
  using Closure = std::function<double(const std::vector<Span<T>>& grad)>;
  /// Called after each iteration with the loss at the new point (dlopt's addition, for progress
  /// reports; torch has none); returning true ends the step as max_iter would.
  using IterationHook = std::function<bool(double loss)>;

  /// Binds the optimizer to caller-owned parameter buffers (float or double).
  explicit LBFGS(std::vector<Span<T>> params, LBFGSOptions options = {});

  /// One torch LBFGS.step(closure): up to max_iter iterations and max_eval closure calls. Returns
  /// the loss of the first call. A closure that throws or returns a non-finite loss or gradient, or
  /// invalid options, leave parameters and state exactly as they were (InvalidArgument names it).
  double step(const Closure& closure, const IterationHook& hook = {});

  /// The options, to change between steps (validated by the next step()).
  LBFGSOptions& options() { return options_; }
  /// The options.
  const LBFGSOptions& options() const { return options_; }
  /// The state torch keeps (what a checkpoint saves).
  const LBFGSState<T>& state() const { return state_; }
  /// Replaces the state (a resumed run continues bit for bit); throws InvalidArgument, changing
  /// nothing, if it does not fit the parameters or the options.
  void set_state(LBFGSState<T> state);
  /// Forgets the state (as a new optimizer).
  void reset_state() { state_ = LBFGSState<T>{}; }
  /// Elements over all parameters.
  int64_t numel() const { return n_; }
  /// The parameter buffers, as bound.
  const std::vector<Span<T>>& params() const { return params_; }

 private:
  struct Step;  // one step's working buffers and algorithm (lbfgs.cpp)

  std::vector<Span<T>> params_;
  int64_t n_ = 0;
  LBFGSOptions options_;
  LBFGSState<T> state_;
};

}  // namespace dlopt
