"""ZeRO stage 1 over MPI: full parameters on every rank, 1/N of the optimizer state on each.

A step: the ranks' gradients are reduce-scattered (mean, added in rank order: _comm.py), each rank
steps its shard with an ordinary dlopt optimizer (the fused C++ step: no optimizer maths here), and
the updated parameters are all-gathered. The shard layout (dlopt/distributed/layout.hpp) cuts
tensors only where the unsharded step would treat the two sides independently, so the result is
bitwise equal to the unsharded optimizer's on the averaged gradients, for any number of ranks.

The local optimizer is built over the same param groups with the same parameter indices as the
unsharded one: a rank's part of a tensor is a 1-D view of the user's array (or the array itself
when the rank owns the whole tensor), and a tensor the rank does not own is a zero-size
placeholder that never receives a gradient. Tensor indices are thus the same as in the unsharded
optimizer (they key stochastic rounding), and the state of a shard is a slice of the unsharded
state, which is how checkpoints are gathered and resharded.
"""

from __future__ import annotations

import copy
import hashlib
from typing import Any, Sequence

import numpy as np

from .. import _core
from ..optim import Optimizer
from ..optim import algorithms as _algorithms
from . import _comm
from ._comm import MEAN_DTYPES, agree, get_comm
from ._flat import FlatSpace, bucket_arrays, plan_buckets, staged_size

__all__ = ["ZeroRedundancyOptimizer"]

_SCALE_BLOCK = 256  # elements per float32 scale of 8-bit state (docs/formats.md)


def _optimizer_class(optimizer: Any) -> type:
    if isinstance(optimizer, str):
        by_name = {n.lower(): getattr(_algorithms, n) for n in _algorithms.__all__}
        cls = by_name.get(optimizer.lower())
        if cls is None:
            raise ValueError(f"optimizer: unknown optimizer {optimizer!r}; one of {sorted(_algorithms.__all__)}")
        optimizer = cls  # LBFGS (a closure over the whole flat vector) is not a fused step: refused below
    if isinstance(optimizer, type) and issubclass(optimizer, Optimizer) and optimizer._rule:
        return optimizer
    raise TypeError(f"optimizer: expected an optimizer name or a dlopt.optim.Optimizer subclass, got {optimizer!r}")


def _native(param: np.ndarray, group: dict[str, Any]) -> bool:
    """Whether the parameter and all its state are stored in the compute type (no rounding)."""
    if param.dtype not in (np.float32, np.float64):
        return False
    return group.get("state_dtype") in (None, param.dtype.name)


def _digest(value: Any) -> str:
    return hashlib.blake2b(repr(value).encode(), digest_size=12).hexdigest()


