"""Matrix products on numba's threads (``tessera_cpu._native``): MatMul and FusedMatMul.

Stacks of products with the same leading shape (attention's per-head products) split the stack
over the threads (:func:`batched`); a product with a 2-D right operand splits its columns:

``A (M x K) @ B (K x N)`` with B split into column bands, one per thread: each thread calls
NumPy's own CBLAS ``gemm`` (``tessera_cpu._blas``) for its band and then adds FusedMatMul's bias
(per column) and residual to it while it is in cache. The same GEMM calls on the same bands as
a Python-threaded split, without the 30-75 us of waking a Python worker per product (a
transformer layer has six). Bands are multiples of 16 columns (64 bytes of float32).

The activation of a FusedMatMul is a Python kernel (``_fused_activation``); the caller applies
it to the whole result afterwards.
"""

from __future__ import annotations

import numpy as np

from tessera_cpu import _blas, _jit, _native, _parallel, _tiles

prange = _jit.prange
gemm = _jit.deferred(_blas.gemm_intrinsic)
micro = _jit.deferred(_tiles.micro_intrinsic)
prefetch = _jit.deferred(_tiles.prefetch_intrinsic)
MR, NR = _tiles.MR, _tiles.NR
# Steps of k per pass of the tile kernel: a KC x NR block of the weights' panel (32 KiB) stays
# in L1 while every row panel of A passes.
KC = 256

# Products below this many multiply-adds (about 12 us on one thread) run on the calling thread.
_NATIVE_SPLIT_MACS = 2_000_000
_ALIGN = 16  # columns per band are a multiple of this


@_jit.loop
def _band(fn, a, b, y, bias, z, m, k, n, n0, n1):  # pragma: no cover - compiled
    """Columns n0..n1 of ``y = a @ b + bias + z`` (flat row-major arrays; empty bias/z absent)."""
    width = n1 - n0
    if width <= 0:
        return
    gemm(fn, _blas.NO_TRANS, _blas.NO_TRANS, m, width, k, a, 0, k, b, n0, n, y, n0, n)
    _add_bias_z(y, bias, z, m, n, n0, n1)


