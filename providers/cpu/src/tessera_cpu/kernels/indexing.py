"""Indexing kernels: gathers, scatters, selections and index-producing ops."""

from __future__ import annotations

import numpy as np

from tessera.provider import Compute, NodeInfo
from tessera_cpu.kernels._registry import registry

# Above this many updates to one row, a row scatter falls back to ufunc.at.
_MAX_WAVES = 16
_REDUCE = {"add": np.add, "mul": np.multiply, "max": np.maximum, "min": np.minimum}


def _norm_axis(node: NodeInfo, axis: int, rank: int) -> int:
    if not -rank <= axis < max(rank, 1):
        raise ValueError(f"{node.describe()}: axis {axis} is out of range for rank {rank}")
    return axis + rank if axis < 0 else axis


def _checked(node: NodeInfo, compute: Compute) -> Compute:
    """NumPy indexing already accepts indices in [-dim, dim); turn its IndexError into a clear one."""

    def run(*args):
        try:
            return compute(*args)
        except IndexError as exc:
            raise ValueError(f"{node.describe()}: index out of range: {exc}") from None

    return run


def _flat_index(node: NodeInfo, coords, dims) -> np.ndarray:
    """Flat C-order offsets of broadcast index arrays whose entries lie in [-dim, dim)."""
    for c, d in zip(coords, dims):
        if c.size and (c.min() < -d or c.max() >= d):
            raise ValueError(f"{node.describe()}: index out of range [-{d}, {d - 1}]")
    # With the range checked, wrapping maps exactly the negative indices.
    return np.ravel_multi_index(coords, dims, mode="wrap")


def _element_offsets(node: NodeInfo, indices: np.ndarray, axis: int, shape: tuple) -> np.ndarray:
    """Flat C-order offsets into an array of ``shape`` for GatherElements-style indices: entry
    ``indices[i..]`` replaces coordinate ``axis`` of its own position ``i..``."""
    dim = shape[axis]
    if indices.size and (indices.min() < -dim or indices.max() >= dim):
        raise ValueError(f"{node.describe()}: index out of range [-{dim}, {dim - 1}]")
    strides = np.cumprod((1, *shape[:0:-1]))[::-1]
    # The offsets of the other coordinates form one small broadcast array, added in one pass.
    base = np.zeros([1 if d == axis else n for d, n in enumerate(indices.shape)], np.int64)
    for d, n in enumerate(indices.shape):
        if d != axis and n > 1:
            view = [1] * indices.ndim
            view[d] = n
            base = base + (np.arange(n, dtype=np.int64) * strides[d]).reshape(view)
    idx = indices.astype(np.int64, copy=False)
    if indices.size and indices.min() < 0:
        idx = np.where(idx < 0, idx + dim, idx)
    return idx * strides[axis] + base


def _scatter_rows(out2d: np.ndarray, rows: np.ndarray, upd2d: np.ndarray, reduction: str) -> None:
    """Combine update row i into out2d[rows[i]]; duplicate rows all take part."""
    if reduction == "none":
        out2d[rows] = upd2d
        return
    ufunc = _REDUCE[reduction]
    if out2d.shape[1] == 1:  # ufunc.at is fast on 1-D element scatters
        ufunc.at(out2d.reshape(-1), rows, upd2d.reshape(-1))
        return
    # Whole-row updates go in "waves": wave j holds each row's j-th update, so no wave repeats
    # a row and each applies as one vectorized op, in the same order as a sequential scatter.
    order = np.argsort(rows, kind="stable")
    ordered = rows[order]
    positions = np.arange(ordered.size)
    first = np.empty(ordered.size, dtype=bool)
    first[:1] = True
    np.not_equal(ordered[1:], ordered[:-1], out=first[1:])
    wave = np.empty_like(positions)
    wave[order] = positions - np.maximum.accumulate(np.where(first, positions, 0))
    n_waves = int(wave.max(initial=-1)) + 1
    if n_waves > _MAX_WAVES:  # heavily repeated rows: ufunc.at beats many small waves
        ufunc.at(out2d, rows, upd2d)
        return
    for j in range(n_waves):
        sel = np.flatnonzero(wave == j) if n_waves > 1 else slice(None)
        target = rows[sel]
        out2d[target] = ufunc(out2d[target], upd2d[sel])


