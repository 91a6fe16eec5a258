r"""dlopt's optimizers, with PyTorch's class names, keywords, defaults and update formulas.

Each class is a thin description: its docstring states the algorithm, its signature the
hyperparameters. The maths runs in C++ (``cpp/include/dlopt/optim/<name>.hpp``), the only place
it is written.
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

import numpy as np

from .. import _core
from ._docs import common_parameters
from .optimizer import Optimizer

__all__ = ["SGD", "Adam", "AdamW", "Adagrad", "RMSprop", "Adadelta", "Adamax", "NAdam", "RAdam",
           "Rprop", "ASGD", "Adafactor", "Lion", "LAMB", "LARS", "ADOPT", "AdEMAMix", "ScheduleFreeSGD",
           "ScheduleFreeAdamW", "Muon", "DynamicLR"]


def _hyperparameters(arguments: dict[str, Any]) -> dict[str, Any]:
    """A constructor's keyword arguments (its ``locals()``) minus ``self`` and ``params``."""
    return {k: v for k, v in arguments.items() if k not in ("self", "params", "__class__")}


@common_parameters
class SGD(Optimizer):
    r"""Stochastic gradient descent, optionally with (Nesterov) momentum, as ``torch.optim.SGD``.

    .. math::
        g &\leftarrow \pm g + \lambda p \\
        b &\leftarrow \mu b + (1-\tau) g \quad (b_1 = g) \\
        g &\leftarrow g + \mu b \ \text{(nesterov)} \quad\text{or}\quad g \leftarrow b \\
        p &\leftarrow p - \gamma g

    Fed full-batch gradients it is gradient descent; fed mini-batch gradients it is SGD.

    Parameters
    ----------
    {params}
    momentum : float, default 0.0
        Momentum factor :math:`\mu` (0: no momentum buffer).
    dampening : float, default 0.0
        Dampening :math:`\tau` of the momentum.
    nesterov : bool, default False
        Use Nesterov momentum (needs ``momentum > 0`` and ``dampening = 0``).
    {common}

    Examples
    --------
    >>> import numpy as np, dlopt
    >>> w = np.array([1.0, 2.0])
    >>> opt = dlopt.optim.SGD([w], lr=0.5, momentum=0.9)
    >>> opt.step([np.array([1.0, 1.0])]); w
    array([0.5, 1.5])
    """

    _rule = "SGD"

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, momentum: float = 0.0,
                 dampening: float = 0.0, weight_decay: float = 0.0, nesterov: bool = False, *,
                 maximize: bool = False,
                 state_dtype: str | None = None, stochastic_rounding: bool = True,
                 master_weights: bool = False, seed: int = 0):
        super().__init__(params, _hyperparameters(locals()))


@common_parameters
class Adam(Optimizer):
    r"""Adam (Kingma & Ba, 2015, Algorithm 1) with AMSGrad and decoupled weight decay options.

    .. math::
        g &\leftarrow \pm g + \lambda p \ \text{(L2)} \quad\text{or}\quad
            p \leftarrow p (1 - \gamma\lambda) \ \text{(decoupled)} \\
        m &\leftarrow \beta_1 m + (1-\beta_1) g, \qquad v \leftarrow \beta_2 v + (1-\beta_2) g^2 \\
        \hat v &\leftarrow \max(\hat v, v) \ \text{(amsgrad)} \quad\text{or}\quad \hat v \leftarrow v \\
        p &\leftarrow p - \frac{\gamma}{1-\beta_1^t}\,
            \frac{m}{\sqrt{\hat v}/\sqrt{1-\beta_2^t} + \epsilon}

    As in PyTorch, ``eps`` is added after the bias correction of ``sqrt(v)`` (Algorithm 1), not
    inside it as in TensorFlow's formulation.

    Parameters
    ----------
    {params}
    weight_decay : float, default 0.0
        Weight decay :math:`\lambda`: an L2 penalty, or decoupled with ``decoupled_weight_decay=True``.
    {common}

    Examples
    --------
    >>> import numpy as np, dlopt
    >>> w = np.zeros(2, dtype=np.float32)
    >>> opt = dlopt.optim.Adam([w], lr=0.1)
    >>> opt.step([np.array([1.0, -2.0], dtype=np.float32)]); w.round(6)   # first step: lr * sign(g)
    array([-0.1,  0.1], dtype=float32)
    """

    _rule = "Adam"

    def __init__(self, params: Iterable[Any], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, amsgrad: bool = False, *, maximize: bool = False,
                 decoupled_weight_decay: bool = False,
                 state_dtype: str | None = None, stochastic_rounding: bool = True,
                 master_weights: bool = False, seed: int = 0):
        super().__init__(params, _hyperparameters(locals()))


@common_parameters
class AdamW(Optimizer):
    r"""AdamW (Loshchilov & Hutter, 2019): :class:`Adam` with decoupled weight decay
    ``p ← p (1 − γλ)`` applied before the Adam update, default ``weight_decay=1e-2``.

    Parameters
    ----------
    {params}
    weight_decay : float, default 0.01
        Decoupled weight decay :math:`\lambda`.
    amsgrad : bool, default False
        Use the maximum of the past second moments (AMSGrad).
    {common}

    Examples
    --------
    >>> import numpy as np, dlopt
    >>> w = np.ones(2)
    >>> opt = dlopt.optim.AdamW([w], lr=0.1, weight_decay=0.5)
    >>> opt.step([np.zeros(2)]); w
    array([0.95, 0.95])
    """

    _rule = "AdamW"

    def __init__(self, params: Iterable[Any], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2, amsgrad: bool = False, *, maximize: bool = False,
                 state_dtype: str | None = None, stochastic_rounding: bool = True,
                 master_weights: bool = False, seed: int = 0):
        super().__init__(params, _hyperparameters(locals()))


