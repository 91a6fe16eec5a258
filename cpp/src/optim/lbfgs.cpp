// L-BFGS as torch.optim.LBFGS 2.13 (torch/optim/lbfgs.py): the step with its stopping rules, the
// two-loop recursion, the strong-Wolfe line search (_strong_wolfe) and its cubic interpolation
// (_cubic_interpolate). Every branch follows torch, and so does every rounding: see Num below.

#include "dlopt/optim/lbfgs.hpp"

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>
#include <string>
#include <utility>

#include "dlopt/core/error.hpp"

namespace dlopt {
namespace {

/// A number of torch's L-BFGS code with torch's arithmetic: a Python float (double) or a 0-dim
/// tensor of dtype T. An operation with a tensor rounds the Python float to T and computes in T;
/// comparisons too; `python_float / tensor` is `reciprocal(tensor) * python_float` (Tensor.
/// __rtruediv__). For T = double all of this is plain double arithmetic.
template <class T>
class Num {
 public:
  Num(double x) : v_(x) {}  // NOLINT: a Python float (or int) literal, as in torch's code
  Num(float) = delete;      // a float is a tensor value: say so with Num::tensor
  static Num tensor(T x) {
    Num n(0.0);
    n.v_ = double(x);
    n.tensor_ = true;
    return n;
  }
  static Num from(const LBFGSScalar& s) { return s.tensor ? tensor(T(s.value)) : Num(s.value); }
  LBFGSScalar scalar() const { return {v_, tensor_}; }
  /// The value as torch passes it to a kernel over T (add_'s alpha, mul's other): rounded to T.
  T as_t() const { return T(v_); }

  friend Num operator+(Num a, Num b) { return either(a, b) ? tensor(T(a.v_) + T(b.v_)) : Num(a.v_ + b.v_); }
  friend Num operator-(Num a, Num b) { return either(a, b) ? tensor(T(a.v_) - T(b.v_)) : Num(a.v_ - b.v_); }
  friend Num operator*(Num a, Num b) { return either(a, b) ? tensor(T(a.v_) * T(b.v_)) : Num(a.v_ * b.v_); }
  friend Num operator/(Num a, Num b) {
    if (!a.tensor_ && b.tensor_) return tensor((T(1) / T(b.v_)) * T(a.v_));
    return either(a, b) ? tensor(T(a.v_) / T(b.v_)) : Num(a.v_ / b.v_);
  }
  friend Num operator-(Num a) { return a.tensor_ ? tensor(-T(a.v_)) : Num(-a.v_); }
  friend bool operator<(Num a, Num b) { return either(a, b) ? T(a.v_) < T(b.v_) : a.v_ < b.v_; }
  friend bool operator<=(Num a, Num b) { return either(a, b) ? T(a.v_) <= T(b.v_) : a.v_ <= b.v_; }
  friend bool operator>(Num a, Num b) { return b < a; }
  friend bool operator>=(Num a, Num b) { return b <= a; }
  friend Num abs(Num a) { return a.tensor_ ? tensor(std::abs(T(a.v_))) : Num(std::abs(a.v_)); }
  friend Num sqrt(Num a) { return a.tensor_ ? tensor(std::sqrt(T(a.v_))) : Num(std::sqrt(a.v_)); }