def _reduction(node: NodeInfo) -> str:
    reduction = node.attr("reduction", "none")
    if reduction != "none" and reduction not in _REDUCE:
        raise ValueError(f"{node.describe()}: unknown reduction {reduction!r}")
    if node.since_version < 18 and reduction in ("max", "min"):
        raise ValueError(f"{node.describe()}: reduction {reduction!r} needs opset 18")
    data_type = node.input_types[0] if node.input_types else None
    # Strings have no arithmetic and complex numbers no order: onnxruntime declines these too.
    unordered = data_type in ("tensor(complex64)", "tensor(complex128)")
    if (reduction != "none" and data_type == "tensor(string)") or (
        reduction in ("max", "min") and unordered
    ):
        raise ValueError(
            f"{node.describe()}: reduction {reduction!r} is not defined for {data_type}"
        )
    return reduction


# --- gathers ----------------------------------------------------------------------------------


@registry.kernel("Gather", since=(1, 11, 13))
def gather(node: NodeInfo) -> Compute:
    axis = int(node.attr("axis", 0))

    def compute(data, indices):
        a = _norm_axis(node, axis, data.ndim)
        return (np.take(data, indices, axis=a),)

    return _checked(node, compute)


@registry.kernel("GatherElements", since=(11, 13))
def gather_elements(node: NodeInfo) -> Compute:
    axis = int(node.attr("axis", 0))

    def compute(data, indices):
        a = _norm_axis(node, axis, data.ndim)
        if indices.ndim != data.ndim:
            raise ValueError(
                f"{node.describe()}: indices rank {indices.ndim} != data rank {data.ndim}"
            )
        if any(n > d for i, (n, d) in enumerate(zip(indices.shape, data.shape)) if i != a):
            raise ValueError(f"{node.describe()}: indices {indices.shape} exceed data {data.shape}")
        # One gather from the flattened data is cheaper than take_along_axis's fancy indexing.
        offsets = _element_offsets(node, indices, a, data.shape)
        return (np.take(np.ascontiguousarray(data).reshape(-1), offsets),)

    return _checked(node, compute)


@registry.kernel("GatherND", since=(11, 12, 13))
def gather_nd(node: NodeInfo) -> Compute:
    b = int(node.attr("batch_dims", 0))

    def compute(data, indices):
        k = indices.shape[-1] if indices.ndim else 0
        if indices.ndim < 1 or b + k > data.ndim or indices.shape[:b] != data.shape[:b]:
            raise ValueError(
                f"{node.describe()}: indices {indices.shape} do not fit data {data.shape} with batch_dims={b}"
            )
        batch = data.shape[:b]
        nb = int(np.prod(batch, dtype=np.int64))
        d = data.reshape((nb, *data.shape[b:]))
        m = int(np.prod(indices.shape[b:-1], dtype=np.int64))
        idx = indices.reshape(nb, m, k)
        key = [np.broadcast_to(np.arange(nb)[:, None], (nb, m))]
        for j in range(k):
            key.append(idx[..., j])
        out = d[tuple(key)]
        return (out.reshape(batch + indices.shape[b:-1] + data.shape[b + k :]),)

    return _checked(node, compute)


# --- scatters ---------------------------------------------------------------------------------


def _scatter_elements(node: NodeInfo, axis: int, reduction: str) -> Compute:
    def compute(data, indices, updates):
        a = _norm_axis(node, axis, data.ndim)
        if indices.shape != updates.shape or indices.ndim != data.ndim:
            raise ValueError(
                f"{node.describe()}: indices {indices.shape} and updates {updates.shape} must match "
                f"and have the rank of data {data.shape}"
            )
        flat = _element_offsets(node, indices, a, data.shape).reshape(-1)
        out = data.copy()
        _scatter_rows(out.reshape(-1, 1), flat, updates.reshape(-1, 1), reduction)
        return (out,)

    return _checked(node, compute)


@registry.kernel("Scatter", since=(9, 11))
def scatter(node: NodeInfo) -> Compute:
    return _scatter_elements(node, int(node.attr("axis", 0)), "none")