@common_parameters
class Adagrad(Optimizer):
    r"""Adagrad (Duchi et al., 2011), as ``torch.optim.Adagrad``.

    .. math::
        \tilde\gamma &\leftarrow \gamma / (1 + (t-1)\eta), \qquad g \leftarrow \pm g + \lambda p \\
        s &\leftarrow s + g^2, \qquad p \leftarrow p - \tilde\gamma\, g / (\sqrt{s} + \epsilon)

    ``s`` starts at ``initial_accumulator_value``.

    Parameters
    ----------
    {params}
    lr_decay : float, default 0.0
        Learning-rate decay :math:`\eta`.
    initial_accumulator_value : float, default 0.0
        Initial value of the sum of squares ``s``.
    {common}

    Examples
    --------
    >>> import numpy as np, dlopt
    >>> w = np.zeros(1)
    >>> opt = dlopt.optim.Adagrad([w], lr=1.0)
    >>> opt.step([np.array([3.0])]); w
    array([-1.])
    """

    _rule = "Adagrad"

    def __init__(self, params: Iterable[Any], lr: float = 1e-2, lr_decay: float = 0.0,
                 weight_decay: float = 0.0, initial_accumulator_value: float = 0.0,
                 eps: float = 1e-10, *, maximize: bool = False,
                 state_dtype: str | None = None, stochastic_rounding: bool = True,
                 master_weights: bool = False, seed: int = 0):
        super().__init__(params, _hyperparameters(locals()))


@common_parameters
class RMSprop(Optimizer):
    r"""RMSprop (Hinton, 2012; centered variant: Graves, 2013), as ``torch.optim.RMSprop``.

    .. math::
        g &\leftarrow \pm g + \lambda p, \qquad v \leftarrow \alpha v + (1-\alpha) g^2 \\
        d &\leftarrow \sqrt{v - \bar g^2} + \epsilon \ \text{with}\
            \bar g \leftarrow \alpha \bar g + (1-\alpha) g \ \text{(centered)}
            \quad\text{or}\quad d \leftarrow \sqrt{v} + \epsilon \\
        b &\leftarrow \mu b + g/d,\ p \leftarrow p - \gamma b \ (\mu > 0)
            \quad\text{or}\quad p \leftarrow p - \gamma g / d

    Parameters
    ----------
    {params}
    alpha : float, default 0.99
        Smoothing constant :math:`\alpha` of the squared-gradient average.
    momentum : float, default 0.0
        Momentum factor :math:`\mu` (0: none).
    centered : bool, default False
        Normalize by the estimated variance :math:`v - \bar g^2` instead of :math:`v`.
    {common}

    Examples
    --------
    >>> import numpy as np, dlopt
    >>> w = np.zeros(1)
    >>> opt = dlopt.optim.RMSprop([w], lr=0.01, alpha=0.75, eps=0.0)
    >>> opt.step([np.array([2.0])]); w
    array([-0.02])
    """

    _rule = "RMSprop"

    def __init__(self, params: Iterable[Any], lr: float = 1e-2, alpha: float = 0.99,
                 eps: float = 1e-8, weight_decay: float = 0.0, momentum: float = 0.0,
                 centered: bool = False, *, maximize: bool = False,
                 state_dtype: str | None = None, stochastic_rounding: bool = True,
                 master_weights: bool = False, seed: int = 0):
        super().__init__(params, _hyperparameters(locals()))


@common_parameters
class Adadelta(Optimizer):
    r"""Adadelta (Zeiler, 2012), as ``torch.optim.Adadelta``.

    .. math::
        g &\leftarrow \pm g + \lambda p, \qquad v \leftarrow \rho v + (1-\rho) g^2 \\
        \Delta &\leftarrow \frac{\sqrt{u + \epsilon}}{\sqrt{v + \epsilon}}\, g, \qquad
        u \leftarrow \rho u + (1-\rho)\Delta^2, \qquad p \leftarrow p - \gamma \Delta

    Parameters
    ----------
    {params}
    lr : float, default 1.0
        Coefficient :math:`\gamma` that scales the update.
    rho : float, default 0.9
        Decay rate :math:`\rho` of the running averages.
    {common}

    Examples
    --------
    >>> import numpy as np, dlopt
    >>> w = np.zeros(1)
    >>> opt = dlopt.optim.Adadelta([w], lr=1.0, rho=0.0, eps=1.0)
    >>> opt.step([np.array([3.0])]); w.round(4)   # sqrt(0 + 1) / sqrt(9 + 1) * 3
    array([-0.9487])
    """

    _rule = "Adadelta"

    def __init__(self, params: Iterable[Any], lr: float = 1.0, rho: float = 0.9,
                 eps: float = 1e-6, weight_decay: float = 0.0, *, maximize: bool = False,
                 state_dtype: str | None = None, stochastic_rounding: bool = True,
                 master_weights: bool = False, seed: int = 0):
        super().__init__(params, _hyperparameters(locals()))


@common_parameters
class Adamax(Optimizer):
    r"""Adamax, Adam under the infinity norm (Kingma & Ba, 2015, Algorithm 2).

    .. math::
        g &\leftarrow \pm g + \lambda p, \qquad m \leftarrow \beta_1 m + (1-\beta_1) g \\
        u &\leftarrow \max(\beta_2 u, |g| + \epsilon), \qquad
        p \leftarrow p - \frac{\gamma}{1-\beta_1^t} \frac{m}{u}

    Parameters
    ----------
    {params}
    {common}

    Examples
    --------
    >>> import numpy as np, dlopt
    >>> w = np.zeros(1)
    >>> opt = dlopt.optim.Adamax([w], lr=0.5, eps=0.0)
    >>> opt.step([np.array([4.0])]); w
    array([-0.5])
    """

    _rule = "Adamax"

    def __init__(self, params: Iterable[Any], lr: float = 2e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, *, maximize: bool = False,
                 state_dtype: str | None = None, stochastic_rounding: bool = True,
                 master_weights: bool = False, seed: int = 0):
        super().__init__(params, _hyperparameters(locals()))


