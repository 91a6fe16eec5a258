"""A complete training loop with dlopt: a scheduler, gradient clipping, gradient accumulation,
Lookahead, an EMA of the weights and checkpoints (save, then resume into fresh objects).

The model is a linear regression y = X w + b fitted by mini-batch SGD-style training with AdamW;
NumPy has no autograd, so the gradients are written out by hand.

Run: python examples/python/training_loop.py [checkpoint-dir]
"""

import os
import sys
import tempfile

import numpy as np

import dlopt
from dlopt.lr_scheduler import WarmupStableDecayLR

rng = np.random.default_rng(0)
n_samples, n_features = 4096, 32
X = rng.standard_normal((n_samples, n_features)).astype(np.float32)
true_w = rng.standard_normal(n_features).astype(np.float32)
y = X @ true_w + 0.5 + 0.01 * rng.standard_normal(n_samples).astype(np.float32)

MICRO_BATCH, ACCUMULATE, EPOCHS = 64, 4, 6  # effective batch: 256
STEPS_PER_EPOCH = n_samples // (MICRO_BATCH * ACCUMULATE)


def build(seed):
    """Parameters and every training object, freshly initialised."""
    r = np.random.default_rng(seed)
    params = {"w": (0.01 * r.standard_normal(n_features)).astype(np.float32),
              "b": np.zeros(1, np.float32)}
    opt = dlopt.Lookahead(dlopt.optim.AdamW(list(params.values()), lr=0.3, weight_decay=1e-4),
                          k=5, alpha=0.5)
    total = EPOCHS * STEPS_PER_EPOCH
    sched = WarmupStableDecayLR(opt, warmup_steps=total // 10, stable_steps=total // 2,
                                decay_steps=total - total // 10 - total // 2)
    acc = dlopt.GradientAccumulator(opt, steps=ACCUMULATE)
    ema = dlopt.EMA(params, decay=0.9)
    return params, opt, sched, acc, ema


def gradients(params, xb, yb):
    """Gradients of the mean squared error 0.5 * mean((X w + b - y)^2)."""
    err = xb @ params["w"] + params["b"][0] - yb
    return [xb.T @ err / len(yb), np.array([err.mean()], np.float32)]


def mse(w, b):
    return float(np.mean((X @ w + b[0] - y) ** 2))


def train(params, opt, sched, acc, ema, epochs):
    for epoch in epochs:
        order = np.random.default_rng(epoch).permutation(n_samples)  # reproducible shuffles
        for start in range(0, n_samples, MICRO_BATCH):
            idx = order[start:start + MICRO_BATCH]
            acc.add(gradients(params, X[idx], y[idx]))          # fused buffer += grad
            if acc.ready:
                dlopt.clip_grad_norm_(acc.mean(), max_norm=1.0)  # clip the mean gradient
                acc.step()                                       # Lookahead(AdamW).step(mean)
                sched.step()
                ema.update()                                     # fused shadow update
        print(f"epoch {epoch}: lr {sched.get_last_lr()[0]:.4f}  mse {mse(params['w'], params['b']):.5f}"
              f"  ema mse {mse(*ema.shadow):.5f}")


def save(path, params, opt, sched, ema, epoch):
    dlopt.save(path, optimizer=opt, scheduler=sched, params=params,
               extra={"ema": ema.state_dict(), "epoch": epoch})


def main(directory):
    path = os.path.join(directory, "linear.dlopt")

    # Train half the epochs, checkpoint (atomically), then "crash".
    params, opt, sched, acc, ema = build(seed=1)
    train(params, opt, sched, acc, ema, range(EPOCHS // 2))
    save(path, params, opt, sched, ema, epoch=EPOCHS // 2)

    # Resume into fresh objects: load checks names, shapes, dtypes and checksums, then restores
    # the parameters in place and the optimizer / scheduler state, all or nothing.
    params, opt, sched, acc, ema = build(seed=2)
    ckpt = dlopt.load(path, optimizer=opt, scheduler=sched, params=params)
    ema.load_state_dict(ckpt["extra"]["ema"])
    train(params, opt, sched, acc, ema, range(ckpt["extra"]["epoch"], EPOCHS))

    # Evaluate with the averaged weights, then put the trained ones back.
    with ema.average_parameters():
        final = mse(params["w"], params["b"])
    print(f"final mse with EMA weights: {final:.5f}")
    return params, final


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(sys.argv[1])
    else:
        with tempfile.TemporaryDirectory() as d:
            main(d)
