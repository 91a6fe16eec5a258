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
element-wise rule ``p -= lr / (1 + beta g^2) * g``. The optimizers torch lacks follow their
authors' reference code: ADOPT (iShohei220/adopt), AdEMAMix (apple/ml-ademamix), Schedule-Free
(facebookresearch/schedule_free, the ``schedulefree`` package), LARS as pytorch-optimizer (the
learning rate outside the momentum, as torch's SGD). This file deliberately shares no code with
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


# ---------------------------------------------------------------------------------------------
# Rprop (torch): per-element step sizes grown/shrunk by the sign of g * g_prev
# ---------------------------------------------------------------------------------------------
def rprop_step(p, g, state, *, lr=1e-2, etas=(0.5, 1.2), step_sizes=(1e-6, 50), maximize=False):
    etaminus, etaplus = etas
    g = _begin(p, g, state, maximize)
    if "prev" not in state:
        state["prev"] = np.zeros_like(p)
        state["step_size"] = np.full_like(p, lr)
    prev, step_size = state["prev"], state["step_size"]
    sign = np.sign(g * prev)
    factor = np.where(sign > 0, etaplus, np.where(sign < 0, etaminus, np.where(sign == 0, 1.0, sign)))
    step_size *= factor.astype(p.dtype)
    np.clip(step_size, step_sizes[0], step_sizes[1], out=step_size)
    g[factor == etaminus] = 0
    p -= np.sign(g) * step_size
    prev[...] = g


# ---------------------------------------------------------------------------------------------
# ASGD (torch): p <- p (1 - lambd eta) - eta g; ax averages p once step > t0; eta, mu for the next step
# ---------------------------------------------------------------------------------------------
def asgd_step(p, g, state, *, lr=1e-2, lambd=1e-4, alpha=0.75, t0=1e6, weight_decay=0.0, maximize=False):
    g = _begin(p, g, state, maximize)
    if "ax" not in state:
        state["ax"] = np.zeros_like(p)
        state["eta"], state["mu"] = float(lr), 1.0
    if weight_decay != 0:
        g = g + weight_decay * p
    eta, mu = state["eta"], state["mu"]
    p *= 1 - lambd * eta
    p -= eta * g
    ax = state["ax"]
    if mu != 1:
        ax += (p - ax) * mu
    else:
        ax[...] = p
    t = state["step"]
    state["eta"] = lr / ((1 + lambd * lr * t) ** alpha)
    state["mu"] = 1 / max(1, t - t0)


# ---------------------------------------------------------------------------------------------
# LARS (You et al. 2017, as pytorch-optimizer): trust = tc ‖p‖ / (‖g‖ + wd ‖p‖) on "layers"
# ---------------------------------------------------------------------------------------------
def lars_step(p, g, state, *, lr=1e-3, momentum=0.9, dampening=0.0, weight_decay=0.0,
              trust_coefficient=1e-3, nesterov=False, exclude_1d=False, maximize=False):
    g = _begin(p, g, state, maximize)
    if not (exclude_1d and p.ndim < 2):
        p_norm = np.sqrt(np.sum(p.astype(np.float64) ** 2))
        g_norm = np.sqrt(np.sum(g.astype(np.float64) ** 2))
        denom = g_norm + weight_decay * p_norm
        trust = trust_coefficient * p_norm / denom if p_norm > 0 and denom > 0 else 1.0
        g = (g + weight_decay * p) * trust
    if momentum != 0:
        _zeros(state, p, "momentum_buffer")
        buf = state["momentum_buffer"]
        buf *= momentum
        buf += (1 - dampening) * g
        g = g + momentum * buf if nesterov else buf
    p -= lr * g


# ---------------------------------------------------------------------------------------------
# ADOPT (Taniguchi et al. 2024, reference code): v <- g² first; then clip(g / max(√v, eps)) into m
# ---------------------------------------------------------------------------------------------
def adopt_step(p, g, state, *, lr=1e-3, betas=(0.9, 0.9999), eps=1e-6, weight_decay=0.0, decouple=False,
               clip_exponent=0.25, maximize=False):
    beta1, beta2 = betas
    g = _begin(p, g, state, maximize)
    _zeros(state, p, "exp_avg", "exp_avg_sq")
    m, v = state["exp_avg"], state["exp_avg_sq"]
    if weight_decay != 0 and not decouple:
        g = g + weight_decay * p
    if state["step"] == 1:
        v += g * g
        return
    if weight_decay != 0 and decouple:
        p += (-lr * weight_decay) * p
    normed = g / np.maximum(np.sqrt(v), eps)
    if clip_exponent is not None:
        bound = (state["step"] - 1) ** clip_exponent
        normed = np.clip(normed, -bound, bound)
    _lerp_(m, normed, 1 - beta1)
    p -= lr * m
    v *= beta2
    v += (1 - beta2) * (g * g)


# ---------------------------------------------------------------------------------------------
# AdEMAMix (Pagliardini et al. 2024, apple/ml-ademamix), with its alpha / beta3 warmups
# ---------------------------------------------------------------------------------------------
def ademamix_step(p, g, state, *, lr=1e-3, betas=(0.9, 0.999, 0.9999), alpha=2.0, beta3_warmup=None,
                  alpha_warmup=None, eps=1e-8, weight_decay=0.0, maximize=False):
    import math

    beta1, beta2, beta3_final = betas
    g = _begin(p, g, state, maximize)
    _zeros(state, p, "exp_avg_slow", "exp_avg_sq")
    if beta1 != 0:
        _zeros(state, p, "exp_avg_fast")
    t = state["step"]
    a = alpha if alpha_warmup is None or t >= alpha_warmup else t / alpha_warmup * alpha
    if beta3_warmup is None or t >= beta3_warmup:
        beta3 = beta3_final
    else:
        def half_life(beta):
            return math.log(0.5) / math.log(beta + 1e-8) - 1
        w = t / beta3_warmup
        beta3 = math.pow(0.5, 1 / ((1 - w) * half_life(beta1) + w * half_life(beta3_final) + 1))
    if beta1 != 0:
        fast = state["exp_avg_fast"]
        fast *= beta1
        fast += (1 - beta1) * g
    else:
        fast = g
    slow, v = state["exp_avg_slow"], state["exp_avg_sq"]
    slow *= beta3
    slow += (1 - beta3) * g
    v *= beta2
    v += (1 - beta2) * (g * g)
    denom = np.sqrt(v) / math.sqrt(1 - beta2**t) + eps
    update = (fast / (1 - beta1**t) + a * slow) / denom + weight_decay * p
    p -= lr * update


# ---------------------------------------------------------------------------------------------
# Schedule-Free SGD / AdamW (Defazio et al. 2024, the schedulefree package), weighting per tensor
# ---------------------------------------------------------------------------------------------
def _schedule_free(p, d, state, lr, beta, warmup_steps, r, weight_lr_power):
    t = state["step"]
    lr_t = lr * (t / warmup_steps if t - 1 < warmup_steps else 1.0)
    lr_max = state["lr_max"] = max(lr_t, state["lr_max"])
    weight = t**r * lr_max**weight_lr_power
    weight_sum = state["weight_sum"] = state["weight_sum"] + weight
    ckp1 = weight / weight_sum if weight_sum != 0 else 0.0
    z = state["z"]
    if ckp1 < 0.5:
        p += ckp1 * (z - p)
    else:
        p[...] = z - (z - p) * (1 - ckp1)
    p += lr_t * (beta * (1 - ckp1) - 1) * d
    z -= lr_t * d


def _schedule_free_state(p, state):
    if "z" not in state:
        state["z"] = p.copy()
        state["weight_sum"], state["lr_max"] = 0.0, -1.0


def schedule_free_sgd_step(p, g, state, *, lr=1.0, momentum=0.9, weight_decay=0.0, warmup_steps=0, r=0.0,
                           weight_lr_power=2.0):
    g = _begin(p, g, state, False)
    _schedule_free_state(p, state)
    d = g + weight_decay * p if weight_decay != 0 else g
    _schedule_free(p, d, state, lr, momentum, warmup_steps, r, weight_lr_power)


def schedule_free_adamw_step(p, g, state, *, lr=0.0025, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                             warmup_steps=0, r=0.0, weight_lr_power=2.0):
    beta1, beta2 = betas
    g = _begin(p, g, state, False)
    _schedule_free_state(p, state)
    _zeros(state, p, "exp_avg_sq")
    v = state["exp_avg_sq"]
    v *= beta2
    v += (1 - beta2) * g * g
    d = g / (np.sqrt(v / (1 - beta2 ** state["step"])) + eps)
    if weight_decay != 0:
        d = d + weight_decay * p
    _schedule_free(p, d, state, lr, beta1, warmup_steps, r, weight_lr_power)


# ---------------------------------------------------------------------------------------------
# Adafactor (torch): factored second moments over the last two dims, relative step, update clipping
# ---------------------------------------------------------------------------------------------
def adafactor_step(p, g, state, *, lr=1e-2, beta2_decay=-0.8, eps=(None, 1e-3), d=1.0, weight_decay=0.0,
                   maximize=False):
    g = _begin(p, g, state, maximize)
    eps1 = np.finfo(p.dtype).eps if eps[0] is None else eps[0]
    t = state["step"]
    factored = p.ndim > 1
    if factored and "row_var" not in state:
        state["row_var"] = np.zeros(p.shape[:-1] + (1,), p.dtype)
        state["col_var"] = np.zeros(p.shape[:-2] + (1, p.shape[-1]), p.dtype)
    if not factored:
        _zeros(state, p, "variance")
    w = t ** beta2_decay
    rho = min(lr, 1 / t**0.5)
    alpha = max(eps[1], np.sqrt(np.sum(p.astype(np.float64) ** 2)) / p.size**0.5) * rho
    if weight_decay != 0:
        p *= 1 - lr * weight_decay
    g64 = g.astype(np.float64) ** 2
    if factored:
        row, col = state["row_var"], state["col_var"]
        row += w * ((g64.mean(axis=-1, keepdims=True)).astype(p.dtype) - row)
        col += w * ((g64.mean(axis=-2, keepdims=True)).astype(p.dtype) - col)
        var = row * col / np.maximum(row.mean(axis=-2, keepdims=True), eps1)
    else:
        v = state["variance"]
        v += w * (g * g - v)
        var = v.copy()
    u = g / np.sqrt(np.maximum(var, eps1 * eps1))
    denom = max(1.0, np.sqrt(np.sum(u.astype(np.float64) ** 2)) / (u.size**0.5 * d))
    p -= (alpha / denom) * u


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
    "Rprop": rprop_step,
    "ASGD": asgd_step,
    "LARS": lars_step,
    "ADOPT": adopt_step,
    "AdEMAMix": ademamix_step,
    "ScheduleFreeSGD": schedule_free_sgd_step,
    "ScheduleFreeAdamW": schedule_free_adamw_step,
    "Adafactor": adafactor_step,
}


def _defaults(fn):
    import inspect

    return {k: v.default for k, v in inspect.signature(fn).parameters.items()
            if v.kind is inspect.Parameter.KEYWORD_ONLY}


#: Each optimizer's keyword defaults (identical to torch 2.13's where torch has it).
DEFAULTS = {name: _defaults(fn) for name, fn in REFERENCES.items()}