@common_parameters
class NAdam(Optimizer):
    r"""NAdam, Adam with Nesterov momentum (Dozat, 2016), as ``torch.optim.NAdam``.

    .. math::
        \mu_t &= \beta_1 (1 - \tfrac12 0.96^{t\psi}), \qquad \Pi_t = \textstyle\prod_{i\le t}\mu_i \\
        m &\leftarrow \beta_1 m + (1-\beta_1) g, \qquad v \leftarrow \beta_2 v + (1-\beta_2) g^2,
        \qquad d = \sqrt{v/(1-\beta_2^t)} + \epsilon \\
        p &\leftarrow p - \gamma\frac{1-\mu_t}{1-\Pi_t}\frac{g}{d}
                       - \gamma\frac{\mu_{t+1}}{1-\Pi_t\mu_{t+1}}\frac{m}{d}

    ``psi`` is ``momentum_decay``; weight decay is L2 or, with ``decoupled_weight_decay``, NAdamW's.

    Parameters
    ----------
    {params}
    weight_decay : float, default 0.0
        Weight decay :math:`\lambda` (L2, or decoupled: see ``decoupled_weight_decay``).
    momentum_decay : float, default 0.004
        Momentum decay :math:`\psi`.
    {common}

    Examples
    --------
    >>> import numpy as np, dlopt
    >>> w = np.zeros(3)
    >>> dlopt.optim.NAdam([w]).step([np.ones(3)]); bool((w < 0).all())
    True
    """

    _rule = "NAdam"

    def __init__(self, params: Iterable[Any], lr: float = 2e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum_decay: float = 4e-3,
                 decoupled_weight_decay: bool = False, *, maximize: bool = False,
                 state_dtype: str | None = None, stochastic_rounding: bool = True,
                 master_weights: bool = False, seed: int = 0):
        super().__init__(params, _hyperparameters(locals()))


@common_parameters
class RAdam(Optimizer):
    r"""RAdam, rectified Adam (Liu et al., 2020), as ``torch.optim.RAdam``.

    .. math::
        \rho_\infty &= \tfrac{2}{1-\beta_2} - 1, \qquad
        \rho_t = \rho_\infty - \tfrac{2t\beta_2^t}{1-\beta_2^t} \\
        p &\leftarrow p - \gamma \frac{m}{1-\beta_1^t}
            \cdot \frac{\sqrt{1-\beta_2^t}}{\sqrt v + \epsilon} \cdot r_t \quad (\rho_t > 5),
        \qquad p \leftarrow p - \gamma \frac{m}{1-\beta_1^t} \quad\text{otherwise}

    with :math:`r_t = \sqrt{(\rho_t-4)(\rho_t-2)\rho_\infty / ((\rho_\infty-4)(\rho_\infty-2)\rho_t)}`.

    Parameters
    ----------
    {params}
    weight_decay : float, default 0.0
        Weight decay :math:`\lambda` (L2, or decoupled: see ``decoupled_weight_decay``).
    {common}

    Examples
    --------
    >>> import numpy as np, dlopt
    >>> w = np.zeros(1)
    >>> dlopt.optim.RAdam([w], lr=0.1).step([np.array([1.0])]); w
    array([-0.1])
    """

    _rule = "RAdam"

    def __init__(self, params: Iterable[Any], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, decoupled_weight_decay: bool = False, *,
                 maximize: bool = False,
                 state_dtype: str | None = None, stochastic_rounding: bool = True,
                 master_weights: bool = False, seed: int = 0):
        super().__init__(params, _hyperparameters(locals()))


@common_parameters
class Lion(Optimizer):
    r"""Lion, evolved sign momentum (Chen et al., 2023, Algorithm 2), decoupled weight decay.

    .. math::
        c &\leftarrow \beta_1 m + (1-\beta_1) g, \qquad
        p \leftarrow p(1 - \gamma\lambda) - \gamma\,\mathrm{sign}(c), \qquad
        m \leftarrow \beta_2 m + (1-\beta_2) g

    Lion's steps have unit size per coordinate: use a learning rate 3-10x smaller than AdamW's.

    Parameters
    ----------
    {params}
    betas : tuple of 2 floats, default (0.9, 0.99)
        Interpolation factor :math:`\beta_1` of the update and decay :math:`\beta_2` of the momentum.
    weight_decay : float, default 0.0
        Decoupled weight decay :math:`\lambda`.
    {common}

    Examples
    --------
    >>> import numpy as np, dlopt
    >>> w = np.zeros(2)
    >>> dlopt.optim.Lion([w], lr=0.1).step([np.array([0.5, -3.0])]); w
    array([-0.1,  0.1])
    """

    _rule = "Lion"

    def __init__(self, params: Iterable[Any], lr: float = 1e-4,
                 betas: tuple[float, float] = (0.9, 0.99), weight_decay: float = 0.0, *,
                 maximize: bool = False,
                 state_dtype: str | None = None, stochastic_rounding: bool = True,
                 master_weights: bool = False, seed: int = 0):
        super().__init__(params, _hyperparameters(locals()))


@common_parameters
class LAMB(Optimizer):
    r"""LAMB, layer-wise adaptive moments for large-batch training (You et al., 2020, Algorithm 2).

    Adam's bias-corrected direction, scaled per tensor by the trust ratio
    :math:`\tau = \lVert p\rVert / \lVert r\rVert` (1 when either norm is 0):

    .. math::
        m &\leftarrow \beta_1 m + (1-\beta_1) g, \qquad v \leftarrow \beta_2 v + (1-\beta_2) g^2 \\
        r &\leftarrow \frac{m / (1-\beta_1^t)}{\sqrt{v / (1-\beta_2^t)} + \epsilon} + \lambda p \\
        p &\leftarrow p - \gamma\,\frac{\lVert p\rVert}{\lVert r\rVert}\, r

    torch.optim has no LAMB; the norms are per parameter tensor (a "layer"), summed in double in a
    fixed order, so results do not depend on the thread count (on a GPU too: the same order, the
    same bits).

    Parameters
    ----------
    {params}
    weight_decay : float, default 0.0
        Weight decay :math:`\lambda`, added to the direction :math:`r`.
    {common}

    Examples
    --------
    >>> import numpy as np, dlopt
    >>> w = np.array([3.0, 4.0])                 # ‖w‖ = 5
    >>> opt = dlopt.optim.LAMB([w], lr=0.1)
    >>> opt.step([np.array([1.0, 1.0])])         # r = (1, 1): the step is 0.1 * 5 / √2 per element
    >>> np.round(w, 6)
    array([2.646447, 3.646447])
    """

    _rule = "LAMB"

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-6, weight_decay: float = 0.0, *, maximize: bool = False,
                 state_dtype: str | None = None, stochastic_rounding: bool = True,
                 master_weights: bool = False, seed: int = 0):
        super().__init__(params, _hyperparameters(locals()))


