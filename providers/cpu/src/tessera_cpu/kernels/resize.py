"""Resampling kernels (Resize, Upsample, GridSample, AffineGrid): separable per-axis tap tables and vectorized gathers."""

from __future__ import annotations

import itertools
import math

import numpy as np

from tessera.provider import (
    FLOAT_TYPES,
    RESIZE_TRANSFORMS,
    NodeInfo,
    cubic_kernel,
    resize_axis_table,
)
from tessera_cpu.kernels._registry import registry
from tessera_cpu.kernels.conv import compute_dtype

_NEAREST_MODES = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil", "legacy")
_UPSAMPLE_TYPES = tuple(
    t
    for t in (
        "tensor(uint8)",
        "tensor(uint16)",
        "tensor(uint32)",
        "tensor(uint64)",
        "tensor(int8)",
        "tensor(int16)",
        "tensor(int32)",
        "tensor(int64)",
        "tensor(float16)",
        "tensor(float)",
        "tensor(double)",
        "tensor(bool)",
        "tensor(string)",
    )
)
_RESIZE_TYPES = (*_UPSAMPLE_TYPES, "tensor(bfloat16)")
_CACHE_LIMIT = 64


_DENSE_LIMIT = 256  # input lengths up to this use one dense interpolation matrix per axis
_BLOCK = 64  # beyond it, output indices are cut into blocks of this many (banded matrix)
_MIN_INNER = 16  # a non-last axis needs this many trailing elements for the GEMM form to pay


def band_blocks(idx: np.ndarray, w: np.ndarray, in_len: int) -> list:
    """The tap table as dense matrices: [(out_lo, out_hi, src_lo, src_hi, {dtype: M (out, src)})]."""
    out_len = idx.shape[0]
    step = out_len if in_len <= _DENSE_LIMIT else _BLOCK
    blocks = []
    for o0 in range(0, out_len, step):
        o1 = min(out_len, o0 + step)
        rows = idx[o0:o1]
        s0, s1 = int(rows.min()), int(rows.max()) + 1
        m = np.zeros((o1 - o0, s1 - s0))
        # Edge-clamped taps repeat an index: their weights add up, as the gather form does.
        np.add.at(m, (np.arange(o1 - o0)[:, None], rows - s0), w[o0:o1])
        blocks.append(
            (o0, o1, s0, s1, {np.dtype(np.float64): m, np.dtype(np.float32): m.astype(np.float32)})
        )
    return blocks


def _apply_dense(x: np.ndarray, axis: int, blocks: list) -> np.ndarray:
    """Interpolate along ``axis`` with GEMMs against the (banded) interpolation matrix."""
    in_len = x.shape[axis]
    out_len = blocks[-1][1]
    pre = math.prod(x.shape[:axis])
    post = math.prod(x.shape[axis + 1 :])
    out_shape = (*x.shape[:axis], out_len, *x.shape[axis + 1 :])
    if post == 1:
        x2 = x.reshape(pre, in_len)
        if len(blocks) == 1:
            _, _, s0, s1, m = blocks[0]
            return (x2[:, s0:s1] @ m[x.dtype].T).reshape(out_shape)
        y2 = np.empty((pre, out_len), dtype=x.dtype)
        for o0, o1, s0, s1, m in blocks:
            y2[:, o0:o1] = x2[:, s0:s1] @ m[x.dtype].T
        return y2.reshape(out_shape)
    x3 = x.reshape(pre, in_len, post)
    if len(blocks) == 1:
        _, _, s0, s1, m = blocks[0]
        return np.matmul(m[x.dtype], x3[:, s0:s1]).reshape(out_shape)
    y3 = np.empty((pre, out_len, post), dtype=x.dtype)
    for o0, o1, s0, s1, m in blocks:
        y3[:, o0:o1] = np.matmul(m[x.dtype], x3[:, s0:s1])
    return y3.reshape(out_shape)


