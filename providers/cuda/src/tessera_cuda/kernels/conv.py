"""Conv as im2col + one batched GEMM per group, and pooling over strided windows.

Both are written against ``xp`` alone: the column matrix is a strided view of the padded input
(``as_strided``), copied once into GEMM layout, so CuPy runs one gather and one cuBLAS call.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from tessera.provider import NodeInfo
from tessera_cuda.kernels._registry import FLOATS, check, registry


def _spatial(node: NodeInfo, kernel: Sequence[int], in_shape: Sequence[int]):
    """(strides, dilations, pads_begin, pads_end) with auto_pad resolved for ``in_shape``."""
    n = len(kernel)
    strides = list(node.attr("strides", [1] * n))
    dil = list(node.attr("dilations", [1] * n))
    pads = list(node.attr("pads", [0] * (2 * n)))
    auto = node.attr("auto_pad", "NOTSET")
    begin, end = pads[:n], pads[n:]
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        begin, end = [], []
        for i in range(n):
            out = math.ceil(in_shape[i] / strides[i])
            total = max(0, (out - 1) * strides[i] + (kernel[i] - 1) * dil[i] + 1 - in_shape[i])
            small, big = total // 2, total - total // 2
            begin.append(small if auto == "SAME_UPPER" else big)
            end.append(big if auto == "SAME_UPPER" else small)
    elif auto == "VALID":
        begin, end = [0] * n, [0] * n
    return strides, dil, begin, end


def _windows(xp, x, kernel, strides, dil, out_shape):
    """A view (N, C, *out, *kernel) of ``x`` (N, C, *spatial): every window, no copy."""
    lead = x.strides[:2]
    sp = x.strides[2:]
    shape = tuple(x.shape[:2]) + tuple(out_shape) + tuple(kernel)
    strides = (
        tuple(lead)
        + tuple(s * st for s, st in zip(sp, strides))
        + tuple(s * d for s, d in zip(sp, dil))
    )
    return xp.lib.stride_tricks.as_strided(x, shape=shape, strides=strides)


def _out_shape(in_shape, kernel, strides, dil, begin, end, ceil_mode=False):
    out = []
    for i in range(len(kernel)):
        span = in_shape[i] + begin[i] + end[i] - ((kernel[i] - 1) * dil[i] + 1)
        n = (math.ceil if ceil_mode else math.floor)(span / strides[i]) + 1
        if ceil_mode and (n - 1) * strides[i] >= in_shape[i] + begin[i]:
            n -= 1  # the last window must start inside the input or the left padding
        out.append(max(n, 0))
    return out


@registry.kernel("Conv", (1, 11, 22), types={"T": FLOATS})
def conv(node: NodeInfo, be):
    xp = be.xp
    group = int(node.attr("group", 1))

    def compute(x, w, b=None):
        kernel = list(w.shape[2:])
        strides, dil, begin, end = _spatial(node, kernel, x.shape[2:])
        pad = [(0, 0), (0, 0), *list(zip(begin, end))]
        xp_ = xp.pad(x, pad) if any(begin) or any(end) else xp.ascontiguousarray(x)
        out_sp = _out_shape(x.shape[2:], kernel, strides, dil, begin, end)
        n, c = x.shape[:2]
        m = w.shape[0]
        cg, mg = c // group, m // group
        win = _windows(xp, xp_, kernel, strides, dil, out_sp)  # N, C, *out, *k
        nd = len(kernel)
        # -> G, N*out, Cg*k : the im2col matrix of each group
        win = win.reshape((n, group, cg, *tuple(out_sp), *tuple(kernel)))
        order = (1, 0, *range(3, 3 + nd), 2, *range(3 + nd, 3 + 2 * nd))
        cols = xp.ascontiguousarray(win.transpose(order)).reshape(
            group, n * math.prod(out_sp), cg * math.prod(kernel)
        )
        wg = w.reshape(group, mg, cg * math.prod(kernel)).transpose(0, 2, 1)
        y = be.matmul(cols, wg)  # G, N*out, Mg
        y = y.reshape((group, n, *out_sp, mg))
        y = y.transpose((1, 0, nd + 2, *range(2, 2 + nd))).reshape((n, m, *out_sp))
        y = xp.ascontiguousarray(y)
        if b is not None:
            y += b.reshape((1, m) + (1,) * nd)
        return (y,)

    return compute


@check("Conv")
def _conv_shape(node: NodeInfo) -> str | None:
    shape = node.input_shapes[1] if len(node.input_shapes) > 1 else None
    if shape is None and 1 not in node.constant_inputs:
        return None
    rank = len(shape) if shape is not None else node.constant_inputs[1].ndim
    if rank < 3:
        return f"Conv weight of rank {rank} (no spatial dims) is not supported"
    return None


def _pool(node: NodeInfo, be, kind: str):
    xp = be.xp
    kernel = list(node.attr("kernel_shape"))
    ceil_mode = bool(node.attr("ceil_mode", 0))
    include_pad = bool(node.attr("count_include_pad", 0))

    def compute(x):
        strides, dil, begin, end = _spatial(node, kernel, x.shape[2:])
        out_sp = _out_shape(x.shape[2:], kernel, strides, dil, begin, end, ceil_mode)
        # Pad enough for ceil_mode's last window; -inf (max) or 0 (avg) never wins or counts.
        extra = [
            max(0, (o - 1) * s + (k - 1) * d + 1 - (i + b0 + e0))
            for o, s, k, d, i, b0, e0 in zip(out_sp, strides, kernel, dil, x.shape[2:], begin, end)
        ]
        pad = [(0, 0), (0, 0)] + [(b0, e0 + ex) for b0, e0, ex in zip(begin, end, extra)]
        fill = -np.inf if kind == "max" else 0
        padded = xp.pad(x, pad, constant_values=fill)
        win = _windows(xp, padded, kernel, strides, dil, out_sp)
        axes = tuple(range(-len(kernel), 0))
        if kind == "max":
            return (win.max(axis=axes),)
        total = win.sum(axis=axes)
        if include_pad:
            # Padding counts, but ceil_mode's overhang past the declared pads does not.
            ones = xp.pad(xp.ones(x.shape[2:], x.dtype), list(zip(begin, end)), constant_values=1)
            ones = xp.pad(ones, [(0, ex) for ex in extra])
        else:
            ones = xp.pad(
                xp.ones(x.shape[2:], x.dtype),
                [(b0, e0 + ex) for b0, e0, ex in zip(begin, end, extra)],
            )
        counts = _windows(xp, ones[None, None], kernel, strides, dil, out_sp).sum(axis=axes)
        return ((total / counts).astype(x.dtype, copy=False),)

    return compute


@registry.kernel("MaxPool", (1, 8, 10, 11, 12, 22), types={"T": FLOATS})
def max_pool(node: NodeInfo, be):
    return _pool(node, be, "max")


@registry.kernel("AveragePool", (1, 7, 10, 11, 19, 22), types={"T": FLOATS})
def average_pool(node: NodeInfo, be):
    return _pool(node, be, "avg")


@check("MaxPool")
def _max_pool_form(node: NodeInfo) -> str | None:
    if node.attr("storage_order", 0):
        return "MaxPool storage_order=1 is not supported"
    if len(node.outputs) > 1 and node.outputs[1]:
        return "MaxPool's Indices output is not supported"
    return None


@check("MaxPool", "AveragePool")
def _pool_dims(node: NodeInfo) -> str | None:
    if len(node.attr("kernel_shape", [])) == 0:
        return "pooling without kernel_shape"
    return None


@registry.kernel("GlobalAveragePool", (1, 22), types={"T": FLOATS})
@registry.kernel("GlobalMaxPool", (1, 22), types={"T": FLOATS})
def global_pool(node: NodeInfo, be):
    mean = node.op_type == "GlobalAveragePool"

    def compute(x):
        axes = tuple(range(2, x.ndim))
        return ((x.mean(axis=axes, keepdims=True) if mean else x.max(axis=axes, keepdims=True)),)

    return compute