@common_parameters
class Muon(Optimizer):
    r"""Muon: momentum orthogonalized by Newton–Schulz (Jordan et al., 2024), as ``torch.optim.Muon``.

    For 2-D parameters only (hidden-layer weight matrices; give biases and embeddings to
    :class:`AdamW`). As torch's code (its docstring writes the buffer as :math:`\mu B + g`):

    .. math::
        B &\leftarrow B + (1-\mu)(G - B), \qquad
            U \leftarrow G + \mu (B - G) \ \text{(nesterov)} \ \text{or}\ B \\
        X &\leftarrow U / \max(\lVert U\rVert_F, \epsilon) \ (U^\top \text{ if rows > cols}), \quad
            k \text{ times: } A \leftarrow X X^\top,\ X \leftarrow aX + (bA + cA^2) X \\
        P &\leftarrow P (1 - \gamma\lambda) - \gamma' X, \qquad
            \gamma' = \gamma \sqrt{\max(1, \text{rows}/\text{cols})} \ \text{("original")}
            \ \text{or}\ 0.2\,\gamma \sqrt{\max(\text{rows}, \text{cols})} \ \text{("match_rms_adamw")}

    ``ns_dtype`` (dlopt's): ``"float32"`` (default) runs the Newton–Schulz products in the compute
    type (float32; float64 for float64 parameters) with Eigen's GEMM; ``"bfloat16"`` rounds every
    product to bfloat16 as torch does, and runs on oneDNN's bfloat16 matmul when the build has it
    (:func:`dlopt.bf16_matmul_library`; without it on Eigen's float32 GEMM, the same roundings, slower).
    float32 is the default for its accuracy; bfloat16 is the faster one with oneDNN (README, "Muon").
    Parameters and state are float32 or float64 (no 16-bit storage yet), NumPy or CUDA device arrays:
    on the GPU the momentum buffer equals the CPU's bit for bit and the products, a tiled kernel without
    TF32, agree with the CPU's GEMM within 1e-5 of the update (float32), 1e-12 (float64) or a few
    bfloat16 ulps (``ns_dtype="bfloat16"``).

    Parameters
    ----------
    {params}
    weight_decay : float, default 0.1
        Decoupled weight decay :math:`\lambda`.
    nesterov : bool, default True
        Orthogonalize the Nesterov look-ahead instead of the momentum buffer.
    ns_coefficients : tuple of 3 floats, default (3.4445, -4.775, 2.0315)
        Coefficients :math:`(a, b, c)` of the Newton–Schulz iteration.
    eps : float, default 1e-7
        Lower bound :math:`\epsilon` of the Frobenius norm the update is divided by.
    ns_steps : int, default 5
        Number :math:`k` of Newton–Schulz iterations.
    adjust_lr_fn : {None, 'original', 'match_rms_adamw'}, default None
        How :math:`\gamma'` is scaled by the matrix shape (``None``: ``'original'``).
    ns_dtype : {'float32', 'bfloat16'}, default 'float32'
        Precision of the Newton–Schulz products (see above).
    {common}

    Examples
    --------
    >>> import numpy as np, dlopt
    >>> w = np.eye(2)
    >>> opt = dlopt.optim.Muon([w], lr=0.1, weight_decay=0.0, ns_steps=0, nesterov=False)
    >>> opt.step([np.array([[3.0, 0.0], [0.0, 4.0]])])   # B = 0.05 G; no NS step: X = B / ‖B‖_F
    >>> np.round(w, 4)
    array([[0.94, 0.  ],
           [0.  , 0.92]])
    """

    _rule = "Muon"

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, weight_decay: float = 0.1,
                 momentum: float = 0.95, nesterov: bool = True,
                 ns_coefficients: tuple[float, float, float] = (3.4445, -4.775, 2.0315), eps: float = 1e-07,
                 ns_steps: int = 5, adjust_lr_fn: str | None = None, *, ns_dtype: str = "float32",
                 state_dtype: str | None = None, stochastic_rounding: bool = True,
                 master_weights: bool = False, seed: int = 0):
        super().__init__(params, _hyperparameters(locals()))

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """As :meth:`Optimizer.add_param_group`; every parameter must be 2-D (as torch requires).

        Parameters
        ----------
        param_group : dict
            ``"params"`` (2-D arrays) and any hyperparameters.

        Raises
        ------
        ValueError
            A parameter that is not 2-D, or as :meth:`Optimizer.add_param_group`.
        """
        params = param_group.get("params") if isinstance(param_group, dict) else None
        for p in ([params] if hasattr(params, "ndim") else list(params or [])):
            if getattr(p, "ndim", 2) != 2:
                raise ValueError(f"Muon only supports 2D parameters whereas we found a parameter with size: "
                                 f"{tuple(p.shape)}")
        super().add_param_group(param_group)