def apply_axis(x: np.ndarray, axis: int, table: tuple, extrapolation: float) -> np.ndarray:
    """Resample ``x`` along ``axis`` with a tap table: a gather (nearest) or weighted taps."""
    idx, w, extra, blocks = table
    if w is None:
        y = np.take(x, idx[:, 0], axis=axis)
    elif blocks is not None and (
        axis == x.ndim - 1 or math.prod(x.shape[axis + 1 :]) >= _MIN_INNER
    ):
        y = _apply_dense(np.ascontiguousarray(x), axis, blocks)
    else:
        shape = [1] * x.ndim
        shape[axis] = -1
        wc = w.astype(x.dtype)
        y = np.take(x, idx[:, 0], axis=axis)
        y *= wc[:, 0].reshape(shape)
        for t in range(1, idx.shape[1]):
            y += np.take(x, idx[:, t], axis=axis) * wc[:, t].reshape(shape)
    if extra is not None and extra.any():
        shape = [1] * x.ndim
        shape[axis] = -1
        y = np.where(extra.reshape(shape), np.asarray(extrapolation, dtype=y.dtype), y)
    return y


def _check_numeric(node: NodeInfo, mode: str) -> None:
    t = node.input_types[0] if node.input_types else None
    if mode != "nearest" and t in ("tensor(bool)", "tensor(string)"):
        raise ValueError(f"{node.describe()}: mode {mode!r} needs numeric input, got {t}")


class _Resampler:
    """Per-call planning of a separable resize, caching tap tables by shape and parameters."""

    def __init__(self, node: NodeInfo, opts: dict) -> None:
        self.node = node
        self.opts = opts
        self._cache: dict = {}

    def plan(self, shape: tuple, scales, sizes, roi, axes) -> list:
        key = (
            shape,
            None if scales is None else tuple(scales),
            None if sizes is None else tuple(sizes),
            None if roi is None else tuple(roi),
            axes,
        )
        plan = self._cache.get(key)
        if plan is None:
            plan = self._make(shape, scales, sizes, roi, axes)
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            self._cache[key] = plan
        return plan

    def _make(self, shape, scales, sizes, roi, axes) -> list:
        node, opts = self.node, self.opts
        r = len(shape)
        axes = list(range(r)) if axes is None else [a + r if a < 0 else a for a in axes]
        if any(a < 0 or a >= r for a in axes) or len(set(axes)) != len(axes):
            raise ValueError(f"{node.describe()}: axes {axes} are invalid for rank {r}")
        full_scale = [1.0] * r
        out = list(shape)
        if sizes is not None:
            if len(sizes) != len(axes):
                raise ValueError(
                    f"{node.describe()}: sizes has {len(sizes)} entries for {len(axes)} axes"
                )
            for a, s in zip(axes, sizes):
                full_scale[a] = s / shape[a] if shape[a] else 1.0
                out[a] = int(s)
            policy = opts["policy"]
            if policy != "stretch":
                pick = min if policy == "not_larger" else max
                common = pick(full_scale[a] for a in axes)
                for a in axes:
                    full_scale[a] = common
                    out[a] = int(common * shape[a] + 0.5)
        elif scales is not None:
            if len(scales) != len(axes):
                raise ValueError(
                    f"{node.describe()}: scales has {len(scales)} entries for {len(axes)} axes"
                )
            for a, s in zip(axes, scales):
                if s <= 0:
                    raise ValueError(
                        f"{node.describe()}: scales must be positive, got {list(scales)}"
                    )
                full_scale[a] = float(s)
                out[a] = math.floor(float(s) * shape[a])
        else:
            raise ValueError(f"{node.describe()}: one of scales or sizes is required")
        rois = [(0.0, 1.0)] * r
        # roi only matters to tf_crop_and_resize; other modes ignore whatever it holds.
        if roi is not None and len(roi) and opts["ctm"] == "tf_crop_and_resize":
            k = len(roi) // 2
            if len(roi) != 2 * len(axes):
                raise ValueError(
                    f"{node.describe()}: roi has {len(roi)} entries for {len(axes)} axes"
                )
            for i, a in enumerate(axes):
                rois[a] = (float(roi[i]), float(roi[k + i]))
        steps = []
        for a in range(r):
            if (
                out[a] == shape[a]
                and full_scale[a] == 1.0
                and (opts["ctm"] != "tf_crop_and_resize" or rois[a] == (0.0, 1.0))
            ):
                continue
            if shape[a] == 0 or out[a] == 0:
                steps.append((a, out[a], None))
                continue
            idx, w, extra = resize_axis_table(opts, shape[a], out[a], full_scale[a], rois[a])
            blocks = None if w is None else band_blocks(idx, w, shape[a])
            steps.append((a, out[a], (idx, w, extra, blocks)))
        # Shrinking axes first keeps the intermediate tensors small; then inner axes first.
        steps.sort(key=lambda s: (s[1] / max(shape[s[0]], 1), -s[0]))
        return steps

    def run(self, x: np.ndarray, plan: list) -> np.ndarray:
        final = list(x.shape)
        for axis, n, _ in plan:
            final[axis] = n
        self.node.check_size(final, x.dtype)
        dt = x.dtype
        interpolating = self.opts["mode"] != "nearest"
        y = x
        if interpolating:
            y = x.astype(
                compute_dtype(dt) if dt.kind not in "iub" or dt.itemsize < 4 else np.float64,
                copy=False,
            )
        for axis, n, table in plan:
            if table is None:
                shape = list(y.shape)
                shape[axis] = n
                y = np.zeros(shape, dtype=y.dtype)
                continue
            y = apply_axis(y, axis, table, self.opts["extrapolation"])
        if y is x:
            y = x.copy()
        if interpolating and y.dtype != dt:
            if dt.kind in "iu":
                info = np.iinfo(dt)
                y = np.clip(np.rint(y), info.min, info.max)
            y = y.astype(dt)
        return y


