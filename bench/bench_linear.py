"""Side-by-side speed of dlopt's linear models against PyTorch and scikit-learn, in one run.

    python bench/bench_linear.py            # all three comparisons (needs torch and scikit-learn)
    python bench/bench_linear.py --quick    # 100,000 rows instead of 1,000,000 (a smoke test)

1. The seed example (y = 2x + 1 + N(0, 0.1), 100 points, full-batch SGD lr=0.1, 1000 epochs):
   dlopt's LinearRegression.fit vs the same training written as a torch.optim.SGD for-loop.
2. One epoch of mini-batch SGD (batch 256) on 1,000,000 x 100 float32 regression data: dlopt vs
   scikit-learn's SGDRegressor(max_iter=1); the final MSE is compared with the least-squares optimum.
3. LinearRegression(solver="closed_form") vs scikit-learn's LinearRegression on the same data.

Each timing is the best of several runs (after a warm-up for dlopt and torch); every ratio is
peer time / dlopt time, measured in this process on this machine. The SGD epoch alternates the two
sides in rounds and reports the median of the rounds' ratios (see sgd_epoch).
"""

from __future__ import annotations

import argparse
import os
import platform
import time
import warnings

import numpy as np

import dlopt
from dlopt.linear_model import LinearRegression
from dlopt.metrics import mean_squared_error


def best(f, repeat):
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = f()
        times.append(time.perf_counter() - t)
    return min(times), out


def seed_example(repeat):
    import torch

    x = np.linspace(-1, 1, 100)
    y = (2 * x + 1 + np.random.default_rng(0).normal(0, 0.1, 100)).astype(np.float32)
    X = x[:, None].astype(np.float32)

    def torch_fit():
        Xt, yt = torch.from_numpy(X[:, 0]), torch.from_numpy(y)
        w = torch.zeros(1, requires_grad=True)
        b = torch.zeros(1, requires_grad=True)
        opt = torch.optim.SGD([w, b], lr=0.1)
        for _ in range(1000):
            opt.zero_grad()
            loss = ((Xt * w + b - yt) ** 2).mean()
            loss.backward()
            opt.step()
        return w.item(), b.item()

    model = LinearRegression(optimizer="sgd", lr=0.1, epochs=1000, batch_size=None)
    torch_fit()
    model.fit(X, y)
    t_torch, (tw, tb) = best(torch_fit, max(2, repeat // 3))
    t_dlopt, _ = best(lambda: model.fit(X, y), repeat * 5)
    return dict(name="seed example fit (1000 full-batch SGD epochs)", peer="torch.optim.SGD loop",
                t_peer=t_torch, t_dlopt=t_dlopt, target=200,
                note=f"w,b dlopt {model.coef_[0]:.5f},{model.intercept_:.5f}; torch {tw:.5f},{tb:.5f}")


def big_data(n, d=100):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, d), dtype=np.float32)
    w = rng.standard_normal(d).astype(np.float32)
    y = (X @ w + 0.5 + rng.standard_normal(n, dtype=np.float32)).astype(np.float32)
    return X, y


def sgd_epoch(X, y, optimum_mse, repeat):
    """Two dlopt rows: shuffling single rows (the default) and blocks of 16 rows (shuffle_block=16).

    A shared machine drifts between faster and slower spells over seconds, longer than one
    scikit-learn epoch, so the two sides are timed in alternating rounds (one scikit-learn epoch,
    then the best of three dlopt epochs for each setting): the ratio reported is the median of the
    rounds' ratios, with their range.
    """
    from sklearn.linear_model import SGDRegressor

    def sk():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ConvergenceWarning: max_iter=1 is the point
            return SGDRegressor(max_iter=1, tol=None, random_state=0).fit(X, y)

    def ours(block):
        return LinearRegression(optimizer="sgd", lr=0.01, epochs=1, batch_size=256, random_state=0,
                                shuffle_block=block).fit(X, y)

    blocks = (1, 16)
    models = {block: ours(block) for block in blocks}  # warm-up
    t_sk, t_dl = [], {block: [] for block in blocks}
    for _ in range(max(3, repeat)):
        t, m_sk = best(sk, 1)
        t_sk.append(t)
        for block in blocks:
            t, models[block] = best(lambda: ours(block), 3)
            t_dl[block].append(t)
    mse_sk = mean_squared_error(y, m_sk.predict(X).astype(np.float32))
    rows = []
    for block in blocks:
        ratios = np.array(t_sk) / np.array(t_dl[block])
        mse_dl = mean_squared_error(y, models[block].predict(X))
        what = "rows" if block == 1 else f"blocks of {block} rows"
        rows.append(dict(name=f"1 epoch SGD, batch 256, shuffling {what}",
                         peer="sklearn SGDRegressor(max_iter=1)", t_peer=min(t_sk), t_dlopt=min(t_dl[block]),
                         ratio=float(np.median(ratios)), target=15,
                         note=f"rounds {ratios.min():.1f}-{ratios.max():.1f}x; MSE/optimum dlopt "
                              f"{mse_dl / optimum_mse:.4f}, sklearn {mse_sk / optimum_mse:.4f}"))
    return rows


def closed_form(X, y, repeat):
    from sklearn.linear_model import LinearRegression as SkLinearRegression

    ours = LinearRegression(solver="closed_form")
    ours.fit(X, y)
    t_dl, _ = best(lambda: ours.fit(X, y), repeat)
    t_sk, sk = best(lambda: SkLinearRegression().fit(X, y), 1)
    diff = max(float(np.max(np.abs(ours.coef_ - sk.coef_))), abs(ours.intercept_ - float(sk.intercept_)))
    optimum = mean_squared_error(y, ours.predict(X))
    return dict(name="closed-form least squares (normal equations)",
                peer="sklearn LinearRegression", t_peer=t_sk, t_dlopt=t_dl, target=20,
                note=f"max |coef difference| {diff:.2e}"), optimum


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="100,000 rows instead of 1,000,000")
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()
    n = 100_000 if args.quick else 1_000_000
    print(f"dlopt {dlopt.__version__}, {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"dlopt threads {dlopt.get_num_threads()}")
    rows = [seed_example(args.repeat)]
    X, y = big_data(n)
    cf, optimum = closed_form(X, y, args.repeat)
    rows.extend(sgd_epoch(X, y, optimum, args.repeat))
    rows.append(cf)
    print()
    print(f"data: {n:,} x 100 float32, y = Xw + 0.5 + N(0, 1)")
    print(f"{'benchmark':<52} {'peer':<34} {'peer s':>9} {'dlopt s':>9} {'ratio':>8} {'target':>7}  notes")
    for r in rows:
        ratio = r.get("ratio", r["t_peer"] / r["t_dlopt"])
        ok = "ok" if ratio >= r["target"] else "MISSED"
        print(f"{r['name']:<52} {r['peer']:<34} {r['t_peer']:9.4f} {r['t_dlopt']:9.5f} {ratio:7.1f}x "
              f"{'>=' + str(r['target']) + 'x':>6} {ok:<6} {r['note']}")


if __name__ == "__main__":
    main()