@common_parameters
class DynamicLR(Optimizer):
    r"""Gradient descent with the elementwise dynamic learning rate of dlopt's specification.

    .. math::
        p \leftarrow p - \frac{\gamma}{1 + \beta g^2}\, g

    The step shrinks where the gradient is steep; ``beta=0`` is plain gradient descent.

    Parameters
    ----------
    {params}
    beta : float, default 1.0
        Sensitivity :math:`\beta` of the step size to the squared gradient.
    {common}

    Examples
    --------
    >>> import numpy as np, dlopt
    >>> w = np.zeros(2)
    >>> dlopt.optim.DynamicLR([w], lr=0.5, beta=1.0).step([np.array([1.0, 3.0])]); w
    array([-0.25, -0.15])
    """

    _rule = "DynamicLR"

    def __init__(self, params: Iterable[Any], lr: float = 1e-2, beta: float = 1.0, *,
                 maximize: bool = False,
                 state_dtype: str | None = None, stochastic_rounding: bool = True,
                 master_weights: bool = False, seed: int = 0):
        super().__init__(params, _hyperparameters(locals()))


@common_parameters
class Rprop(Optimizer):
    r"""Rprop, resilient backpropagation (Riedmiller & Braun, 1993), as ``torch.optim.Rprop``.

    Every element has its own step size :math:`\Delta`, which grows by :math:`\eta_+` while its
    gradient keeps its sign and shrinks by :math:`\eta_-` when the sign flips (that step is then
    skipped); only the gradient's sign moves the parameter:

    .. math::
        \eta &\leftarrow \eta_+ \text{ if } g\,g_{prev} > 0,\ \eta_- \text{ if } < 0,\ 1 \text{ otherwise} \\
        \Delta &\leftarrow \operatorname{clamp}(\Delta\eta, \Delta_{min}, \Delta_{max}), \qquad
            g \leftarrow 0 \text{ where } \eta = \eta_- \\
        p &\leftarrow p - \operatorname{sign}(g)\,\Delta, \qquad g_{prev} \leftarrow g

    ``lr`` is the initial step size. Meant for full-batch gradients. The step sizes stay in the
    compute type under ``state_dtype`` (they span 1e-6..50); ``prev`` takes the low-precision format.

    Parameters
    ----------
    {params}
    lr : float, default 0.01
        Initial step size :math:`\Delta` of every element.
    etas : tuple of 2 floats, default (0.5, 1.2)
        Factors :math:`(\eta_-, \eta_+)` that shrink and grow the step sizes.
    step_sizes : tuple of 2 floats, default (1e-6, 50)
        Bounds :math:`(\Delta_{min}, \Delta_{max})` of the step sizes.
    {common}

    Examples
    --------
    >>> import numpy as np, dlopt
    >>> w = np.zeros(2)
    >>> opt = dlopt.optim.Rprop([w], lr=0.1)
    >>> opt.step([np.array([1.0, -1.0])]); opt.step([np.array([1.0, 1.0])]); w   # grows, then flips
    array([-0.22,  0.1 ])
    """

    _rule = "Rprop"

    def __init__(self, params: Iterable[Any], lr: float = 1e-2, etas: tuple[float, float] = (0.5, 1.2),
                 step_sizes: tuple[float, float] = (1e-6, 50), *, maximize: bool = False,
                 state_dtype: str | None = None, stochastic_rounding: bool = True,
                 master_weights: bool = False, seed: int = 0):
        super().__init__(params, _hyperparameters(locals()))


@common_parameters
class ASGD(Optimizer):
    r"""Averaged SGD (Polyak & Juditsky, 1992; step decay of Bottou, 2012), as ``torch.optim.ASGD``.

    .. math::
        g &\leftarrow \pm g + \lambda_{wd} p, \qquad p \leftarrow p(1 - \lambda\eta) - \eta g \\
        a &\leftarrow a + \mu (p - a) \quad (a \leftarrow p \text{ while } \mu = 1) \\
        \eta &\leftarrow \gamma / (1 + \lambda\gamma t)^\alpha, \qquad \mu \leftarrow 1 / \max(1, t - t_0)

    ``state[i]["ax"]`` is the averaged parameter; ``eta`` and ``mu`` (per tensor, as torch) are
    updated after each step for the next one.

    Parameters
    ----------
    {params}
    lambd : float, default 0.0001
        Decay term :math:`\lambda`.
    alpha : float, default 0.75
        Power :math:`\alpha` of the learning-rate decay.
    t0 : float, default 1000000.0
        Step :math:`t_0` after which averaging starts.
    weight_decay : float, default 0.0
        L2 penalty :math:`\lambda_{wd}`, added to the gradient.
    {common}

    Examples
    --------
    >>> import numpy as np, dlopt
    >>> w = np.ones(2)
    >>> opt = dlopt.optim.ASGD([w], lr=0.1, lambd=0.0)
    >>> opt.step([np.array([1.0, -1.0])]); w, opt.state[0]["ax"]
    (array([0.9, 1.1]), array([0.9, 1.1]))
    """

    _rule = "ASGD"

    def __init__(self, params: Iterable[Any], lr: float = 1e-2, lambd: float = 1e-4, alpha: float = 0.75,
                 t0: float = 1e6, weight_decay: float = 0.0, *, maximize: bool = False,
                 state_dtype: str | None = None, stochastic_rounding: bool = True,
                 master_weights: bool = False, seed: int = 0):
        super().__init__(params, _hyperparameters(locals()))