@registry.kernel("ScatterElements", since=(11, 13, 16, 18))
def scatter_elements(node: NodeInfo) -> Compute:
    reduction = _reduction(node)
    return _scatter_elements(node, int(node.attr("axis", 0)), reduction)


@registry.kernel("ScatterND", since=(11, 13, 16, 18))
def scatter_nd(node: NodeInfo) -> Compute:
    reduction = _reduction(node)

    def compute(data, indices, updates):
        k = indices.shape[-1] if indices.ndim else 0
        if (
            indices.ndim < 1
            or k > data.ndim
            or updates.shape != indices.shape[:-1] + data.shape[k:]
        ):
            raise ValueError(
                f"{node.describe()}: indices {indices.shape} and updates {updates.shape} do not fit data {data.shape}"
            )
        n_rows = int(np.prod(data.shape[:k], dtype=np.int64))
        idx = indices.reshape(int(np.prod(indices.shape[:-1], dtype=np.int64)), k)
        if k:
            rows = _flat_index(node, tuple(idx.T), data.shape[:k])
        else:  # every update replaces the whole tensor
            rows = np.zeros(idx.shape[0], dtype=np.int64)
        out = data.copy()
        out2d = out.reshape(n_rows, int(np.prod(data.shape[k:], dtype=np.int64)))
        _scatter_rows(out2d, rows, updates.reshape(rows.size, out2d.shape[1]), reduction)
        return (out,)

    return _checked(node, compute)


@registry.kernel("TensorScatter", since=24)
def tensor_scatter(node: NodeInfo) -> Compute:
    mode = node.attr("mode", "linear")
    if mode not in ("linear", "circular"):
        raise ValueError(f"{node.describe()}: unknown mode {mode!r}")
    axis = int(node.attr("axis", -2))

    def compute(past, update, write_indices=None):
        a = _norm_axis(node, axis, past.ndim)
        if a == 0:
            raise ValueError(f"{node.describe()}: axis must not be the batch axis")
        if update.ndim != past.ndim or any(
            u != p for i, (u, p) in enumerate(zip(update.shape, past.shape)) if i != a
        ):
            raise ValueError(
                f"{node.describe()}: update {update.shape} does not fit cache {past.shape}"
            )
        batch, max_len, seq = past.shape[0], past.shape[a], update.shape[a]
        start = (
            np.zeros(batch, np.int64)
            if write_indices is None
            else write_indices.astype(np.int64).reshape(-1)
        )
        pos = start[:, None] + np.arange(seq, dtype=np.int64)[None, :]
        if mode == "circular":
            pos %= max_len
        elif pos.size and (pos.min() < 0 or pos.max() >= max_len):
            raise ValueError(
                f"{node.describe()}: write_indices + update length exceed the cache length {max_len}"
            )
        out = past.copy()
        # Bring the sequence axis next to batch so (batch, position) pairs index it directly.
        np.moveaxis(out, a, 1)[np.arange(batch)[:, None], pos] = np.moveaxis(update, a, 1)
        return (out,)

    return compute


# --- selections -------------------------------------------------------------------------------


@registry.kernel("Compress", since=(9, 11, 28))
def compress(node: NodeInfo) -> Compute:
    axis = node.attr("axis", None)

    def compute(x, condition):
        cond = condition.reshape(-1).astype(bool, copy=False)
        # A condition longer than the axis has its excess ignored, as onnxruntime does.
        if axis is None:
            flat = x.reshape(-1)
            return (flat[: cond.size][cond[: flat.size]],)
        a = _norm_axis(node, int(axis), x.ndim)
        return (np.compress(cond[: x.shape[a]], x, axis=a),)

    return compute


@registry.kernel("NonZero", since=(9, 13))
def nonzero(node: NodeInfo) -> Compute:
    def compute(x):
        # A scalar is treated as a one-element vector, as onnxruntime does.
        nz = np.nonzero(x.reshape(1) if x.ndim == 0 else x)
        return (np.array(nz, dtype=np.int64).reshape(len(nz), -1),)

    return compute


