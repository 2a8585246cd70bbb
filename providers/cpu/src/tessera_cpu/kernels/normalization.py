"""Normalization kernels: batch, instance, layer, group, RMS, LRN, Lp and mean-variance."""

from __future__ import annotations

import math

import numpy as np

from tessera.provider import FLOAT_TYPES, NodeInfo
from tessera_cpu import _jit, _native
from tessera_cpu.kernels import _norm_loops
from tessera_cpu.kernels._registry import registry
from tessera_cpu.kernels.conv import ACTIVATIONS, FUSED_DOMAIN

_F32 = np.dtype(np.float32)
_F64 = np.dtype(np.float64)


def _compute_dtype(dtype: np.dtype) -> np.dtype:
    """float16/bfloat16 are computed in float32 (as ORT does); float32/float64 stay as they are."""
    return dtype if dtype in (_F32, _F64) else _F32


def _as(x: np.ndarray, dtype: np.dtype) -> np.ndarray:
    return x if x.dtype == dtype else x.astype(dtype)


def _norm_axis(node: NodeInfo, axis: int, rank: int) -> int:
    if not -rank <= axis < rank:
        raise ValueError(f"{node.describe()}: axis {axis} is out of range for a rank-{rank} input")
    return axis + rank if axis < 0 else axis


