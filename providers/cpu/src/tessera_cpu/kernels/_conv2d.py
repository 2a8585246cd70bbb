"""Two-dimensional convolution on BLAS, split over the CPU provider's threads.

Each thread computes whole blocks of the output (a band of output rows, or a band of output
channels) from start to end: its own im2col columns, its GEMM, then the epilogue (bias, the
residual input of a fused Add, the activation) while the block is still in cache. Splitting the
whole convolution rather than only its GEMM keeps the column copies and the elementwise tail off
the critical path of a single thread.

Three forms, chosen once per input shape:

- ``pointwise``: 1x1, stride 1, no padding: a GEMM straight on the input, no copy;
- ``depthwise``: one channel per group: a compiled direct loop (``_conv_loops.depthwise``), or
  without numba a batched GEMM of width 1 per channel;
- ``im2col``: everything else; with the copy of the columns split across threads it matched or
  beat the single-threaded "shifted GEMM" form (one GEMM of every tap's weights, then K shifted
  slices summed) on ResNet's 3x3 layers at 1 and 2 threads, so that form is only used for
  non-2-D convolutions (conv.py). The columns are built by a compiled loop straight from the
  unpadded input (``_conv_loops.im2col``) into a per-thread scratch buffer, or without numba by
  copying a strided view of a zero-padded copy.

The compiled loops are used when ``tessera_cpu._jit.enabled()`` (read when the kernel is built)
and the compute dtype is float32 or float64; the NumPy forms stay as the fallback.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable

import numpy as np
from numpy.lib.stride_tricks import as_strided

from tessera_cpu import _blas, _jit, _native, _parallel
from tessera_cpu.kernels import _conv_loops

# Below this much work (multiply-adds plus _COPY_MACS per copied element; about 0.4 ms on one
# thread) a convolution runs on the calling thread: handing half to a worker and joining it
# costs 30-40 us each way here. At 25M squeezenet's 27x27 and 13x13 convolutions split and lost
# 4-10%; 35M kept them whole, and left inception_v2's branches, run in parallel, more of the
# second core (39.3 -> 36.4 ms); at 50M densenet121 lost 4% (tuned on the benchmark models).
_PARALLEL_MACS = 35_000_000
# Multiply-adds one element of im2col columns or of the output's epilogue costs as much time as
# (about 0.25 ns on one thread, measured on the benchmark models' stems and 1x1s).
_COPY_MACS = 20
# im2col columns larger than this (bytes; a core's L2 holds 2 MiB here) are built and multiplied
# a band of output rows of about _BAND_BYTES at a time, so that the GEMM reads them from L2:
# 8-15% faster on ResNet's 56x56 3x3 layers and the 7x7 stem, on one thread.
_BAND_OVER = 2 << 20
_BAND_BYTES = 1 << 20
# ... but at least this many output pixels wide: with deep columns (K = 2304 or 4608, VGG's and
# ResNet's late layers) a 1 MiB band is 50-100 pixels, where OpenBLAS ran at 100-145 GFLOP/s
# against 160-180 for 200-400 pixels.
_MIN_BAND_PIXELS = 256


def _bands(parts: int, columns_bytes: int, depth_bytes: int) -> int:
    """How many bands of output rows the im2col columns (``columns_bytes`` in all, ``depth_bytes``
    per pixel) are built and multiplied in, a multiple of ``parts``."""
    per_part = columns_bytes // parts
    if per_part <= _BAND_OVER:
        return 1
    band = max(_BAND_BYTES, depth_bytes * _MIN_BAND_PIXELS)
    return parts * -(-per_part // band)


# Output planes at least this large are split by rows (each thread builds its own columns);
# smaller ones are split by output channels over columns built once. 28x28 planes split by rows
# ran 1.2-1.4x faster than by channels (inception_v2 43.8 -> 41.4 ms, densenet121 70.5 -> 67.7
# at 2 threads). 14x14 planes stay split by channels: by rows, inception_v2's gained but
# ResNet-50's lost more.
_ROW_SPLIT_PIXELS = 400


# The same threshold when the convolution runs whole on numba's threads (``_native``), whose
# fork and join cost about 2.5 us instead of 30-40: squeezenet's 13x13 layers, about 2.5M
# multiply-adds (50 us), still gain from a split.
_NATIVE_PARALLEL_MACS = 2_000_000

_LOOP_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
_EMPTY = {dt: np.empty(0, dt) for dt in _LOOP_DTYPES}  # an absent bias or residual


@dataclasses.dataclass(frozen=True)
class Epilogue:
    """What a fused convolution applies to each output block: ``+ bias``, ``+ z``, activation."""

    bias: np.ndarray | None = None  # (M,) in the compute dtype
    activation: Callable[[np.ndarray], None] | None = None  # in place on a block
    # The activation as a _conv_loops code and its parameters, when the compiled loop may do
    # the whole epilogue in one pass (None: the NumPy passes below).
    loop: tuple[int, float, float] | None = None

    def apply(self, yb: np.ndarray, m0: int, m1: int, zb: np.ndarray | None) -> None:
        if self.loop is not None and yb.ndim == 2 and yb.dtype in _LOOP_DTYPES:
            ys = _jit.runs(yb, by_row=True)
            zs = _jit.runs(zb, by_row=True) if zb is not None else None
            if ys is not None and (zb is None or (zs is not None and zs[1:3] == ys[1:3])):
                code, p0, p1 = self.loop
                t = yb.dtype.type
                _conv_loops.epilogue(
                    ys[0], ys[1], ys[2], ys[3],
                    self.bias if self.bias is not None else _EMPTY[yb.dtype], m0,
                    zs[0] if zs is not None else _EMPTY[yb.dtype], zs[3] if zs else 0,
                    code, t(p0), t(p1),
                )  # fmt: skip
                return
        # The same operations in the same order as the unfused Conv (bias), Add and activation.
        if self.bias is not None:
            yb += self.bias[m0:m1, None] if yb.ndim == 2 else self.bias[m0:m1, None, None]
        if zb is not None:
            yb += zb
        if self.activation is not None:
            self.activation(yb)


_scratch_local = threading.local()


def _scratch(size: int, dtype: np.dtype) -> np.ndarray:
    """A reusable buffer of ``size`` elements for the calling thread's im2col columns.

    Each thread (the caller and each worker) keeps one buffer per dtype, grown to the largest
    block it has built: a fresh multi-megabyte array per block is fresh pages to fault in.
    """
    bufs = getattr(_scratch_local, "bufs", None)
    if bufs is None:
        bufs = _scratch_local.bufs = {}
    buf = bufs.get(dtype)
    if buf is None or buf.size < size:
        buf = bufs[dtype] = np.empty(size, dtype=dtype)
    return buf[:size]


def _chunks(length: int, parts: int) -> list[tuple[int, int]]:
    parts = max(1, min(parts, length))
    bounds = [length * i // parts for i in range(parts + 1)]
    return [(bounds[i], bounds[i + 1]) for i in range(parts)]


class Conv2D:
    """One Conv node's 2-D convolution for one input shape: weights prepared once per form.

    ``w`` is (M, Cg, KH, KW) in the compute dtype; ``pb``/``pe`` are the begin/end pads and
    ``out`` the output size, as :func:`tessera_cpu.kernels.conv.same_pads` gives them.
    """

    def __init__(self, w, group, x_shape, ks, strides, dil, pb, pe, out, jit=None) -> None:
        n, c, h, wd = x_shape
        m, cg = w.shape[:2]
        self.n, self.c, self.g, self.m, self.cg = n, c, group, m, cg
        self.mg = m // group
        self.ks, self.strides, self.dil = tuple(ks), tuple(strides), tuple(dil)
        self.pb, self.pe, self.out = tuple(pb), tuple(pe), tuple(out)
        self.padded = (h + pb[0] + pe[0], wd + pb[1] + pe[1])
        kprod = ks[0] * ks[1]
        oprod = out[0] * out[1]
        macs = n * m * cg * kprod * oprod
        # What the columns and the epilogue cost counts too: a convolution with few taps per
        # output (RGB stems, 1x1s of few channels) spends most of its time outside the GEMM.
        cost = macs + _COPY_MACS * n * oprod * (m + (c * kprod if kprod > 1 else 0))
        unit = all(s == 1 for s in strides)
        no_pad = not any(pb) and not any(pe)
        # ``jit``: conv.py passes what _jit said when the kernel was built; None asks _jit now
        # (engines made directly, as the benchmarks' conv profiles do).
        if jit is None:
            jit = _jit.enabled()
        self.jit = bool(jit) and w.dtype in _LOOP_DTYPES
        self.native = self.jit and _native.available(w.dtype)
        limit = _NATIVE_PARALLEL_MACS if self.native else _PARALLEL_MACS
        self.parallel = cost >= limit and _parallel.threads() > 1
        self.threads = _parallel.threads() if self.parallel else 1
        if group == c and self.mg == 1 and kprod > 1:
            self.form = "depthwise"
            self.wk = np.ascontiguousarray(w.reshape(m, kprod))
        elif kprod == 1 and unit and no_pad:
            self.form = "pointwise"
            self.wk = np.ascontiguousarray(w.reshape(group, self.mg, cg))
        else:
            self.form = "im2col"
            self.wk = np.ascontiguousarray(w.reshape(group, self.mg, cg * kprod))
        self._plan = _NativePlan(self, h, wd) if self.native else None

    # -- helpers ------------------------------------------------------------------------------
    def _pad(self, x: np.ndarray) -> np.ndarray:
        if not any(self.pb) and not any(self.pe):
            return np.ascontiguousarray(x)
        xp = np.zeros((*x.shape[:2], *self.padded), dtype=x.dtype)
        h, w = x.shape[2:]
        xp[:, :, self.pb[0] : self.pb[0] + h, self.pb[1] : self.pb[1] + w] = x
        return xp

    def _window(self, xp: np.ndarray) -> np.ndarray:
        """Strided view (N, C, KH, KW, OH, OW) of the padded input."""
        s = xp.strides
        return as_strided(
            xp,
            (*xp.shape[:2], *self.ks, *self.out),
            (
                s[0],
                s[1],
                s[2] * self.dil[0],
                s[3] * self.dil[1],
                s[2] * self.strides[0],
                s[3] * self.strides[1],
            ),
            writeable=False,
        )

    def _units(self, inner: int, bands: int = 1) -> list[tuple[int, int, int, int]]:
        """Work items (n, g, a, b): a range [a, b) of ``inner`` (rows or channels) per (n, g),
        in at least ``bands`` ranges."""
        split = self.threads if self.n * self.g < 2 * self.threads else 1
        split = max(split, bands)
        return [
            (i, g, a, b)
            for i in range(self.n)
            for g in range(self.g)
            for a, b in _chunks(inner, split)
        ]

    def _run(self, units, work) -> None:
        def chunk(lo: int, hi: int) -> None:
            for u in units[lo:hi]:
                work(*u)

        _parallel.run_chunks(len(units), chunk, parallel=self.parallel)

    # -- forms ----------------------------------------------------------------------------------
    def __call__(self, x: np.ndarray, epi: Epilogue, z: np.ndarray | None) -> np.ndarray:
        oh, ow = self.out
        y = np.empty((self.n, self.m, oh * ow), dtype=x.dtype)
        if self._plan is not None and x.dtype == self.wk.dtype and epi.loop is not None:
            self._plan(x, y, z, epi)
            return y.reshape(self.n, self.m, oh, ow)
        zf = None if z is None else z.reshape(self.n, self.m, oh * ow)
        getattr(self, "_" + self.form)(x, y, zf, epi)
        return y.reshape(self.n, self.m, oh, ow)

    def _pointwise(self, x, y, zf, epi) -> None:
        ow = self.out[1]
        xs = x.reshape(self.n, self.g, self.cg, -1)
        self._gemm(y, zf, epi, lambda i, g, a, b: xs[i, g, :, a * ow : b * ow], xs.__getitem__)

    def _im2col(self, x, y, zf, epi) -> None:
        if self.jit and x.dtype == self.wk.dtype:
            self._im2col_loop(np.ascontiguousarray(x), y, zf, epi)
            return
        ow = self.out[1]
        view = self._window(self._pad(x))
        cg = self.cg
        kc = cg * self.ks[0] * self.ks[1]

        def columns(i, g, a, b):
            return view[i, g * cg : (g + 1) * cg, :, :, a:b].reshape(kc, (b - a) * ow)

        oh = self.out[0]
        if oh * ow >= _ROW_SPLIT_PIXELS or not self.parallel:
            self._gemm(y, zf, epi, columns)
            return
        # Split by output channels: the columns are made once, but by all threads, each
        # copying the taps of a band of input channels.
        cols = np.empty((self.n, self.g, cg, *self.ks, oh, ow), dtype=x.dtype)

        def copy(i, g, a, b):
            cols[i, g, a:b] = view[i, g * cg + a : g * cg + b]

        self._run(self._units(cg), copy)
        flat = cols.reshape(self.n, self.g, kc, oh * ow)
        self._gemm(y, zf, epi, lambda i, g, a, b: flat[i, g])

    def _im2col_loop(self, x, y, zf, epi) -> None:
        """The im2col form with its columns built by the compiled loop from the unpadded input:
        the same matrices as the NumPy form, so the same GEMMs and bit-identical results."""
        oh, ow = self.out
        cg = self.cg
        kh, kw = self.ks
        geo = (kh, kw, *self.strides, *self.dil, *self.pb)
        kc = cg * kh * kw
        xg = x.reshape(self.n, self.g, cg, *x.shape[2:])

        if oh * ow >= _ROW_SPLIT_PIXELS:
            # Split by rows: each block's columns go to its thread's scratch buffer, used by that
            # block's GEMM before the thread builds the next.
            def columns(i, g, a, b):
                cols = _scratch(kc * (b - a) * ow, x.dtype).reshape(kc, (b - a) * ow)
                _conv_loops.im2col(xg[i, g], cols, 0, cg, a, b, *geo, ow)
                return cols

            bands = _bands(self.threads, kc * oh * ow * x.itemsize, kc * x.itemsize)
            self._gemm(y, zf, epi, columns, bands=min(bands, oh))
            return
        # Small planes: the columns are made once (split by bands of channels over the threads
        # when the convolution is), then split by output channels.
        flat = np.empty((self.n, self.g, kc, oh * ow), dtype=x.dtype)

        def copy(i, g, a, b):
            _conv_loops.im2col(xg[i, g], flat[i, g], a, b, 0, oh, *geo, ow)

        self._run(self._units(cg), copy)
        self._gemm(y, zf, epi, lambda i, g, a, b: flat[i, g], flat.__getitem__)

    def _gemm(self, y, zf, epi, columns, stacked=None, bands=1) -> None:
        """Y = W @ columns per (image, group); ``columns(i, g, a, b)`` gives the (K, pixels)
        columns of output rows a..b. Large planes split by rows (each thread makes its own
        columns, in at least ``bands`` bands); small ones by output channels over columns made
        once. On one thread, grouped
        convolutions whose columns ``stacked(i)`` gives as one (G, K, pixels) array take one
        batched matmul and one epilogue per image (the same GEMMs, fewer Python calls)."""
        oh, ow = self.out
        mg = self.mg
        if stacked is not None and self.g > 1 and not self.parallel:
            p = oh * ow
            for i in range(self.n):
                yi = y[i]
                np.matmul(self.wk, stacked(i), out=yi.reshape(self.g, mg, p))
                epi.apply(yi, 0, self.m, None if zf is None else zf[i])
            return
        if oh * ow >= _ROW_SPLIT_PIXELS:

            def by_rows(i, g, a, b):
                m0, m1, p0, p1 = g * mg, (g + 1) * mg, a * ow, b * ow
                yb = y[i, m0:m1, p0:p1]
                np.matmul(self.wk[g], columns(i, g, a, b), out=yb)
                epi.apply(yb, m0, m1, None if zf is None else zf[i, m0:m1, p0:p1])

            self._run(self._units(oh, bands), by_rows)
            return
        cols = [[columns(i, g, 0, oh) for g in range(self.g)] for i in range(self.n)]

        def by_channels(i, g, a, b):
            m0, m1 = g * mg + a, g * mg + b
            yb = y[i, m0:m1]
            np.matmul(self.wk[g, a:b], cols[i][g], out=yb)
            epi.apply(yb, m0, m1, None if zf is None else zf[i, m0:m1])

        self._run(self._units(mg), by_channels)

    def _depthwise(self, x, y, zf, epi) -> None:
        if self.jit and x.dtype == self.wk.dtype:
            self._depthwise_loop(np.ascontiguousarray(x), y, zf, epi)
            return
        # One batched GEMM of width 1 per channel over its own columns: BLAS's small-matrix path
        # beats K multiply-add passes of NumPy's broadcasting loops by 1.5-3x on these shapes.
        oh, ow = self.out
        kprod = self.ks[0] * self.ks[1]
        view = self._window(self._pad(x))
        wk = self.wk[:, None, :]  # (C, 1, K)

        def work(i, _g, a, b):
            cols = view[i, a:b].reshape(b - a, kprod, oh * ow)
            yb = y[i, a:b]
            np.matmul(wk[a:b], cols, out=yb[:, None, :])
            epi.apply(yb, a, b, None if zf is None else zf[i, a:b])

        self._run(self._depthwise_units(), work)

    def _depthwise_loop(self, x, y, zf, epi) -> None:
        """Depthwise by the compiled direct loop, then the epilogue on the block in cache."""
        geo = (*self.ks, *self.strides, *self.dil, *self.pb)
        ow = self.out[1]
        wk = self.wk
        size = _conv_loops.depthwise_scratch(self.ks, self.strides, self.dil, self.out)

        def work(i, _g, a, b):
            yb = y[i, a:b]
            buf = _scratch(size, x.dtype)
            _conv_loops.depthwise(x[i], wk, y[i], a, b, *geo, ow, buf)
            epi.apply(yb, a, b, None if zf is None else zf[i, a:b])

        self._run(self._depthwise_units(), work)

    def _depthwise_units(self) -> list[tuple[int, int, int, int]]:
        split = self.threads if self.n < 2 * self.threads else 1
        return [(i, 0, a, b) for i in range(self.n) for a, b in _chunks(self.m, split)]


def _unit_array(units) -> np.ndarray:
    return np.array(units, dtype=np.int64).reshape(-1, 4)


class _NativePlan:
    """A :class:`Conv2D` run whole by the compiled loops of ``_conv_loops`` on numba's threads
    (``tessera_cpu._native``): the same work items, columns and GEMMs as the Python-threaded
    forms, so the same results, with no Python between the steps."""

    def __init__(self, conv: Conv2D, h: int, wd: int) -> None:
        oh, ow = conv.out
        p = oh * ow
        kc = conv.cg * conv.ks[0] * conv.ks[1]
        self.dtype = conv.wk.dtype
        self.fn = _blas.address(self.dtype)
        self.parts = conv.threads
        self.geo = _conv_loops.geometry(
            conv.cg, h, wd, conv.ks, conv.strides, conv.dil, conv.pb, ow, conv.m, conv.mg, p, conv.g
        )
        self.w = conv.wk.reshape(-1) if conv.form != "depthwise" else conv.wk
        self.form = conv.form
        self.scratch = 0  # elements of scratch per part
        if conv.form == "depthwise":
            self.kind = "depthwise"
            self.units = _unit_array(conv._depthwise_units())
            self.scratch = _conv_loops.depthwise_scratch(conv.ks, conv.strides, conv.dil, conv.out)
        elif p >= _ROW_SPLIT_PIXELS or (conv.form == "im2col" and not conv.parallel):
            # By bands of output rows; im2col columns of a band in the part's scratch, in
            # bands small enough for L2 as in Conv2D._im2col_loop.
            self.kind = "rows"
            bands = 1
            if conv.form == "im2col":
                bands = _bands(self.parts, kc * p * conv.wk.itemsize, kc * conv.wk.itemsize)
            self.units = _unit_array(conv._units(oh, min(bands, oh)))
            if conv.form == "im2col":
                self.scratch = kc * ow * int((self.units[:, 3] - self.units[:, 2]).max(initial=0))
        else:
            # By output channels over columns made once (split by input channels).
            self.kind = "channels"
            self.units0 = _unit_array(conv._units(conv.cg) if conv.form == "im2col" else [])
            self.units1 = _unit_array(conv._units(conv.mg))
            self.cols = conv.n * conv.g * kc * p if conv.form == "im2col" else 0
        self.pointwise = conv.form == "pointwise"
        self._loop: tuple = (None,)  # (epi.loop, code, p0, p1 in the compute dtype)

    def __call__(self, x, y, z, epi: Epilogue) -> None:
        dt = self.dtype
        t = dt.type
        xf = np.ascontiguousarray(x).reshape(-1)
        yf = y.reshape(-1)
        zf = _EMPTY[dt] if z is None else np.ascontiguousarray(z, dtype=dt).reshape(-1)
        bias = _EMPTY[dt] if epi.bias is None else epi.bias
        cached = self._loop  # one read: concurrent runs may replace it
        if epi.loop is not cached[0]:  # the kernel passes the same tuple every run
            code, p0, p1 = epi.loop
            cached = self._loop = (epi.loop, code, t(p0), t(p1))
        _, code, p0, p1 = cached
        parts = _native.acquire(self.parts)
        try:
            if self.kind == "rows":
                buf = _scratch(parts * max(1, self.scratch), dt).reshape(parts, -1)
                args = (
                    self.fn,
                    xf,
                    self.w,
                    yf,
                    zf,
                    bias,
                    buf,
                    self.units,
                    self.geo,
                    self.pointwise,
                )
                if parts > 1:
                    _conv_loops.conv_rows(*args, parts, code, p0, p1)
                else:
                    _conv_loops.conv_rows_part(*args, 0, 1, code, p0, p1)
            elif self.kind == "channels":
                cols = _scratch(max(1, self.cols), dt)
                if parts > 1:
                    _conv_loops.conv_channels(
                        self.fn, xf, self.w, yf, zf, bias, cols, self.units0, self.units1,
                        self.geo, self.pointwise, parts, code, p0, p1,
                    )  # fmt: skip
                else:
                    for phase, units in ((0, self.units0), (1, self.units1)):
                        if units.shape[0]:
                            _conv_loops.conv_channels_part(
                                self.fn, xf, self.w, yf, zf, bias, cols, units, self.geo, phase,
                                self.pointwise, 0, 1, code, p0, p1,
                            )  # fmt: skip
            else:
                buf = _scratch(parts * self.scratch, dt).reshape(parts, -1)
                args = (xf, self.w, yf, zf, bias, buf, self.units, self.geo)
                if parts > 1:
                    _conv_loops.depthwise_all(*args, parts, code, p0, p1)
                else:
                    _conv_loops.depthwise_part(*args, 0, 1, code, p0, p1)
        finally:
            if parts > 1:
                _native.release()
