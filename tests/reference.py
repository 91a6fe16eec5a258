"""Independent pure-NumPy reference implementations of dlopt's optimizers.

Each ``*_step(p, g, state, **hyperparameters)`` applies one update to the parameter ``p`` in
place, from the gradient ``g``, keeping its running buffers in the dict ``state`` (created lazily
on the first call, with PyTorch's state names). All arithmetic runs in ``p``'s dtype: NumPy >= 2
(NEP 50) keeps ``float32_array * python_float`` in float32, like PyTorch's CPU kernels, which
cast scalar arguments to the tensor's dtype. Scalar bookkeeping (bias corrections, step sizes,
NAdam's ``mu_product``) is done in Python floats (double), as in torch's non-capturable path.

The formulas and their order follow the pseudo-algorithms documented in ``torch/optim/*.py``
(torch 2.13) and its ``_single_tensor_*`` functions; Lion follows Chen et al. 2023
("Symbolic Discovery of Optimization Algorithms", Algorithm 2) and DynamicLR is dlopt's own
element-wise rule ``p -= lr / (1 + beta g^2) * g``. This file deliberately shares no code with
dlopt: it is the independent oracle of ``tests/test_optim_parity.py``.

Every function increments ``state["step"]`` (a Python int), including SGD's, whose torch state
has no step counter.
"""

from __future__ import annotations

import numpy as np

__all__ = ["REFERENCES", "DEFAULTS"]


def _begin(p, g, state, maximize):
    """Increments the step counter and returns the (possibly negated) gradient as a new array."""
    if g.dtype != p.dtype or g.shape != p.shape:
        raise ValueError(f"gradient {g.dtype}{g.shape} does not match parameter {p.dtype}{p.shape}")
    state["step"] = state.get("step", 0) + 1
    return -g if maximize else g.copy()


def _zeros(state, p, *names):
    for name in names:
        if name not in state:
            state[name] = np.zeros_like(p)


def _lerp_(a, b, weight):
    """a <- a + weight (b - a), in place: the exponential moving average b1 a + (1 - b1) b."""
    a += weight * (b - a)


# ---------------------------------------------------------------------------------------------
# SGD: g <- g + wd p; b <- g (first step) or mu b + (1 - dampening) g;
#      g <- g + mu b (nesterov) or b; p <- p - lr g
# ---------------------------------------------------------------------------------------------
def sgd_step(p, g, state, *, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0,
             nesterov=False, maximize=False):
    g = _begin(p, g, state, maximize)
    if weight_decay != 0:
        g = g + weight_decay * p
    if momentum != 0:
        buf = state.get("momentum_buffer")
        if buf is None:
            buf = state["momentum_buffer"] = g.copy()
        else:
            buf *= momentum
            buf += (1 - dampening) * g
        g = g + momentum * buf if nesterov else buf
    p -= lr * g


# ---------------------------------------------------------------------------------------------
# Adam / AdamW (AdamW = decoupled_weight_decay=True), with AMSGrad
# ---------------------------------------------------------------------------------------------
def adam_step(p, g, state, *, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
              amsgrad=False, maximize=False, decoupled_weight_decay=False):
    beta1, beta2 = betas
    g = _begin(p, g, state, maximize)
    _zeros(state, p, "exp_avg", "exp_avg_sq", *(["max_exp_avg_sq"] if amsgrad else []))
    t = state["step"]
    if weight_decay != 0:
        if decoupled_weight_decay:
            p *= 1 - lr * weight_decay
        else:
            g = g + weight_decay * p
    m, v = state["exp_avg"], state["exp_avg_sq"]
    _lerp_(m, g, 1 - beta1)
    v *= beta2
    v += (1 - beta2) * (g * g)
    bias_correction1 = 1 - beta1**t
    bias_correction2 = 1 - beta2**t
    step_size = lr / bias_correction1
    if amsgrad:
        vmax = state["max_exp_avg_sq"]
        np.maximum(vmax, v, out=vmax)
        v = vmax
    denom = np.sqrt(v) / bias_correction2**0.5 + eps
    p -= step_size * (m / denom)


def adamw_step(p, g, state, *, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
               amsgrad=False, maximize=False):
    adam_step(p, g, state, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
              amsgrad=amsgrad, maximize=maximize, decoupled_weight_decay=True)