@_jit.loop(parallel=True)
def _bands(fn, a, b, y, bias, z, m, k, n, parts, align):  # pragma: no cover - compiled
    chunks = (n + align - 1) // align
    for t in prange(parts):
        n0 = min(n, chunks * t // parts * align)
        n1 = min(n, chunks * (t + 1) // parts * align)
        _band(fn, a, b, y, bias, z, m, k, n, n0, n1)


@_jit.loop
def _add_bias_z(y, bias, z, m, n, n0, n1):  # pragma: no cover - compiled
    """``y[:, n0:n1] += bias[n0:n1]``, then ``+= z[:, n0:n1]`` (flat row-major; empty: absent)."""
    has_bias = bias.size > 0
    has_z = z.size > 0
    if not (has_bias or has_z):
        return
    for i in range(m):
        row = i * n
        if has_bias and has_z:
            for j in range(n0, n1):
                y[row + j] = y[row + j] + bias[j] + z[row + j]
        elif has_bias:
            for j in range(n0, n1):
                y[row + j] = y[row + j] + bias[j]
        else:
            for j in range(n0, n1):
                y[row + j] = y[row + j] + z[row + j]


@_jit.loop
def _pack_rows(a, ap, m, k, i0, i1):  # pragma: no cover - compiled
    """Row panels ``i0..i1`` of the flat (m, k) ``a`` into ``ap`` as ``_tiles.pack`` lays them
    out (``MR`` rows, ``k``-major, zero rows past ``m``)."""
    for i in range(i0, i1):
        for r in range(MR):
            row = i * MR + r
            base = i * k * MR + r
            if row < m:
                src = row * k
                for kk in range(k):
                    ap[base + kk * MR] = a[src + kk]
            else:
                for kk in range(k):
                    ap[base + kk * MR] = 0


@_jit.loop
def _tile_band(ap, wp, y, bias, z, m, k, n, q0, q1):  # pragma: no cover - compiled
    """Column panels ``q0..q1`` of ``y = a @ w + bias + z`` from ``a``'s row panels ``ap`` and
    ``w``'s column panels ``wp`` (``_tiles.pack_columns``): per panel of ``w``, per ``KC``
    steps, every row panel; tiles past the edge of ``y`` in a scratch column."""
    edge = np.empty(-(-m // MR) * MR * NR, dtype=y.dtype)
    n0 = q0 * NR
    n1 = min(n, q1 * NR)
    for q in range(q0, q1):
        pc = q * NR
        width = min(NR, n - pc)
        for kb in range(0, k, KC):
            depth = min(KC, k - kb)
            b_at = (q * k + kb) * NR
            # The weights are cold: ask for the next block (the panels lie end to end) while
            # this one passes every row panel.
            ahead = b_at + depth * NR
            for t in range(ahead, min(wp.size, ahead + KC * NR), 16):
                prefetch(wp, t)
            for mi in range(0, m, MR):
                a_at = mi * k + kb * MR
                if width == NR and mi + MR <= m:
                    micro(ap, a_at, wp, b_at, NR, y, mi * n + pc, n, depth, kb)
                else:
                    micro(ap, a_at, wp, b_at, NR, edge, mi * NR, NR, depth, kb)
        for mi in range(0, m, MR):
            if width == NR and mi + MR <= m:
                continue
            for r in range(min(MR, m - mi)):
                for j in range(width):
                    y[(mi + r) * n + pc + j] = edge[(mi + r) * NR + j]
    _add_bias_z(y, bias, z, m, n, n0, n1)


@_jit.loop(parallel=True)
def _tile_bands(a, ap, wp, y, bias, z, m, k, n, parts):  # pragma: no cover - compiled
    rows = -(-m // MR)
    for t in prange(parts):
        _pack_rows(a, ap, m, k, rows * t // parts, rows * (t + 1) // parts)
    panels = -(-n // NR)
    for t in prange(parts):
        _tile_band(ap, wp, y, bias, z, m, k, n, panels * t // parts, panels * (t + 1) // parts)


@_jit.loop
def _stack(fn, a, ao, ta, lda, b, bo, tb, ldb, y, m, k, n, i0, i1):  # pragma: no cover
    """Products i0..i1 of a stack: matrix i of ``a`` starts ``ao[i]`` elements after a's first
    (row stride ``lda``, transposed when ``ta`` is TRANS), the same for ``b``; ``y`` is flat."""
    for i in range(i0, i1):
        gemm(fn, ta, tb, m, n, k, a, ao[i], lda, b, bo[i], ldb, y, i * m * n, n)


@_jit.loop(parallel=True)
def _stacks(fn, a, ao, ta, lda, b, bo, tb, ldb, y, m, k, n, parts):  # pragma: no cover
    count = ao.shape[0]
    for t in prange(parts):
        _stack(fn, a, ao, ta, lda, b, bo, tb, ldb, y, m, k, n, count * t // parts,
               count * (t + 1) // parts)  # fmt: skip


def _operand(x: np.ndarray, batch: tuple) -> tuple[np.ndarray, int, int] | None:
    """(element offset of each matrix of ``x`` broadcast to the stack shape ``batch``, the
    CBLAS transpose flag, the leading dimension), or None when its matrices are not laid out
    for BLAS (neither axis of unit stride, or negative strides)."""
    item = x.itemsize
    rs, cs = x.strides[-2:]
    if any(st < 0 or st % item for st in x.strides):
        return None
    if cs == item or x.shape[-1] == 1:
        trans, ld = _blas.NO_TRANS, max(rs // item, x.shape[-1], 1)
    elif rs == item or x.shape[-2] == 1:
        trans, ld = _blas.TRANS, max(cs // item, x.shape[-2], 1)
    else:
        return None
    offsets = np.zeros(batch, np.int64)
    pad = len(batch) - (x.ndim - 2)
    for axis, size in enumerate(batch):
        src = axis - pad
        if src < 0 or x.shape[src] == 1:
            continue  # broadcast along this axis
        step = np.arange(size, dtype=np.int64) * (x.strides[src] // item)
        offsets += step.reshape((size,) + (1,) * (len(batch) - axis - 1))
    return offsets.reshape(-1), trans, ld


def batched(a: np.ndarray, b: np.ndarray) -> np.ndarray | None:
    """``a @ b`` for float32/float64 stacks of matrices whose stack shapes broadcast
    (attention's (1, heads, S, d) products, whose operands are transposed views), the stack
    split over numba's threads; None where this form does not apply. Each matrix is laid out
    for BLAS in place (a transposed one with the transpose flag), as np.matmul does."""
    dt = a.dtype
    if a.ndim < 3 or b.ndim < 2 or b.dtype != dt or a.shape[-1] != b.shape[-2]:
        return None
    if not _blas.address(dt):
        return None
    try:
        batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    except ValueError:
        return None
    m, k = a.shape[-2:]
    n = b.shape[-1]
    count = int(np.prod(batch, dtype=np.int64))
    if count == 0 or m == 0 or k == 0 or n == 0:
        return None
    a_op, b_op = _operand(a, batch), _operand(b, batch)
    if a_op is None or b_op is None:
        return None
    y = np.empty((*batch, m, n), dt)
    args = (_blas.address(dt), a, *a_op, b, *b_op, y.reshape(-1), m, k, n)
    _native.split(
        count,
        lambda i0, i1: _stack(*args, i0, i1),
        lambda parts: _stacks(*args, parts),
        native=count * m * n * k >= _NATIVE_SPLIT_MACS,
    )
    return y


def tile_self_check() -> bool:
    """Whether the tile loops compile and compute one small product with edge tiles in both
    directions and two blocks of k as NumPy does (``_tiles.available`` asks once)."""
    rng = np.random.default_rng(0)
    m, k, n = MR + 1, KC + 3, NR + 5
    a = rng.standard_normal((m, k)).astype(np.float32)
    w = rng.standard_normal((k, n)).astype(np.float32)
    ap = np.empty(_tiles.packed_size(m, k), np.float32)
    y = np.empty(m * n, np.float32)
    empty = np.empty(0, np.float32)
    _pack_rows(a.reshape(-1), ap, m, k, 0, -(-m // MR))
    _tile_band(ap, _tiles.pack_columns(w), y, empty, empty, m, k, n, 0, -(-n // NR))
    want = a.astype(np.float64) @ w.astype(np.float64)
    return bool(np.allclose(y.reshape(m, n), want, rtol=1e-4, atol=1e-4))


def pack_weights(b) -> np.ndarray | None:
    """A constant right operand's column panels for :func:`matmul`'s tile form (made once,
    when the kernel is built), or None where that form does not apply: not a 2-D float32
    matrix, or no tile kernel on this host (``_tiles.available``)."""
    if b is None or b.ndim != 2 or b.dtype != np.float32 or not _tiles.available(b.dtype):
        return None
    return _tiles.pack_columns(b)


def matmul(a: np.ndarray, b: np.ndarray, bias=None, z=None, packed=None) -> np.ndarray | None:
    """``a @ b (+ bias) (+ z)`` for a C-contiguous float32/float64 ``a`` of rank >= 2 (its
    leading axes taken as rows) and a C-contiguous 2-D ``b`` of its dtype, ``bias`` of shape
    (N,) and ``z`` of the result's shape; None where this form does not apply (the caller then
    takes the Python-threaded one). The caller checked ``_native.enabled()`` when it was built.

    ``packed`` (:func:`pack_weights` of ``b``) selects the tile kernel: ``a`` is packed into
    row panels and multiplied by the weights' panels, split by column panels; otherwise NumPy's
    BLAS multiplies column bands. Added in the order the unfused nodes add (product, then bias,
    then z), so the results are the unfused graph's (whose MatMul takes the same form) bit for
    bit."""
    dt = a.dtype
    if (
        a.ndim < 2
        or b.ndim != 2
        or b.dtype != dt
        or a.shape[-1] != b.shape[0]
        or not a.flags.c_contiguous
        or not b.flags.c_contiguous
        or not _blas.address(dt)
    ):
        return None
    k, n = b.shape
    m = a.size // k if k else 0
    shape = (*a.shape[:-1], n)
    if bias is not None and (bias.dtype != dt or bias.shape != (n,)):
        return None
    if z is not None and (z.dtype != dt or z.shape != shape or not z.flags.c_contiguous):
        return None
    if m == 0 or k == 0 or n == 0:
        return None
    y = np.empty(shape, dt)
    empty = np.empty(0, dt)
    args = (
        _blas.address(dt),
        a.reshape(-1),
        b.reshape(-1),
        y.reshape(-1),
        empty if bias is None else bias,
        empty if z is None else z.reshape(-1),
        m,
        k,
        n,
    )
    parts = _parallel.threads() if m * n * k >= _NATIVE_SPLIT_MACS else 1
    # The tile form passes every row panel of ``a`` once per weight panel: they must stay in
    # L2. Larger ``a`` (BERT-base at batch 8: 3 MiB) ran 1.1x slower than BLAS's blocking.
    if packed is not None and dt == np.float32 and m * k * a.itemsize <= _tiles.l2_bytes():
        ap = np.empty(_tiles.packed_size(m, k), dt)
        tiles = (args[1], ap, packed, *args[3:])
        with _native.region(parts) as got:
            if got > 1:
                _tile_bands(*tiles, got)
            else:
                _pack_rows(args[1], ap, m, k, 0, -(-m // MR))
                _tile_band(ap, *tiles[2:], 0, -(-n // NR))
        return y
    with _native.region(parts) as got:
        if got > 1 and n >= got * _ALIGN:
            _bands(*args, got, _ALIGN)
        else:
            _band(*args, 0, n)
    return y