class ZeroRedundancyOptimizer:
    r"""A dlopt optimizer whose state is sharded over the ranks of an MPI communicator (ZeRO-1).

    ``params`` are the model's parameters (or param groups), the same on every rank;
    ``optimizer`` a dlopt optimizer name (``"adamw"``) or class; ``optimizer_kwargs`` its
    hyperparameters and storage options. ``comm``: an mpi4py intra-communicator, the world by
    default. Every rank holds the full parameters and only its shard of the state.

    :meth:`step` takes this rank's gradients, averages them across ranks (reduce-scatter, in rank
    order), steps this rank's shard with the fused kernel and all-gathers the parameters: the
    parameters and state are bitwise equal to the unsharded optimizer's after
    ``allreduce_mean_(grads); opt.step(grads)`` on the same gradients, for any number of ranks.

    ``param_groups`` works as in every dlopt optimizer (schedulers change ``lr`` there; the shard
    reads the groups at each step). :meth:`state_dict` gathers the full, unsharded state on rank 0;
    :meth:`load_state_dict` reshards a full state (from any number of ranks, or an unsharded
    optimizer) onto this communicator.

    Shards are cut on 4096-element boundaries across all tensors; rules that are not elementwise
    (LAMB, Muon) and tensors whose step uses stochastic rounding (16-bit parameters, bfloat16 or
    8-bit state with ``stochastic_rounding=True``) are kept whole on one rank (docs/distributed.md).

    Parameters
    ----------
    params : iterable of arrays, or iterable of dicts
        The parameters (updated in place on every rank) or param groups, the same on every rank.
    optimizer : str or type, default 'adamw'
        A :mod:`dlopt.optim` name (case-insensitive) or class; not LBFGS.
    comm : mpi4py.MPI.Intracomm, optional
        The communicator; ``None``: ``MPI.COMM_WORLD``.
    bucket_bytes : int, optional
        The size of a fused communication bucket; ``None``: :data:`DEFAULT_BUCKET_BYTES`.
    **optimizer_kwargs
        The optimizer's hyperparameters and storage options (``lr``, ``betas``, ``state_dtype``, ...).

    Raises
    ------
    ValueError
        On every rank, if any rank's parameters, groups or hyperparameters differ from the others'
        or are invalid, or the optimizer is unknown or not supported.
    TypeError
        On every rank, if a parameter is not a writeable, C-contiguous array of a supported dtype.

    Examples
    --------
    Under ``mpirun -n N``, every rank runs:

    >>> import numpy as np
    >>> from dlopt.distributed import ZeroRedundancyOptimizer
    >>> w = np.zeros(10000, np.float32)
    >>> opt = ZeroRedundancyOptimizer([w], "adam", lr=0.1)
    >>> opt.step([np.ones(10000, np.float32)])     # this rank's gradients (here equal on every rank)
    >>> w[[0, -1]].round(6)                         # every rank holds the full parameters
    array([-0.1, -0.1], dtype=float32)
    >>> opt.state_nbytes() <= 2 * 4 * 10000         # and its shard of the state
    True
    """

    def __init__(self, params: Any, optimizer: Any = "adamw", comm: Any = None, *,
                 bucket_bytes: int | None = None, **optimizer_kwargs: Any):
        from . import DEFAULT_BUCKET_BYTES, check_arrays

        comm = get_comm(comm)
        self.comm = comm
        self.rank, self.world_size = comm.Get_rank(), comm.Get_size()
        error, sig = None, None
        try:
            self.bucket_bytes = DEFAULT_BUCKET_BYTES if bucket_bytes is None else bucket_bytes
            if not isinstance(self.bucket_bytes, int) or isinstance(self.bucket_bytes, bool) or self.bucket_bytes < 1:
                raise ValueError(f"bucket_bytes: expected a positive int, got {bucket_bytes!r}")
            self._cls = _optimizer_class(optimizer)
            self._kwargs = dict(optimizer_kwargs)
            # The unsharded optimizer over the full parameters checks the groups and hyperparameters
            # and fills in defaults; its state stays empty (allocated at a first step, never taken).
            self._full = self._cls(params, **self._kwargs)
            self._params = [p for g in self._full.param_groups for p in g["params"]]
            check_arrays(self._params, "params", writeable=True)
            sig = (self._cls._rule, _digest([(self._hyper(g), [(p.dtype.str, p.shape) for p in g["params"]])
                                             for g in self._full.param_groups]))
        except Exception as e:  # noqa: BLE001 - agree() raises it on every rank
            error = e
        agree(comm, error, sig, "ZeroRedundancyOptimizer: parameters, groups and hyperparameters")
        self._build()

    # -- layout ----------------------------------------------------------------------------------

    @staticmethod
    def _hyper(group: dict[str, Any]) -> list[tuple[str, str]]:
        return sorted((k, repr(v)) for k, v in group.items() if k != "params")

    def _build(self) -> None:
        """Cuts the parameters into shards and builds this rank's optimizer over its pieces."""
        from . import by_dtype

        group_of = [g for g in self._full.param_groups for _ in g["params"]]
        elementwise = _core.splits_elementwise(self._cls._rule)
        self._spaces = []  # per dtype: (indices, FlatSpace of params, bounds, shard grad buffer)
        local = [np.empty((0,) * p.ndim, p.dtype) for p in self._params]  # placeholders
        self._local_grads: list[np.ndarray | None] = [None] * len(self._params)
        self._pieces: list[tuple[int, int, int]] = []  # (tensor, start, stop) owned by this rank
        for indices in by_dtype(self._params):
            arrays = [self._params[i] for i in indices]
            splittable = [elementwise and (not group_of[i].get("stochastic_rounding", True) or
                                           _native(self._params[i], group_of[i])) for i in indices]
            bounds = _core.shard_bounds([a.size for a in arrays], splittable, self.world_size)
            space = FlatSpace(arrays)
            lo, hi = bounds[self.rank], bounds[self.rank + 1]
            shard = np.empty(hi - lo, arrays[0].dtype)
            pos = 0
            for k, s, e in space.pieces(lo, hi):
                i = indices[k]
                p = self._params[i]
                whole = s == 0 and e == p.size
                local[i] = p if whole else p.reshape(-1)[s:e]
                view = shard[pos: pos + e - s]
                self._local_grads[i] = view.reshape(p.shape) if whole else view
                self._pieces.append((i, s, e))
                pos += e - s
            self._spaces.append((indices, space, list(bounds), shard))
        if self.rank == 0:  # zero-size tensors belong to no range: rank 0 steps them (state, counts)
            for i, p in enumerate(self._params):
                if p.size == 0:
                    local[i] = p
                    self._local_grads[i] = np.empty(p.shape, p.dtype)
                    self._pieces.append((i, 0, 0))
        self._local_params = local
        self._local = self._make_local()

    def _make_local(self) -> Optimizer:
        groups, start = [], 0
        for g in self._full.param_groups:
            n = len(g["params"])
            groups.append({**{k: v for k, v in g.items() if k != "params"},
                           "params": self._local_params[start: start + n]})
            start += n
        return self._cls(groups, **self._kwargs)

    # -- public surface ----------------------------------------------------------------------------

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        """The param groups over the full parameters (hyperparameters are read from here each step)."""
        return self._full.param_groups

    @property
    def defaults(self) -> dict[str, Any]:
        return self._full.defaults

    @property
    def optimizer(self) -> Optimizer:
        """This rank's optimizer over its shard (its state is this rank's part of the state)."""
        return self._local

    @property
    def shard_bounds(self) -> list[list[int]]:
        """Per dtype (in order of first appearance), the N + 1 boundaries of the ranks' ranges."""
        return [list(b) for _, _, b, _ in self._spaces]

    def state_nbytes(self) -> int:
        """Bytes of optimizer state held by this rank."""
        return sum(v.nbytes for s in self._local.state.values() for v in s.values() if isinstance(v, np.ndarray))

    # -- the step ------------------------------------------------------------------------------------

    def _check_grads(self, grads: Any) -> None:
        if isinstance(grads, np.ndarray) or not isinstance(grads, (list, tuple)):
            raise TypeError(f"grads: expected a list of numpy arrays, got {type(grads).__name__}")
        if len(grads) != len(self._params):
            raise ValueError(f"grads: expected {len(self._params)} arrays (one per parameter), got {len(grads)}")
        for i, (g, p) in enumerate(zip(grads, self._params)):
            if g is None:
                raise ValueError(f"grads[{i}]: None (ZeroRedundancyOptimizer steps every parameter: "
                                 "pass zeros to leave a gradient out of the mean)")
            if not isinstance(g, np.ndarray):
                raise TypeError(f"grads[{i}]: expected a numpy.ndarray, got {type(g).__name__}")
            if g.dtype != p.dtype:
                raise TypeError(f"grads[{i}]: a {g.dtype} gradient for a {p.dtype} parameter")
            if g.shape != p.shape:
                raise ValueError(f"grads[{i}]: shape {g.shape} does not match the parameter's {p.shape}")
            if not g.flags.c_contiguous:
                raise ValueError(f"grads[{i}]: array is not C-contiguous")

    def _sync_groups(self) -> None:
        """Copies the hyperparameters of the full groups into the shard's (schedulers write there)."""
        for full, mine in zip(self._full.param_groups, self._local.param_groups):
            for k, v in full.items():
                if k != "params" and (k not in mine or mine[k] is not v):
                    mine[k] = v
            for k in [k for k in mine if k not in full]:
                del mine[k]

    def step(self, grads: Sequence[np.ndarray], *, max_norm: float | None = None,
             norm_type: float = 2.0) -> Any:
        r"""One optimizer step from this rank's gradients (one per parameter; they are not modified).

        With ``max_norm``, the averaged gradients are clipped to that total norm first, exactly as
        ``dlopt.clip_grad_norm_`` on the full averaged gradients (the mean is all-gathered for it:
        one more all-gather of the gradients); the total norm before clipping is returned.

        Parameters
        ----------
        grads : sequence of arrays
            This rank's gradients, one per parameter.
        max_norm : float, optional
            Clip the averaged gradients to this total norm first; ``None``: no clipping.
        norm_type : float, default 2.0
            The order of the norm used with ``max_norm``.

        Returns
        -------
        numpy.floating or None
            The total norm of the averaged gradients before clipping, with ``max_norm``.

        Raises
        ------
        ValueError
            On every rank, if any rank's gradients or hyperparameters are invalid or differ from
            the others'.
        """
        error = None
        try:
            self._check_grads(grads)
            self._sync_groups()
            rule = self._local._rule
            for gi, group in enumerate(self._local.param_groups):
                _core.validate_config(rule, self._local._config(group, gi))
                _core.check_storage_options(group)
            if max_norm is not None and any(p.dtype.itemsize == 2 for p in self._params):
                raise TypeError("max_norm: clipping takes float32/float64 gradients only")
            sig = _digest([self._hyper(g) for g in self._local.param_groups] + [max_norm, norm_type])
        except Exception as e:  # noqa: BLE001 - agree() raises it on every rank
            error, sig = e, None
        agree(self.comm, error, sig, "ZeroRedundancyOptimizer.step: hyperparameters")
        # One rank owns every tensor whole and the mean of one rank is its gradients: step on them
        # directly (the optimizer only reads them), no copy.
        direct = self.world_size == 1 and max_norm is None
        if not direct:
            for indices, space, bounds, shard in self._spaces:
                self._reduce_scatter([grads[i] for i in indices], space, bounds, shard)
        total = None
        if max_norm is not None:
            total = self._clip(max_norm, norm_type)
        error = None
        try:
            self._local.step(list(grads) if direct else self._local_grads)
        except Exception as e:  # every argument was checked: this is not expected
            error = e
        agree(self.comm, error, None, "ZeroRedundancyOptimizer.step")
        for _, space, bounds, _ in self._spaces:
            self._allgather_params(space, bounds)
        return total

    def _buckets(self, space: FlatSpace, bounds: list[int]) -> list[list[list[tuple[int, int, int]]]]:
        """The buckets of a dtype's space (_flat.plan_buckets), made once: the layout does not change."""
        plans = self.__dict__.setdefault("_bucket_plans", {})
        if id(space) not in plans:
            itemsize = space.flat[0].dtype.itemsize if space.flat else 1
            plans[id(space)] = plan_buckets(space, bounds, max(1, self.bucket_bytes // itemsize // self.world_size))
        return plans[id(space)]

    def _staging(self, n: int, dtype: np.dtype, which: str) -> np.ndarray:
        """A buffer of at least n elements, kept between steps (no page faults per step)."""
        bufs = self.__dict__.setdefault("_stage_bufs", {})
        buf = bufs.get((which, dtype))
        if buf is None or buf.size < n:
            buf = bufs[(which, dtype)] = np.empty(n, dtype)
        return buf

    def _reduce_scatter(self, grads: list[np.ndarray], params: FlatSpace, bounds: list[int],
                        shard: np.ndarray) -> None:
        """shard = the rank-order mean of every rank's gradients over this rank's range
        (_comm.reduce_scatter_buckets: large gradient pieces are sent in place)."""
        flat = [g.reshape(-1) for g in grads]
        plan, dtype, n = self._buckets(params, bounds), shard.dtype, self.world_size
        sends = bucket_arrays(flat, plan, self._staging(staged_size(plan), dtype, "send"), pack=lambda q: True)
        outs, pos = [], 0
        for row in sends:
            outs.append(shard[pos: pos + row[self.rank].size])
            pos += row[self.rank].size
        longest = max([o.size for o in outs] + [0])
        scratch = self._staging(2 * (n - 1) * longest, dtype, "recv")
        acc = self._staging(longest, np.dtype(np.float32), "acc") if dtype.itemsize == 2 else None
        _comm.reduce_scatter_buckets(self.comm, sends, outs, scratch, acc)

    def _allgather_params(self, space: FlatSpace, bounds: list[int]) -> None:
        """Every rank's updated range of the parameters to every rank, large pieces written in place."""
        if self.world_size == 1:
            return
        plan = self._buckets(space, bounds)
        stage = self._staging(staged_size(plan), space.flat[0].dtype, "gather")
        parts = bucket_arrays(space.flat, plan, stage, pack=lambda q: q == self.rank)
        _comm.allgather_buckets(self.comm, parts)
        for bucket, row in zip(plan, parts):  # staged parts of the other ranks: unpack
            for q, part in enumerate(bucket):
                if q != self.rank and len(part) > 1:
                    space.unpack_pieces(part, row[q])

    def _clip(self, max_norm: float, norm_type: float) -> Any:
        """clip_grad_norm_ on the full averaged gradients; this rank's shard gets the clipped values."""
        from ..clip import clip_grad_norm_

        full = [np.empty_like(p) for p in self._params]
        for indices, _, bounds, shard in self._spaces:
            space = FlatSpace([full[i] for i in indices])
            lo, hi = bounds[self.rank], bounds[self.rank + 1]
            flat = np.empty(space.size, shard.dtype)
            flat[lo:hi] = shard
            _comm.allgather_inplace(self.comm, flat, [bounds[r + 1] - bounds[r] for r in range(self.world_size)])
            space.unpack(0, space.size, flat)
        total = clip_grad_norm_(full, max_norm, norm_type)
        for indices, _, bounds, shard in self._spaces:
            FlatSpace([full[i] for i in indices]).pack(bounds[self.rank], bounds[self.rank + 1], shard)
        return total

    # -- Schedule-Free's train / eval switch ------------------------------------------------------------

    def train(self) -> None:
        """For optimizers with a train/eval switch (Schedule-Free): each rank moves its shard, then the
        parameters are all-gathered. Collective."""
        self._switch_mode(True)

    def eval(self) -> None:
        """See :meth:`train`."""
        self._switch_mode(False)

    def _switch_mode(self, train: bool) -> None:
        if not callable(getattr(self._local, "train", None)):
            raise AttributeError(f"{self._cls.__name__} has no train/eval mode")
        error = None
        try:
            self._sync_groups()
            (self._local.train if train else self._local.eval)()
        except Exception as e:  # noqa: BLE001 - agree() raises it on every rank
            error = e
        agree(self.comm, error, None, "ZeroRedundancyOptimizer.train/eval")
        for full, mine in zip(self._full.param_groups, self._local.param_groups):
            full["train_mode"] = mine["train_mode"]
        for _, space, bounds, _ in self._spaces:
            self._allgather_params(space, bounds)

    # -- checkpoints -------------------------------------------------------------------------------

    def _saved_groups(self) -> list[dict[str, Any]]:
        groups, index = [], 0
        for group in self._full.param_groups:
            saved = {k: v for k, v in group.items() if k != "params"}
            saved["params"] = list(range(index, index + len(group["params"])))
            index += len(group["params"])
            groups.append(saved)
        return groups

    def state_dict(self, root: int = 0) -> dict[str, Any] | None:
        """The full state, as the unsharded optimizer's ``state_dict()``, on rank ``root``; None elsewhere.

        Collective: every rank must call it. ``dlopt.save(path, optimizer=sd)`` on the root writes it.

        Parameters
        ----------
        root : int, default 0
            The rank that receives the state.

        Returns
        -------
        dict or None
            The unsharded optimizer's state dict on ``root``; ``None`` on the other ranks.
        """
        mine = {i: (s, e, self._local.state[i]) for i, s, e in self._pieces if i in self._local.state}
        parts = self.comm.gather(mine, root=root)
        if self.rank != root:
            return None
        by_tensor: dict[int, list[tuple[int, int, dict[str, Any]]]] = {}
        for part in parts:
            for i, piece in part.items():
                by_tensor.setdefault(i, []).append(piece)
        state = {}
        for i in sorted(by_tensor):
            state[i] = self._stitch(i, sorted(by_tensor[i], key=lambda t: t[0]))
        return {"state": state, "param_groups": self._saved_groups()}

    def _stitch(self, i: int, pieces: list[tuple[int, int, dict[str, Any]]]) -> dict[str, Any]:
        p = self._params[i]
        if len(pieces) == 1 and pieces[0][0] == 0 and pieces[0][1] == p.size:
            return {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in pieces[0][2].items()}
        entry: dict[str, Any] = {}
        for name, value in pieces[0][2].items():
            if not isinstance(value, np.ndarray):
                entry[name] = value
                continue
            flat = np.concatenate([piece[2][name].reshape(-1) for piece in pieces])
            entry[name] = flat if name.endswith("_scale") else flat.reshape(p.shape)
        return entry

    def load_state_dict(self, state_dict: dict[str, Any] | None, root: int = 0) -> None:
        """Loads a full state (from :meth:`state_dict`, an unsharded optimizer, or ``dlopt.load``).

        Collective. Ranks other than ``root`` may pass None: the root's dict is broadcast. Every
        rank checks its slice completely (as the unsharded ``load_state_dict`` does) and the ranks
        agree before any of them changes anything: on error, every rank raises and nothing changed.

        Parameters
        ----------
        state_dict : dict or None
            The full state on ``root`` (``None`` allowed on the other ranks).
        root : int, default 0
            The rank whose dict is used.

        Raises
        ------
        ValueError
            On every rank, if the state does not fit the parameters on some rank.
        """
        present = self.comm.allgather(state_dict is not None)
        if not all(present):
            if not present[root]:
                agree(self.comm, ValueError("load_state_dict: the root rank passed no state_dict"), None,
                      "load_state_dict")
            state_dict = self.comm.bcast(state_dict if self.rank == root else None, root=root)
        error, fresh, groups = None, None, None
        try:
            local_sd, groups = self._slice(state_dict)
            fresh = self._make_local()
            fresh.load_state_dict(local_sd)
        except Exception as e:  # noqa: BLE001 - agree() raises it on every rank
            error = e
        agree(self.comm, error, None, "load_state_dict")
        for full, saved in zip(self._full.param_groups, groups):
            params = full["params"]
            full.clear()
            full.update({k: v for k, v in saved.items() if k != "params"}, params=params)
        self._local = fresh

    def _slice(self, state_dict: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """This rank's part of a full state dict, every size checked against the parameters."""
        try:
            saved_groups, saved_state = state_dict["param_groups"], state_dict["state"]
        except (TypeError, KeyError) as e:
            raise ValueError("state_dict: expected keys 'state' and 'param_groups'") from e
        if not isinstance(saved_groups, (list, tuple)) or len(saved_groups) != len(self._full.param_groups):
            raise ValueError(f"state_dict: expected {len(self._full.param_groups)} param groups")
        for gi, (saved, group) in enumerate(zip(saved_groups, self._full.param_groups)):
            if not isinstance(saved, dict) or len(saved.get("params", ())) != len(group["params"]):
                raise ValueError(f"state_dict: param_groups[{gi}] does not have {len(group['params'])} parameters")
        owned = {i: (s, e) for i, s, e in self._pieces}
        state = {}
        for key, entry in saved_state.items():
            i = int(key)
            if not 0 <= i < len(self._params):
                raise ValueError(f"state_dict: state for parameter {key!r}, which does not exist")
            p = self._params[i]
            if not isinstance(entry, dict):
                raise ValueError(f"state_dict: state[{i}] is not a dict")
            if i not in owned:
                continue
            s, e = owned[i]
            if s == 0 and e == p.size:  # a whole tensor: the rank's optimizer checks it all
                state[i] = entry
                continue
            for name, value in entry.items():  # a slice: its sizes must be the parameter's
                if isinstance(value, np.ndarray):
                    want = -(-p.size // _SCALE_BLOCK) if name.endswith("_scale") else p.size
                    if value.size != want or (not name.endswith("_scale") and value.shape != p.shape):
                        raise ValueError(f"state_dict: state[{i}][{name!r}] has shape {value.shape}, "
                                         f"parameter {i} has shape {p.shape}")
            sliced = {}
            for name, value in entry.items():
                if not isinstance(value, np.ndarray):
                    sliced[name] = value
                elif name.endswith("_scale"):
                    sliced[name] = value.reshape(-1)[s // _SCALE_BLOCK: -(-e // _SCALE_BLOCK)]
                else:
                    sliced[name] = value.reshape(-1)[s:e]
            state[i] = sliced
        groups = [dict(g) for g in saved_groups]
        return {"state": state, "param_groups": copy.copy(groups)}, groups

    def __repr__(self) -> str:
        return (f"ZeroRedundancyOptimizer({self._cls.__name__}, rank {self.rank} of {self.world_size}, "
                f"{sum(e - s for _, s, e in self._pieces)} of {sum(p.size for p in self._params)} elements)")
