"""Resize, nearest and (multi-)linear, as separable per-axis gathers with host-computed indices.

Index and weight tables depend only on shapes, so they come from the core's
``resize_axis_table`` on the host, cached per input shape; the device does one ``take`` per
tap (one for nearest, two for linear) per resized axis.
"""

from __future__ import annotations

import math

import numpy as np

from tessera.provider import NodeInfo, resize_axis_table
from tessera_cuda.kernels._registry import FLOATS, check, host_inputs, registry

_MODES = ("nearest", "linear")
_TRANSFORMS = (
    "half_pixel",
    "half_pixel_symmetric",
    "pytorch_half_pixel",
    "align_corners",
    "asymmetric",
)
_NEAREST = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil")


@registry.kernel("Resize", (11, 13, 18, 19), types={"T1": FLOATS})
def resize(node: NodeInfo, be):
    xp = be.xp
    mode = node.attr("mode", "nearest")
    transform = node.attr("coordinate_transformation_mode", "half_pixel")
    nearest_mode = node.attr("nearest_mode", "round_prefer_floor")
    # The core's ONNX Resize tables (float32 coordinates, as onnxruntime rounds them).
    opts = {
        "mode": mode,
        "nearest_mode": nearest_mode,
        "ctm": transform,
        "cubic_a": -0.75,
        "antialias": False,
        "exclude_outside": False,
    }
    tables: dict[tuple, list] = {}

    def plan(shape: tuple[int, ...], scales, sizes):
        key = (
            shape,
            None if scales is None else tuple(scales),
            None if sizes is None else tuple(sizes),
        )
        found = tables.get(key)
        if found is not None:
            return found
        steps = []
        for ax, n_in in enumerate(shape):
            if sizes is not None:
                n_out = int(sizes[ax])
                scale = n_out / n_in
            else:
                scale = float(scales[ax])
                n_out = math.floor(n_in * scale)
            if n_out == n_in and scale == 1.0:
                continue
            idx, weights, _ = resize_axis_table(opts, n_in, n_out, scale, (0.0, 1.0))
            if weights is None:
                steps.append((ax, be.asarray(idx[:, 0].astype(np.int64)), None))
                continue
            wshape = [1] * len(shape)
            wshape[ax] = n_out
            taps = [
                (be.asarray(idx[:, t].astype(np.int64)), be.asarray(weights[:, t].reshape(wshape)))
                for t in range(idx.shape[1])
            ]
            steps.append((ax, None, taps))
        if len(tables) > 64:
            tables.clear()
        tables[key] = steps
        return steps

    def compute(x, roi=None, scales=None, sizes=None):
        sc = None
        if scales is not None and np.size(be.host(scales)):
            sc = [float(s) for s in be.host(scales).ravel()]
        sz = None
        if sizes is not None and np.size(be.host(sizes)):
            sz = [int(s) for s in be.host(sizes).ravel()]
        out = x
        for ax, nearest, taps in plan(tuple(x.shape), sc, sz):
            if taps is None:
                out = xp.take(out, nearest, axis=ax)
                continue
            src, acc = out, None
            for index, weight in taps:
                term = xp.take(src, index, axis=ax) * weight.astype(x.dtype, copy=False)
                acc = term if acc is None else acc + term
            out = acc
        if out is x:
            out = xp.array(x, copy=True)
        node.check_size(out.shape, out.dtype)
        return (out,)

    return compute


host_inputs("Resize", 1, 2, 3)


@check("Resize")
def _resize_form(node: NodeInfo) -> str | None:
    mode = node.attr("mode", "nearest")
    if mode not in _MODES:
        return f"Resize mode={mode!r} is not supported (nearest and linear are)"
    transform = node.attr("coordinate_transformation_mode", "half_pixel")
    if transform not in _TRANSFORMS:
        return f"Resize coordinate_transformation_mode={transform!r} is not supported"
    if node.attr("nearest_mode", "round_prefer_floor") not in _NEAREST:
        return f"Resize nearest_mode={node.attr('nearest_mode')!r} is not supported"
    if node.attr("antialias", 0):
        return "Resize antialias=1 is not supported"
    if node.attr("axes", None) is not None:
        return "Resize with the axes attribute is not supported"
    if node.attr("keep_aspect_ratio_policy", "stretch") != "stretch":
        return "Resize keep_aspect_ratio_policy other than 'stretch' is not supported"
    return None