 private:
  static bool either(Num a, Num b) { return a.tensor_ || b.tensor_; }
  double v_ = 0;
  bool tensor_ = false;
};

/// Python's min(a, b) and max(a, b): the first argument unless the second is strictly better.
template <class T>
Num<T> py_min(Num<T> a, Num<T> b) { return b < a ? b : a; }
template <class T>
Num<T> py_max(Num<T> a, Num<T> b) { return b > a ? b : a; }

template <class T>
using Vec = Eigen::Matrix<T, Eigen::Dynamic, 1>;
template <class T>
Eigen::Map<const Vec<T>> view(const std::vector<T>& v) { return {v.data(), Eigen::Index(v.size())}; }
template <class T>
Eigen::Map<Vec<T>> view(std::vector<T>& v) { return {v.data(), Eigen::Index(v.size())}; }

template <class T>
T dot(const std::vector<T>& a, const std::vector<T>& b) { return view(a).dot(view(b)); }
template <class T>
T abs_max(const std::vector<T>& a) { return view(a).cwiseAbs().maxCoeff(); }

/// y += alpha·x with one rounding per element, as torch's add_(x, alpha=...) (a fused multiply-add
/// in its vectorised CPU kernel).
template <class T>
void axpy(T alpha, const std::vector<T>& x, std::vector<T>& y) {
  const T* __restrict xs = x.data();
  T* __restrict ys = y.data();
  for (std::size_t i = 0, n = y.size(); i < n; ++i) ys[i] = std::fma(alpha, xs[i], ys[i]);
}

/// torch's _cubic_interpolate: the minimiser of the cubic through (x1, f1, g1) and (x2, f2, g2),
/// clamped to the bounds (default: the interval between the points); their midpoint when the
/// cubic has no real minimiser.
template <class T>
Num<T> cubic_interpolate(Num<T> x1, double f1, Num<T> g1, Num<T> x2, double f2, Num<T> g2,
                         const Num<T>* bounds = nullptr) {
  const Num<T> lo = bounds ? bounds[0] : (x1 <= x2 ? x1 : x2);
  const Num<T> hi = bounds ? bounds[1] : (x1 <= x2 ? x2 : x1);
  const Num<T> d1 = g1 + g2 - Num<T>(3 * (f1 - f2)) / (x1 - x2);
  const Num<T> d2_square = d1 * d1 - g1 * g2;  // torch: d1**2, which is d1 * d1 for a tensor
  if (d2_square >= 0.0) {
    const Num<T> d2 = sqrt(d2_square);
    const Num<T> min_pos = x1 <= x2 ? x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2.0 * d2))
                                    : x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2.0 * d2));
    return py_min(py_max(min_pos, lo), hi);
  }
  return (lo + hi) / 2.0;
}

}  // namespace

void LBFGSOptions::validate() const {
  detail::require(lr >= 0 && std::isfinite(lr), "lr", lr, "must be a finite number >= 0");
  detail::require(max_iter >= 1, "max_iter", double(max_iter), "must be >= 1");
  detail::require(max_eval == -1 || max_eval >= 1, "max_eval", double(max_eval),
                  "must be >= 1, or None for max_iter * 5 // 4");
  detail::require(resolved_max_eval() >= 1, "max_eval", double(resolved_max_eval()),
                  "max_iter * 5 // 4 must be >= 1");
  detail::require(!std::isnan(tolerance_grad), "tolerance_grad", tolerance_grad, "must be a number");
  detail::require(!std::isnan(tolerance_change), "tolerance_change", tolerance_change, "must be a number");
  detail::require(history_size >= 1, "history_size", double(history_size), "must be >= 1");
  if (!line_search_fn.empty() && line_search_fn != "strong_wolfe")
    throw InvalidArgument("Invalid line_search_fn: '" + line_search_fn +
                          "' (expected None or 'strong_wolfe')");
}

/// One step() over a working copy of the state, committed by step() only if nothing throws.
template <class T>
struct LBFGS<T>::Step {
  using N = Num<T>;

  const std::vector<Span<T>>& params;
  const LBFGSOptions& o;
  const Closure& closure;
  LBFGSState<T>& st;
  const int64_t n;
  std::vector<Span<T>> grad_spans;
  int64_t evals = 0;  // closure calls in this step, for error messages
  // Work buffers: the gradient, the line search's start point and its gradients.
  std::vector<T> flat_grad, q, x_init, g0, g_new, g_prev, bracket_g[2];

  Step(const std::vector<Span<T>>& p, const LBFGSOptions& opts, const Closure& c, LBFGSState<T>& s,
       int64_t numel)
      : params(p), o(opts), closure(c), st(s), n(numel), grad_spans(p.size()), flat_grad(std::size_t(numel)) {}

