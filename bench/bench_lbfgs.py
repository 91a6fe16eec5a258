"""L-BFGS logistic regression on digits: dlopt vs scikit-learn's lbfgs to the same objective, side by side.

    python bench/bench_lbfgs.py              # C = 1.0 and 0.1, best of 7
    python bench/bench_lbfgs.py --repeat 3   # quicker

scikit-learn's bundled digits (1797 x 64, 10 classes), standardized as a user would
(StandardScaler). scikit-learn: LogisticRegression(solver="lbfgs", C=C) with its default tol=1e-4
(scipy's L-BFGS-B, multinomial loss). dlopt: SoftmaxRegression(optimizer="lbfgs", lr=1,
penalty="l2", alpha=1/(C·n)), the same objective (mean cross-entropy + ‖W‖²/(2·C·n)), with just
enough iterations (epochs) to reach an objective no higher than the one scikit-learn stops at: the
number is found by one untimed run, then the timed fits run exactly that many iterations, and the
objective they reach is checked again.

Both sides run single-threaded (dlopt.set_num_threads(1), threadpoolctl for scikit-learn's OpenMP
and BLAS), then with the default threads. Each timing is the best of --repeat fits, the two sides
alternating; the ratio is scikit-learn's time / dlopt's, measured in this process on this machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
import warnings

import numpy as np

import dlopt
from dlopt.linear_model import SoftmaxRegression


def objective(X, codes, coef, intercept, alpha):
    """mean softmax cross-entropy + alpha·½‖coef‖², in float64 (the objective both minimise)."""
    Z = X @ coef.T + intercept
    m = Z.max(axis=1, keepdims=True)
    lse = m[:, 0] + np.log(np.exp(Z - m).sum(axis=1))
    return np.mean(lse - Z[np.arange(len(codes)), codes]) + 0.5 * alpha * (coef ** 2).sum()


def run(C, repeat, threads):
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    X, y = load_digits(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    n = len(y)
    alpha = 1 / (C * n)

    def sk_fit():
        return LogisticRegression(C=C).fit(X, y)

    def ours_fit(epochs):
        return SoftmaxRegression(optimizer="lbfgs", lr=1.0, penalty="l2", alpha=alpha, epochs=epochs).fit(X, y)

    limits = threadpool_limits(1) if threads == 1 else threadpool_limits(None)
    old_threads = dlopt.get_num_threads()
    if threads == 1:
        dlopt.set_num_threads(1)
    try:
        with limits:
            sk = sk_fit()
            target = objective(X, y, sk.coef_, sk.intercept_, alpha)
            # One untimed run: the first iteration whose objective is no higher than scikit-learn's.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                probe = ours_fit(1000)
            epochs = next(i + 1 for i, loss in enumerate(probe.loss_curve_) if loss <= target)
            sk_times, our_times = [], []
            for _ in range(repeat):
                t = time.perf_counter()
                sk = sk_fit()
                sk_times.append(time.perf_counter() - t)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # the ConvergenceWarning of stopping on purpose
                    t = time.perf_counter()
                    model = ours_fit(epochs)
                    our_times.append(time.perf_counter() - t)
            reached = objective(X, y, model.coef_, model.intercept_, alpha)
            assert reached <= target * (1 + 1e-12), (reached, target)
    finally:
        dlopt.set_num_threads(old_threads)
    return dict(C=C, threads=threads, target=target, reached=reached, sk_iter=int(sk.n_iter_[0]),
                our_iter=epochs, sk=min(sk_times), ours=min(our_times))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    print(f"dlopt {dlopt.__version__}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, dlopt threads {dlopt.get_num_threads()}")
    print(f"{'C':>5} {'threads':>8} {'objective (sklearn -> dlopt)':>31} {'iters sk/dlopt':>15} "
          f"{'sklearn ms':>11} {'dlopt ms':>9} {'ratio':>6}")
    for threads in (1, 0):
        for C in (1.0, 0.1):
            r = run(C, args.repeat, threads)
            print(f"{r['C']:>5} {('1' if threads == 1 else 'default'):>8} "
                  f"{r['target']:.10f} -> {r['reached']:.10f} {r['sk_iter']:>7}/{r['our_iter']:<7} "
                  f"{r['sk'] * 1e3:>11.2f} {r['ours'] * 1e3:>9.2f} {r['sk'] / r['ours']:>5.1f}x")


if __name__ == "__main__":
    main()
