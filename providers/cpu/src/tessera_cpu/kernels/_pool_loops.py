"""Compiled window reductions for the pools: one spatial axis at a time, as pool.py's NumPy form.

The input of one step is viewed as (A, N, B): A the axes before the pooled one, N the pooled
axis and B the (contiguous) axes after it; the output is (A, O, B). Taps that fall outside the
input are skipped, which is what padding with the identity (-inf for max, 0 for a sum) gives; a
window with no tap inside the input gets the identity.

Each (reduction, kernel size, stride, dilation) gets its own compiled pair of loops, with those
three as constants: the taps then unroll and the strided loads vectorize, which made the last
axis's loop 5x faster than one taking them as arguments. Indices inside the loops are kept
provably non-negative (offset views rather than ``i - pad``), because NumPy-style negative
indexing otherwise adds a wrap-around check to every load and stops vectorization.
Max propagates NaN as ``np.maximum`` does, through a flag kept beside the running maximum.
"""

from __future__ import annotations

import functools

import numpy as np

from tessera_cpu import _jit, _native

prange = _jit.prange

# Below this many tap reads (about 0.1 ms) a pass runs on the calling thread: handing half to a
# worker costs 30-40 us each way.
_PARALLEL_TAPS = 1_000_000
# The same on numba's threads (``_native``), whose split costs about 2.5 us.
_NATIVE_TAPS = 100_000


def lowest(dtype: np.dtype):
    """The identity of a max over ``dtype``: -inf, or the integer type's minimum."""
    return np.iinfo(dtype).min if dtype.kind in "iu" else -np.inf


@functools.cache
def _fill_values(kind: str, dtype: np.dtype) -> tuple:
    """(identity, NaN value) scalars of ``dtype`` for the loops: what a window with no tap
    inside the input gets (-inf or the minimum for max, 0 for sums), and what a max with a NaN
    tap gives (NaN; 0 for integers, which have none)."""
    identity = lowest(dtype) if kind == "max" else 0
    nan_value = np.nan if dtype.kind == "f" else 0
    return np.array(identity, dtype=dtype)[()], np.array(nan_value, dtype=dtype)[()]


def _bounds(n_in: int, n_out: int, pb: int, k: int, s: int, d: int) -> tuple[int, int]:
    """[lo, hi): the outputs whose every tap lies inside the input."""
    lo = 0
    while lo < n_out and s * lo - pb < 0:
        lo += 1
    hi = n_out
    while hi > lo and s * (hi - 1) - pb + (k - 1) * d >= n_in:
        hi -= 1
    return lo, hi