def _options(node: NodeInfo, legacy: bool) -> dict:
    mode = node.attr("mode", "nearest")
    if mode == "bilinear" and legacy:
        mode = "linear"
    allowed = ("nearest", "linear") if legacy else ("nearest", "linear", "cubic")
    if mode not in allowed:
        raise ValueError(f"{node.describe()}: mode {mode!r} is not one of {allowed}")
    ctm = "asymmetric" if legacy else node.attr("coordinate_transformation_mode", "half_pixel")
    if ctm not in RESIZE_TRANSFORMS or (ctm == "half_pixel_symmetric" and node.since_version < 19):
        raise ValueError(
            f"{node.describe()}: coordinate_transformation_mode {ctm!r} is not supported"
        )
    nearest_mode = "legacy" if legacy else node.attr("nearest_mode", "round_prefer_floor")
    if nearest_mode not in _NEAREST_MODES[:4] and not legacy:
        raise ValueError(f"{node.describe()}: nearest_mode {nearest_mode!r} is not supported")
    antialias = bool(node.attr("antialias", 0))
    if antialias and mode == "nearest":
        raise ValueError(f"{node.describe()}: antialias applies to linear and cubic modes only")
    policy = node.attr("keep_aspect_ratio_policy", "stretch")
    if policy not in ("stretch", "not_larger", "not_smaller"):
        raise ValueError(f"{node.describe()}: keep_aspect_ratio_policy {policy!r} is not supported")
    _check_numeric(node, mode)
    return {
        "mode": mode,
        "ctm": ctm,
        "nearest_mode": nearest_mode,
        "antialias": antialias,
        "cubic_a": float(node.attr("cubic_coeff_a", -0.75)),
        "exclude_outside": bool(node.attr("exclude_outside", 0)),
        "extrapolation": float(node.attr("extrapolation_value", 0.0)),
        "policy": policy,
    }