# ---------------------------------------------------------------------------------------------
# Adagrad: clr = lr / (1 + (t - 1) lr_decay); s <- s + g^2; p <- p - clr g / (sqrt(s) + eps)
# ---------------------------------------------------------------------------------------------
def adagrad_step(p, g, state, *, lr=1e-2, lr_decay=0.0, weight_decay=0.0,
                 initial_accumulator_value=0.0, eps=1e-10, maximize=False):
    g = _begin(p, g, state, maximize)
    if "sum" not in state:
        state["sum"] = np.full_like(p, initial_accumulator_value)
    t = state["step"]
    if weight_decay != 0:
        g = g + weight_decay * p
    clr = lr / (1 + (t - 1) * lr_decay)
    s = state["sum"]
    s += g * g
    std = np.sqrt(s) + eps
    p -= clr * (g / std)


# ---------------------------------------------------------------------------------------------
# RMSprop, optionally centered and with momentum
# ---------------------------------------------------------------------------------------------
def rmsprop_step(p, g, state, *, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0,
                 centered=False, maximize=False):
    g = _begin(p, g, state, maximize)
    _zeros(state, p, "square_avg", *(["momentum_buffer"] if momentum > 0 else []),
           *(["grad_avg"] if centered else []))
    if weight_decay != 0:
        g = g + weight_decay * p
    v = state["square_avg"]
    v *= alpha
    v += (1 - alpha) * (g * g)
    if centered:
        ga = state["grad_avg"]
        _lerp_(ga, g, 1 - alpha)
        avg = np.sqrt(v - ga * ga)
    else:
        avg = np.sqrt(v)
    avg += eps
    if momentum > 0:
        buf = state["momentum_buffer"]
        buf *= momentum
        buf += g / avg
        p -= lr * buf
    else:
        p -= lr * (g / avg)


# ---------------------------------------------------------------------------------------------
# Adadelta: v <- rho v + (1-rho) g^2; d = sqrt(u + eps) / sqrt(v + eps) g;
#           u <- rho u + (1-rho) d^2; p <- p - lr d
# ---------------------------------------------------------------------------------------------
def adadelta_step(p, g, state, *, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0.0, maximize=False):
    g = _begin(p, g, state, maximize)
    _zeros(state, p, "square_avg", "acc_delta")
    if weight_decay != 0:
        g = g + weight_decay * p
    v, u = state["square_avg"], state["acc_delta"]
    v *= rho
    v += (1 - rho) * (g * g)
    std = np.sqrt(v + eps)
    delta = np.sqrt(u + eps) / std * g
    u *= rho
    u += (1 - rho) * (delta * delta)
    p -= lr * delta


# ---------------------------------------------------------------------------------------------
# Adamax: m <- lerp; u <- max(b2 u, |g| + eps); p <- p - lr / (1 - b1^t) m / u
# ---------------------------------------------------------------------------------------------
def adamax_step(p, g, state, *, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                maximize=False):
    beta1, beta2 = betas
    g = _begin(p, g, state, maximize)
    _zeros(state, p, "exp_avg", "exp_inf")
    t = state["step"]
    if weight_decay != 0:
        g = g + weight_decay * p
    m, u = state["exp_avg"], state["exp_inf"]
    _lerp_(m, g, 1 - beta1)
    u *= beta2
    np.maximum(u, np.abs(g) + eps, out=u)
    clr = lr / (1 - beta1**t)
    p -= clr * (m / u)


# ---------------------------------------------------------------------------------------------
# NAdam (Dozat 2016, with PyTorch's momentum-decay schedule)
# ---------------------------------------------------------------------------------------------
def nadam_step(p, g, state, *, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
               momentum_decay=4e-3, decoupled_weight_decay=False, maximize=False):
    beta1, beta2 = betas
    g = _begin(p, g, state, maximize)
    _zeros(state, p, "exp_avg", "exp_avg_sq")
    state.setdefault("mu_product", 1.0)
    t = state["step"]
    bias_correction2 = 1 - beta2**t
    if weight_decay != 0:
        if decoupled_weight_decay:
            p *= 1 - lr * weight_decay
        else:
            g = g + weight_decay * p
    mu = beta1 * (1.0 - 0.5 * 0.96 ** (t * momentum_decay))
    mu_next = beta1 * (1.0 - 0.5 * 0.96 ** ((t + 1) * momentum_decay))
    mu_product = state["mu_product"] = state["mu_product"] * mu
    mu_product_next = mu_product * mu_next
    m, v = state["exp_avg"], state["exp_avg_sq"]
    _lerp_(m, g, 1 - beta1)
    v *= beta2
    v += (1 - beta2) * (g * g)
    denom = np.sqrt(v / bias_correction2) + eps
    p += (-lr * (1.0 - mu) / (1.0 - mu_product)) * (g / denom)
    p += (-lr * mu_next / (1.0 - mu_product_next)) * (m / denom)