@registry.kernel("OneHot", since=(9, 11, 28))
def one_hot(node: NodeInfo) -> Compute:
    axis = int(node.attr("axis", -1))

    def compute(indices, depth, values):
        d = int(np.asarray(depth).reshape(-1)[0])
        if d < 1:
            raise ValueError(f"{node.describe()}: depth must be positive, got {d}")
        vals = values.reshape(-1)
        if vals.size != 2:
            raise ValueError(f"{node.describe()}: values must hold [off_value, on_value]")
        rank = indices.ndim + 1
        a = _norm_axis(node, axis, rank)
        node.check_size((*indices.shape, d), vals.dtype)
        idx = indices.astype(np.int64)
        idx = np.where(idx < 0, idx + d, idx)
        classes = np.arange(d, dtype=np.int64).reshape((d,) + (1,) * (rank - 1 - a))
        hot = np.expand_dims(idx, a) == classes
        return (np.where(hot, vals[1], vals[0]),)

    return compute


@registry.kernel("ReverseSequence", since=(10, 28))
def reverse_sequence(node: NodeInfo) -> Compute:
    batch_axis = int(node.attr("batch_axis", 1))
    time_axis = int(node.attr("time_axis", 0))
    if {batch_axis, time_axis} != {0, 1}:
        raise ValueError(
            f"{node.describe()}: batch_axis and time_axis must be 0 and 1 in some order"
        )

    def compute(x, sequence_lens):
        if x.ndim < 2:
            raise ValueError(f"{node.describe()}: input must have rank >= 2")
        n_batch, n_time = x.shape[batch_axis], x.shape[time_axis]
        lens = sequence_lens.astype(np.int64).reshape(-1)
        if lens.size != n_batch or (lens.size and (lens.min() < 0 or lens.max() > n_time)):
            raise ValueError(
                f"{node.describe()}: sequence_lens {lens.tolist()} do not fit input {x.shape}"
            )
        t = np.arange(n_time, dtype=np.int64)[None, :]
        src = np.where(t < lens[:, None], lens[:, None] - 1 - t, t)  # (batch, time)
        if time_axis == 0:
            src = src.T
        src = src.reshape(src.shape + (1,) * (x.ndim - 2))
        return (np.take_along_axis(x, src, axis=time_axis),)

    return compute


def _unique_rows(rows: np.ndarray):
    """np.unique over rows of a 2-D object array (np.unique's axis mode rejects objects)."""
    keys = [tuple(r) for r in rows.tolist()]
    order = sorted(range(len(keys)), key=keys.__getitem__)
    first: dict = {}
    for i in order:
        first.setdefault(keys[i], i)
    uniq = list(first)
    pos = {k: j for j, k in enumerate(uniq)}
    inverse = np.array([pos[k] for k in keys], dtype=np.int64)
    return (
        np.array(list(first.values()), dtype=np.int64),
        inverse,
        np.bincount(inverse, minlength=len(uniq)).astype(np.int64),
    )


@registry.kernel("Unique", since=(11, 28))
def unique(node: NodeInfo) -> Compute:
    axis = node.attr("axis", None)
    is_sorted = bool(node.attr("sorted", 1))

    def compute(x):
        if axis is None:
            flat = x.reshape(-1)
            _, first, inverse, counts = np.unique(
                flat, return_index=True, return_inverse=True, return_counts=True
            )
            taken = flat
            a = 0
        else:
            a = _norm_axis(node, int(axis), x.ndim)
            taken = x
            if x.dtype == object:
                first, inverse, counts = _unique_rows(np.moveaxis(x, a, 0).reshape(x.shape[a], -1))
            else:
                _, first, inverse, counts = np.unique(
                    x, axis=a, return_index=True, return_inverse=True, return_counts=True
                )
        first = first.astype(np.int64, copy=False)
        inverse = inverse.reshape(-1).astype(np.int64, copy=False)
        counts = counts.astype(np.int64, copy=False)
        if not is_sorted:
            order = np.argsort(first, kind="stable")
            rank = np.empty_like(order)
            rank[order] = np.arange(order.size)
            first, counts, inverse = first[order], counts[order], rank[inverse]
        # Y is built from first occurrences so it keeps the input's exact values and dtype.
        y = np.take(taken, first, axis=a)
        return (y, first, inverse, counts)

    return compute