  /// The closure at the current parameters, its gradient written into g (torch's closure() and
  /// _gather_flat_grad). A parameter the closure leaves alone has gradient 0, as torch's None grad.
  double evaluate(std::vector<T>& g) {
    g.assign(std::size_t(n), T(0));
    int64_t off = 0;
    for (std::size_t i = 0; i < params.size(); ++i) {
      grad_spans[i] = {g.data() + off, params[i].size};
      off += params[i].size;
    }
    const double loss = closure(grad_spans);
    ++evals;
    if (!std::isfinite(loss)) {
      std::ostringstream msg;
      msg << "LBFGS: the closure returned a non-finite loss (" << loss << ") at evaluation " << evals
          << " of this step; the parameters and the optimizer state were restored";
      throw InvalidArgument(msg.str());
    }
    if (!view(g).allFinite()) {
      const auto bad = std::find_if(g.begin(), g.end(), [](T v) { return !std::isfinite(v); }) - g.begin();
      std::size_t i = 0;
      int64_t at = bad;
      while (at >= params[i].size) at -= params[i++].size;
      std::ostringstream msg;
      msg << "LBFGS: the closure returned a gradient with " << (std::isnan(g[bad]) ? "NaN" : "infinity")
          << " (params[" << i << "], element " << at << ") at evaluation " << evals
          << " of this step; the parameters and the optimizer state were restored";
      throw InvalidArgument(msg.str());
    }
    return loss;
  }

  /// params += t·d (torch's _add_grad).
  void add_grad(N t, const std::vector<T>& d) {
    const T a = t.as_t();
    int64_t off = 0;
    for (const Span<T>& p : params) {
      T* __restrict x = p.data;
      const T* __restrict dp = d.data() + off;
      for (int64_t j = 0; j < p.size; ++j) x[j] = std::fma(a, dp[j], x[j]);
      off += p.size;
    }
  }
  void gather(std::vector<T>& x) const {
    x.resize(std::size_t(n));
    int64_t off = 0;
    for (const Span<T>& p : params) {
      std::copy(p.data, p.data + p.size, x.data() + off);
      off += p.size;
    }
  }
  void scatter(const std::vector<T>& x) const {
    int64_t off = 0;
    for (const Span<T>& p : params) {
      std::copy(x.data() + off, x.data() + off + p.size, p.data);
      off += p.size;
    }
  }
  /// torch's _directional_evaluate: the loss and gradient at x + t·d; the parameters return to x.
  double directional_evaluate(const std::vector<T>& x, N t, const std::vector<T>& d, std::vector<T>& g) {
    add_grad(t, d);
    const double f = evaluate(g);
    scatter(x);
    return f;
  }

  struct Found {
    double f;
    N t;
    int64_t evals;
  };

