"""Resize, nearest and (multi-)linear, as separable per-axis gathers with host-computed indices.

Index and weight tables depend only on shapes, so they are computed with NumPy on the host and
cached per input shape; the device does one or two ``take`` calls per resized axis.
"""

from __future__ import annotations

import math

import numpy as np

from tessera.provider import NodeInfo
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


def source_coords(transform: str, out_len: int, in_len: int, scale: float) -> np.ndarray:
    """Where each output position along one axis samples the input (ONNX's coordinate modes).

    ONNX defines the resized length as ``in_len * scale`` before flooring; align_corners and
    pytorch_half_pixel use that real length, not the integer output size.
    """
    x = np.arange(out_len, dtype=np.float64)
    resized = in_len * scale
    if transform == "half_pixel":
        return (x + 0.5) / scale - 0.5
    if transform == "half_pixel_symmetric":
        adjustment = out_len / (scale * in_len)
        center = in_len / 2
        return center * (1 - adjustment) + (x + 0.5) / scale - 0.5
    if transform == "pytorch_half_pixel":
        return (x + 0.5) / scale - 0.5 if resized > 1 else np.zeros_like(x)
    if transform == "align_corners":
        return x * (in_len - 1) / (resized - 1) if resized != 1 else np.zeros_like(x)
    return x / scale  # asymmetric


def nearest_index(coords: np.ndarray, mode: str, in_len: int) -> np.ndarray:
    if mode == "floor":
        idx = np.floor(coords)
    elif mode == "ceil":
        idx = np.ceil(coords)
    else:
        frac = coords - np.floor(coords)
        half = np.isclose(frac, 0.5)
        rounded = np.floor(coords + 0.5)
        tie = np.floor(coords) if mode == "round_prefer_floor" else np.ceil(coords)
        idx = np.where(half, tie, rounded)
    return np.clip(idx, 0, in_len - 1).astype(np.int64)


@registry.kernel("Resize", (11, 13, 18, 19), types={"T1": FLOATS})
def resize(node: NodeInfo, be):
    xp = be.xp
    mode = node.attr("mode", "nearest")
    transform = node.attr("coordinate_transformation_mode", "half_pixel")
    nearest_mode = node.attr("nearest_mode", "round_prefer_floor")
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
            coords = source_coords(transform, n_out, n_in, scale)
            if mode == "nearest":
                steps.append(
                    (ax, be.asarray(nearest_index(coords, nearest_mode, n_in)), None, None)
                )
            else:
                lo = np.floor(coords)
                w1 = coords - lo
                i0 = np.clip(lo, 0, n_in - 1).astype(np.int64)
                i1 = np.clip(lo + 1, 0, n_in - 1).astype(np.int64)
                wshape = [1] * len(shape)
                wshape[ax] = n_out
                steps.append(
                    (
                        ax,
                        be.asarray(i0),
                        be.asarray(i1),
                        be.asarray(w1.reshape(wshape)),
                    )
                )
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
        for ax, i0, i1, w1 in plan(tuple(x.shape), sc, sz):
            if i1 is None:
                out = xp.take(out, i0, axis=ax)
            else:
                w = w1.astype(x.dtype, copy=False)
                a = xp.take(out, i0, axis=ax)
                b = xp.take(out, i1, axis=ax)
                out = a + (b - a) * w
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