def _as_list(v):
    if v is None:
        return None
    v = np.asarray(v).reshape(-1)
    return None if v.size == 0 else v.tolist()


@registry.kernel("Resize", since=(10, 11, 13, 18, 19), types={"T1": _RESIZE_TYPES})
def resize(node: NodeInfo):
    legacy = node.since_version == 10
    opts = _options(node, legacy)
    axes_attr = node.attr("axes", None)
    axes = None if axes_attr is None else tuple(int(a) for a in axes_attr)
    rs = _Resampler(node, opts)

    if legacy:

        def compute(x, scales):
            return (rs.run(x, rs.plan(x.shape, _as_list(scales), None, None, None)),)

        return compute

    def compute(x, roi=None, scales=None, sizes=None):
        sc, sz = _as_list(scales), _as_list(sizes)
        if sc is not None and sz is not None:
            raise ValueError(f"{node.describe()}: only one of scales and sizes may be given")
        return (rs.run(x, rs.plan(x.shape, sc, sz, _as_list(roi), axes)),)

    return compute


@registry.kernel("Upsample", since=(1, 7, 9, 10), types={"T": _UPSAMPLE_TYPES})
def upsample(node: NodeInfo):
    opts = _options(node, legacy=True)
    rs = _Resampler(node, opts)
    fixed = None
    if node.since_version == 1:
        fixed = [1.0, 1.0, float(node.attr("height_scale")), float(node.attr("width_scale"))]
    elif node.since_version == 7:
        fixed = [float(s) for s in node.attr("scales")]

    def compute(x, scales=None):
        sc = fixed if fixed is not None else _as_list(scales)
        if sc is None or len(sc) != x.ndim:
            raise ValueError(f"{node.describe()}: scales {sc} do not match input rank {x.ndim}")
        return (rs.run(x, rs.plan(x.shape, sc, None, None, None)),)

    return compute