# ---------------------------------------------------------------------------------------------
# RAdam (Liu et al. 2020): rectified Adam, plain momentum SGD while rho_t <= 5
# ---------------------------------------------------------------------------------------------
def radam_step(p, g, state, *, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
               decoupled_weight_decay=False, maximize=False):
    beta1, beta2 = betas
    g = _begin(p, g, state, maximize)
    _zeros(state, p, "exp_avg", "exp_avg_sq")
    t = state["step"]
    if weight_decay != 0:
        if decoupled_weight_decay:
            p *= 1 - lr * weight_decay
        else:
            g = g + weight_decay * p
    m, v = state["exp_avg"], state["exp_avg_sq"]
    _lerp_(m, g, 1 - beta1)
    v *= beta2
    v += (1 - beta2) * (g * g)
    bias_correction1 = 1 - beta1**t
    bias_correction2 = 1 - beta2**t
    m_hat = m / bias_correction1
    rho_inf = 2 / (1 - beta2) - 1
    rho_t = rho_inf - 2 * t * beta2**t / bias_correction2
    if rho_t > 5.0:
        rect = ((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)) ** 0.5
        adaptive_lr = bias_correction2**0.5 / (np.sqrt(v) + eps)
        p -= m_hat * lr * adaptive_lr * rect
    else:
        p -= m_hat * lr


# ---------------------------------------------------------------------------------------------
# Lion (Chen et al. 2023, Algorithm 2)
# ---------------------------------------------------------------------------------------------
def lion_step(p, g, state, *, lr=1e-4, betas=(0.9, 0.99), weight_decay=0.0, maximize=False):
    beta1, beta2 = betas
    g = _begin(p, g, state, maximize)
    _zeros(state, p, "exp_avg")
    m = state["exp_avg"]
    c = beta1 * m + (1 - beta1) * g
    if weight_decay != 0:
        p *= 1 - lr * weight_decay
    p -= lr * np.sign(c)
    m *= beta2
    m += (1 - beta2) * g


# ---------------------------------------------------------------------------------------------
# LAMB (You et al. 2020, Algorithm 2, with Adam's bias correction): r = m̂/(√v̂ + eps) + wd p,
# p <- p - lr ‖p‖/‖r‖ r (trust ratio 1 when either norm is 0); norms over the whole tensor
# ---------------------------------------------------------------------------------------------
def lamb_step(p, g, state, *, lr=1e-3, betas=(0.9, 0.999), eps=1e-6, weight_decay=0.0, maximize=False):
    beta1, beta2 = betas
    g = _begin(p, g, state, maximize)
    _zeros(state, p, "exp_avg", "exp_avg_sq")
    t = state["step"]
    m, v = state["exp_avg"], state["exp_avg_sq"]
    _lerp_(m, g, 1 - beta1)
    v *= beta2
    v += (1 - beta2) * (g * g)
    r = (m / (1 - beta1**t)) / (np.sqrt(v / (1 - beta2**t)) + eps) + weight_decay * p
    p_norm = np.sqrt(np.sum(p.astype(np.float64) ** 2))
    r_norm = np.sqrt(np.sum(r.astype(np.float64) ** 2))
    trust = p_norm / r_norm if p_norm > 0 and r_norm > 0 else 1.0
    p -= (lr * trust) * r


# ---------------------------------------------------------------------------------------------
# DynamicLR: p <- p - lr / (1 + beta g^2) g, element-wise; no state but the step counter
# ---------------------------------------------------------------------------------------------
def dynamic_lr_step(p, g, state, *, lr=1e-2, beta=1.0):
    g = _begin(p, g, state, False)
    p -= lr / (1 + beta * (g * g)) * g


REFERENCES = {
    "SGD": sgd_step,
    "Adam": adam_step,
    "AdamW": adamw_step,
    "Adagrad": adagrad_step,
    "RMSprop": rmsprop_step,
    "Adadelta": adadelta_step,
    "Adamax": adamax_step,
    "NAdam": nadam_step,
    "RAdam": radam_step,
    "Lion": lion_step,
    "LAMB": lamb_step,
    "DynamicLR": dynamic_lr_step,
}


def _defaults(fn):
    import inspect

    return {k: v.default for k, v in inspect.signature(fn).parameters.items()
            if v.kind is inspect.Parameter.KEYWORD_ONLY}


#: Each optimizer's keyword defaults (identical to torch 2.13's where torch has it).
DEFAULTS = {name: _defaults(fn) for name, fn in REFERENCES.items()}