@common_parameters
class LARS(Optimizer):
    r"""LARS, layer-wise adaptive rate scaling (You et al., 2017), as pytorch-optimizer's ``LARS``.

    SGD with momentum whose gradient is scaled per tensor by the trust ratio
    :math:`\tau = \eta\lVert p\rVert / (\lVert g\rVert + \lambda\lVert p\rVert)` (1 when a norm is 0):

    .. math::
        g &\leftarrow (\pm g + \lambda p)\,\tau, \qquad b \leftarrow \mu b + (1-\delta) g \\
        g &\leftarrow g + \mu b \ \text{(nesterov)} \quad\text{or}\quad g \leftarrow b, \qquad
            p \leftarrow p - \gamma g

    ``exclude_1d=True`` gives vectors (biases, normalization weights) plain momentum SGD without
    decay, as pytorch-optimizer always does; the paper scales every layer (the default). The norms
    are summed in double in a fixed order: results do not depend on the thread count (on a GPU too:
    the same order, the same bits).

    A step moves a scaled tensor by about :math:`\gamma\eta\lVert p\rVert/(1-\mu)` whatever the
    gradient's size: with the defaults (:math:`\gamma = \eta = 10^{-3}`) that is :math:`10^{-5}`
    of :math:`\lVert p\rVert`, so LARS wants a large ``lr`` (about 1 gives 1% a step), as in
    large-batch training. From zero parameters the first step is plain SGD (trust ratio 1).

    Parameters
    ----------
    {params}
    dampening : float, default 0.0
        Dampening :math:`\delta`.
    weight_decay : float, default 0.0
        Weight decay :math:`\lambda`, added to the gradient before scaling.
    trust_coefficient : float, default 0.001
        Trust coefficient :math:`\eta` of the trust ratio.
    exclude_1d : bool, default False
        Give 1-D parameters plain momentum SGD, without decay or trust ratio.
    {common}

    Examples
    --------
    >>> import numpy as np, dlopt
    >>> w = np.array([[3.0, 4.0]])                          # ‖w‖ = 5
    >>> opt = dlopt.optim.LARS([w], lr=1.0, momentum=0.0, trust_coefficient=0.1)
    >>> opt.step([np.array([[1.0, 0.0]])]); w               # τ = 0.1 * 5 / 1
    array([[2.5, 4. ]])
    """

    _rule = "LARS"

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, momentum: float = 0.9, dampening: float = 0.0,
                 weight_decay: float = 0.0, trust_coefficient: float = 1e-3, nesterov: bool = False, *,
                 exclude_1d: bool = False, maximize: bool = False,
                 state_dtype: str | None = None, stochastic_rounding: bool = True,
                 master_weights: bool = False, seed: int = 0):
        super().__init__(params, _hyperparameters(locals()))


@common_parameters
class ADOPT(Optimizer):
    r"""ADOPT (Taniguchi et al., 2024): Adam that converges for any :math:`\beta_2`, as its reference code.

    The gradient is normalized by the *previous* second moment and clipped before it enters the
    momentum; the first step only initializes :math:`v`:

    .. math::
        t = 1:&\quad v \leftarrow g^2 \\
        t > 1:&\quad n \leftarrow \operatorname{clamp}(g / \max(\sqrt v, \epsilon), \pm (t-1)^{c}), \quad
            m \leftarrow m + (1-\beta_1)(n - m) \\
        &\quad p \leftarrow p - \gamma m, \qquad v \leftarrow \beta_2 v + (1-\beta_2) g^2

    ``clip_exponent`` is ``c`` (the reference's ``clip_lambda=lambda step: step**0.25``; ``None``
    turns clipping off). ``weight_decay`` is added to the gradient, or with ``decouple=True``
    applied as :math:`p \leftarrow p - \gamma\lambda p` from the second step on (as the reference).

    Parameters
    ----------
    {params}
    eps : float, default 1e-6
        Lower bound :math:`\epsilon` of :math:`\sqrt v`.
    weight_decay : float, default 0.0
        Weight decay :math:`\lambda`.
    decouple : bool, default False
        Apply the weight decay as :math:`p \leftarrow p - \gamma\lambda p` instead of adding it to the
        gradient.
    clip_exponent : float or None, default 0.25
        Exponent :math:`c` of the clipping bound :math:`(t-1)^c`; ``None``: no clipping.
    {common}

    Examples
    --------
    >>> import numpy as np, dlopt
    >>> w = np.zeros(2)
    >>> opt = dlopt.optim.ADOPT([w], lr=0.1)
    >>> opt.step([np.array([2.0, -2.0])]); w                # the first step only sets v = g²
    array([0., 0.])
    >>> opt.step([np.array([2.0, -2.0])]); w                # n = ±1 (clip 1): m = ±0.1
    array([-0.01,  0.01])
    """

    _rule = "ADOPT"

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.9999),
                 eps: float = 1e-6, weight_decay: float = 0.0, decouple: bool = False, *,
                 clip_exponent: float | None = 0.25, maximize: bool = False,
                 state_dtype: str | None = None, stochastic_rounding: bool = True,
                 master_weights: bool = False, seed: int = 0):
        super().__init__(params, _hyperparameters(locals()))


@common_parameters
class AdEMAMix(Optimizer):
    r"""AdEMAMix (Pagliardini et al., 2024): Adam with a second, slow gradient EMA mixed in.

    As the paper's reference code (``apple/ml-ademamix``), with its warmups of α and β3:

    .. math::
        m_1 &\leftarrow \beta_1 m_1 + (1-\beta_1) g, \quad
            m_2 \leftarrow \beta_3(t) m_2 + (1-\beta_3(t)) g, \quad v \leftarrow \beta_2 v + (1-\beta_2) g^2 \\
        p &\leftarrow p - \gamma\Big(\frac{m_1/(1-\beta_1^t) + \alpha(t)\,m_2}{\sqrt{v}/\sqrt{1-\beta_2^t}
            + \epsilon} + \lambda p\Big)

    :math:`\alpha(t)` rises linearly over ``alpha_warmup`` steps; :math:`\beta_3(t)` rises from
    :math:`\beta_1` over ``beta3_warmup`` steps linearly in half-life (``None``: no warmup).

    Parameters
    ----------
    {params}
    betas : tuple of 3 floats, default (0.9, 0.999, 0.9999)
        Decay rates :math:`(\beta_1, \beta_2, \beta_3)` of the fast EMA, the second moment and the slow EMA.
    alpha : float, default 2.0
        Weight :math:`\alpha` of the slow EMA.
    beta3_warmup : int or None, default None
        Steps over which :math:`\beta_3` rises from :math:`\beta_1`; ``None``: no warmup.
    alpha_warmup : int or None, default None
        Steps over which :math:`\alpha` rises from 0; ``None``: no warmup.
    weight_decay : float, default 0.0
        Weight decay :math:`\lambda`, added to the update.
    {common}

    Examples
    --------
    >>> import numpy as np, dlopt
    >>> w = np.zeros(2)
    >>> opt = dlopt.optim.AdEMAMix([w], lr=0.1, alpha=0.0)   # α = 0: Adam
    >>> opt.step([np.array([1.0, -2.0])]); w.round(6)
    array([-0.1,  0.1])
    """

    _rule = "AdEMAMix"

    def __init__(self, params: Iterable[Any], lr: float = 1e-3,
                 betas: tuple[float, float, float] = (0.9, 0.999, 0.9999), alpha: float = 2.0,
                 beta3_warmup: int | None = None, alpha_warmup: int | None = None, eps: float = 1e-8,
                 weight_decay: float = 0.0, *, maximize: bool = False,
                 state_dtype: str | None = None, stochastic_rounding: bool = True,
                 master_weights: bool = False, seed: int = 0):
        super().__init__(params, _hyperparameters(locals()))


