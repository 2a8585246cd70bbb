"""Resize and Upsample: per-axis tap tables made on the host, one generated kernel per call.

Each resized axis gets a table of source indices (and, for linear and cubic, weights) per output
index, computed once per (input shape, scales/sizes, roi) and kept on the device. The kernel
walks the product of the resized axes' taps for every output element, so any number of axes
resizes in one launch. Antialiasing widens the taps; ``exclude_outside`` zeroes the taps outside
the input and renormalises; ``tf_crop_and_resize`` marks extrapolated rows with index -1.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from tessera.provider import RESIZE_TRANSFORMS, NodeInfo, resize_axis_table
from tessera_opencl._runtime import Runtime, contiguous_strides, ctype
from tessera_opencl.kernels._registry import ALL, FLOATS, check, flit, registry

_NEAREST = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil")
_POLICIES = ("stretch", "not_larger", "not_smaller")
_MAX_RANK = 8
_CACHE_LIMIT = 64


def _legacy(node: NodeInfo) -> bool:
    """Upsample and Resize-10: asymmetric coordinates, scales only."""
    return node.op_type == "Upsample" or node.opset < 11


def _mode(node: NodeInfo) -> str:
    mode = node.attr("mode", "nearest")
    return "linear" if mode == "bilinear" and _legacy(node) else mode


@check("Resize", "Upsample")
def _resize_forms(node: NodeInfo) -> str | None:
    mode = _mode(node)
    legacy = _legacy(node)
    if mode not in (("nearest", "linear") if legacy else ("nearest", "linear", "cubic")):
        return f"mode {mode!r} is not a {node.op_type}-{node.opset} mode"
    if mode != "nearest" and node.input_types[0] not in FLOATS:
        return f"{mode} interpolation of {node.input_types[0]} is not implemented on OpenCL"
    if legacy:
        return None
    ctm = node.attr("coordinate_transformation_mode", "half_pixel")
    if ctm not in RESIZE_TRANSFORMS or (ctm == "half_pixel_symmetric" and node.opset < 19):
        return f"coordinate_transformation_mode {ctm!r} is not defined at opset {node.opset}"
    if mode == "nearest" and node.attr("nearest_mode", "round_prefer_floor") not in _NEAREST:
        return f"nearest_mode {node.attr('nearest_mode')!r} is not defined"
    if mode == "nearest" and node.attr("antialias", 0):
        return "antialias applies to linear and cubic Resize only"
    if node.attr("keep_aspect_ratio_policy", "stretch") not in _POLICIES:
        return f"keep_aspect_ratio_policy {node.attr('keep_aspect_ratio_policy')!r} is not defined"
    return None


def axis_taps(
    opts: dict, in_len: int, out_len: int, scale: float, roi: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray | None]:
    """(indices (out_len, taps), weights (out_len, taps) or None for nearest), from the core's
    Resize tables. An extrapolated output position has index -1 in its first tap."""
    idx, weights, extrapolated = resize_axis_table(opts, in_len, out_len, scale, roi)
    idx = idx.astype(np.int64)
    if extrapolated is not None:
        idx[extrapolated, 0] = -1
    return idx, weights


def _options(node: NodeInfo) -> dict:
    legacy = _legacy(node)
    return {
        "mode": _mode(node),
        "ctm": "asymmetric"
        if legacy
        else node.attr("coordinate_transformation_mode", "half_pixel"),
        "nearest_mode": "legacy" if legacy else node.attr("nearest_mode", "round_prefer_floor"),
        "antialias": bool(node.attr("antialias", 0)),
        "cubic_a": float(node.attr("cubic_coeff_a", -0.75)),
        "exclude_outside": bool(node.attr("exclude_outside", 0)),
        "extrapolation": float(node.attr("extrapolation_value", 0.0)),
        "policy": node.attr("keep_aspect_ratio_policy", "stretch"),
    }


def _values(x: Any, rt: Runtime) -> list[float] | None:
    if x is None:
        return None
    v = rt.host(x).reshape(-1)
    return None if v.size == 0 else v.tolist()


class _Resize:
    """One node's resize: output shape and tap tables per input shape, then the launch."""

    def __init__(self, node: NodeInfo, rt: Runtime) -> None:
        self.node, self.rt, self.opts = node, rt, _options(node)
        axes = node.attr("axes", None)
        self.axes = None if axes is None else [int(a) for a in axes]
        self._plans: dict[tuple, tuple] = {}

    def __call__(self, x, roi=None, scales=None, sizes=None):
        x = self.rt.as_device(x)
        sc, sz, rois = _values(scales, self.rt), _values(sizes, self.rt), _values(roi, self.rt)
        if sc is not None and sz is not None:
            raise ValueError(f"{self.node.describe()}: give scales or sizes, not both")
        key = (x.shape, None if sc is None else tuple(sc), None if sz is None else tuple(sz))
        key += (None if rois is None else tuple(rois),)
        plan = self._plans.get(key)
        if plan is None:
            if len(self._plans) >= _CACHE_LIMIT:
                self._plans.clear()
            plan = self._plans[key] = self._plan(x.shape, x.dtype, sc, sz, rois)
        return (self._run(x, *plan),)

    def _plan(self, shape: tuple, dtype: np.dtype, scales, sizes, roi) -> tuple:
        node, opts, r = self.node, self.opts, len(shape)
        if r > _MAX_RANK:
            raise ValueError(f"{node.describe()}: rank {r} is above {_MAX_RANK}")
        axes = list(range(r)) if self.axes is None else [a + r if a < 0 else a for a in self.axes]
        if any(not 0 <= a < r for a in axes) or len(set(axes)) != len(axes):
            raise ValueError(f"{node.describe()}: axes {axes} do not fit rank {r}")
        scale, out = [1.0] * r, list(shape)
        if sizes is not None:
            if len(sizes) != len(axes):
                raise ValueError(f"{node.describe()}: {len(sizes)} sizes for {len(axes)} axes")
            for a, s in zip(axes, sizes):
                scale[a], out[a] = (s / shape[a] if shape[a] else 1.0), int(s)
            if opts["policy"] != "stretch":
                pick = min if opts["policy"] == "not_larger" else max
                common = pick(scale[a] for a in axes)
                for a in axes:
                    scale[a], out[a] = common, int(common * shape[a] + 0.5)
        elif scales is not None:
            if len(scales) != len(axes):
                raise ValueError(f"{node.describe()}: {len(scales)} scales for {len(axes)} axes")
            for a, s in zip(axes, scales):
                if s <= 0:
                    raise ValueError(f"{node.describe()}: scales must be positive, got {scales}")
                scale[a], out[a] = float(s), math.floor(float(s) * shape[a])
        else:
            raise ValueError(f"{node.describe()}: one of scales or sizes is required")
        rois = [(0.0, 1.0)] * r
        if roi is not None and opts["ctm"] == "tf_crop_and_resize":  # other modes ignore roi
            if len(roi) != 2 * len(axes):
                raise ValueError(
                    f"{node.describe()}: roi has {len(roi)} values for {len(axes)} axes"
                )
            for i, a in enumerate(axes):
                rois[a] = (float(roi[i]), float(roi[len(axes) + i]))
        node.check_size(out, dtype)
        resized = [
            a
            for a in range(r)
            if out[a] != shape[a]
            or scale[a] != 1.0
            or (opts["ctm"] == "tf_crop_and_resize" and rois[a] != (0.0, 1.0))
        ]
        if any(shape[a] == 0 for a in resized):
            return tuple(out), None, None, None, "", []  # nothing to sample: zeros
        idx_rows, w_rows, meta_tab = [], [], []
        wdtype = np.float64 if dtype == np.float64 else np.float32
        offset = 0
        for a in resized:
            idx, w = axis_taps(opts, shape[a], out[a], scale[a], rois[a])
            idx_rows.append(idx.reshape(-1))
            if w is not None:
                w_rows.append(w.astype(wdtype).reshape(-1))
            meta_tab += [offset, idx.shape[1]]
            offset += idx.size
        rt = self.rt
        idx_dev = rt.upload(np.concatenate(idx_rows) if idx_rows else np.zeros(1, np.int64))
        w_dev = rt.upload(np.concatenate(w_rows) if w_rows else np.zeros(1, wdtype))
        src = self._source(r, resized, np.dtype(dtype), wdtype)
        meta = list(out) + list(contiguous_strides(shape)) + meta_tab
        return tuple(out), resized, idx_dev, w_dev, src, meta

    def _source(self, r: int, resized: Sequence[int], dtype: np.dtype, wdtype) -> str:
        """The kernel: output coordinates, then one loop per resized axis over its taps."""
        t, w = ctype(dtype), ctype(wdtype)
        nearest = self.opts["mode"] == "nearest"
        extrap = self.opts["ctm"] == "tf_crop_and_resize"
        lines = [
            f"__kernel void k(__global {t}* out, __global const {t}* x, "
            f"__global const long* idx, __global const {w}* wt, __global const long* m, long x0) {{",
            "  long g = get_global_id(0), r = g;",
        ]
        for d in reversed(range(r)):
            lines.append(f"  long o{d} = r % m[{d}]; r /= m[{d}];")
        fixed = [f"o{d} * m[{r + d}]" for d in range(r) if d not in resized]
        lines.append(f"  long base = x0{''.join(' + ' + f for f in fixed)};")
        tab = 2 * r
        for j, a in enumerate(resized):
            lines.append(f"  const long n{j} = m[{tab + 2 * j + 1}];")
            lines.append(f"  const long p{j} = m[{tab + 2 * j}] + o{a} * n{j};")
        if extrap:
            cond = " || ".join(f"idx[p{j}] < 0" for j in range(len(resized)))
            lines.append(
                f"  if ({cond}) {{ out[g] = ({t}){flit(self.opts['extrapolation'], w)}; return; }}"
            )
        if nearest:
            terms = "".join(f" + idx[p{j}] * m[{r + a}]" for j, a in enumerate(resized))
            lines.append(f"  out[g] = x[base{terms}];")
        else:
            lines.append(f"  {w} acc = ({w})0;")
            prev_i, prev_w = "base", f"({w})1"
            for j, a in enumerate(resized):
                lines.append(f"  for (long t{j} = 0; t{j} < n{j}; ++t{j}) {{")
                lines.append(f"    const long i{j} = {prev_i} + idx[p{j} + t{j}] * m[{r + a}];")
                lines.append(f"    const {w} w{j} = {prev_w} * wt[p{j} + t{j}];")
                prev_i, prev_w = f"i{j}", f"w{j}"
            lines.append(f"    acc += {prev_w} * ({w})x[{prev_i}];")
            lines.append("  " + "}" * len(resized))
            lines.append(f"  out[g] = ({t})acc;")
        lines.append("}")
        return "\n".join(lines)

    def _run(self, x, out_shape, resized, idx, wt, src, meta):
        rt = self.rt
        if resized is None:
            return rt.upload(np.zeros(out_shape, x.dtype))
        if not resized:
            return x  # nothing changes: device tensors are immutable, so alias
        out = rt.empty(out_shape, x.dtype)
        if out.size == 0:
            return out
        rt.launch(
            rt.kernel(src),
            (out.size,),
            out.data,
            x.base_data,
            idx.data,
            wt.data,
            rt.meta(meta),
            np.int64(x.offset // x.dtype.itemsize),
        )
        return out


@registry.kernel("Resize", since=(11, 13, 18, 19), types={0: ALL})
def resize(node: NodeInfo, rt: Runtime):
    return _Resize(node, rt)


@registry.kernel("Resize", since=10, types={0: ALL})
def resize10(node: NodeInfo, rt: Runtime):
    run = _Resize(node, rt)
    return lambda x, scales: run(x, None, scales)


@registry.kernel("Upsample", since=(7, 9), types={0: ALL})
def upsample(node: NodeInfo, rt: Runtime):
    run = _Resize(node, rt)
    if node.opset < 9:
        fixed = np.asarray(node.attr("scales"), np.float32)
        return lambda x: run(x, None, fixed)
    return lambda x, scales: run(x, None, scales)
