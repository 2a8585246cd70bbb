"""Compiled float32 loops that need exp: Gelu (exact and tanh forms) and last-axis Softmax.

The loops read ``rows`` runs of ``cols`` elements, ``stride`` apart, of a flat array: a
contiguous tensor is one run, and a column band of a larger product (as FusedMatMul's epilogue
has its blocks) is one run per row, so the inner loop is always contiguous and vectorizes
(numba's own strided 2-D arrays did not). :func:`tessera_cpu._jit.runs` makes that view.

numba compiles ``math.exp`` to a call into libm per element (2 ns here, five times NumPy's
vectorized exp), so these loops carry their own exp: Cody-Waite range reduction to
r in [-ln2/2, ln2/2], a degree-6 polynomial for e^r (Cephes' expf coefficients, within 1 ulp),
and the power of two built directly in the exponent bits. Everything is then inline and the
loops vectorize. Imported only when compiled loops are enabled: it needs numba at import.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from tessera_cpu import _jit, _native, _parallel

prange = _jit.prange

# In place on the provider's threads from this many elements (BERT's feed-forward Gelu,
# 128 x 3072: 0.7 ms on one thread).
_SPLIT_ELEMENTS = 1 << 17


@intrinsic
def _float32_from_bits(typingctx, bits):
    """The float32 whose bit pattern is the int32 ``bits``."""
    if not isinstance(bits, types.Integer) or bits.bitwidth != 32:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())

    return types.float32(bits), codegen


_LOG2E = np.float32(1.4426950408889634)
_LN2_HI = np.float32(0.693359375)
_LN2_LO = np.float32(-2.12194440e-4)
_EXP_MAX = np.float32(88.37)  # e^x is inf above (2^127.5; the scale below needs n <= 127)
_EXP_MIN = np.float32(-87.3365447504019)  # 2^-126: results below are flushed to 0
_P0 = np.float32(1.9875691500e-4)
_P1 = np.float32(1.3981999507e-3)
_P2 = np.float32(8.3334519073e-3)
_P3 = np.float32(4.1665795894e-2)
_P4 = np.float32(1.6666665459e-1)
_P5 = np.float32(5.0000001201e-1)
_ONE = np.float32(1.0)
_HALF = np.float32(0.5)
_ZERO = np.float32(0.0)
_INF = np.float32(np.inf)


def _exp32(x):
    """e^x in float32 for a float32 x; inf above the range, 0 below it, NaN for NaN."""
    big = x > _EXP_MAX
    tiny = x < _EXP_MIN
    y = min(max(x, _EXP_MIN), _EXP_MAX)
    n = np.float32(np.floor(y * _LOG2E + _HALF))
    r = y - n * _LN2_HI - n * _LN2_LO
    p = (((((_P0 * r + _P1) * r + _P2) * r + _P3) * r + _P4) * r + _P5) * (r * r) + r + _ONE
    scale = _float32_from_bits(np.int32((np.int32(n) + np.int32(127)) << np.int32(23)))
    e = p * scale
    e = _INF if big else e
    e = _ZERO if tiny else e
    return e if x == x else x


_exp32 = _jit.inline(_exp32)


def _gelu_value(v, erf, coeffs, smax, c1, c3):
    """Gelu of one float32: the exact form x / (1 + exp(x * p(min(x^2, smax)))) with p the
    negated logit fit activation.py makes (``coeffs``, lowest first), or the tanh form
    x / (1 + exp(x * (c1 + c3 x^2)))."""
    if erf:
        s = min(v * v, smax)
        degree = len(coeffs) - 1
        acc = coeffs[degree]
        for k in range(degree - 1, -1, -1):
            acc = acc * s + coeffs[k]
        return v / (_ONE + _exp32(acc * v))
    return v / (_ONE + _exp32(v * (c1 + c3 * (v * v))))


_gelu_value = _jit.inline(_gelu_value)


class GeluLoops:
    """Float32 Gelu as two loops over :func:`tessera_cpu._jit.runs` views: ``apply(x, out,
    rows, cols, stride)`` and ``in_place(x, rows, cols, stride)``. In place is its own loop
    because with ``out is x`` the aliasing check LLVM adds before the vector loop fails, and
    the scalar fallback ran 7x slower. The closures hold only constants: numba's disk cache
    keys a closure by its pickled cells, and a cell holding a compiled function pickles
    differently in every process (the loops were compiled again each time)."""

    def __init__(self, erf: bool, coeffs: tuple, smax, c1, c3, tag: str) -> None:
        def apply(x, out, rows, cols, stride):
            for r in range(rows):
                xr, outr = x[r * stride :], out[r * stride :]  # offset views: i >= 0 is provable
                for i in range(cols):
                    outr[i] = _gelu_value(xr[i], erf, coeffs, smax, c1, c3)

        def in_place(x, rows, cols, stride):
            for r in range(rows):
                xr = x[r * stride :]
                for i in range(cols):
                    xr[i] = _gelu_value(xr[i], erf, coeffs, smax, c1, c3)

        apply.__qualname__ = apply.__name__ = f"{tag}_apply"
        in_place.__qualname__ = in_place.__name__ = f"{tag}_in_place"
        self._apply, self._in_place = _jit.loop(apply), _jit.loop(in_place)

    def __call__(self, x: np.ndarray, out: np.ndarray | None = None) -> bool:
        """out = Gelu(x) (in place when out is None or x); False, untouched, when either is
        not laid out as runs of the same shape."""
        src = _jit.runs(x)
        if src is None:
            return False
        if out is None or out is x:
            flat, rows, cols, _ = src
            if rows == 1 and x.size >= _SPLIT_ELEMENTS:
                # A contiguous tensor: chunks of its run on the provider's threads.
                _parallel.run_chunks(cols, lambda a, b: self._in_place(flat[a:], 1, b - a, 0))
                return True
            self._in_place(*src)
            return True
        dst = _jit.runs(out)
        if dst is None or dst[1:] != src[1:]:
            return False
        self._apply(src[0], dst[0], *src[1:])
        return True


def gelu_erf_loops(poly: np.ndarray, smax: np.float32) -> GeluLoops:
    """Exact Gelu with the coefficients of activation.py's NumPy form."""
    coeffs = tuple(np.float32(c) for c in poly)
    return GeluLoops(True, coeffs, np.float32(smax), _ONE, _ONE, f"gelu_erf_d{len(coeffs) - 1}")


