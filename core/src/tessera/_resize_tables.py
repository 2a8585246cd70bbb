"""ONNX Resize's coordinate mapping as per-axis index and weight tables, computed on the host.

Every provider that implements Resize needs the same tables (which input positions and weights
make each output position, for each coordinate transformation mode, nearest rounding rule,
linear/cubic taps, antialiasing and exclude_outside); the CPU provider applies them with NumPy,
a device provider uploads them. Exposed as ``tessera.provider.resize_axis_table`` (API 1.1).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

# Every coordinate_transformation_mode resize_axis_table maps (half_pixel_symmetric from opset 19).
RESIZE_TRANSFORMS = (
    "half_pixel",
    "half_pixel_symmetric",
    "pytorch_half_pixel",
    "align_corners",
    "asymmetric",
    "tf_half_pixel_for_nn",
    "tf_crop_and_resize",
)


def _source_coords(ctm: str, in_len: int, out_len: int, scale: float, roi: tuple[float, float]):
    """Source coordinate of every output index along one axis, and the extrapolated mask (or None)."""
    # float32 arithmetic, as onnxruntime: it decides which source pixel nearest mode rounds to.
    f = np.float32
    y = np.arange(out_len, dtype=f)
    scale = f(scale)
    # Like the reference, the resized length is the real in*scale, not out_len.
    length = scale * f(in_len)
    if ctm == "half_pixel":
        return (y + f(0.5)) / scale - f(0.5), None
    if ctm == "half_pixel_symmetric":
        adjustment = f(out_len) / length
        offset = f(in_len) / f(2) * (f(1) - adjustment)
        return offset + (y + f(0.5)) / scale - f(0.5), None
    if ctm == "pytorch_half_pixel":
        return ((y + f(0.5)) / scale - f(0.5)) if length > 1 else np.zeros(out_len, f), None
    if ctm == "align_corners":
        return (y * f(in_len - 1) / (length - f(1))) if length != 1 else np.zeros(out_len, f), None
    if ctm == "asymmetric":
        return y / scale, None
    if ctm == "tf_half_pixel_for_nn":
        return (y + f(0.5)) / scale, None
    start, end = f(roi[0]), f(roi[1])
    if length != 1:
        x = start * f(in_len - 1) + y * (end - start) * f(in_len - 1) / (length - f(1))
    else:
        x = np.full(out_len, f(0.5) * (start + end) * f(in_len - 1), dtype=f)
    return x, (x < 0) | (x > in_len - 1)


def cubic_kernel(t: np.ndarray, a: float) -> np.ndarray:
    """Keys' cubic convolution kernel with coefficient ``a``."""
    t = np.abs(t)
    t2, t3 = t * t, t * t * t
    near = (a + 2) * t3 - (a + 3) * t2 + 1
    far = a * t3 - 5 * a * t2 + 8 * a * t - 4 * a
    return np.where(t <= 1, near, np.where(t < 2, far, 0.0))


def resize_axis_table(
    opts: Mapping, in_len: int, out_len: int, scale: float, roi: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """The tables of one resized axis: (indices (out, T), weights (out, T) or None for
    nearest, extrapolated mask or None). Indices are clipped into the input.

    ``opts`` holds the node's ``mode`` (nearest, linear, cubic), ``nearest_mode`` (or
    ``"legacy"`` for Upsample and Resize-10: truncation when enlarging, ceiling when shrinking,
    as onnxruntime), ``ctm`` (coordinate_transformation_mode), ``cubic_a``, ``antialias`` and
    ``exclude_outside``; ``scale`` is the axis's scale, ``roi`` its (start, end) for
    tf_crop_and_resize. The extrapolated mask is set only for tf_crop_and_resize.
    """
    x, extra = _source_coords(opts["ctm"], in_len, out_len, scale, roi)
    mode = opts["mode"]
    if mode == "nearest":
        nm = opts["nearest_mode"]
        fl = np.floor(x)
        if nm == "round_prefer_floor":
            idx = np.where(x - fl <= 0.5, fl, fl + 1)
        elif nm == "round_prefer_ceil":
            idx = np.where(x - fl < 0.5, fl, fl + 1)
        elif nm == "floor":
            idx = fl
        elif nm == "ceil":
            idx = np.ceil(x)
        else:  # Upsample / Resize-10: truncation when enlarging, ceiling when shrinking
            idx = np.ceil(x) if scale < 1 else np.trunc(x)
        idx = np.clip(idx, 0, in_len - 1).astype(np.intp)
        return idx[:, None], None, extra
    lo = np.ceil(x) - 1  # so that the fraction lies in (0, 1], as the spec's tap placement needs
    frac = x - lo
    s = min(scale, 1.0) if opts["antialias"] else 1.0
    reach = 1 if mode == "linear" else 2
    start = math.floor(-reach / s) + 1
    taps = np.arange(start, 2 - start)
    t = (taps[None, :] - frac[:, None]) * s
    w = np.clip(1 - np.abs(t), 0, 1) if mode == "linear" else cubic_kernel(t, opts["cubic_a"])
    idx = lo[:, None].astype(np.int64) + taps[None, :]
    renorm = opts["antialias"]
    if opts["exclude_outside"]:
        w = np.where((idx < 0) | (idx >= in_len), 0.0, w)
        renorm = True
    if renorm:
        total = w.sum(axis=1, keepdims=True)
        w = w / np.where(total == 0, 1.0, total)
    return np.clip(idx, 0, in_len - 1).astype(np.intp), w, extra
