"""Activation ai.onnx kernels (Relu, Sigmoid, Gelu, SwiGLU, ... and Dropout)."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import numpy as np

from tessera.provider import FLOAT_TYPES, INT_TYPES, SIGNED_INT_TYPES, NodeInfo
from tessera_cpu import _jit
from tessera_cpu.kernels._registry import registry
from tessera_cpu.kernels.elementwise import FLOAT8_TYPES, chebyshev_fit, erf, horner, map_chunks
from tessera_cpu.kernels.elementwise import math_dtype as _wide


def _float_op(fn: Callable[[np.ndarray], np.ndarray]) -> Callable[[np.ndarray], tuple]:
    """compute() running ``fn`` (which may work in place on its argument) in the wide dtype."""

    def compute(x):
        if x.ndim == 0:  # ufuncs turn 0-d arrays into scalars, which out= cannot take
            return (compute(x.reshape(1))[0].reshape(()),)
        wide = _wide(x.dtype)
        if wide != x.dtype:
            return (fn(x.astype(wide)).astype(x.dtype),)
        return (fn(x),)

    return compute


def sigmoid(x: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-x)); exp overflowing to inf gives the right limit 0, so it is only silenced."""
    e = np.negative(x)
    with np.errstate(over="ignore"):
        np.exp(e, out=e)
    np.add(e, x.dtype.type(1), out=e)
    return np.reciprocal(e, out=e)