def _reflect(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Fold coordinates into [lo, hi] by repeated mirroring at the borders."""
    rng = hi - lo
    if rng <= 0:
        return np.full_like(x, lo)
    below = lo - x
    above = x - hi
    d = np.where(x < lo, below, above)
    n = np.floor(d / rng)
    rem = d - n * rng
    even = (n % 2) == 0
    from_low = np.where(even, lo + rem, hi - rem)
    from_high = np.where(even, hi - rem, lo + rem)
    return np.where(x < lo, from_low, np.where(x > hi, from_high, x))


def _gs_axis(coord, size: int, mode: str, padding: str, align: bool):
    """Tap indices, weights and validity per spatial axis of GridSample: lists over taps."""
    if align:
        x = (coord + 1) / 2 * (size - 1)
        lo, hi = 0.0, size - 1.0
    else:
        x = ((coord + 1) * size - 1) / 2
        lo, hi = -0.5, size - 0.5
    if mode == "nearest":
        x = np.rint(x)
    if padding == "border" and mode != "cubic":
        # Cubic leaves the coordinate alone and clamps each tap, as onnxruntime and PyTorch do.
        x = np.where((x < lo) | (x > hi), np.clip(x, 0, size - 1), x)
    elif padding == "reflection":
        x = _reflect(x, lo, hi)
    if mode == "nearest":
        base = np.trunc(x)
        offsets, weights = (0,), (np.ones_like(x),)
    else:
        base = np.floor(x)
        t = x - base
        if mode == "linear":
            offsets, weights = (0, 1), (1 - t, t)
        else:
            offsets = (-1, 0, 1, 2)
            weights = tuple(cubic_kernel(t - o, -0.75) for o in offsets)
    taps = []
    for o, w in zip(offsets, weights):
        i = base + o
        if padding == "zeros":
            valid = (i >= 0) & (i < size)
            w = np.where(valid, w, 0)
            i = np.clip(i, 0, size - 1)
        elif padding == "border":
            i = np.clip(i, 0, size - 1)
        else:
            i = np.clip(np.trunc(_reflect(i, lo, hi)), 0, size - 1)
        taps.append((i.astype(np.int64), w))
    return taps


@registry.kernel("GridSample", since=(16, 20, 22), types={"T1": FLOAT_TYPES, "T2": FLOAT_TYPES})
def grid_sample(node: NodeInfo):
    mode = node.attr("mode", "bilinear" if node.since_version < 20 else "linear")
    mode = {"bilinear": "linear", "bicubic": "cubic"}.get(mode, mode)
    if mode not in ("nearest", "linear", "cubic"):
        raise ValueError(f"{node.describe()}: mode {mode!r} is not supported")
    padding = node.attr("padding_mode", "zeros")
    if padding not in ("zeros", "border", "reflection"):
        raise ValueError(f"{node.describe()}: padding_mode {padding!r} is not supported")
    align = bool(node.attr("align_corners", 0))

    def compute(x, grid):
        nd = x.ndim - 2
        if nd < 1 or grid.ndim != nd + 2 or grid.shape[-1] != nd or grid.shape[0] != x.shape[0]:
            raise ValueError(f"{node.describe()}: X {x.shape} and grid {grid.shape} do not match")
        n, c = x.shape[:2]
        sp = x.shape[2:]
        out = grid.shape[1:-1]
        dt = compute_dtype(x.dtype)
        if math.prod(out) == 0 or n * c == 0:
            return (np.zeros((n, c, *out), dtype=x.dtype),)
        g = grid.astype(np.float64)
        axes = [_gs_axis(g[..., nd - 1 - a], sp[a], mode, padding, align) for a in range(nd)]
        strides = [math.prod(sp[a + 1 :]) for a in range(nd)]
        plane = math.prod(sp)
        # Channels-last rows, so that every gathered sample is one contiguous C-vector.
        xt = np.ascontiguousarray(x.astype(dt, copy=False).reshape(n, c, plane).transpose(0, 2, 1))
        xt = xt.reshape(n * plane, c)
        base = (np.arange(n) * plane).reshape((n,) + (1,) * len(out))
        acc = np.zeros((n, *out, c), dtype=dt)
        for combo in itertools.product(*axes):
            flat = base + sum(i * s for (i, _), s in zip(combo, strides))
            w = combo[0][1]
            for _, wa in combo[1:]:
                w = w * wa
            acc += np.take(xt, flat, axis=0) * w.astype(dt)[..., None]
        return (np.ascontiguousarray(np.moveaxis(acc, -1, 1)).astype(x.dtype, copy=False),)

    return compute


@registry.kernel("AffineGrid", since=20, types={"T1": FLOAT_TYPES})
def affine_grid(node: NodeInfo):
    align = bool(node.attr("align_corners", 0))

    def base(n: int) -> np.ndarray:
        if align:
            return np.linspace(-1.0, 1.0, n) if n > 1 else np.full(n, -1.0)
        return (2 * np.arange(n) + 1) / n - 1

    def compute(theta, size):
        dims = [int(v) for v in size]
        sp = dims[2:]
        nd = len(sp)
        if nd not in (2, 3) or theta.shape[1:] != (nd, nd + 1) or theta.shape[0] != dims[0]:
            raise ValueError(f"{node.describe()}: theta {theta.shape} does not fit size {dims}")
        coords = np.meshgrid(*(base(s) for s in sp), indexing="ij")
        # Homogeneous points ordered (x, y[, z], 1): x runs along the last spatial axis.
        pts = np.stack(
            [c.reshape(-1) for c in reversed(coords)] + [np.ones(math.prod(sp))], axis=-1
        )
        grid = np.matmul(pts[None], theta.astype(np.float64).transpose(0, 2, 1))
        return (grid.reshape(dims[0], *sp, nd).astype(theta.dtype),)

    return compute