@functools.cache
def _loops(kind: str, k: int, s: int, d: int, parallel: bool = False):
    """The (inner, last) loops of one reduction for kernel size k, stride s, dilation d, over
    ``parts`` parts of the leading axis: on numba's threads with ``parallel`` (``_native``),
    else one after another (numba's prange is range in a loop compiled without it).

    Their closures hold only plain constants: numba's disk cache keys a closure by its pickled
    cells, and a cell holding another compiled function pickled differently in every process,
    so the loops were compiled again each time (0.4 s each)."""
    is_max = kind == "max"

    def inner(x, pb, lo, hi, identity, nan_value, y, parts):
        """x (A, N, B) -> y (A, O, B), vectorized over the contiguous B."""
        n_in, n_out, width = x.shape[1], y.shape[1], x.shape[2]
        # Interior rows (every tap inside) as runs over flat views: with stride 1 the whole
        # interior is one run per a (short rows, e.g. 28 wide, vectorize poorly one by one).
        run = (hi - lo) * width if s == 1 else width
        runs = 1 if s == 1 else hi - lo
        for part in prange(parts):
            for a in range(x.shape[0] * part // parts, x.shape[0] * (part + 1) // parts):
                xa = x[a].reshape(-1)
                ya = y[a].reshape(-1)
                for r in range(runs if hi > lo else 0):
                    win = xa[(s * (lo + r) - pb) * width :]
                    out = ya[(lo + r) * width : (lo + r) * width + run]
                    for j in range(run):
                        m = win[j]
                        nan = m != m
                        for t in range(1, k):
                            v = win[j + t * d * width]
                            m = (v if v > m else m) if is_max else m + v
                            if is_max:
                                nan |= v != v
                        out[j] = nan_value if (is_max and nan) else m
                for j in range(lo + n_out - hi):
                    o = j if j < lo else hi + j - lo
                    row = y[a, o]
                    for b in range(width):
                        row[b] = identity
                    for t in range(k):
                        i = s * o - pb + t * d
                        if i < 0 or i >= n_in:
                            continue
                        src = x[a, i]
                        for b in range(width):
                            m, v = row[b], src[b]
                            row[b] = (
                                nan_value
                                if (is_max and (v != v or m != m))
                                else ((v if v > m else m) if is_max else m + v)
                            )

    def last(x, pb, lo, hi, identity, nan_value, y, parts):
        """x (A, N) -> y (A, O): the last (strided) axis."""
        n_in, n_out = x.shape[1], y.shape[1]
        # Stride 1 over rows as wide as the output: one run over the flattened rows, output
        # j reading input j - pb + t*d. The positions near each row's ends, whose taps that run
        # took from the neighbouring row, are redone below from their valid taps alone.
        flat = s == 1 and n_out == n_in and hi > lo
        xf, yf = x.reshape(-1), y.reshape(-1)
        for part in prange(parts):
            a0 = x.shape[0] * part // parts
            a1 = x.shape[0] * (part + 1) // parts
            rows = min(1, a1 - a0) if flat else a1 - a0
            run = (a1 - a0) * n_out - lo - (n_out - hi) if flat else hi - lo
            for r in range(rows if hi > lo else 0):
                a = a0 + r
                # Unconditional views: under an `if`, this loop no longer vectorized.
                win = xf[a * n_in + s * lo - pb :]
                out = yf[a * n_out + lo : a * n_out + lo + run]
                for j in range(run):
                    m = win[s * j]
                    nan = m != m
                    for t in range(1, k):
                        v = win[s * j + t * d]
                        m = (v if v > m else m) if is_max else m + v
                        if is_max:
                            nan |= v != v
                    out[j] = nan_value if (is_max and nan) else m
            for a in range(a0, a1):
                src, dst = x[a], y[a]
                for j in range(lo + n_out - hi):
                    o = j if j < lo else hi + j - lo
                    m = identity
                    nan = False
                    for t in range(k):
                        i = s * o - pb + t * d
                        if 0 <= i < n_in:
                            v = src[i]
                            m = (v if v > m else m) if is_max else m + v
                            if is_max:
                                nan |= v != v
                    dst[o] = nan_value if (is_max and nan) else m

    # Distinct names: numba's disk cache tells functions apart by name, not by options.
    tag = f"{kind}_k{k}_s{s}_d{d}" + ("_par" if parallel else "")
    for fn, name in ((inner, "inner"), (last, "last")):
        fn.__qualname__ = fn.__name__ = f"{name}_{tag}"
    return _jit.loop(inner, parallel=parallel), _jit.loop(last, parallel=parallel)


def reduce_axis(x: np.ndarray, axis: int, k: int, s: int, d: int, pb: int, o: int, kind: str,
                native: bool = False):  # fmt: skip
    """One window step along ``axis`` of the C-contiguous ``x`` ("max" or "sum"); with
    ``native`` (``_native.enabled()`` when the kernel was built), split over numba's threads."""
    a = int(np.prod(x.shape[:axis], dtype=np.int64))
    b = int(np.prod(x.shape[axis + 1 :], dtype=np.int64))
    y = np.empty((*x.shape[:axis], o, *x.shape[axis + 1 :]), dtype=x.dtype)
    identity, nan_value = _fill_values(kind, x.dtype)
    which = 1 if b == 1 else 0  # _loops' (inner, last)
    if b == 1:
        x2, y2 = x.reshape(a, x.shape[axis]), y.reshape(a, o)
    else:
        x2, y2 = x.reshape(a, x.shape[axis], b), y.reshape(a, o, b)
    lo, hi = _bounds(x.shape[axis], o, pb, k, s, d)
    args = (pb, lo, hi, identity, nan_value)
    _split(a, x.size * k, native, lambda par: _loops(kind, k, s, d, par)[which], x2, args, y2)
    return y


def _split(count: int, taps: int, native: bool, loops, x, args: tuple, y) -> None:
    """Run ``loops(parallel)(x, *args, y, parts)`` over the ``count`` items of x's and y's
    leading axis: in parts on numba's threads (``native``), or in chunks on the provider's
    Python threads, when there are enough ``taps`` to pay for the split."""
    fn = loops(False)

    def chunk(a0: int, a1: int) -> None:
        fn(x[a0:a1], *args, y[a0:a1], 1)

    def parts(n: int) -> None:
        loops(True)(x, *args, y, n)

    native = native and taps >= _NATIVE_TAPS
    _native.split(count, chunk, parts, native=native, python=taps >= _PARALLEL_TAPS)


@functools.cache
def _loops2d(kind: str, kh: int, kw: int, sh: int, sw: int, dh: int, dw: int, parallel=False):
    """One loop for a whole 2-D pool ("max", or "avg" dividing by the window counts): per
    output row, the valid input rows are combined into a row buffer (vectorized along W), then
    the buffer's windows give the outputs. It reads the input once and writes the output once,
    where the per-axis loops write and read an intermediate (squeezenet's 64x111x111 max pool:
    0.13 ms against 0.23). Constants as in :func:`_loops`."""
    is_max = kind == "max"

    def pool(x, ph, pw, lo_w, hi_w, identity, nan_value, div_h, div_w, y, parts):
        n_h, n_w = x.shape[1], x.shape[2]
        out_h, out_w = y.shape[1], y.shape[2]
        for part in prange(parts):
            tmp = np.empty(n_w, x.dtype)
            for p in range(x.shape[0] * part // parts, x.shape[0] * (part + 1) // parts):
                for oy in range(out_h):
                    yr = y[p, oy]
                    first = True
                    for ky in range(kh):
                        iy = oy * sh - ph + ky * dh
                        if iy < 0 or iy >= n_h:
                            continue
                        src = x[p, iy]
                        if first:
                            for w in range(n_w):
                                tmp[w] = src[w]
                            first = False
                        else:
                            for w in range(n_w):
                                m, v = tmp[w], src[w]
                                if is_max:
                                    tmp[w] = (
                                        nan_value if (v != v or m != m) else (v if v > m else m)
                                    )
                                else:
                                    tmp[w] = m + v
                    if first:  # every row of these windows lies in the padding
                        for ox in range(out_w):
                            yr[ox] = identity
                        continue
                    # Windows whose columns all lie inside the row: taps unrolled, offsets >= 0.
                    win = tmp[sw * lo_w - pw :] if hi_w > lo_w else tmp
                    out = yr[lo_w:hi_w]
                    for j in range(hi_w - lo_w):
                        m = win[sw * j]
                        nan = m != m
                        for t in range(1, kw):
                            v = win[sw * j + t * dw]
                            if is_max:
                                m = v if v > m else m
                                nan |= v != v
                            else:
                                m = m + v
                        out[j] = nan_value if (is_max and nan) else m
                    for j in range(lo_w + out_w - hi_w):
                        ox = j if j < lo_w else hi_w + j - lo_w
                        m = identity
                        nan = False
                        for t in range(kw):
                            ix = ox * sw - pw + t * dw
                            if 0 <= ix < n_w:
                                v = tmp[ix]
                                if is_max:
                                    m = v if v > m else m
                                    nan |= v != v
                                else:
                                    m = m + v
                        yr[ox] = nan_value if (is_max and nan) else m
                    if not is_max:
                        dh_ = div_h[oy]
                        for ox in range(out_w):
                            yr[ox] = yr[ox] / max(dh_ * div_w[ox], 1)

    name = f"pool2d_{kind}_k{kh}x{kw}_s{sh}x{sw}_d{dh}x{dw}" + ("_par" if parallel else "")
    pool.__qualname__ = pool.__name__ = name
    return _jit.loop(pool, parallel=parallel)


def pool2d(x, ks, strides, dil, pb, out, kind: str, div_h=None, div_w=None, native=False):
    """A 2-D max pool, or an average pool dividing by ``div_h[oy] * div_w[ox]`` (at least 1),
    of the C-contiguous (N, C, H, W) ``x``; ``native`` as in :func:`reduce_axis`."""
    n, c, h, w = x.shape
    y = np.empty((n, c, *out), dtype=x.dtype)
    if kind == "max":
        div_h = div_w = np.ones(1, x.dtype)
    identity, nan_value = _fill_values(kind, x.dtype)
    lo_w, hi_w = _bounds(w, out[1], pb[1], ks[1], strides[1], dil[1])
    geo = (kind, ks[0], ks[1], strides[0], strides[1], dil[0], dil[1])
    x3, y3 = x.reshape(n * c, h, w), y.reshape(n * c, *out)
    args = (pb[0], pb[1], lo_w, hi_w, identity, nan_value, div_h, div_w)
    taps = x.size * ks[0] * ks[1] // 4  # one pass over the input rows, not one per tap
    _split(n * c, taps, native, lambda par: _loops2d(*geo, par), x3, args, y3)
    return y