def _keep(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """x where mask else +0, exactly (no inf * 0 = NaN): a bitwise select.

    np.where is branchy and several times slower on unpredictable masks.
    """
    bits = np.dtype(f"u{x.dtype.itemsize}")
    m = mask.astype(bits)
    np.negative(m, out=m)  # True -> all ones
    return np.bitwise_and(x.view(bits), m, out=m).view(x.dtype)


def _softplus(x: np.ndarray) -> np.ndarray:
    # log(1 + exp(x)) = max(x, 0) + log1p(exp(-|x|)), finite for every finite x
    t = np.abs(x)
    np.negative(t, out=t)
    np.exp(t, out=t)
    np.log1p(t, out=t)
    return np.add(np.maximum(x, x.dtype.type(0)), t, out=t)


def _simple(op: str, versions: tuple[int, ...], types: tuple[str, ...] = FLOAT_TYPES):
    """Register a one-input float activation whose factory returns fn(node) -> array function."""

    def wrap(make: Callable[[NodeInfo], Callable[[np.ndarray], np.ndarray]]):
        @registry.kernel(op, since=versions, types={"T": types})
        def factory(node: NodeInfo):
            return _float_op(make(node))

        factory.__name__ = make.__name__
        return factory

    return wrap


@_simple("Sigmoid", (1, 6, 13))
def _sigmoid(node: NodeInfo):
    return sigmoid


@_simple("Softplus", (1, 22))
def _softplus_k(node: NodeInfo):
    return _softplus


@_simple("Softsign", (1, 22))
def _softsign(node: NodeInfo):
    def fn(x):
        d = np.abs(x)
        d += 1
        return np.divide(x, d, out=d)

    return fn


@_simple("Mish", (18, 22))
def _mish(node: NodeInfo):
    def fn(x):
        t = _softplus(x)
        np.tanh(t, out=t)
        return np.multiply(x, t, out=t)

    return fn


@_simple("Elu", (1, 6, 22))
def _elu(node: NodeInfo):
    alpha = float(node.attr("alpha", 1.0))

    def fn(x):
        neg = np.expm1(np.minimum(x, 0))
        neg *= alpha
        return np.add(np.maximum(x, 0), neg, out=neg)

    return fn


@_simple("Celu", (12, 28))
def _celu(node: NodeInfo):
    alpha = float(node.attr("alpha", 1.0))
    if alpha == 0:
        raise ValueError(f"{node.describe()}: alpha must be nonzero")

    def fn(x):
        neg = np.minimum(x, 0)
        neg /= alpha
        np.expm1(neg, out=neg)
        neg *= alpha
        return np.add(np.maximum(x, 0), neg, out=neg)

    return fn


@_simple("Selu", (1, 6, 22))
def _selu(node: NodeInfo):
    alpha = float(node.attr("alpha", 1.67326319217681884765625))
    gamma = float(node.attr("gamma", 1.05070102214813232421875))

    def fn(x):
        neg = np.expm1(np.minimum(x, 0))
        neg *= alpha
        neg += np.maximum(x, 0)
        neg *= gamma
        return neg

    return fn


@_simple("HardSigmoid", (1, 6, 22))
def _hard_sigmoid(node: NodeInfo):
    alpha = float(node.attr("alpha", 0.2))
    beta = float(node.attr("beta", 0.5))

    def fn(x):
        y = x * alpha
        y += beta
        return np.clip(y, 0, 1, out=y)

    return fn


@_simple("HardSwish", (14, 22))
def _hard_swish(node: NodeInfo):
    def fn(x):
        y = x * (1 / 6)
        y += 0.5
        np.clip(y, 0, 1, out=y)
        return np.multiply(x, y, out=y)

    return fn


@_simple("ThresholdedRelu", (10, 22))
def _thresholded_relu(node: NodeInfo):
    alpha = float(node.attr("alpha", 1.0))

    def fn(x):
        return _keep(x, x > alpha)

    return fn


@_simple("Swish", (24,))
def _swish(node: NodeInfo):
    alpha = float(node.attr("alpha", 1.0))

    def fn(x):
        s = sigmoid(x * alpha if alpha != 1.0 else x)
        return np.multiply(x, s, out=s)

    return fn


_SQRT_HALF = 1 / math.sqrt(2)
_SQRT_2_OVER_PI = math.sqrt(2 / math.pi)


def _gelu_logit_over_x(s: float) -> float:
    """logit(Phi(x)) / x at x = sqrt(s), from math.erfc (accurate in both tails)."""
    x = math.sqrt(s)
    if x == 0:
        return 4 / math.sqrt(2 * math.pi)
    upper = 0.5 * math.erfc(-x * _SQRT_HALF)
    lower = 0.5 * math.erfc(x * _SQRT_HALF)
    return (math.log(upper) - math.log(lower)) / x


# float32 exact Gelu: x * Phi(x) = x / (1 + exp(-x * r(x^2))) with r = logit(Phi(x)) / x, a
# smooth even function, fitted for x^2 <= 30. Beyond that r is clamped, so the logit grows only
# linearly: Phi rounds to 1 above, and below, where Phi(-5.5) is already 2e-8, Gelu stays
# within 3e-8 of its true value. (A fit to x^2 <= 25 missed the ONNX suite's atol of 1e-7 near
# x = -5.3.) Degree 11 is within 2 ulp for x > 0 and 2.3e-6 relative where |Gelu| > 1e-3 for
# x < 0; it needs 28 passes per element against ~42 for 0.5 * x * (1 + erf(x / sqrt 2)), whose
# 1 + erf also cancels for negative x. The coefficients are negated: the kernel wants -logit.
_GELU32_SMAX = np.float32(30.0)
_GELU32_POLY = (-chebyshev_fit(_gelu_logit_over_x, 30.0, 11, in_s=True)).astype(np.float32)


def _gelu_erf32_block(x: np.ndarray, out: np.ndarray, s: np.ndarray) -> None:
    np.multiply(x, x, out=s)
    np.minimum(s, _GELU32_SMAX, out=s)  # NaN stays NaN
    horner(s, _GELU32_POLY, out)
    np.multiply(out, x, out=out)
    np.exp(out, out=out)  # overflows to inf for very negative x: x / inf = -0
    np.add(out, np.float32(1), out=out)
    np.divide(x, out, out=out)


def _gelu_tanh_block(x: np.ndarray, out: np.ndarray, s: np.ndarray) -> None:
    """0.5 * x * (1 + tanh(u)) as x / (1 + exp(-2u)), u = sqrt(2/pi) * (x + 0.044715 x^3).

    Seven passes against nine, and no 1 + tanh cancellation for negative x.
    """
    dt = x.dtype.type
    np.multiply(x, x, out=s)
    np.multiply(s, dt(-2 * _SQRT_2_OVER_PI * 0.044715), out=out)
    np.add(out, dt(-2 * _SQRT_2_OVER_PI), out=out)
    np.multiply(out, x, out=out)
    np.exp(out, out=out)
    np.add(out, dt(1), out=out)
    np.divide(x, out, out=out)


@functools.cache
def _gelu32_loops(approximate: str):
    from tessera_cpu.kernels import _math_loops

    if approximate == "none":
        return _math_loops.gelu_erf_loops(_GELU32_POLY, _GELU32_SMAX)
    c1 = -2 * _SQRT_2_OVER_PI
    return _math_loops.gelu_tanh_loops(np.float32(c1 * 0.044715), np.float32(c1))


def gelu32_loops(approximate: str):
    """The compiled float32 Gelu (``loops(x, out)``, in place without ``out``; False when x's
    layout does not suit them), or None when compiled loops are off. The same formulas as the
    NumPy blocks below, in one pass per element."""
    return _gelu32_loops(approximate) if _jit.enabled() else None


@_simple("Gelu", (20,))
def _gelu(node: NodeInfo):
    approximate = node.attr("approximate", "none")
    if approximate not in ("none", "tanh"):
        raise ValueError(
            f"{node.describe()}: approximate must be 'none' or 'tanh', got {approximate!r}"
        )
    loops = gelu32_loops(approximate)

    def compiled(x):
        if loops is not None and x.dtype == np.float32 and x.size:
            out = np.empty(x.shape, np.float32)
            if loops(x, out):
                return out
        return None

    def exact(x):
        y = compiled(x)
        if y is not None:
            return y
        if x.dtype == np.float32:
            with np.errstate(over="ignore"):
                return map_chunks(x, x.dtype, _gelu_erf32_block)
        y = erf(x * _SQRT_HALF)  # float64: erf's own float64 polynomial
        y += 1
        y *= x
        y *= 0.5
        return y

    def tanh(x):
        y = compiled(x)
        if y is not None:
            return y
        with np.errstate(over="ignore"):
            return map_chunks(x, x.dtype, _gelu_tanh_block)

    return exact if approximate == "none" else tanh


@registry.kernel("LeakyRelu", since=(1, 6, 16), types={"T": FLOAT_TYPES})
def leaky_relu(node: NodeInfo):
    alpha = float(node.attr("alpha", 0.01))

    # alpha <= 1: max(x, alpha*x) picks x for x >= 0 and alpha*x below; alpha > 1 flips to min.
    pick = np.maximum if alpha <= 1 else np.minimum

    def fn(x):
        y = x * alpha
        return pick(x, y, out=y)

    return _float_op(fn)


@registry.kernel("Relu", since=(1, 6, 13, 14), types={"T": FLOAT_TYPES + SIGNED_INT_TYPES})
def relu(node: NodeInfo):
    def compute(x):
        return (np.asarray(np.maximum(x, x.dtype.type(0))),)

    return compute


@registry.kernel(
    "PRelu",
    since=(1, 6, 7, 9, 16),
    types={
        "T": (*FLOAT_TYPES, "tensor(int32)", "tensor(int64)", "tensor(uint32)", "tensor(uint64)")
    },
)
def prelu(node: NodeInfo):
    legacy = node.since_version < 7

    def compute(x, slope):
        if (
            legacy
            and slope.ndim == 1
            and x.ndim >= 3
            and slope.size == x.shape[1]
            and slope.size > 1
        ):
            # Before opset 7 a 1-D slope is per channel (axis 1), not NumPy-aligned to the last axis.
            slope = slope.reshape((-1,) + (1,) * (x.ndim - 2))
        # max(x, 0) + min(x, 0) * slope: the same values as a select, without a branchy where.
        neg = np.asarray(np.minimum(x, x.dtype.type(0)))
        neg = np.multiply(
            neg, slope, out=neg if neg.shape == np.broadcast_shapes(x.shape, slope.shape) else None
        )
        return (np.add(neg, np.maximum(x, x.dtype.type(0)), out=neg).astype(x.dtype, copy=False),)

    return compute


@registry.kernel("Shrink", since=9, types={"T": FLOAT_TYPES + INT_TYPES})
def shrink(node: NodeInfo):
    lambd = float(node.attr("lambd", 0.5))
    bias = float(node.attr("bias", 0.0))

    def compute(x):
        wide = _wide(x.dtype) if x.dtype.kind in "fV" else np.dtype(np.float64)
        xf = x.astype(wide, copy=False)
        y = np.where(xf < -lambd, xf + bias, np.where(xf > lambd, xf - bias, 0))
        return (y.astype(x.dtype),)

    return compute


@registry.kernel("SwiGLU", since=28, types={"T": FLOAT_TYPES})
def swiglu(node: NodeInfo):
    alpha = float(node.attr("alpha", 1.0))

    def compute(a, b):
        if a.shape != b.shape:
            raise ValueError(
                f"{node.describe()}: A {a.shape} and B {b.shape} must have the same shape"
            )
        wide = _wide(a.dtype)
        af = a.astype(wide, copy=False).reshape(a.shape or (1,))
        y = sigmoid(af * alpha if alpha != 1.0 else af)
        y *= af
        y *= b.reshape(y.shape)
        return (y.astype(a.dtype, copy=False).reshape(a.shape),)

    return compute


# ---------------------------------------------------------------------------------------------
# Dropout


@registry.kernel("Dropout", since=(1, 6, 7, 10), types={"T": FLOAT_TYPES})
def dropout_legacy(node: NodeInfo):
    """Before opset 12 the ratio is an attribute and an inference runtime only copies the input."""
    want_mask = node.num_outputs > 1 and node.outputs[1] != ""
    mask_bool = node.since_version >= 10

    def compute(x):
        if not want_mask:
            return (x, None)
        mask = np.ones(x.shape, dtype=np.bool_ if mask_bool else x.dtype)
        return (x, mask)

    return compute


@registry.kernel(
    "Dropout",
    since=(12, 13, 22),
    types={"T": FLOAT_TYPES + FLOAT8_TYPES, "T1": FLOAT_TYPES + FLOAT8_TYPES},
)
def dropout(node: NodeInfo):
    seed = node.attr("seed", None)
    want_mask = node.num_outputs > 1 and node.outputs[1] != ""

    def compute(x, ratio=None, training_mode=None):
        r = 0.5 if ratio is None else float(np.asarray(ratio, dtype=np.float64).reshape(()))
        training = training_mode is not None and bool(np.asarray(training_mode).reshape(()))
        if not training or r == 0.0:
            return (x, np.ones(x.shape, dtype=np.bool_) if want_mask else None)
        if not 0.0 <= r < 1.0:
            raise ValueError(f"{node.describe()}: ratio must be in [0, 1), got {r}")
        # A given seed makes every run draw the same mask (NumPy's legacy generator, as the
        # ONNX reference does); without one each run draws fresh randomness.
        if seed is not None:
            draws = np.random.RandomState(int(seed)).uniform(0.0, 1.0, x.shape)
        else:
            draws = np.random.default_rng().random(x.shape)
        mask = draws >= r
        wide = _wide(x.dtype)
        y = np.asarray(np.multiply(x.astype(wide, copy=False), mask))
        y *= wide.type(1.0 / (1.0 - r))
        return (y.astype(x.dtype, copy=False), mask if want_mask else None)

    return compute