class _ScheduleFree(Optimizer):
    """Schedule-Free's train/eval switch, shared by :class:`ScheduleFreeSGD` and
    :class:`ScheduleFreeAdamW` (``cpp/include/dlopt/optim/schedule_free.hpp`` has the step)."""

    _beta_key = ""

    def step(self, grads: Sequence[Any]) -> None:
        """As :meth:`Optimizer.step`; the optimizer must be in train mode (call :meth:`train`).

        Parameters
        ----------
        grads : sequence of arrays or None
            One gradient per parameter, as :meth:`Optimizer.step` takes them.

        Raises
        ------
        RuntimeError
            The optimizer is in eval mode.
        """
        for i, group in enumerate(self.param_groups):
            if not isinstance(group["train_mode"], bool):
                raise TypeError(f"param_groups[{i}]['train_mode']: expected a bool, got {group['train_mode']!r}")
        if not all(group["train_mode"] for group in self.param_groups):
            raise RuntimeError(f"{type(self).__name__}: not in train mode; call opt.train() before step() "
                               "(and opt.eval() before evaluating or saving the model)")
        super().step(grads)

    def train(self) -> None:
        """Moves the parameters from the average x to the point y where gradients are taken."""
        self._switch(True)

    def eval(self) -> None:
        """Moves the parameters to the average x: the weights to evaluate, save or export."""
        self._switch(False)

    def _beta(self, group: dict[str, Any]) -> float:
        return group["betas"][0] if self._beta_key == "betas" else group[self._beta_key]

    def _switch(self, train: bool) -> None:
        moves, index = [], 0
        for group in self.param_groups:
            if group["train_mode"] != train:
                beta = self._beta(group)
                weight = 1 - beta if train else 1 - 1 / beta
                for i, p in enumerate(group["params"], start=index):
                    state = self.state.get(i, {})
                    if "z" in state:
                        moves.append((i, p, state.get("master_param"), state["z"], weight))
            index += len(group["params"])
        for _, p, master, z, weight in moves:
            _lerp_in_place(p, master, z, weight)
        for group in self.param_groups:
            group["train_mode"] = train


def _lerp_in_place(p: Any, master: np.ndarray | None, z: np.ndarray, weight: float) -> None:
    """p ← lerp(p, z, weight) as torch.lerp, in z's dtype (the compute type); a 16-bit parameter
    with a float32 master copy moves the master and takes it rounded to nearest. Device arrays move
    on the device with the same elementwise rule (dlopt/cuda/schedule_free.hpp), equal bit for bit."""
    if _core.is_device_array(p):
        _core.schedule_free_move(p, z, weight, master)
        return
    start = master if master is not None else np.asarray(p, dtype=z.dtype)
    w = z.dtype.type(weight)
    moved = start + w * (z - start) if weight < 0.5 else z - (z - start) * (1 - w)
    if master is not None:
        master[...] = moved
    p[...] = moved.astype(p.dtype)


@common_parameters
class ScheduleFreeSGD(_ScheduleFree):
    r"""Schedule-Free SGD (Defazio et al., 2024), as ``schedulefree.SGDScheduleFree``.

    No learning-rate schedule: gradients are taken at :math:`y`, between the SGD iterate :math:`z`
    and the weighted average :math:`x` of the :math:`z`'s,
    :math:`c_t = w_t / \sum_{s \le t} w_s`, :math:`w_t = t^r \gamma_{max}^{p}`:

    .. math::
        d &\leftarrow g + \lambda y, \qquad
        y \leftarrow \operatorname{lerp}(y, z, c_t) + \gamma_t(\mu(1-c_t) - 1)\,d, \qquad
        z \leftarrow z - \gamma_t d

    (:math:`\gamma_t` warms up linearly over ``warmup_steps``.) Call :meth:`eval` before evaluating
    or saving the model and :meth:`train` before stepping again; the mode is the param group's
    ``"train_mode"`` (saved in ``state_dict``). Unlike the package, a new optimizer starts in train
    mode (before the first step both modes hold the same point, so ``train()`` first is optional). ``z`` stays in the
    compute type (float32 for 16-bit parameters). dlopt keeps the weighting per tensor (with the
    step count), the package per group: the same unless a parameter skips steps (``None`` gradient).

    Parameters
    ----------
    {params}
    lr : float, default 1.0
        Learning rate :math:`\gamma_{max}` (after warmup).
    momentum : float, default 0.9
        Interpolation :math:`\mu` between the average and the SGD iterate.
    weight_decay : float, default 0.0
        Weight decay :math:`\lambda`, taken at :math:`y`.
    {common}

    Examples
    --------
    >>> import numpy as np, dlopt
    >>> w = np.ones(2)
    >>> opt = dlopt.optim.ScheduleFreeSGD([w], lr=0.1)
    >>> opt.train(); opt.step([np.array([1.0, -1.0])]); w      # c = 1: y = z − 0.1·g
    array([0.9, 1.1])
    >>> opt.eval(); w                                          # x, the average (here z itself)
    array([0.9, 1.1])
    """

    _rule = "ScheduleFreeSGD"
    _beta_key = "momentum"

    def __init__(self, params: Iterable[Any], lr: float = 1.0, momentum: float = 0.9, weight_decay: float = 0.0,
                 warmup_steps: int = 0, r: float = 0.0, weight_lr_power: float = 2.0, *,
                 train_mode: bool = True,
                 state_dtype: str | None = None, stochastic_rounding: bool = True,
                 master_weights: bool = False, seed: int = 0):
        super().__init__(params, _hyperparameters(locals()))


