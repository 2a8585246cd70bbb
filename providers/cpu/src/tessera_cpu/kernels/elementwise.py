"""Elementwise ai.onnx kernels: unary math, arithmetic, comparison, logic, bitwise, Clip, Where, Max/Min/Sum/Mean."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from tessera.provider import (
    FLOAT_TYPES,
    INT_TYPES,
    NUMERIC_TYPES,
    SIGNED_INT_TYPES,
    UNSIGNED_INT_TYPES,
    NodeInfo,
)
from tessera_cpu.kernels._registry import registry

_BOOL = ("tensor(bool)",)
_SIGNED = FLOAT_TYPES + SIGNED_INT_TYPES
_COMPARABLE = NUMERIC_TYPES + _BOOL + ("tensor(string)",)
FLOAT8_TYPES = (
    "tensor(float8e4m3fn)",
    "tensor(float8e4m3fnuz)",
    "tensor(float8e5m2)",
    "tensor(float8e5m2fnuz)",
)


def math_dtype(dtype: np.dtype) -> np.dtype:
    """float32 for float16/bfloat16 transcendental math (as ORT does), else the dtype itself."""
    # ml_dtypes types (bfloat16, float8) have kind "V".
    if dtype == np.float16 or dtype.kind == "V":
        return np.dtype(np.float32)
    return dtype


# ---------------------------------------------------------------------------------------------
# Unary ops


def chebyshev_fit(
    fn: Callable[[float], float], smax: float, degree: int, *, in_s: bool = False
) -> np.ndarray:
    """Monomial coefficients (lowest first) of the interpolant of fn(s) on [0, smax].

    Fitted once at import at Chebyshev nodes, in t = 2s/smax - 1, where the coefficients stay
    below ~3 and Horner's rule is stable. ``in_s`` re-expands them (in float64) in s itself,
    which saves the two passes of the affine map per element; at the float32 degrees used
    here that is as accurate (the Erf and Gelu tests check it), at erf's float64 degree 36 it
    is not.
    """
    k = np.arange(degree + 1)
    t = np.cos(np.pi * (k + 0.5) / (degree + 1))
    s = (t + 1.0) * (smax / 2.0)
    cheb = np.polynomial.chebyshev.chebfit(t, [fn(v) for v in s], degree)
    coeffs = np.polynomial.chebyshev.cheb2poly(cheb)
    if not in_s:
        return coeffs
    poly = np.polynomial.Polynomial(coeffs)
    return poly(np.polynomial.Polynomial([-1.0, 2.0 / smax])).coef


def horner(s: np.ndarray, coeffs: np.ndarray, out: np.ndarray) -> np.ndarray:
    """out = sum(coeffs[k] * s**k), two in-place passes per degree."""
    np.multiply(s, coeffs[-1], out=out)
    np.add(out, coeffs[-2], out=out)
    for c in coeffs[-3::-1]:
        np.multiply(out, s, out=out)
        np.add(out, c, out=out)
    return out


# Elements per block for the many-pass polynomial kernels (erf, Gelu): the temporaries stay in
# the L2 cache; smaller blocks pay more in per-call overhead than they gain (measured).
CHUNK = 65536


def map_chunks(
    x: np.ndarray,
    dtype: np.dtype,
    body: Callable[[np.ndarray, np.ndarray, np.ndarray], None],
) -> np.ndarray:
    """A fresh ``dtype`` array of x's shape, filled block by block by body(xs, out, scratch).

    xs is a block of x in ``dtype`` (a view when x already is contiguous ``dtype``), out the
    matching block of the result and scratch a spare buffer of the same length; body must
    write all of out and may overwrite scratch.
    """
    flat = x.reshape(-1)
    n = flat.size
    res = np.empty(n, dtype=dtype)
    size = min(CHUNK, n)
    scratch = np.empty(size, dtype=dtype)
    convert = np.empty(size, dtype=dtype) if flat.dtype != dtype else None
    for i in range(0, n, CHUNK):
        m = min(CHUNK, n - i)
        xs = flat[i : i + m]
        if convert is not None:
            xs = convert[:m]
            xs[...] = flat[i : i + m]
        body(xs, res[i : i + m], scratch[:m])
    return res.reshape(x.shape)


def _erf_over_x(s: float) -> float:
    x = math.sqrt(s)
    return math.erf(x) / x if x > 0 else 2.0 / math.sqrt(math.pi)


def _atanh_erf_over_x(s: float) -> float:
    x = math.sqrt(s)
    return math.atanh(math.erf(x)) / x if x > 0 else 2.0 / math.sqrt(math.pi)


# float64: erf(x) = x * g(x^2) with g entire; erf(6) rounds to 1. ~1e-14 relative error.
_ERF64_SMAX = 36.0
_ERF64_POLY = chebyshev_fit(_erf_over_x, _ERF64_SMAX, 36)
# float32 and narrower: erf(x) = tanh(x * q(x^2)). Near |erf| = 1 tanh's flat tail absorbs the
# polynomial's rounding, so degree 12 in float32 stays within ~2 ulp; erf(4) rounds to 1.
_ERF32_SMAX = np.float32(16.0)
_ERF32_POLY = chebyshev_fit(_atanh_erf_over_x, 16.0, 12, in_s=True).astype(np.float32)
_ERF32_ONE = np.float32(3.919206)  # smallest float32 whose erf rounds to 1


def _erf64_block(x: np.ndarray, out: np.ndarray, t: np.ndarray) -> None:
    np.multiply(x, x, out=t)
    np.minimum(t, _ERF64_SMAX, out=t)
    np.multiply(t, 2.0 / _ERF64_SMAX, out=t)
    np.subtract(t, 1.0, out=t)
    horner(t, _ERF64_POLY, out)
    np.multiply(out, x, out=out)
    np.clip(out, -1.0, 1.0, out=out)  # |x| beyond the fitted range; NaN stays NaN


def _erf32_block(x: np.ndarray, out: np.ndarray, s: np.ndarray) -> None:
    np.multiply(x, x, out=s)
    saturated = s.max() >= _ERF32_ONE * _ERF32_ONE  # NaN compares False
    np.minimum(s, _ERF32_SMAX, out=s)
    horner(s, _ERF32_POLY, out)
    np.multiply(out, x, out=out)
    np.tanh(out, out=out)
    if saturated:
        # NumPy's float32 tanh can sit one ulp below 1 where erf already rounds to 1.
        np.copyto(out, np.sign(x), where=np.abs(x) >= _ERF32_ONE)


def erf(x: np.ndarray) -> np.ndarray:
    """Vectorized erf: float64 in float64, everything narrower in float32, in cache-sized blocks."""
    if x.dtype == np.float64:
        return map_chunks(x, x.dtype, _erf64_block)
    y = map_chunks(x, np.dtype(np.float32), _erf32_block)
    return y.astype(x.dtype, copy=False)


def _in_float32(fn: Callable[[np.ndarray], np.ndarray]) -> Callable[[np.ndarray], np.ndarray]:
    """Wrap a float ufunc so float16/bfloat16 inputs are computed in float32 and rounded back."""

    def run(x: np.ndarray) -> np.ndarray:
        wide = math_dtype(x.dtype)
        if wide == x.dtype:
            return fn(x)
        return fn(x.astype(wide)).astype(x.dtype)

    return run


def _reciprocal(x: np.ndarray) -> np.ndarray:
    return np.divide(x.dtype.type(1), x)


# op -> (schema versions, function, accepted types of T)
_UNARY: dict[str, tuple[tuple[int, ...], Callable[[np.ndarray], np.ndarray], tuple[str, ...]]] = {
    "Abs": ((1, 6, 13), np.abs, NUMERIC_TYPES),
    "Neg": ((1, 6, 13), np.negative, _SIGNED),
    "Sign": ((9, 13), np.sign, NUMERIC_TYPES),
    "Ceil": ((1, 6, 13), np.ceil, FLOAT_TYPES),
    "Floor": ((1, 6, 13), np.floor, FLOAT_TYPES),
    "Round": ((11, 22), np.rint, FLOAT_TYPES),  # rint rounds half to even, as ONNX requires
    "Reciprocal": ((1, 6, 13), _reciprocal, FLOAT_TYPES),
    "Sqrt": ((1, 6, 13), _in_float32(np.sqrt), FLOAT_TYPES),
    "Exp": ((1, 6, 13), _in_float32(np.exp), FLOAT_TYPES),
    "Log": ((1, 6, 13), _in_float32(np.log), FLOAT_TYPES),
    "Sin": ((7, 22), _in_float32(np.sin), FLOAT_TYPES),
    "Cos": ((7, 22), _in_float32(np.cos), FLOAT_TYPES),
    "Tan": ((7, 22), _in_float32(np.tan), FLOAT_TYPES),
    "Asin": ((7, 22), _in_float32(np.arcsin), FLOAT_TYPES),
    "Acos": ((7, 22), _in_float32(np.arccos), FLOAT_TYPES),
    "Atan": ((7, 22), _in_float32(np.arctan), FLOAT_TYPES),
    "Sinh": ((9, 22), _in_float32(np.sinh), FLOAT_TYPES),
    "Cosh": ((9, 22), _in_float32(np.cosh), FLOAT_TYPES),
    "Tanh": ((1, 6, 13), _in_float32(np.tanh), FLOAT_TYPES),
    "Asinh": ((9, 22), _in_float32(np.arcsinh), FLOAT_TYPES),
    "Acosh": ((9, 22), _in_float32(np.arccosh), FLOAT_TYPES),
    "Atanh": ((9, 22), _in_float32(np.arctanh), FLOAT_TYPES),
    "Erf": ((9, 13), erf, FLOAT_TYPES),
    "Not": ((1,), np.logical_not, _BOOL),
    "BitwiseNot": ((18,), np.invert, INT_TYPES),
}


def _register_unary(
    op: str, versions: tuple[int, ...], fn: Callable, types: tuple[str, ...]
) -> None:
    @registry.kernel(op, since=versions, types={"T": types})
    def factory(node: NodeInfo):
        def compute(x):
            return (np.asarray(fn(x)),)

        return compute

    factory.__name__ = f"unary_{op.lower()}"


for _op, (_versions, _fn, _types) in _UNARY.items():
    _register_unary(_op, _versions, _fn, _types)


@registry.kernel("IsNaN", since=(9, 13, 20), types={"T1": FLOAT_TYPES + FLOAT8_TYPES})
def is_nan(node: NodeInfo):
    def compute(x):
        return (np.asarray(np.isnan(x)),)

    return compute


@registry.kernel("IsInf", since=(10, 20), types={"T1": FLOAT_TYPES + FLOAT8_TYPES})
def is_inf(node: NodeInfo):
    positive = bool(node.attr("detect_positive", 1))
    negative = bool(node.attr("detect_negative", 1))

    def compute(x):
        if positive and negative:
            return (np.asarray(np.isinf(x)),)
        if positive:
            return (np.asarray(np.isposinf(x)),)
        if negative:
            return (np.asarray(np.isneginf(x)),)
        return (np.zeros(x.shape, dtype=np.bool_),)

    return compute


# ---------------------------------------------------------------------------------------------
# Binary ops


def _legacy_broadcast(node: NodeInfo) -> Callable[[np.ndarray, np.ndarray], np.ndarray] | None:
    """Opset < 7 broadcasting: with broadcast=1, B's dims align with A's starting at `axis`."""
    if node.since_version >= 7 or not node.attr("broadcast", 0) or "axis" not in node.attrs:
        return None  # same shapes, or suffix alignment, which NumPy's rule already gives
    axis = int(node.attr("axis"))

    def align(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        start = axis + a.ndim if axis < 0 else axis
        if start < 0 or start + b.ndim > a.ndim:
            raise ValueError(
                f"{node.describe()}: legacy broadcast of shape {b.shape} into {a.shape} at axis {axis}"
            )
        return b.reshape(b.shape + (1,) * (a.ndim - start - b.ndim))

    return align


_EXACT_IN_FLOAT64 = 2**53


def _fits_float64(a: np.ndarray) -> bool:
    if a.dtype.itemsize <= 4:
        return True
    return a.size > 0 and -_EXACT_IN_FLOAT64 < int(a.min()) and int(a.max()) < _EXACT_IN_FLOAT64


def _trunc_divide(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Integer division rounding toward zero (C semantics), not NumPy's floor division."""
    if _fits_float64(a) and _fits_float64(b):
        # |a| < 2**53 makes float64's a / b land on the right side of every integer, so trunc
        # of it is exact; several times faster than NumPy's integer floor_divide.
        with np.errstate(divide="ignore", invalid="ignore"):
            q = np.asarray(np.divide(a, b, dtype=np.float64))
            np.trunc(q, out=q)
            return np.asarray(q.astype(a.dtype))
    with np.errstate(divide="ignore", over="ignore"):
        q = np.asarray(np.floor_divide(a, b))
        if a.dtype.kind == "u":
            return q
        r = a - q * b
    fix = (r != 0) & ((a < 0) != (b < 0))
    return np.add(q, fix.astype(q.dtype), out=q)


