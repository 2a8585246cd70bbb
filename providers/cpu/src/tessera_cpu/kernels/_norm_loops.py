"""Compiled loops for inference BatchNormalization (with its activation) and LayerNormalization.

As NumPy operations, a batch normalization followed by Relu is three passes over the tensor (and
a temporary), and a layer normalization six or more; as loops each is one pass over memory (a
layer-norm row is re-read from cache). The kernels in normalization.py use these when
``tessera_cpu._jit.enabled()`` and keep their NumPy forms as the general path.

Every loop takes ``start, stop``: the rows it computes, so ``_parallel.run_chunks`` can split it.
The BatchNormalization loops give exactly the NumPy passes' results (``x * a + b``, then the
activation; no fastmath, so no fused multiply-add) and propagate NaN as NumPy does. The
LayerNormalization loop allows reassociation only, so its row sums vectorize (see there).
"""

from __future__ import annotations

import math

import numpy as np

from tessera_cpu import _jit, _native

prange = _jit.prange

# Tensors below these sizes (elements) run on the calling thread. Both loops are bound by memory
# bandwidth once the tensor leaves L2, and on the 2-core benchmark machine a second thread gained
# nothing below about 1M elements for BN (float32 1x512x28x28: 97 us on one thread, 120 us split;
# 1x64x128x128: 275 against 218 us) and below a few M for LN (512x768: 105 against 134 us;
# 4096x1024: between 1.1x slower and 1.6x faster from run to run; 6144x1024: 1.7x faster).
_BN_SPLIT_ELEMENTS = 1 << 20
_LN_SPLIT_ELEMENTS = 1 << 22
# The same on numba's threads (``_native``), whose split costs about 2.5 us instead of 30-75.
_NATIVE_SPLIT_ELEMENTS = 1 << 15


@_jit.loop
def _bn_clip_rows(x, a, b, lo, hi, y, start, stop):  # pragma: no cover - compiled
    """``y[r] = clip(x[r] * a[c] + b[c], lo, hi)`` for rows r of (N*C, S) arrays, c = r % C.

    Relu is clip(0, inf), no activation clip(-inf, inf). The comparisons keep NaN (as
    np.maximum / np.minimum do): NaN < lo and NaN > hi are both false."""
    channels = a.shape[0]
    size = x.shape[1]
    for r in range(start, stop):
        c = r % channels
        ac = a[c]
        bc = b[c]
        xr = x[r]
        yr = y[r]
        for j in range(size):
            v = xr[j] * ac + bc
            v = lo if v < lo else v
            yr[j] = hi if v > hi else v


@_jit.loop
def _bn_leaky_rows(x, a, b, alpha, y, start, stop):  # pragma: no cover - compiled
    """``y[r] = leaky_relu(x[r] * a[c] + b[c], alpha)``: ``v`` where ``v >= 0``, else
    ``alpha * v`` (what ``max(v, alpha*v)`` / ``min`` for alpha > 1 give; NaN stays NaN)."""
    channels = a.shape[0]
    size = x.shape[1]
    for r in range(start, stop):
        c = r % channels
        ac = a[c]
        bc = b[c]
        xr = x[r]
        yr = y[r]
        for j in range(size):
            v = xr[j] * ac + bc
            yr[j] = v if v >= 0 else v * alpha