@common_parameters
class ScheduleFreeAdamW(_ScheduleFree):
    r"""Schedule-Free AdamW (Defazio et al., 2024), as ``schedulefree.AdamWScheduleFree``.

    :class:`ScheduleFreeSGD` with Adam's normalized direction (no first moment: the
    interpolation is the momentum):

    .. math::
        v &\leftarrow \beta_2 v + (1-\beta_2) g^2, \qquad
            d \leftarrow \frac{g}{\sqrt{v / (1-\beta_2^t)} + \epsilon} + \lambda y \\
        y &\leftarrow \operatorname{lerp}(y, z, c_t) + \gamma_t(\beta_1(1-c_t) - 1)\,d, \qquad
            z \leftarrow z - \gamma_t d

    Train/eval modes, warmup and weighting as :class:`ScheduleFreeSGD`.

    Parameters
    ----------
    {params}
    lr : float, default 0.0025
        Learning rate :math:`\gamma_{max}` (after warmup).
    betas : tuple of 2 floats, default (0.9, 0.999)
        Interpolation :math:`\beta_1` and second-moment decay :math:`\beta_2`.
    weight_decay : float, default 0.0
        Weight decay :math:`\lambda`, taken at :math:`y`.
    {common}

    Examples
    --------
    >>> import numpy as np, dlopt
    >>> w = np.zeros(2)
    >>> opt = dlopt.optim.ScheduleFreeAdamW([w], lr=0.1)
    >>> opt.train(); opt.step([np.array([1.0, -2.0])]); w.round(6)
    array([-0.1,  0.1])
    """

    _rule = "ScheduleFreeAdamW"
    _beta_key = "betas"

    def __init__(self, params: Iterable[Any], lr: float = 0.0025, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, warmup_steps: int = 0, r: float = 0.0,
                 weight_lr_power: float = 2.0, *, train_mode: bool = True,
                 state_dtype: str | None = None, stochastic_rounding: bool = True,
                 master_weights: bool = False, seed: int = 0):
        super().__init__(params, _hyperparameters(locals()))


@common_parameters
class Adafactor(Optimizer):
    r"""Adafactor (Shazeer & Stern, 2018), as ``torch.optim.Adafactor``.

    Second moments of tensors of rank ≥ 2 are factored into row and column statistics over the
    last two dimensions (R + C numbers per matrix instead of R·C); vectors keep a full ``variance``.
    The step is relative to the parameter's RMS and clipped by the update's RMS:

    .. math::
        \hat\beta_{2t} &= 1 - t^{c}, \quad \rho_t = \min(\gamma, 1/\sqrt t), \quad
            \alpha_t = \max(\epsilon_2, \mathrm{RMS}(p))\,\rho_t, \quad p \leftarrow p(1 - \gamma\lambda) \\
        R &\leftarrow \operatorname{lerp}(R, \overline{g^2}^{\,cols}, t^{c}), \quad
            C \leftarrow \operatorname{lerp}(C, \overline{g^2}^{\,rows}, t^{c}), \quad
            \hat V = R C^\top / \max(\bar R, \epsilon_1) \\
        U &= g / \sqrt{\max(\hat V, \epsilon_1^2)}, \qquad
            p \leftarrow p - \frac{\alpha_t}{\max(1, \mathrm{RMS}(U)/d)}\, U

    (``c = beta2_decay``; ``eps=(None, 1e-3)``: :math:`\epsilon_1` None is the dtype's machine
    epsilon.) State: ``row_var`` of shape ``(..., R, 1)`` and ``col_var`` ``(..., 1, C)`` for a
    tensor ``(..., R, C)``, ``variance`` for a vector, as torch. A whole-tensor rule, on NumPy
    arrays or CUDA device arrays (the device step equals the CPU's bit for bit); float32/float64
    parameters, state in their dtype.

    Parameters
    ----------
    {params}
    lr : float, default 0.01
        Relative step size :math:`\gamma` (its cap).
    beta2_decay : float, default -0.8
        Exponent :math:`c` of the second-moment decay :math:`1 - t^c`.
    eps : tuple of (float or None, float), default (None, 0.001)
        :math:`(\epsilon_1, \epsilon_2)`: floor of the second moment (``None``: the dtype's machine epsilon)
        and of the parameter's RMS.
    d : float, default 1.0
        Clipping threshold :math:`d` of the update's RMS.
    weight_decay : float, default 0.0
        Decoupled weight decay :math:`\lambda`.
    {common}

    Examples
    --------
    >>> import numpy as np, dlopt
    >>> w = np.ones((2, 3))
    >>> opt = dlopt.optim.Adafactor([w], lr=0.01)
    >>> opt.step([np.ones((2, 3))]); w.round(6), opt.state[0]["row_var"].shape
    (array([[0.99, 0.99, 0.99],
           [0.99, 0.99, 0.99]]), (2, 1))
    """

    _rule = "Adafactor"

    def __init__(self, params: Iterable[Any], lr: float = 1e-2, beta2_decay: float = -0.8,
                 eps: tuple[float | None, float] = (None, 1e-3), d: float = 1.0, weight_decay: float = 0.0, *,
                 maximize: bool = False,
                 state_dtype: str | None = None, stochastic_rounding: bool = True,
                 master_weights: bool = False, seed: int = 0):
        super().__init__(params, _hyperparameters(locals()))


# L-BFGS is not an elementwise rule (a step calls a closure several times and works on one flat
# vector): it has its own module, re-exported here with the other torch.optim names.
from .lbfgs import LBFGS  # noqa: E402

__all__ += ["LBFGS"]