def gelu_tanh_loops(c3: np.float32, c1: np.float32) -> GeluLoops:
    """Gelu's tanh form; c1 = -2 sqrt(2/pi) and c3 = 0.044715 c1."""
    return GeluLoops(False, (_ONE,), _ONE, np.float32(c1), np.float32(c3), "gelu_tanh")


# -- Softmax over the last axis (float32) -------------------------------------------------------
_LANES = 16  # the running maximum is kept per lane, so its loop is elementwise and vectorizes


@_jit.loop(fastmath={"reassoc"})
def _softmax_rows(x, y, r0, r1):  # pragma: no cover - compiled
    """``y[r] = exp(x[r] - max) / sum`` for rows r0..r1 of (R, N) float32 arrays, with the row's
    own maximum as the shift (exp of at most 0: no overflow) and the sum reassociated so it
    vectorizes. NaN or +inf in a row make the whole row NaN, as NumPy's passes do."""
    n = x.shape[1]
    full = n // _LANES * _LANES
    lanes = np.empty(_LANES, np.float32)
    for r in range(r0, r1):
        xr = x[r]
        yr = y[r]
        m = xr[0]
        if full > 0:
            for lane in range(_LANES):
                lanes[lane] = xr[lane]
            for j in range(_LANES, full, _LANES):
                for lane in range(_LANES):
                    v = xr[j + lane]
                    a = lanes[lane]
                    lanes[lane] = v if v > a else a
            m = lanes[0]
            for lane in range(1, _LANES):
                v = lanes[lane]
                m = v if v > m else m
        for j in range(full, n):
            v = xr[j]
            m = v if v > m else m
        s = _ZERO
        for j in range(n):
            e = _exp32(xr[j] - m)
            yr[j] = e
            s += e
        inv = _ONE / s
        for j in range(n):
            yr[j] = yr[j] * inv


@_jit.loop(parallel=True)
def _softmax_parts(x, y, parts):  # pragma: no cover - compiled
    rows = x.shape[0]
    for t in prange(parts):
        _softmax_rows(x, y, rows * t // parts, rows * (t + 1) // parts)


# Rows split over numba's threads (``_native``) from this many elements.
_SOFTMAX_SPLIT_ELEMENTS = 1 << 14


def softmax_rows(x2: np.ndarray, native: bool) -> np.ndarray:
    """Softmax over the rows of a C-contiguous 2-D float32 array, split over numba's threads
    with ``native`` when large enough."""
    y = np.empty_like(x2)
    _native.split(
        x2.shape[0],
        lambda r0, r1: _softmax_rows(x2, y, r0, r1),
        lambda parts: _softmax_parts(x2, y, parts),
        native=native and x2.size >= _SOFTMAX_SPLIT_ELEMENTS,
    )
    return y