def _row_stats(x2: np.ndarray, eps: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-row mean, centred rows and 1/sqrt(var + eps) of a 2-D array, in its own dtype."""
    cols = x2.shape[1]
    with np.errstate(invalid="ignore", divide="ignore"):
        # A matrix-vector product (BLAS) is much faster than a last-axis mean for short rows.
        if cols:
            mean = x2 @ np.full((cols, 1), 1.0 / cols, dtype=x2.dtype)
        else:
            mean = np.zeros((x2.shape[0], 1), dtype=x2.dtype)
        d = x2 - mean
        # einsum avoids materialising d*d; variance is the biased (population) one.
        var = np.einsum("ij,ij->i", d, d)[:, None]
        var /= max(cols, 1)
        var += x2.dtype.type(eps)
        inv = np.sqrt(var, out=var)
        np.reciprocal(inv, out=inv)
    return mean, d, inv


# --------------------------------------------------------------------------- BatchNormalization


def _bn_fold(scale, bias, mean, var, eps: float, cdt: np.dtype):
    """Inference BatchNorm as y = x * a + b with per-channel a, b (in float64, then cdt)."""
    a = scale.astype(np.float64) / np.sqrt(var.astype(np.float64) + eps)
    b = bias.astype(np.float64) - mean.astype(np.float64) * a
    return a.astype(cdt), b.astype(cdt)


def _channel_view(p: np.ndarray, rank: int) -> np.ndarray:
    # spatial=1: (C,) -> (C,1,..,1); spatial=0 (opset<9): (C,D1,..) -> (C,D1,..,1..)
    return p.reshape(p.shape + (1,) * (rank - 1 - p.ndim))


def _bn_inference(node: NodeInfo, eps: float, activation: str = "", params=()):
    """``compute(x, scale, bias, mean, var) -> y``: inference BatchNormalization followed by
    ``activation`` ("" or one of FusedConv's: Relu, LeakyRelu, Clip). The per-channel scale and
    shift are folded once when the parameters are initializers; float32/float64 inputs of rank
    >= 3 run as one compiled pass (activation included) when loops are enabled."""
    act = ACTIVATIONS[activation][1](*params)
    use_loop = _jit.enabled()
    native = use_loop and _native.enabled()
    folded: dict = {}
    if all(i in node.constant_inputs for i in range(1, 5)):
        consts = [node.constant_inputs[i] for i in range(1, 5)]
        folded = {dt: _bn_fold(*consts, eps, dt) for dt in (_F32, _F64)}

    def compute(x, scale, bias, mean, var):
        cdt = _compute_dtype(x.dtype)
        a, b = folded[cdt] if folded else _bn_fold(scale, bias, mean, var, eps, cdt)
        if (
            use_loop
            and x.dtype == cdt
            and x.ndim >= 3
            and a.ndim == 1
            and a.shape[0] == x.shape[1]
            and x.flags.c_contiguous
        ):
            return _norm_loops.batch_norm(x, a, b, activation, list(params), native)
        y = np.multiply(_as(x, cdt), _channel_view(a, x.ndim))
        np.add(y, _channel_view(b, x.ndim), out=y)
        if act is not None:
            act(y)
        return _as(y, x.dtype)

    return compute


@registry.kernel(
    "BatchNormalization",
    since=(1, 6, 7, 9, 14, 15),
    types={"T": FLOAT_TYPES, "T1": FLOAT_TYPES, "T2": FLOAT_TYPES},
)
def batch_normalization(node: NodeInfo):
    eps = float(node.attr("epsilon", 1e-5))
    momentum = float(node.attr("momentum", 0.9))
    version = node.since_version
    training = version >= 14 and bool(node.attr("training_mode", 0))
    if version < 14 and sum(1 for o in node.outputs if o) > 1:
        raise ValueError(
            f"{node.describe()}: training-mode outputs (mean, var, saved_mean, saved_var) of "
            f"BatchNormalization-{version} are not supported; only inference (a single output Y)"
        )

    def train(x, scale, bias, mean, var):
        cdt = _compute_dtype(x.dtype)
        xc = _as(x, cdt)
        axes = (0, *tuple(range(2, x.ndim)))
        bmean = xc.mean(axis=axes)
        bvar = xc.var(axis=axes)
        a, b = _bn_fold(scale, bias, bmean, bvar, eps, cdt)
        y = np.multiply(xc, _channel_view(a, x.ndim))
        np.add(y, _channel_view(b, x.ndim), out=y)
        y = _as(y, x.dtype)
        run_mean = mean.astype(cdt) * cdt.type(momentum) + bmean * cdt.type(1 - momentum)
        run_var = var.astype(cdt) * cdt.type(momentum) + bvar * cdt.type(1 - momentum)
        return y, _as(run_mean, mean.dtype), _as(run_var, var.dtype)

    if training:
        return train

    infer = _bn_inference(node, eps)

    def compute(x, scale, bias, mean, var):
        y = infer(x, scale, bias, mean, var)
        # Running statistics are unchanged in inference mode.
        return (y, mean, var) if version >= 14 else (y,)

    return compute


@registry.kernel(
    "FusedBatchNormalization",
    domain=FUSED_DOMAIN,
    since=1,
    types={0: ("tensor(float)", "tensor(double)")},
)
def fused_batch_normalization(node: NodeInfo):
    """``activation(BatchNormalization(X, scale, B, mean, var))`` in inference mode: the CPU
    provider's fusion of a BatchNormalization with the Relu, LeakyRelu or Clip reading it
    (attributes ``epsilon``, ``activation`` and ``activation_params``, as FusedConv's)."""
    eps = float(node.attr("epsilon", 1e-5))
    name = node.attr("activation", "") or ""
    params = [float(p) for p in (node.attr("activation_params", None) or [])]
    if name not in ACTIVATIONS:
        raise ValueError(
            f"{node.describe()}: activation {name!r} is not one of {sorted(ACTIVATIONS)}"
        )
    if len(params) != ACTIVATIONS[name][0]:
        raise ValueError(
            f"{node.describe()}: activation {name or 'none'} takes {ACTIVATIONS[name][0]} "
            f"activation_params, got {params}"
        )
    infer = _bn_inference(node, eps, name, params)

    def compute(x, scale, bias, mean, var):
        return (infer(x, scale, bias, mean, var),)

    return compute


# --------------------------------------------------------------------------- Instance / Group


@registry.kernel("InstanceNormalization", since=(1, 6, 22), types={"T": FLOAT_TYPES})
def instance_normalization(node: NodeInfo):
    eps = float(node.attr("epsilon", 1e-5))

    def compute(x, scale, bias):
        cdt = _compute_dtype(x.dtype)
        n, c = x.shape[0], x.shape[1]
        x2 = _as(x, cdt).reshape(n * c, math.prod(x.shape[2:]))
        _, d, inv = _row_stats(x2, eps)
        factor = inv.reshape(n, c) * _as(scale, cdt)
        d = d.reshape(n, c, math.prod(x.shape[2:]))
        d *= factor[:, :, None]
        d += _as(bias, cdt)[:, None]
        return (_as(d.reshape(x.shape), x.dtype),)

    return compute


@registry.kernel("GroupNormalization", since=(18, 21), types={"T": FLOAT_TYPES})
def group_normalization(node: NodeInfo):
    eps = float(node.attr("epsilon", 1e-5))
    groups = int(node.attr("num_groups"))
    stash = int(node.attr("stash_type", 1))
    if groups <= 0:
        raise ValueError(f"{node.describe()}: num_groups must be positive, got {groups}")
    if stash != 1:
        raise ValueError(
            f"{node.describe()}: stash_type {stash} is not supported (only 1, float32)"
        )
    per_group = node.since_version < 21  # opset 18: scale/bias have one value per group

    def compute(x, scale, bias):
        n, c = x.shape[0], x.shape[1]
        if c % groups:
            raise ValueError(
                f"{node.describe()}: {c} channels are not divisible by num_groups {groups}"
            )
        cdt = _compute_dtype(x.dtype)
        x2 = _as(x, cdt).reshape(n * groups, math.prod(x.shape[1:]) // groups)
        _, d, inv = _row_stats(x2, eps)
        d *= inv
        s, b = _as(scale, cdt), _as(bias, cdt)
        if per_group:
            s, b = np.repeat(s, c // groups), np.repeat(b, c // groups)
        y = d.reshape(n, c, math.prod(x.shape[2:]))
        y *= s[:, None]
        y += b[:, None]
        return (_as(y.reshape(x.shape), x.dtype),)

    return compute


# --------------------------------------------------------------------------- Layer / RMS


def _check_stash_type(node: NodeInfo) -> None:
    stash = int(node.attr("stash_type", 1))
    if stash != 1:
        raise ValueError(
            f"{node.describe()}: stash_type {stash} is not supported (only 1, float32)"
        )


@registry.kernel("LayerNormalization", since=17, types={"T": FLOAT_TYPES})
def layer_normalization(node: NodeInfo):
    axis_attr = int(node.attr("axis", -1))
    eps = float(node.attr("epsilon", 1e-5))
    _check_stash_type(node)
    stat_dtype = node.output_dtype(1) if len(node.outputs) > 1 and node.outputs[1] else None
    if stat_dtype is None and len(node.outputs) > 2 and node.outputs[2]:
        stat_dtype = node.output_dtype(2)
    stat_dtype = stat_dtype or _F32
    want_stats = any(node.outputs[1:3]) if len(node.outputs) > 1 else False
    use_loop = _jit.enabled()
    native = use_loop and _native.enabled()
    # The loop's (D,) scale and bias, by (dtype, normalized shape), for initializer parameters.
    flat_params: dict = {}

    def flat(p, shape: tuple, dtype: np.dtype, index: int) -> np.ndarray:
        """Parameter ``p`` (None: zeros) broadcast to ``shape``, flattened, contiguous."""
        key = (index, dtype, shape)
        constant = p is None or index in node.constant_inputs
        cached = flat_params.get(key) if constant else None
        if cached is not None:
            return cached
        if p is None:
            out = np.zeros(math.prod(shape), dtype)
        else:
            out = np.ascontiguousarray(np.broadcast_to(_as(p, dtype), shape).reshape(-1))
        if constant:
            flat_params[key] = out
        return out

    def outputs(y, mean, inv, lead, norm_rank):
        """Y, and the Mean and InvStdDev outputs (shaped lead + (1,) * norm_rank) if asked."""
        if not want_stats:
            return (y,)
        stat_shape = lead + (1,) * norm_rank
        return (
            y,
            _as(mean.reshape(stat_shape), stat_dtype),
            _as(inv.reshape(stat_shape), stat_dtype),
        )

    def loop(x, scale, bias, axis):
        lead, norm_shape = x.shape[:axis], x.shape[axis:]
        x2 = x.reshape(math.prod(lead), math.prod(norm_shape))
        s = flat(scale, norm_shape, x.dtype, 1)
        b = flat(bias, norm_shape, x.dtype, 2)
        y, mean, inv = _norm_loops.layer_norm(x2, s, b, eps, native)
        return outputs(y.reshape(x.shape), mean, inv, lead, x.ndim - axis)

    def compute(x, scale, bias=None):
        axis = _norm_axis(node, axis_attr, x.ndim)
        cdt = _compute_dtype(x.dtype)
        if (
            use_loop
            and x.dtype == cdt
            and x.flags.c_contiguous
            and scale.ndim <= x.ndim - axis
            and (bias is None or bias.ndim <= x.ndim - axis)
        ):
            return loop(x, scale, bias, axis)
        lead = x.shape[:axis]
        rows = math.prod(lead)
        x2 = _as(x, cdt).reshape(rows, math.prod(x.shape[axis:]))
        mean, d, inv = _row_stats(x2, eps)
        d *= inv
        y = d.reshape(x.shape)
        y *= scale if scale.dtype == cdt else scale.astype(cdt)
        if bias is not None:
            y += bias if bias.dtype == cdt else bias.astype(cdt)
        return outputs(_as(y, x.dtype), mean, inv, lead, x.ndim - axis)

    return compute


@registry.kernel("RMSNormalization", since=23, types={"T": FLOAT_TYPES, "V": FLOAT_TYPES})
def rms_normalization(node: NodeInfo):
    axis_attr = int(node.attr("axis", -1))
    eps = float(node.attr("epsilon", 1e-5))
    _check_stash_type(node)
    out_dtype = node.output_dtype(0)

    def compute(x, scale):
        axis = _norm_axis(node, axis_attr, x.ndim)
        cdt = _compute_dtype(x.dtype) if x.dtype != _F64 else _F64
        cols = math.prod(x.shape[axis:])
        x2 = _as(x, cdt).reshape(math.prod(x.shape[:axis]), cols)
        with np.errstate(invalid="ignore", divide="ignore"):
            ms = np.einsum("ij,ij->i", x2, x2)[:, None]
            ms /= max(cols, 1)
            ms += cdt.type(eps)
            inv = np.reciprocal(np.sqrt(ms, out=ms), out=ms)
        y = np.multiply(x2, inv).reshape(x.shape)
        y *= _as(scale, cdt)
        return (_as(y, out_dtype or scale.dtype),)

    return compute


# --------------------------------------------------------------------------- LRN / Lp / MVN


@registry.kernel("LRN", since=(1, 13), types={"T": FLOAT_TYPES})
def lrn(node: NodeInfo):
    size = int(node.attr("size"))
    alpha = float(node.attr("alpha", 1e-4))
    beta = float(node.attr("beta", 0.75))
    bias = float(node.attr("bias", 1.0))
    if size <= 0:
        raise ValueError(f"{node.describe()}: size must be positive, got {size}")
    pre, post = (size - 1) // 2, size - 1 - (size - 1) // 2

    def compute(x):
        cdt = _compute_dtype(x.dtype)
        xc = _as(x, cdt)
        c = x.shape[1]
        sq = np.square(xc)
        pad = [(0, 0)] * x.ndim
        pad[1] = (pre, post)
        sqp = np.pad(sq, pad)
        # The window is small (size channels): sum its shifted slices.
        acc = sqp[:, 0:c].copy()
        for i in range(1, size):
            acc += sqp[:, i : i + c]
        acc *= cdt.type(alpha / size)
        acc += cdt.type(bias)
        np.power(acc, cdt.type(beta), out=acc)
        return (_as(np.divide(xc, acc, out=acc), x.dtype),)

    return compute


@registry.kernel("LpNormalization", since=(1, 22), types={"T": FLOAT_TYPES})
def lp_normalization(node: NodeInfo):
    axis_attr = int(node.attr("axis", -1))
    p = int(node.attr("p", 2))
    if p not in (1, 2):
        raise ValueError(f"{node.describe()}: p must be 1 or 2, got {p}")

    def compute(x):
        axis = _norm_axis(node, axis_attr, x.ndim)
        cdt = _compute_dtype(x.dtype)
        xc = _as(x, cdt)
        if p == 1:
            norm = np.abs(xc).sum(axis=axis, keepdims=True)
        else:
            norm = np.sqrt(np.square(xc).sum(axis=axis, keepdims=True))
        zero = norm == 0
        with np.errstate(invalid="ignore", divide="ignore"):
            y = xc / norm
        if zero.any():
            y = np.where(zero, cdt.type(0), y)
        return (_as(y, x.dtype),)

    return compute


@registry.kernel("MeanVarianceNormalization", since=(9, 13), types={"T": FLOAT_TYPES})
def mean_variance_normalization(node: NodeInfo):
    axes_attr = [int(a) for a in node.attr("axes", [0, 2, 3])]

    def compute(x):
        axes = tuple(sorted({_norm_axis(node, a, x.ndim) for a in axes_attr}))
        if x.size == 0:
            return (x.copy(),)
        cdt = _compute_dtype(x.dtype)
        xc = _as(x, cdt)
        d = xc - xc.mean(axis=axes, keepdims=True)
        std = np.sqrt(np.square(d).mean(axis=axes, keepdims=True))
        std += cdt.type(1e-9)
        d /= std
        return (_as(d, x.dtype),)

    return compute
