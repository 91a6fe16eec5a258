"""dlopt's optimizers on the specification's example: fit y = 2x + 1 + noise.

Every optimizer trains the same two parameters (w, b) on the mean squared error of 100 points;
the gradient is computed here in NumPy, the update by dlopt's fused C++ step.
"""

import time

import numpy as np

import dlopt

rng = np.random.default_rng(0)
x = np.linspace(-1.0, 1.0, 100)
y = 2.0 * x + 1.0 + rng.normal(0.0, 0.1, size=x.shape)

SETTINGS = {  # a learning rate that suits each optimizer on this problem
    "SGD": dict(lr=0.1), "Adam": dict(lr=0.05), "AdamW": dict(lr=0.05, weight_decay=0.0),
    "Adagrad": dict(lr=0.5), "RMSprop": dict(lr=0.01), "Adadelta": dict(lr=1.0, eps=1e-3),
    "Adamax": dict(lr=0.05), "NAdam": dict(lr=0.05), "RAdam": dict(lr=0.05),
    "Lion": dict(lr=0.005), "DynamicLR": dict(lr=0.1, beta=1.0),
}

print(f"dlopt {dlopt.__version__}: fit y = 2x + 1 + N(0, 0.1) on 100 points, 1000 full-batch steps\n")
print(f"{'optimizer':<10} {'w':>8} {'b':>8} {'MSE':>8} {'time':>9}")
for name, kwargs in SETTINGS.items():
    w, b = np.zeros(1), np.zeros(1)
    opt = getattr(dlopt.optim, name)([w, b], **kwargs)
    start = time.perf_counter()
    for _ in range(1000):
        residual = w * x + b - y
        opt.step([np.array([2.0 * np.mean(residual * x)]), np.array([2.0 * np.mean(residual)])])
    elapsed = time.perf_counter() - start
    mse = np.mean((w * x + b - y) ** 2)
    print(f"{name:<10} {w[0]:8.4f} {b[0]:8.4f} {mse:8.5f} {elapsed * 1e3:7.1f} ms")
