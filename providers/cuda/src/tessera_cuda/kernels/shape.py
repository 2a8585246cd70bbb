"""Data movement: Reshape, Flatten, Squeeze, Unsqueeze, Transpose, Gather, Slice, Concat, Split,
Expand. Shape arguments (Reshape's shape, Slice's starts, ...) are read on the host."""

from __future__ import annotations

import numpy as np

from tessera.provider import NodeInfo
from tessera_cuda.kernels._registry import ALL, INDEX, host_inputs, norm_axis, registry


@registry.kernel("Reshape", (5, 13, 14, 19, 21, 23, 24, 25), types={"T": ALL})
def reshape(node: NodeInfo, be):
    allowzero = bool(node.attr("allowzero", 0))

    def compute(x, shape):
        dims = [int(d) for d in be.host(shape).ravel()]
        if not allowzero:
            dims = [x.shape[i] if d == 0 else d for i, d in enumerate(dims)]
        return (x.reshape(dims),)

    return compute


host_inputs("Reshape", 1)


@registry.kernel("Flatten", (9, 11, 13, 21, 23, 24, 25), types={"T": ALL})
def flatten(node: NodeInfo, be):
    axis = int(node.attr("axis", 1))

    def compute(x):
        ax = norm_axis(axis, x.ndim)
        lead = int(np.prod(x.shape[:ax], dtype=np.int64))
        return (x.reshape(lead, -1) if x.size else x.reshape(lead, int(np.prod(x.shape[ax:]))),)

    return compute


@registry.kernel("Squeeze", (1, 11, 13, 21, 23, 24, 25), types={"T": ALL})
def squeeze(node: NodeInfo, be):
    attr_axes = node.attr("axes", None)  # before 13 the axes are an attribute

    def compute(x, axes=None):
        if attr_axes is not None:
            axes = np.asarray(attr_axes, np.int64)
        if axes is None:
            return (x.reshape([d for d in x.shape if d != 1]),)
        ax = {norm_axis(int(a), x.ndim) for a in be.host(axes).ravel()}
        return (x.reshape([d for i, d in enumerate(x.shape) if i not in ax]),)

    return compute


@registry.kernel("Unsqueeze", (1, 11, 13, 21, 23, 24, 25), types={"T": ALL})
def unsqueeze(node: NodeInfo, be):
    attr_axes = node.attr("axes", None)  # before 13 the axes are an attribute

    def compute(x, axes=None):
        ax = [int(a) for a in (attr_axes if attr_axes is not None else be.host(axes).ravel())]
        rank = x.ndim + len(ax)
        ax = sorted(norm_axis(a, rank) for a in ax)
        shape = list(x.shape)
        for a in ax:
            shape.insert(a, 1)
        return (x.reshape(shape),)

    return compute


host_inputs("Squeeze", 1)
host_inputs("Unsqueeze", 1)


@registry.kernel("Transpose", (1, 13, 21, 23, 24, 25), types={"T": ALL})
def transpose(node: NodeInfo, be):
    xp = be.xp
    perm = node.attr("perm", None)

    def compute(x):
        p = perm if perm is not None else list(reversed(range(x.ndim)))
        return (xp.ascontiguousarray(xp.transpose(x, p)),)

    return compute


@registry.kernel("Gather", (1, 11, 13), types={"T": ALL, "Tind": INDEX})
def gather(node: NodeInfo, be):
    xp = be.xp
    axis = int(node.attr("axis", 0))

    def compute(x, idx):
        ax = norm_axis(axis, x.ndim)
        idx = be.asarray(idx)
        idx = xp.where(idx < 0, idx + x.shape[ax], idx)
        return (xp.take(x, idx, axis=ax),)

    return compute


@registry.kernel("Slice", (10, 11, 13), types={"T": ALL, "Tind": INDEX})
def slice_(node: NodeInfo, be):
    xp = be.xp

    def compute(x, starts, ends, axes=None, steps=None):
        starts = be.host(starts).ravel()
        ends = be.host(ends).ravel()
        axes = range(len(starts)) if axes is None else be.host(axes).ravel()
        steps = [1] * len(starts) if steps is None else be.host(steps).ravel()
        index = [slice(None)] * x.ndim
        for s, e, a, st in zip(starts, ends, axes, steps):
            a = norm_axis(int(a), x.ndim)
            dim, s, e, st = x.shape[a], int(s), int(e), int(st)
            # Clamp as ONNX does: huge int64 sentinels mean "to the end" in either direction.
            s = s + dim if s < 0 else s
            e = e + dim if e < 0 else e
            if st > 0:
                s, e = min(max(s, 0), dim), min(max(e, 0), dim)
            else:
                s, e = min(max(s, -1), dim - 1), min(max(e, -1), dim - 1)
            index[a] = slice(s, None if e < 0 else e, st)
        return (xp.ascontiguousarray(x[tuple(index)]),)

    return compute


host_inputs("Slice", 1, 2, 3, 4)


@registry.kernel("Concat", (4, 11, 13), types={"T": ALL})
def concat(node: NodeInfo, be):
    xp = be.xp
    axis = int(node.attr("axis"))

    def compute(*xs):
        ax = norm_axis(axis, xs[0].ndim)
        return (xp.concatenate([be.asarray(x) for x in xs], axis=ax),)

    return compute


@registry.kernel("Split", (13, 18), types={"T": ALL})
def split(node: NodeInfo, be):
    xp = be.xp
    axis = int(node.attr("axis", 0))
    n_out = len(node.outputs)
    num_outputs = node.attr("num_outputs", None)

    def compute(x, sizes=None):
        ax = norm_axis(axis, x.ndim)
        dim = x.shape[ax]
        if sizes is not None:
            parts = [int(s) for s in be.host(sizes).ravel()]
        else:
            n = int(num_outputs) if num_outputs is not None else n_out
            size = -(-dim // n)  # ceil: the last part may be smaller (Split-18)
            parts = [min(size, dim - i * size) for i in range(n)]
        bounds = np.cumsum(parts)[:-1].tolist()
        return tuple(xp.ascontiguousarray(p) for p in xp.split(x, bounds, axis=ax))

    return compute


host_inputs("Split", 1)


@registry.kernel("Expand", (8, 13), types={"T": ALL})
def expand(node: NodeInfo, be):
    xp = be.xp

    def compute(x, shape):
        dims = [int(d) for d in be.host(shape).ravel()]
        out = np.broadcast_shapes(tuple(x.shape), tuple(dims))
        node.check_size(out, x.dtype)
        return (xp.ascontiguousarray(xp.broadcast_to(x, out)),)

    return compute


host_inputs("Expand", 1)