@_jit.loop(parallel=True)
def _bn_clip_parts(x, a, b, lo, hi, y, parts):  # pragma: no cover - compiled
    for part in prange(parts):
        rows = x.shape[0]
        _bn_clip_rows(x, a, b, lo, hi, y, rows * part // parts, rows * (part + 1) // parts)


@_jit.loop(parallel=True)
def _bn_leaky_parts(x, a, b, alpha, y, parts):  # pragma: no cover - compiled
    for part in prange(parts):
        rows = x.shape[0]
        _bn_leaky_rows(x, a, b, alpha, y, rows * part // parts, rows * (part + 1) // parts)


@_jit.loop(parallel=True)
def _layer_norm_parts(x, scale, bias, consts, y, mean, inv, parts):  # pragma: no cover
    for part in prange(parts):
        rows = x.shape[0]
        _layer_norm_rows(x, scale, bias, consts, y, mean, inv, rows * part // parts,
                         rows * (part + 1) // parts)  # fmt: skip


def _run(rows: int, size: int, split_at: int, native: bool, serial, parallel) -> None:
    """Over numba's threads (``native``) from _NATIVE_SPLIT_ELEMENTS elements, or over the
    provider's Python threads from ``split_at``."""
    native = native and size >= _NATIVE_SPLIT_ELEMENTS
    _native.split(rows, serial, parallel, native=native, python=size >= split_at)


def batch_norm(
    x: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    activation: str,
    params: list[float],
    native: bool = False,
) -> np.ndarray:
    """``activation(x * a[c] + b[c])`` over channel axis 1 of a C-contiguous float32/float64
    ``x`` of rank >= 2 (``a``, ``b`` of shape (C,) and x's dtype); activation "", "Relu",
    "LeakyRelu" (params [alpha]) or "Clip" (params [min, max]). ``native``: split over numba's
    threads (``_native.enabled()`` when the kernel was built)."""
    n, channels = x.shape[0], x.shape[1]
    rows = n * channels
    x2 = x.reshape(rows, math.prod(x.shape[2:]))
    y = np.empty_like(x)
    y2 = y.reshape(x2.shape)
    dt = x.dtype.type
    if activation == "LeakyRelu":
        alpha = dt(params[0])

        def chunk(s: int, e: int) -> None:
            _bn_leaky_rows(x2, a, b, alpha, y2, s, e)

        def parts(n: int) -> None:
            _bn_leaky_parts(x2, a, b, alpha, y2, n)

    else:
        if activation == "Relu":
            lo, hi = dt(0), dt(np.inf)
        elif activation == "Clip":
            lo, hi = dt(params[0]), dt(params[1])
        else:
            lo, hi = dt(-np.inf), dt(np.inf)

        def chunk(s: int, e: int) -> None:
            _bn_clip_rows(x2, a, b, lo, hi, y2, s, e)

        def parts(n: int) -> None:
            _bn_clip_parts(x2, a, b, lo, hi, y2, n)

    _run(rows, x.size, _BN_SPLIT_ELEMENTS, native, chunk, parts)
    return y


# Only reassociation: the row sums vectorize (8 float32 partial sums per AVX register) instead
# of running one addition at a time (128x768 rows: 19.5 us against 49 us). No nnan/ninf/nsz/
# contract, so NaN and inf propagate and there is no fused multiply-add; the sums differ from
# NumPy's (also blocked) order by rounding only, within the tests' tolerances.
@_jit.loop(fastmath={"reassoc"})
def _layer_norm_rows(x, scale, bias, consts, y, mean, inv, start, stop):  # pragma: no cover
    """Per row r of (R, D) ``x``: mean, biased variance of ``x[r] - mean``, then
    ``y[r] = (x[r] - mean) * inv * scale + bias`` with ``inv = 1 / sqrt(var + eps)``.

    ``consts`` holds 0, the row length, 1 and epsilon in x's dtype, so the arithmetic stays in
    that dtype (a Python float would make it float64)."""
    cols = x.shape[1]
    zero, count, one, eps = consts[0], consts[1], consts[2], consts[3]
    for r in range(start, stop):
        xr = x[r]
        t = zero
        for j in range(cols):
            t += xr[j]
        m = t / count
        t = zero
        for j in range(cols):
            d = xr[j] - m
            t += d * d
        k = one / np.sqrt(t / count + eps)
        mean[r] = m
        inv[r] = k
        yr = y[r]
        for j in range(cols):
            yr[j] = (xr[j] - m) * k * scale[j] + bias[j]


def layer_norm(
    x2: np.ndarray, scale: np.ndarray, bias: np.ndarray, eps: float, native: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Layer normalization of the rows of a C-contiguous 2-D float32/float64 ``x2`` with
    ``scale`` and ``bias`` of shape (D,) in its dtype: (y, per-row mean, per-row 1/std).
    ``native`` as in :func:`batch_norm`."""
    rows = x2.shape[0]
    y = np.empty_like(x2)
    mean = np.empty(rows, x2.dtype)
    inv = np.empty(rows, x2.dtype)
    consts = np.array([0, max(x2.shape[1], 1), 1, eps], x2.dtype)

    def chunk(s: int, t: int) -> None:
        _layer_norm_rows(x2, scale, bias, consts, y, mean, inv, s, t)

    def parts(n: int) -> None:
        _layer_norm_parts(x2, scale, bias, consts, y, mean, inv, n)

    _run(rows, x2.size, _LN_SPLIT_ELEMENTS, native, chunk, parts)
    return y, mean, inv