  /// torch's _strong_wolfe with its defaults c1 = 1e-4, c2 = 0.9, tolerance_change = 1e-9 (torch's
  /// step passes only max_ls, so the group's tolerance_change does not reach it). g holds the
  /// gradient at x on entry and the gradient at the point found on return.
  Found strong_wolfe(const std::vector<T>& x, N t, const std::vector<T>& d, double f, std::vector<T>& g,
                     N gtd, int64_t max_ls) {
    constexpr double c1 = 1e-4, c2 = 0.9, tolerance_change = 1e-9;
    const N d_norm = N::tensor(abs_max(d));
    g0 = g;
    double f_new = directional_evaluate(x, t, d, g_new);
    int64_t ls_func_evals = 1;
    N gtd_new = N::tensor(dot(g_new, d));

    // Bracket an interval containing a point satisfying the Wolfe conditions.
    N t_prev = 0.0, gtd_prev = gtd;
    double f_prev = f;
    g_prev = g0;
    N bracket[2] = {0.0, 0.0}, bracket_gtd[2] = {0.0, 0.0};
    double bracket_f[2] = {0, 0};
    int size = 0;
    bool done = false;
    int64_t ls_iter = 0;
    auto take_pair = [&]() {  // bracket = [t_prev, t] with their values
      bracket[0] = t_prev, bracket[1] = t;
      bracket_f[0] = f_prev, bracket_f[1] = f_new;
      std::swap(bracket_g[0], g_prev), std::swap(bracket_g[1], g_new);
      bracket_gtd[0] = gtd_prev, bracket_gtd[1] = gtd_new;
      size = 2;
    };
    while (ls_iter < max_ls) {
      if (f_new > f + c1 * t * gtd || (ls_iter > 1 && f_new >= f_prev)) {
        take_pair();
        break;
      }
      if (abs(gtd_new) <= -c2 * gtd) {
        bracket[0] = t, bracket_f[0] = f_new;
        std::swap(bracket_g[0], g_new);
        size = 1;
        done = true;
        break;
      }
      if (gtd_new >= 0.0) {
        take_pair();
        break;
      }
      // Extrapolate: the cubic's minimiser within [t + 0.01 (t − t_prev), 10 t].
      const N bounds[2] = {t + 0.01 * (t - t_prev), t * 10.0};
      const N previous = t;
      t = cubic_interpolate(t_prev, f_prev, gtd_prev, t, f_new, gtd_new, bounds);
      t_prev = previous;
      f_prev = f_new;
      std::swap(g_prev, g_new);
      gtd_prev = gtd_new;
      f_new = directional_evaluate(x, t, d, g_new);
      ++ls_func_evals;
      gtd_new = N::tensor(dot(g_new, d));
      ++ls_iter;
    }
    if (ls_iter == max_ls) {  // out of evaluations: [0, t]
      bracket[0] = 0.0, bracket[1] = t;
      bracket_f[0] = f, bracket_f[1] = f_new;
      std::swap(bracket_g[0], g0), std::swap(bracket_g[1], g_new);
      size = 2;
    }

    // Zoom: shrink the bracket until a point satisfies the conditions.
    bool insuf_progress = false;
    int low = bracket_f[0] <= bracket_f[size - 1] ? 0 : 1, high = 1 - low;
    while (!done && ls_iter < max_ls) {
      if (abs(bracket[1] - bracket[0]) * d_norm < tolerance_change) break;  // bracket too small
      t = cubic_interpolate(bracket[0], bracket_f[0], bracket_gtd[0], bracket[1], bracket_f[1], bracket_gtd[1]);
      // A trial point too close to an end of the bracket is moved 0.1·|bracket| inside, unless
      // the previous trial made progress from there.
      const N top = py_max(bracket[0], bracket[1]), bottom = py_min(bracket[0], bracket[1]);
      const N eps = 0.1 * (top - bottom);
      if (py_min(top - t, t - bottom) < eps) {
        if (insuf_progress || t >= top || t <= bottom) {
          t = abs(t - top) < abs(t - bottom) ? top - eps : bottom + eps;
          insuf_progress = false;
        } else {
          insuf_progress = true;
        }
      } else {
        insuf_progress = false;
      }
      f_new = directional_evaluate(x, t, d, g_new);
      ++ls_func_evals;
      gtd_new = N::tensor(dot(g_new, d));
      ++ls_iter;
      if (f_new > f + c1 * t * gtd || f_new >= bracket_f[low]) {
        // Armijo fails or no lower than the low end: the new point becomes the high end.
        bracket[high] = t, bracket_f[high] = f_new, bracket_gtd[high] = gtd_new;
        std::swap(bracket_g[high], g_new);
        low = bracket_f[0] <= bracket_f[1] ? 0 : 1, high = 1 - low;
      } else {
        if (abs(gtd_new) <= -c2 * gtd) {
          done = true;  // the Wolfe conditions hold
        } else if (gtd_new * (bracket[high] - bracket[low]) >= 0.0) {
          // the old low end becomes the high end
          bracket[high] = bracket[low], bracket_f[high] = bracket_f[low], bracket_gtd[high] = bracket_gtd[low];
          std::swap(bracket_g[high], bracket_g[low]);
        }
        bracket[low] = t, bracket_f[low] = f_new, bracket_gtd[low] = gtd_new;
        std::swap(bracket_g[low], g_new);
      }
    }
    std::swap(g, bracket_g[low]);
    return {bracket_f[low], bracket[low], ls_func_evals};
  }