def _divide(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if a.dtype.kind in "iu":
        return _trunc_divide(a, b)
    return np.divide(a, b)


def _shift(direction: str) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    left = direction.upper() == "LEFT"

    def run(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        bits = x.dtype.itemsize * 8
        out_of_range = (y >= bits) | (y < 0) if y.dtype.kind == "i" else y >= bits
        if not out_of_range.any():
            return np.left_shift(x, y) if left else np.right_shift(x, y)
        safe = np.where(out_of_range, 0, y).astype(x.dtype, copy=False)
        res = np.left_shift(x, safe) if left else np.right_shift(x, safe)
        # A shift by >= width (or a negative one) leaves only the sign fill: -1 or 0.
        fill = (
            (x < 0).astype(x.dtype) * x.dtype.type(-1) if (not left and x.dtype.kind == "i") else 0
        )
        return np.where(out_of_range, fill, res).astype(x.dtype, copy=False)

    return run


_ARITH: dict[str, tuple[tuple[int, ...], Callable[[np.ndarray, np.ndarray], np.ndarray]]] = {
    "Add": ((1, 6, 7, 13, 14), np.add),
    "Sub": ((1, 6, 7, 13, 14), np.subtract),
    "Mul": ((1, 6, 7, 13, 14), np.multiply),
    "Div": ((1, 6, 7, 13, 14), _divide),
}
_COMPARE: dict[str, tuple[tuple[int, ...], Callable, tuple[str, ...]]] = {
    "Equal": ((1, 7, 11, 13, 19), np.equal, _COMPARABLE),
    "Greater": ((1, 7, 9, 13), np.greater, NUMERIC_TYPES),
    "Less": ((1, 7, 9, 13), np.less, NUMERIC_TYPES),
    "GreaterOrEqual": ((12, 16), np.greater_equal, NUMERIC_TYPES),
    "LessOrEqual": ((12, 16), np.less_equal, NUMERIC_TYPES),
}
_LOGIC: dict[str, tuple[tuple[int, ...], Callable, tuple[str, ...]]] = {
    "And": ((1, 7), np.logical_and, _BOOL),
    "Or": ((1, 7), np.logical_or, _BOOL),
    "Xor": ((1, 7), np.logical_xor, _BOOL),
    "BitwiseAnd": ((18,), np.bitwise_and, INT_TYPES),
    "BitwiseOr": ((18,), np.bitwise_or, INT_TYPES),
    "BitwiseXor": ((18,), np.bitwise_xor, INT_TYPES),
}


def _register_binary(
    op: str, versions: tuple[int, ...], fn: Callable, types: tuple[str, ...]
) -> None:
    @registry.kernel(op, since=versions, types={"T": types})
    def factory(node: NodeInfo):
        align = _legacy_broadcast(node)
        if align is None:

            def compute(a, b):
                return (np.asarray(fn(a, b)),)

        else:

            def compute(a, b):
                return (np.asarray(fn(a, align(a, b))),)

        return compute

    factory.__name__ = f"binary_{op.lower()}"


for _op, (_versions, _fn) in _ARITH.items():
    _register_binary(_op, _versions, _fn, NUMERIC_TYPES)
for _table in (_COMPARE, _LOGIC):
    for _op, (_versions, _fn, _types) in _table.items():
        _register_binary(_op, _versions, _fn, _types)


@registry.kernel("BitShift", since=11, types={"T": UNSIGNED_INT_TYPES})
@registry.kernel("BitShift", since=28, types={"T": INT_TYPES})
def bit_shift(node: NodeInfo):
    direction = node.attr("direction")
    if direction.upper() not in ("LEFT", "RIGHT"):
        raise ValueError(f"{node.describe()}: direction must be LEFT or RIGHT, got {direction!r}")
    run = _shift(direction)

    def compute(x, y):
        return (np.asarray(run(x, y)),)

    return compute


@registry.kernel("Mod", since=(10, 13, 28), types={"T": NUMERIC_TYPES})
def mod(node: NodeInfo):
    fmod = int(node.attr("fmod", 0))
    if fmod not in (0, 1):
        raise ValueError(f"{node.describe()}: fmod must be 0 or 1, got {fmod}")
    if (
        fmod == 0
        and node.since_version < 28
        and node.input_types
        and node.input_types[0] in FLOAT_TYPES
    ):
        raise ValueError(f"{node.describe()}: fmod=0 needs integer inputs before opset 28")

    def compute(a, b):
        with np.errstate(divide="ignore", invalid="ignore"):
            if fmod:
                return (np.asarray(np.fmod(a, b)),)
            if a.dtype.kind in "iu":
                return (np.asarray(np.mod(a, b)),)
            # Python-style remainder via NumPy keeps the spec's special cases (sign of B, NaNs).
            wide = math_dtype(a.dtype)
            res = np.mod(a.astype(wide, copy=False), b.astype(wide, copy=False))
            return (np.asarray(res).astype(a.dtype, copy=False),)

    return compute


_POW_BASE = ("tensor(int32)", "tensor(int64)", *FLOAT_TYPES)
_POW_MAX_SMALL = 8  # largest integer exponent computed by squaring (<= 3 ulp from pow)


def _small_integer_exponent(exponent: np.ndarray) -> int | None:
    """The exponent as an int when it is a single integer value in [1, _POW_MAX_SMALL].

    Checked on every run (a scalar test, ~1 us), not only for initializers: an initializer
    that is also a graph input can be overridden, and Constant nodes feed exponents too.
    """
    if exponent.size != 1 or exponent.dtype.kind not in "iuf":
        return None
    value = exponent.reshape(-1)[0]
    if not np.isfinite(value) or value != np.trunc(value) or not 1 <= value <= _POW_MAX_SMALL:
        return None
    return int(value)


def _float_power_by_squaring(a: np.ndarray, n: int) -> np.ndarray:
    """a**n for a small positive integer n, by left-to-right binary exponentiation in place.

    np.power with a float exponent runs libm's pow per element (x**3 on a BERT-sized tensor is
    ~45x onnxruntime's time). Here n <= 8 takes at most four passes (the first allocates the
    result), each rounding once, so the result stays within 3 ulp of pow; overflow and NaN
    propagate as in pow.
    """
    wide = math_dtype(a.dtype)
    base = np.ravel(a.astype(wide, copy=False))  # 1-D: ufuncs turn 0-d results into scalars
    if n == 1:
        return np.array(base, dtype=a.dtype)
    bits = bin(n)[3:]  # after the leading 1
    y = np.square(base)
    if bits[0] == "1":
        np.multiply(y, base, out=y)
    for bit in bits[1:]:
        np.multiply(y, y, out=y)
        if bit == "1":
            np.multiply(y, base, out=y)
    return y.astype(a.dtype, copy=False)


@registry.kernel("Pow", since=(1, 7, 12, 13, 15), types={"T": _POW_BASE, "T1": NUMERIC_TYPES})
def power(node: NodeInfo):
    align = _legacy_broadcast(node)

    def compute(a, b):
        if align is not None:
            b = align(a, b)
        small = _small_integer_exponent(b) if a.dtype.kind in "fV" else None
        if small is not None:
            with np.errstate(over="ignore", under="ignore", invalid="ignore"):
                res = _float_power_by_squaring(a, small)
            # A one-element exponent of higher rank (a [1] against a 0-d base) adds 1-dims.
            return (res.reshape((1,) * (b.ndim - a.ndim) + a.shape),)
        if a.dtype.kind in "fV":
            if b.dtype.kind in "iu":
                b = b.astype(a.dtype)  # keeps the math in the base's float type
            res = np.power(a, b)
        elif b.dtype.kind in "iu" and not (b < 0).any():
            res = np.power(a, b)
        else:
            # Integer base with a float or negative exponent: compute in float64, truncate.
            with np.errstate(all="ignore"):
                res = np.trunc(np.power(a.astype(np.float64), b.astype(np.float64)))
        return (np.asarray(res).astype(a.dtype, copy=False),)

    return compute


# ---------------------------------------------------------------------------------------------
# Variadic, Clip, Where


def _variadic(fn: Callable) -> Callable:
    def compute(*xs):
        if len(xs) == 1:
            return (xs[0],)
        out = np.asarray(fn(xs[0], xs[1]))  # a 0-d result would be a NumPy scalar
        for x in xs[2:]:
            if np.broadcast_shapes(out.shape, x.shape) == out.shape:
                fn(out, x, out=out)  # out is our own fresh array
            else:
                out = fn(out, x)
        return (out,)

    return compute


@registry.kernel("Max", since=(1, 6, 8, 12, 13), types={"T": NUMERIC_TYPES})
def maximum(node: NodeInfo):
    return _variadic(np.maximum)


@registry.kernel("Min", since=(1, 6, 8, 12, 13), types={"T": NUMERIC_TYPES})
def minimum(node: NodeInfo):
    return _variadic(np.minimum)


@registry.kernel("Sum", since=(1, 6, 8, 13), types={"T": FLOAT_TYPES})
def sum_(node: NodeInfo):
    return _variadic(np.add)


@registry.kernel("Mean", since=(1, 6, 8, 13), types={"T": FLOAT_TYPES})
def mean(node: NodeInfo):
    total = _variadic(np.add)

    def compute(*xs):
        (s,) = total(*xs)
        return (np.asarray(np.divide(s, s.dtype.type(len(xs)))),)

    return compute


def _clamp(x: np.ndarray, lo, hi) -> np.ndarray:
    out = x
    if lo is not None:
        out = np.asarray(np.maximum(x, lo))  # a 0-d result would be a NumPy scalar
    if hi is not None:
        out = np.asarray(np.minimum(out, hi, out=None if out is x else out))
    return x.copy() if out is x else out.astype(x.dtype, copy=False)


def _scalar_bound(b: np.ndarray | None) -> np.ndarray | None:
    # Bounds are scalars; a [1]-shaped one must not broadcast a 0-d input up.
    return b.reshape(()) if b is not None and b.size == 1 else b


@registry.kernel("Clip", since=(1, 6), types={"T": FLOAT_TYPES})
@registry.kernel("Clip", since=(11,), types={"T": FLOAT_TYPES})
@registry.kernel("Clip", since=(12, 13), types={"T": NUMERIC_TYPES})
def clip(node: NodeInfo):
    if node.since_version < 11:
        lo_attr = node.attr("min", None)
        hi_attr = node.attr("max", None)

        def compute(x):
            lo = None if lo_attr is None else x.dtype.type(lo_attr)
            hi = None if hi_attr is None else x.dtype.type(hi_attr)
            return (_clamp(x, lo, hi),)

        return compute

    def compute(x, lo=None, hi=None):
        return (_clamp(x, _scalar_bound(lo), _scalar_bound(hi)),)

    return compute


@registry.kernel("Where", since=(9, 16))
def where(node: NodeInfo):
    def compute(cond, x, y):
        return (np.where(cond, x, y),)

    return compute
