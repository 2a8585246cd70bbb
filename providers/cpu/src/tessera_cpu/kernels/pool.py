"""Pooling kernels (Average/Max/Lp pools, their Global forms, MaxUnpool, MaxRoiPool, RoiAlign), vectorized over kernel taps."""

from __future__ import annotations

import itertools
import math

import numpy as np

from tessera.provider import FLOAT_TYPES, NodeInfo
from tessera_cpu import _jit, _native
from tessera_cpu.kernels import _pool_loops
from tessera_cpu.kernels._registry import registry
from tessera_cpu.kernels.conv import compute_dtype, fill_window, window_attrs

_MAXPOOL_TYPES = (*FLOAT_TYPES, "tensor(int8)", "tensor(uint8)")
_LOOP_KINDS = {np.maximum: "max", np.add: "sum"}
_SINGLE_LOOP_WIDTH = 48
_LOOP_DTYPES = tuple(np.dtype(t) for t in ("float32", "float64", "int8", "uint8"))


class _PoolGeometry:
    """Output shape, padding and tap layout of a pool for one input shape."""

    def __init__(self, node: NodeInfo, x_shape: tuple, attrs: tuple, ceil_mode: bool) -> None:
        ks, strides, dil, pads, auto_pad = attrs
        nd = len(x_shape) - 2
        if ks is None:
            raise ValueError(f"{node.describe()}: kernel_shape is required")
        if nd < 1:
            raise ValueError(f"{node.describe()}: input of shape {x_shape} has no spatial axes")
        ks, strides, dil, pads = fill_window(node, nd, ks, strides, dil, pads)
        in_sp = x_shape[2:]
        pb, pe, out = [], [], []
        for i in range(nd):
            keff = (ks[i] - 1) * dil[i] + 1
            if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
                o = -(-in_sp[i] // strides[i])
                total = max(0, (o - 1) * strides[i] + keff - in_sp[i])
                b = total // 2 if auto_pad == "SAME_UPPER" else total - total // 2
                pb.append(b)
                pe.append(total - b)
            else:
                b, e = (0, 0) if auto_pad == "VALID" else (pads[i], pads[i + nd])
                span = in_sp[i] + b + e - keff
                if ceil_mode:
                    o = -(-span // strides[i]) + 1
                    # The last window must start inside the input or the left padding.
                    if (o - 1) * strides[i] >= in_sp[i] + b:
                        o -= 1
                else:
                    o = span // strides[i] + 1
                pb.append(b)
                pe.append(e)
            if o < 1:
                raise ValueError(
                    f"{node.describe()}: input {x_shape} is smaller than the pooling window"
                )
            out.append(o)
        self.ks, self.strides, self.dil = ks, strides, dil
        self.pb, self.pe, self.out, self.in_sp = pb, pe, out, tuple(in_sp)
        self.extent = [(o - 1) * s + (k - 1) * d + 1 for o, s, k, d in zip(out, strides, ks, dil)]
        # One window that is exactly the whole input (ResNet's 7x7 average): a global pool.
        self.is_global = all(
            o == 1 and k == n and d == 1 and b == 0 and e == 0
            for o, k, n, d, b, e in zip(out, ks, in_sp, dil, pb, pe)
        )
        self.taps = list(itertools.product(*(range(k) for k in ks)))
        self._made: dict = {}  # window counts and divisors, made on first use
        # 2-D pools over wide rows run as one compiled loop (_pool_loops.pool2d): 1.2-1.8x
        # faster than the per-axis loops on 56-112 wide rows; on narrow ones (14, 28) those,
        # which run over the flattened rows, were 1.3-1.5x faster.
        self.single_loop = nd == 2 and in_sp[1] >= _SINGLE_LOOP_WIDTH

    def padded(self, x: np.ndarray, fill) -> np.ndarray:
        """x placed at offset pb in a buffer covering every window (fill elsewhere)."""
        if not any(self.pb) and all(e == i for e, i in zip(self.extent, self.in_sp)):
            return x
        buf = np.full(x.shape[:2] + tuple(self.extent), fill, dtype=x.dtype)
        src, dst = [], []
        for b, e, i in zip(self.pb, self.extent, self.in_sp):
            n = max(0, min(i, e - b))
            src.append(slice(0, n))
            dst.append(slice(b, b + n))
        buf[(Ellipsis, *dst)] = x[(Ellipsis, *src)]
        return buf

    def reduce(self, x: np.ndarray, op, init, loops: bool = False, native: bool = False):
        """Window reduction with a separable ufunc (maximum, add), one spatial axis at a time.

        Each tap only touches the output positions whose source lies inside the input, so no
        padded copy is made; outer axes go first, keeping the inner loops contiguous. With
        ``loops`` (compiled loops enabled), each axis is one compiled pass over its taps, split
        over numba's threads with ``native``.
        """
        y = x
        kind = _LOOP_KINDS.get(op) if loops and x.dtype in _LOOP_DTYPES else None
        if kind == "max" and self.single_loop:
            return _pool_loops.pool2d(
                np.ascontiguousarray(x), self.ks, self.strides, self.dil, self.pb, self.out, kind,
                native=native,
            )  # fmt: skip
        for a in range(len(self.out)):
            if kind is not None:
                y = _pool_loops.reduce_axis(
                    np.ascontiguousarray(y),
                    2 + a,
                    self.ks[a],
                    self.strides[a],
                    self.dil[a],
                    self.pb[a],
                    self.out[a],
                    kind,
                    native,
                )
            else:
                y = self._reduce_axis(y, a, op, init)
        return y

    def _reduce_axis(self, x: np.ndarray, a: int, op, init) -> np.ndarray:
        k, s, d, pb, o = self.ks[a], self.strides[a], self.dil[a], self.pb[a], self.out[a]
        n_in = x.shape[2 + a]
        if k > 1 and x.flags.c_contiguous:
            y = None
            if s == 1 and n_in <= 2 * o <= 2 * n_in:
                y = self._reduce_axis_flat(x, a, op, init)
            elif s > 1 and n_in == s * o and 2 + a == x.ndim - 1:
                y = self._reduce_last_axis_strided(x, a, op, init)
            if y is not None:
                return y
        pre = (slice(None),) * (2 + a)

        def window(lo: int, hi: int, off: int) -> np.ndarray:
            return x[(*pre, slice(lo * s + off, (hi - 1) * s + off + 1, s))]

        spans = []
        for j in range(k):
            off = j * d - pb
            lo = 0 if off >= 0 else (-off + s - 1) // s
            hi = min(o, (n_in - 1 - off) // s + 1) if n_in - 1 - off >= 0 else 0
            if hi > lo:
                spans.append((lo, hi, off))
        shape = list(x.shape)
        shape[2 + a] = o
        full = next((sp for sp in spans if sp[0] == 0 and sp[1] == o), None)
        if full is None:
            y = np.full(shape, init, dtype=x.dtype)
        else:
            spans.remove(full)
            if not spans:
                return np.array(window(*full))
            # The first write combines the full tap with another one: no copy pass.
            lo, hi, off = spans.pop(0)
            y = np.empty(shape, dtype=x.dtype)
            op(window(lo, hi, full[2]), window(lo, hi, off), out=y[(*pre, slice(lo, hi))])
            if lo > 0:
                y[(*pre, slice(0, lo))] = window(0, lo, full[2])
            if hi < o:
                y[(*pre, slice(hi, o))] = window(hi, o, full[2])
        for lo, hi, off in spans:
            dst = y[(*pre, slice(lo, hi))]
            op(dst, window(lo, hi, off), out=dst)
        return y

    def _reduce_axis_flat(self, x: np.ndarray, a: int, op, init) -> np.ndarray | None:
        """A stride-1 window along spatial axis ``a``, reduced over the flattened array.

        On small feature maps (13 or 27 wide in inception) NumPy's per-row loop overhead
        dominates a reduction over shifted views. In a C-contiguous array a shift along ``a``
        is a shift of the flat array by off * (size of the axes after ``a``), so each tap is one
        long contiguous operation. The few positions near either end of the axis, where a
        shifted view crosses into the neighbouring plane (or the padding), are then recomputed
        from their valid taps alone. Output index j reads input index j + off, so the result
        keeps the input's extent along ``a`` and is sliced to the output's. None when the
        array is too small to have an interior.
        """
        k, d, pb, o = self.ks[a], self.dil[a], self.pb[a], self.out[a]
        w = x.shape[2 + a]
        inner = math.prod(x.shape[3 + a :])
        offs = [j * d - pb for j in range(k)]
        left = max(0, -min(offs))  # output indices whose window starts in the padding
        right = max(0, max(offs))  # ... or ends past the axis
        xf = x.reshape(-1)
        n = xf.size
        lo, hi = left * inner, n - right * inner
        if hi - lo < w * inner:
            return None
        shifts = [off * inner for off in offs]
        y = np.empty(x.shape, dtype=x.dtype)
        yf = y.reshape(-1)
        op(xf[lo + shifts[0] : hi + shifts[0]], xf[lo + shifts[1] : hi + shifts[1]], out=yf[lo:hi])
        for sh in shifts[2:]:
            op(yf[lo:hi], xf[lo + sh : hi + sh], out=yf[lo:hi])
        pre = (slice(None),) * (2 + a)
        for j in (*range(min(left, o)), *range(max(w - right, left), o)):
            dst = y[(*pre, j)]
            valid = [j + off for off in offs if 0 <= j + off < w]
            if not valid:
                dst[...] = init
                continue
            np.copyto(dst, x[(*pre, valid[0])])
            for src in valid[1:]:
                op(dst, x[(*pre, src)], out=dst)
        return y if o == w else np.ascontiguousarray(y[(*pre, slice(0, o))])

    def _reduce_last_axis_strided(self, x: np.ndarray, a: int, op, init) -> np.ndarray | None:
        """A strided window along the last axis when the input is exactly stride * output wide.

        Then output position q of the flattened result reads input position stride * q + off
        of the flattened input for every row at once: one long strided loop per tap instead of
        one short one per row (1.6x faster on ResNet's 112-wide max pool). Output columns near
        the row ends, where a tap falls into the padding or the next row, are then recomputed
        from their valid taps alone. None when the array is too small to have an interior.
        """
        k, s, d, pb, o = self.ks[a], self.strides[a], self.dil[a], self.pb[a], self.out[a]
        n_in = x.shape[-1]
        offs = [j * d - pb for j in range(k)]
        # Output columns j whose every tap s*j + off lies inside the row: [first, stop).
        first = max(max(0, (-off + s - 1) // s) for off in offs)
        stop = min(o, *((n_in - 1 - off) // s + 1 for off in offs))
        rows = x.size // n_in
        if stop - first < 1 or rows * o - (o - stop) - first < o:
            return None
        xf = x.reshape(-1)
        y = np.empty((*x.shape[:-1], o), dtype=x.dtype)
        yf = y.reshape(-1)
        lo, hi = first, rows * o - (o - stop)

        def tap(off: int) -> np.ndarray:
            return xf[s * lo + off : s * (hi - 1) + off + 1 : s]

        op(tap(offs[0]), tap(offs[1]), out=yf[lo:hi])
        for off in offs[2:]:
            op(yf[lo:hi], tap(off), out=yf[lo:hi])
        for j in (*range(first), *range(max(stop, first), o)):
            dst = y[..., j]
            valid = [s * j + off for off in offs if 0 <= s * j + off < n_in]
            if not valid:
                dst[...] = init
                continue
            np.copyto(dst, x[..., valid[0]])
            for src in valid[1:]:
                op(dst, x[..., src], out=dst)
        return y

    def tap(self, buf: np.ndarray, kk: tuple) -> np.ndarray:
        sl = tuple(
            slice(k * d, k * d + (o - 1) * s + 1, s)
            for k, d, o, s in zip(kk, self.dil, self.out, self.strides)
        )
        return buf[(Ellipsis, *sl)]

    def average(self, x: np.ndarray, include_pad: bool, native: bool = False) -> np.ndarray:
        """A 2-D average pool of float32/float64 ``x`` as one compiled loop, divisions included."""
        return _pool_loops.pool2d(
            np.ascontiguousarray(x),
            self.ks,
            self.strides,
            self.dil,
            self.pb,
            self.out,
            "avg",
            *self._cached(("counts", include_pad, x.dtype), self._counts, include_pad, x.dtype),
            native=native,
        )

    def divisor(self, include_pad: bool, dtype: np.dtype) -> np.ndarray:
        """The average's divisor for every output position (at least 1), made once."""
        return self._cached(
            ("divisor", include_pad, dtype),
            lambda: np.maximum(self.axis_counts(include_pad), 1).astype(dtype),
        )

    def _cached(self, key: tuple, make, *args):
        value = self._made.get(key)
        if value is None:
            value = self._made[key] = make(*args)
        return value

    def axis_counts(self, include_pad: bool) -> np.ndarray:
        """How many taps of each window land inside the input (or its explicit pads): (*out)."""
        total = None
        for cnt in self._counts(include_pad):
            total = cnt if total is None else np.multiply.outer(total, cnt)
        return total

    def _counts(self, include_pad: bool, dtype=np.int64) -> list[np.ndarray]:
        """Per spatial axis, how many taps of each window position land inside."""
        counts = []
        for a in range(len(self.out)):
            lo, hi = (
                (-self.pb[a], self.in_sp[a] + self.pe[a]) if include_pad else (0, self.in_sp[a])
            )
            pos = (
                np.arange(self.out[a])[:, None] * self.strides[a]
                - self.pb[a]
                + np.arange(self.ks[a])[None] * self.dil[a]
            )
            counts.append(((pos >= lo) & (pos < hi)).sum(1).astype(dtype))
        return counts

    def tap_valid_and_index(self, kk: tuple, column_major: bool) -> tuple[np.ndarray, np.ndarray]:
        """For one tap: whether it hits the input at each output position, and its flat input index."""
        nd = len(self.out)
        valid = np.ones((), dtype=bool)
        index = np.zeros((), dtype=np.int64)
        for a in range(nd):
            coord = np.arange(self.out[a]) * self.strides[a] - self.pb[a] + kk[a] * self.dil[a]
            shape = [1] * nd
            shape[a] = -1
            coord = coord.reshape(shape)
            valid = valid & (coord >= 0) & (coord < self.in_sp[a])
            stride = math.prod(self.in_sp[:a]) if column_major else math.prod(self.in_sp[a + 1 :])
            index = index + coord * stride
        return valid, index


def _geometry_cache(node: NodeInfo, attrs: tuple, ceil_mode: bool):
    cache: dict = {}

    def get(shape: tuple) -> _PoolGeometry:
        g = cache.get(shape)
        if g is None:
            g = cache[shape] = _PoolGeometry(node, shape, attrs, ceil_mode)
        return g

    return get


@registry.kernel("MaxPool", since=(1, 8, 10, 11, 12, 22), types={"T": _MAXPOOL_TYPES})
def max_pool(node: NodeInfo):
    attrs = window_attrs(node)
    geo = _geometry_cache(node, attrs, bool(node.attr("ceil_mode", 0)))
    storage_order = int(node.attr("storage_order", 0))
    want_indices = node.num_outputs > 1 and node.outputs[1] != ""
    loops = _jit.enabled()
    native = loops and _native.enabled()

    def compute(x):
        g = geo(x.shape)
        if g.is_global and not want_indices:
            keep = x.shape[:2] + (1,) * (x.ndim - 2)
            y = np.maximum.reduce(x.reshape(x.shape[0], x.shape[1], -1), axis=2).reshape(keep)
            return (y,) if node.num_outputs == 1 else (y, None)
        y = g.reduce(x, np.maximum, _pool_loops.lowest(x.dtype), loops, native)
        if not want_indices:
            return (y,) if node.num_outputs == 1 else (y, None)
        # Indices: the first tap (in window order) that holds the maximum.
        buf = g.padded(x, _pool_loops.lowest(x.dtype))
        idx = np.full(y.shape, -1, dtype=np.int64)
        for kk in g.taps:
            valid, flat = g.tap_valid_and_index(kk, storage_order == 1)
            hit = (g.tap(buf, kk) == y) & valid & (idx < 0)
            np.copyto(idx, np.broadcast_to(flat, y.shape), where=hit)
        n, c = x.shape[:2]
        plane = math.prod(x.shape[2:])
        idx += (np.arange(n * c, dtype=np.int64) * plane).reshape((n, c) + (1,) * (x.ndim - 2))
        return (y, idx)

    return compute


@registry.kernel("AveragePool", since=(1, 7, 10, 11, 19, 22), types={"T": FLOAT_TYPES})
def average_pool(node: NodeInfo):
    attrs = window_attrs(node)
    geo = _geometry_cache(node, attrs, bool(node.attr("ceil_mode", 0)))
    include_pad = bool(node.attr("count_include_pad", 0))
    loops = _jit.enabled()
    native = loops and _native.enabled()

    def compute(x):
        g = geo(x.shape)
        dt = compute_dtype(x.dtype)
        if g.is_global:
            return (_global_mean(x, dt),)
        xc = x.astype(dt, copy=False)
        if loops and g.single_loop and dt in _LOOP_DTYPES:
            return (g.average(xc, include_pad, native).astype(x.dtype, copy=False),)
        y = g.reduce(xc, np.add, 0, loops, native)
        y /= g.divisor(include_pad, dt)
        return (y.astype(x.dtype, copy=False),)

    return compute


def _lp_p(node: NodeInfo) -> float:
    p = float(node.attr("p", 2))
    if p <= 0:
        raise ValueError(f"{node.describe()}: p must be positive, got {p}")
    return p


def _pow_abs(x: np.ndarray, p: float) -> np.ndarray:
    return x * x if p == 2 else np.abs(x) ** p


def _root(y: np.ndarray, p: float) -> np.ndarray:
    return np.sqrt(y) if p == 2 else y ** (1.0 / p)


@registry.kernel("LpPool", since=(1, 2, 11, 18, 22), types={"T": FLOAT_TYPES})
def lp_pool(node: NodeInfo):
    attrs = window_attrs(node)
    geo = _geometry_cache(node, attrs, bool(node.attr("ceil_mode", 0)))
    p = _lp_p(node)
    loops = _jit.enabled()
    native = loops and _native.enabled()

    def compute(x):
        g = geo(x.shape)
        dt = compute_dtype(x.dtype)
        y = g.reduce(_pow_abs(x.astype(dt, copy=False), p), np.add, 0, loops, native)
        return (_root(y, p).astype(x.dtype, copy=False),)

    return compute


def _spatial_axes(x: np.ndarray) -> tuple:
    return tuple(range(2, x.ndim))


def _global_mean(x: np.ndarray, dt: np.dtype) -> np.ndarray:
    """Mean over the spatial axes, kept as size-1 axes, computed in ``dt``."""
    n, c = x.shape[:2]
    plane = math.prod(x.shape[2:])
    keep = (n, c) + (1,) * (x.ndim - 2)
    if plane == 0 or n * c == 0:
        return np.mean(x, axis=_spatial_axes(x), keepdims=True, dtype=dt).astype(x.dtype)
    # A GEMV with a 1/plane vector beats numpy's row-wise mean on short rows.
    y = x.reshape(n * c, plane).astype(dt, copy=False) @ np.full(plane, 1.0 / plane, dtype=dt)
    return y.reshape(keep).astype(x.dtype, copy=False)


@registry.kernel("GlobalAveragePool", since=(1, 22), types={"T": FLOAT_TYPES})
def global_average_pool(node: NodeInfo):
    def compute(x):
        return (_global_mean(x, compute_dtype(x.dtype)),)

    return compute


@registry.kernel("GlobalMaxPool", since=(1, 22), types={"T": FLOAT_TYPES})
def global_max_pool(node: NodeInfo):
    def compute(x):
        return (np.max(x, axis=_spatial_axes(x), keepdims=True),)

    return compute


@registry.kernel("GlobalLpPool", since=(1, 2, 22), types={"T": FLOAT_TYPES})
def global_lp_pool(node: NodeInfo):
    p = _lp_p(node)

    def compute(x):
        dt = compute_dtype(x.dtype)
        s = np.sum(_pow_abs(x.astype(dt, copy=False), p), axis=_spatial_axes(x), keepdims=True)
        return (_root(s, p).astype(x.dtype, copy=False),)

    return compute


@registry.kernel("MaxUnpool", since=(9, 11, 22), types={"T1": FLOAT_TYPES})
def max_unpool(node: NodeInfo):
    ks = node.attr("kernel_shape", None)
    if ks is None:
        raise ValueError(f"{node.describe()}: kernel_shape is required")
    ks = [int(k) for k in ks]
    nd = len(ks)
    strides = [int(s) for s in node.attr("strides", [1] * nd)]
    pads = [int(p) for p in node.attr("pads", [0] * (2 * nd))]
    if len(strides) != nd or len(pads) != 2 * nd:
        raise ValueError(f"{node.describe()}: kernel_shape, strides and pads disagree in rank")

    def compute(x, indices, output_shape=None):
        if x.ndim != nd + 2 or indices.shape != x.shape:
            raise ValueError(
                f"{node.describe()}: X {x.shape} and I {indices.shape} do not match a {nd}-D pool"
            )
        inferred = x.shape[:2] + tuple(
            (x.shape[2 + i] - 1) * strides[i] - pads[i] - pads[i + nd] + ks[i] for i in range(nd)
        )
        flat = np.zeros(math.prod(inferred), dtype=x.dtype)
        idx = indices.reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= flat.size):
            raise ValueError(
                f"{node.describe()}: an index lies outside the unpooled shape {inferred}"
            )
        flat[idx] = x.reshape(-1)
        y = flat.reshape(inferred)
        if output_shape is None:
            return (y,)
        target = tuple(int(v) for v in output_shape)
        if target == inferred:
            return (y,)
        # Indices address the inferred layout; a larger requested shape pads at the end.
        out = np.zeros(target, dtype=x.dtype)
        region = tuple(slice(0, min(a, b)) for a, b in zip(inferred, target))
        out[region] = y[region]
        return (out,)

    return compute


@registry.kernel("MaxRoiPool", since=(1, 22), types={"T": FLOAT_TYPES})
def max_roi_pool(node: NodeInfo):
    pooled = [int(v) for v in node.attr("pooled_shape")]
    if len(pooled) != 2 or min(pooled) < 1:
        raise ValueError(f"{node.describe()}: pooled_shape must be two positive ints, got {pooled}")
    scale = float(node.attr("spatial_scale", 1.0))
    ph_n, pw_n = pooled

    def bins(start: int, size: int, n: int, limit: int):
        edges = []
        step = size / n
        for i in range(n):
            lo = min(max(math.floor(i * step) + start, 0), limit)
            hi = min(max(math.ceil((i + 1) * step) + start, 0), limit)
            edges.append((lo, hi))
        return edges

    def compute(x, rois):
        _n, c, h, w = x.shape
        y = np.zeros((rois.shape[0], c, ph_n, pw_n), dtype=x.dtype)
        # One pass per ROI; inside it the bins are reduced a row band and a column band at a time.
        # Scaled in float32 and rounded half away from zero, as onnxruntime does.
        scaled = rois[:, 1:5].astype(np.float32) * np.float32(scale)
        corners = (np.sign(scaled) * np.floor(np.abs(scaled) + 0.5)).astype(np.int64)
        for r in range(rois.shape[0]):
            b = int(rois[r, 0])
            x1, y1, x2, y2 = (int(v) for v in corners[r])
            rw, rh = max(x2 - x1 + 1, 1), max(y2 - y1 + 1, 1)
            for ph, (hs, he) in enumerate(bins(y1, rh, ph_n, h)):
                if he <= hs:
                    continue
                band = x[b, :, hs:he, :].max(axis=1)
                for pw, (ws, we) in enumerate(bins(x1, rw, pw_n, w)):
                    if we > ws:
                        y[r, :, ph, pw] = band[:, ws:we].max(axis=1)
        return (y,)

    return compute


def _roi_axis(start: float, bin_size: float, n_out: int, grid: int, size: int, dt):
    """Per-axis sample table: low/high indices, weights of each, validity: each (n_out*grid,)."""
    pos = (
        start
        + np.arange(n_out)[:, None] * bin_size
        + (np.arange(grid)[None] + 0.5) * bin_size / grid
    )
    pos = pos.reshape(-1)
    valid = (pos >= -1.0) & (pos <= size)
    pos = np.maximum(pos, 0)
    low = pos.astype(np.int64)
    edge = low >= size - 1
    low = np.where(edge, size - 1, low)
    high = np.where(edge, size - 1, low + 1)
    pos = np.where(edge, low, pos)
    frac = pos - low
    wl = np.where(valid, 1 - frac, 0).astype(dt)
    wh = np.where(valid, frac, 0).astype(dt)
    return low, high, wl, wh


@registry.kernel("RoiAlign", since=(10, 16, 22), types={"T1": FLOAT_TYPES})
def roi_align(node: NodeInfo):
    mode = node.attr("mode", "avg")
    if mode not in ("avg", "max"):
        raise ValueError(f"{node.describe()}: mode {mode!r} is not 'avg' or 'max'")
    out_h = int(node.attr("output_height", 1))
    out_w = int(node.attr("output_width", 1))
    ratio = int(node.attr("sampling_ratio", 0))
    scale = float(node.attr("spatial_scale", 1.0))
    ctm = node.attr(
        "coordinate_transformation_mode",
        "half_pixel" if node.since_version >= 16 else "output_half_pixel",
    )
    if ctm not in ("half_pixel", "output_half_pixel"):
        raise ValueError(
            f"{node.describe()}: coordinate_transformation_mode {ctm!r} is not supported"
        )
    half_pixel = ctm == "half_pixel"

    def compute(x, rois, batch_indices):
        dt = compute_dtype(x.dtype)
        _n, c, h, w = x.shape
        r_n = rois.shape[0]
        y = np.zeros((r_n, c, out_h, out_w), dtype=dt)
        xs = x.astype(dt, copy=False)
        off = 0.5 if half_pixel else 0.0
        for r in range(r_n):
            x1, y1, x2, y2 = (float(v) * scale - off for v in rois[r, :4])
            rw, rh = x2 - x1, y2 - y1
            if not half_pixel:
                rw, rh = max(rw, 1.0), max(rh, 1.0)
            gh = ratio if ratio > 0 else math.ceil(rh / out_h)
            gw = ratio if ratio > 0 else math.ceil(rw / out_w)
            if gh < 1 or gw < 1:
                continue
            ylo, yhi, ywl, ywh = _roi_axis(y1, rh / out_h, out_h, gh, h, dt)
            xlo, xhi, xwl, xwh = _roi_axis(x1, rw / out_w, out_w, gw, w, dt)
            plane = xs[int(batch_indices[r])]
            corners = (
                (ylo, xlo, ywl, xwl),
                (ylo, xhi, ywl, xwh),
                (yhi, xlo, ywh, xwl),
                (yhi, xhi, ywh, xwh),
            )
            acc = None
            for yi, xi, wy, wx in corners:
                v = plane[:, yi[:, None], xi[None, :]] * (wy[:, None] * wx[None, :])
                if acc is None:
                    acc = v
                elif mode == "avg":
                    acc += v
                else:
                    np.maximum(acc, v, out=acc)
            acc = acc.reshape(c, out_h, gh, out_w, gw)
            if mode == "avg":
                y[r] = acc.sum(axis=(2, 4)) / max(gh * gw, 1)
            else:
                y[r] = acc.max(axis=(2, 4))
        return (y.astype(x.dtype, copy=False),)

    return compute