  /// torch's LBFGS.step after its initial checks; returns the first loss.
  double run(const IterationHook& hook) {
    const int64_t max_iter = o.max_iter, max_eval = o.resolved_max_eval();
    const auto history_size = std::size_t(o.history_size);
    const bool wolfe = o.line_search_fn == "strong_wolfe";
    const T tolerance_grad = T(o.tolerance_grad);

    double loss = evaluate(flat_grad);
    const double orig_loss = loss;
    int64_t current_evals = 1;
    st.func_evals += 1;
    bool opt_cond = abs_max(flat_grad) <= tolerance_grad;
    if (opt_cond) return orig_loss;

    std::vector<T>& d = st.d;
    N t = N::from(st.t), H_diag = N::from(st.H_diag);
    int64_t n_iter = 0;
    while (n_iter < max_iter) {
      ++n_iter;
      ++st.n_iter;

      // The descent direction.
      if (st.n_iter == 1) {
        d.resize(std::size_t(n));
        view(d) = -view(flat_grad);
        st.old_dirs.clear(), st.old_stps.clear(), st.ro.clear();
        H_diag = 1.0;  // torch's int 1
      } else {
        // Update the memory with y = g − g_prev, s = t·d (skipped when the curvature yᵀs is too
        // small to keep the approximation positive definite).
        auto y = std::make_shared<std::vector<T>>(std::size_t(n));
        auto s = std::make_shared<std::vector<T>>(std::size_t(n));
        view(*y) = view(flat_grad) - view(st.prev_flat_grad);
        view(*s) = view(d) * t.as_t();
        const T ys = dot(*y, *s);
        if (ys > T(1e-10)) {
          if (st.old_dirs.size() == history_size) {
            st.old_dirs.pop_front(), st.old_stps.pop_front(), st.ro.pop_front();
          }
          const T yy = dot(*y, *y);
          st.old_dirs.push_back(std::move(y));
          st.old_stps.push_back(std::move(s));
          st.ro.push_back(T(1) / ys);
          H_diag = N::tensor(ys / yy);
        }
        // Two-loop recursion: d = −H g with H the L-BFGS inverse Hessian approximation.
        const std::size_t num_old = st.old_dirs.size();
        if (st.al.empty()) st.al.assign(history_size, std::numeric_limits<T>::quiet_NaN());
        q.resize(std::size_t(n));
        view(q) = -view(flat_grad);
        for (std::size_t k = num_old; k-- > 0;) {
          st.al[k] = dot(*st.old_stps[k], q) * st.ro[k];
          axpy(T(-st.al[k]), *st.old_dirs[k], q);
        }
        view(d) = view(q) * H_diag.as_t();
        for (std::size_t k = 0; k < num_old; ++k) {
          const T be_i = dot(*st.old_dirs[k], d) * st.ro[k];
          axpy(T(st.al[k] - be_i), *st.old_stps[k], d);
        }
      }
      st.prev_flat_grad = flat_grad;
      st.prev_loss = loss;

      // The step length: lr, or on the very first iteration min(1, 1/‖g‖₁)·lr.
      if (st.n_iter == 1) {
        t = py_min(N(1.0), N(1.0) / N::tensor(view(flat_grad).cwiseAbs().sum())) * o.lr;
      } else {
        t = o.lr;
      }
      const N gtd = N::tensor(dot(flat_grad, d));
      if (gtd > -o.tolerance_change) break;  // not a descent direction any more

      int64_t ls_func_evals = 0;
      if (wolfe) {
        gather(x_init);
        const Found found = strong_wolfe(x_init, t, d, loss, flat_grad, gtd, max_eval - current_evals);
        loss = found.f, t = found.t, ls_func_evals = found.evals;
        add_grad(t, d);
        opt_cond = abs_max(flat_grad) <= tolerance_grad;
      } else {
        add_grad(t, d);
        if (n_iter != max_iter) {  // torch skips the evaluation after the last iteration
          loss = evaluate(flat_grad);
          opt_cond = abs_max(flat_grad) <= tolerance_grad;
          ls_func_evals = 1;
        }
      }
      current_evals += ls_func_evals;
      st.func_evals += ls_func_evals;

      if (hook && hook(loss)) break;
      if (n_iter == max_iter) break;
      if (current_evals >= max_eval) break;
      if (opt_cond) break;
      if (T((view(d) * t.as_t()).cwiseAbs().maxCoeff()) <= T(o.tolerance_change)) break;  // tiny step
      if (std::abs(loss - st.prev_loss) < o.tolerance_change) break;                      // tiny change
    }
    st.t = t.scalar();
    st.H_diag = H_diag.scalar();
    st.has_history = true;
    return orig_loss;
  }
};

template <class T>
LBFGS<T>::LBFGS(std::vector<Span<T>> params, LBFGSOptions options)
    : params_(std::move(params)), options_(std::move(options)) {
  options_.validate();
  for (std::size_t i = 0; i < params_.size(); ++i) {
    if (params_[i].size < 0 || (params_[i].size > 0 && !params_[i].data))
      throw InvalidArgument("params[" + std::to_string(i) + "]: null or negative-size buffer");
    n_ += params_[i].size;
  }
  if (n_ < 1) throw InvalidArgument("params: LBFGS needs at least one parameter element");
}

template <class T>
double LBFGS<T>::step(const Closure& closure, const IterationHook& hook) {
  options_.validate();
  if (!closure) throw InvalidArgument("LBFGS.step: the closure is empty");
  const auto history_size = std::size_t(options_.history_size);
  if (state_.old_dirs.size() > history_size || (!state_.al.empty() && state_.al.size() != history_size))
    throw InvalidArgument("Invalid history_size: " + std::to_string(history_size) +
                          " differs from the history_size the state was built with (" +
                          std::to_string(state_.al.empty() ? state_.old_dirs.size() : state_.al.size()) +
                          "); torch's LBFGS cannot change it either: make a new optimizer");
  LBFGSState<T> work = state_;  // shares the stored (y, s) pairs
  Step s(params_, options_, closure, work, n_);
  std::vector<T> start;
  s.gather(start);
  try {
    const double loss = s.run(hook);
    state_ = std::move(work);
    return loss;
  } catch (...) {
    s.scatter(start);
    throw;
  }
}

template <class T>
void LBFGS<T>::set_state(LBFGSState<T> state) {
  auto fail = [](const std::string& why) { throw InvalidArgument("Invalid LBFGS state: " + why); };
  if (state.func_evals < 0 || state.n_iter < 0) fail("func_evals and n_iter must be >= 0");
  if (state.has_history != (state.n_iter >= 1))
    fail("d, t, old_dirs, old_stps, ro, H_diag, prev_flat_grad and prev_loss are set exactly when n_iter >= 1");
  const auto n = std::size_t(n_);
  const auto history_size = std::size_t(options_.history_size);
  if (state.has_history) {
    if (state.d.size() != n || state.prev_flat_grad.size() != n)
      fail("d and prev_flat_grad must have " + std::to_string(n) + " elements (the parameters')");
    if (state.old_stps.size() != state.old_dirs.size() || state.ro.size() != state.old_dirs.size())
      fail("old_dirs, old_stps and ro must have the same length");
    if (state.old_dirs.size() > history_size)
      fail("old_dirs has " + std::to_string(state.old_dirs.size()) + " entries, more than history_size " +
           std::to_string(history_size));
    for (std::size_t k = 0; k < state.old_dirs.size(); ++k)
      if (!state.old_dirs[k] || !state.old_stps[k] || state.old_dirs[k]->size() != n ||
          state.old_stps[k]->size() != n)
        fail("old_dirs[" + std::to_string(k) + "] and old_stps[" + std::to_string(k) + "] must have " +
             std::to_string(n) + " elements");
  } else if (!state.d.empty() || !state.prev_flat_grad.empty() || !state.old_dirs.empty() ||
             !state.old_stps.empty() || !state.ro.empty()) {
    fail("a state with n_iter == 0 has no history");
  }
  if (!state.al.empty() && state.al.size() != history_size)
    fail("al must have history_size (" + std::to_string(history_size) + ") entries");
  state_ = std::move(state);
}

template class LBFGS<float>;
template class LBFGS<double>;

}  // namespace dlopt
