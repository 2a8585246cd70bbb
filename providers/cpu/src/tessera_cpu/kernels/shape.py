"""Shape-manipulation kernels: reshaping, slicing, joining, padding and tensor-creating ops."""

from __future__ import annotations

import math

import numpy as np

from tessera.provider import Compute, NodeInfo, np_dtype
from tessera_cpu.kernels._registry import registry

_LATEST = (1, 13, 14, 16, 19, 21, 23, 24, 25)


def _ints(value) -> list[int]:
    """A 1-D (or scalar) integer tensor as a list of Python ints."""
    return [int(v) for v in np.asarray(value).reshape(-1).tolist()]


def _norm_axis(node: NodeInfo, axis: int, rank: int, what: str = "axis") -> int:
    if not -rank <= axis < max(rank, 1):
        raise ValueError(f"{node.describe()}: {what} {axis} is out of range for rank {rank}")
    return axis + rank if axis < 0 else axis


def _norm_axes(node: NodeInfo, axes, rank: int) -> list[int]:
    out = [_norm_axis(node, int(a), rank) for a in axes]
    if len(set(out)) != len(out):
        raise ValueError(f"{node.describe()}: repeated axes {list(axes)}")
    return out


def _strings(arr: np.ndarray) -> np.ndarray:
    """TENSOR attributes hold strings as bytes; the runtime uses object arrays of str."""
    if arr.dtype.kind in "SU":
        return np.vectorize(
            lambda s: s.decode("utf-8") if isinstance(s, bytes) else s, otypes=[object]
        )(arr)
    return arr


def _scalar(value):
    """The single element of a scalar or one-element tensor."""
    return np.asarray(value).reshape(-1)[0]


def _zero(dtype: np.dtype):
    """The fill value for padding and masking: "" for strings, else zero of the dtype."""
    return "" if dtype.kind == "O" else np.zeros((), dtype=dtype)


def _input_or_attr(node: NodeInfo, index: int, attr: str):
    """Precomputed list of ints from a constant input or an attribute, else None."""
    if index in node.constant_inputs:
        return _ints(node.constant_inputs[index])
    if attr in node.attrs:
        return [int(v) for v in node.attrs[attr]]
    return None


# --- creation ---------------------------------------------------------------------------------


@registry.kernel("Constant", since=(1, 9, 11, 12, 13, 19, 21, 23, 24, 25))
def constant(node: NodeInfo) -> Compute:
    attrs = node.attrs
    if "sparse_value" in attrs:
        raise ValueError(f"{node.describe()}: sparse_value constants are not supported")
    if "value" in attrs:
        value = _strings(np.asarray(attrs["value"]))
    elif "value_float" in attrs:
        value = np.asarray(attrs["value_float"], dtype=np.float32)
    elif "value_floats" in attrs:
        value = np.asarray(attrs["value_floats"], dtype=np.float32).reshape(-1)
    elif "value_int" in attrs:
        value = np.asarray(attrs["value_int"], dtype=np.int64)
    elif "value_ints" in attrs:
        value = np.asarray(attrs["value_ints"], dtype=np.int64).reshape(-1)
    elif "value_string" in attrs:
        value = np.empty((), dtype=object)
        value[()] = attrs["value_string"]
    elif "value_strings" in attrs:
        value = np.empty(len(attrs["value_strings"]), dtype=object)
        value[:] = list(attrs["value_strings"])
    else:
        raise ValueError(f"{node.describe()}: Constant needs one of the value attributes")
    value.flags.writeable = False

    def compute():
        return (value,)

    return compute


@registry.kernel("ConstantOfShape", since=(9, 20, 21, 23, 24, 25))
def constant_of_shape(node: NodeInfo) -> Compute:
    raw = node.attr("value", None)
    if raw is None:
        fill = np.zeros((), dtype=np.float32)
    else:
        raw = _strings(np.asarray(raw))
        if raw.size != 1:
            raise ValueError(
                f"{node.describe()}: value must hold exactly one element, got {raw.size}"
            )
        fill = raw.reshape(())

    def make(shape) -> np.ndarray:
        dims = _ints(shape)
        node.check_size(dims, fill.dtype)
        return np.full(dims, fill, dtype=fill.dtype)

    if 0 in node.constant_inputs:
        fixed = make(node.constant_inputs[0])
        fixed.flags.writeable = False
        return lambda shape: (fixed,)
    return lambda shape: (make(shape),)


@registry.kernel("EyeLike", since=(9, 22))
def eye_like(node: NodeInfo) -> Compute:
    k = int(node.attr("k", 0))
    dtype = np_dtype(node.attrs["dtype"]) if "dtype" in node.attrs else None

    def compute(x):
        if x.ndim != 2:
            raise ValueError(f"{node.describe()}: input must be 2-D, got shape {x.shape}")
        dt = x.dtype if dtype is None else dtype
        out = np.zeros(x.shape, dtype=dt)
        n, m = x.shape
        # Write ones on the k-th diagonal through a flat stride instead of building an index.
        if -n < k < m:
            start = k if k >= 0 else -k * m
            count = min(n, m - k) if k >= 0 else min(n + k, m)
            out.reshape(-1)[start : start + count * (m + 1) : m + 1] = np.ones((), dtype=dt)
        return (out,)

    return compute


@registry.kernel("Range", since=(11, 27))
def range_(node: NodeInfo) -> Compute:
    stash = int(node.attr("stash_type", 1)) if node.since_version >= 27 else None
    stash_dtypes = {1: np.dtype(np.float32), 11: np.dtype(np.float64)}
    if stash is not None and stash not in stash_dtypes:
        raise ValueError(
            f"{node.describe()}: stash_type must be 1 (float) or 11 (double), got {stash}"
        )
    low_precision = (np.dtype(np.float16), np_dtype(16))

    def compute(start, limit, delta):
        dtype = start.dtype
        if dtype.kind in "iu":
            s, lim, d = int(_scalar(start)), int(_scalar(limit)), int(_scalar(delta))
            if d == 0:
                raise ValueError(f"{node.describe()}: delta must not be zero")
            n = max(-((s - lim) // d), 0)  # ceil((lim - s) / d) in exact integers
            node.check_size((n,), dtype)
            return ((np.arange(n, dtype=np.int64) * d + s).astype(dtype, copy=False),)
        work = (
            stash_dtypes[stash]
            if stash is not None and dtype in low_precision
            else np.dtype(np.float64)
        )
        s, lim, d = (float(_scalar(v).astype(work)) for v in (start, limit, delta))
        if d == 0:
            raise ValueError(f"{node.describe()}: delta must not be zero")
        n = max(math.ceil((lim - s) / d), 0)
        node.check_size((n,), dtype)
        return ((np.arange(n, dtype=work) * work.type(d) + work.type(s)).astype(dtype),)

    return compute


# --- views: reshape family --------------------------------------------------------------------


@registry.kernel("Identity", since=_LATEST)
def identity(node: NodeInfo) -> Compute:
    return lambda x: (x,)


def _reshape_target(
    node: NodeInfo, in_shape: tuple, shape: list[int], allowzero: bool
) -> list[int]:
    dims = list(shape)
    if allowzero and 0 in dims and -1 in dims:
        raise ValueError(f"{node.describe()}: with allowzero=1 a shape may not hold both 0 and -1")
    if dims.count(-1) > 1:
        raise ValueError(f"{node.describe()}: shape {shape} has more than one -1")
    for i, d in enumerate(dims):
        if d == 0 and not allowzero:
            if i >= len(in_shape):
                raise ValueError(f"{node.describe()}: shape {shape} copies dim {i} the input lacks")
            dims[i] = in_shape[i]
        elif d < -1:
            raise ValueError(f"{node.describe()}: invalid dimension {d} in shape {shape}")
    return dims


@registry.kernel("Reshape", since=(1, 5, 13, 14, 19, 21, 23, 24, 25))
def reshape(node: NodeInfo) -> Compute:
    allowzero = bool(node.attr("allowzero", 0))
    fixed = (
        _input_or_attr(node, 1, "shape")
        if node.since_version >= 5
        else [int(v) for v in node.attr("shape")]
    )

    def compute(x, shape=None):
        dims = _reshape_target(
            node, x.shape, fixed if fixed is not None else _ints(shape), allowzero
        )
        try:
            return (x.reshape(dims),)
        except ValueError:
            raise ValueError(f"{node.describe()}: cannot reshape {x.shape} to {dims}") from None

    return compute


@registry.kernel("Flatten", since=(1, 9, 11, 13, 21, 23, 24, 25))
def flatten(node: NodeInfo) -> Compute:
    axis = int(node.attr("axis", 1))

    def compute(x):
        a = axis + x.ndim if axis < 0 else axis
        if not 0 <= a <= x.ndim:
            raise ValueError(f"{node.describe()}: axis {axis} is out of range for rank {x.ndim}")
        outer = math.prod(x.shape[:a])
        return (x.reshape(outer, math.prod(x.shape[a:])),)

    return compute


@registry.kernel("Squeeze", since=(1, 11, 13, 21, 23, 24, 25))
def squeeze(node: NodeInfo) -> Compute:
    fixed = _input_or_attr(node, 1, "axes")

    def compute(x, axes=None):
        ax = fixed if fixed is not None else (None if axes is None else _ints(axes))
        if not ax:  # onnxruntime reads an empty axes tensor as "all unit axes", like no axes
            return (x.reshape([d for d in x.shape if d != 1]),)
        ax = _norm_axes(node, ax, x.ndim)
        if any(x.shape[a] != 1 for a in ax):
            raise ValueError(f"{node.describe()}: cannot squeeze axes {ax} of shape {x.shape}")
        return (x.reshape([d for i, d in enumerate(x.shape) if i not in ax]),)

    return compute


@registry.kernel("Unsqueeze", since=(1, 11, 13, 21, 23, 24, 25))
def unsqueeze(node: NodeInfo) -> Compute:
    fixed = _input_or_attr(node, 1, "axes")

    def compute(x, axes=None):
        ax = fixed if fixed is not None else _ints(axes)
        rank = x.ndim + len(ax)
        ax = set(_norm_axes(node, ax, rank))
        dims = iter(x.shape)
        return (x.reshape([1 if i in ax else next(dims) for i in range(rank)]),)

    return compute


@registry.kernel("Transpose", since=(1, 13, 21, 23, 24, 25))
def transpose(node: NodeInfo) -> Compute:
    perm = node.attr("perm", None)
    perm = None if perm is None else [int(p) for p in perm]

    def compute(x):
        if perm is None:
            return (x.transpose(),)
        if sorted(perm) != list(range(x.ndim)):
            raise ValueError(
                f"{node.describe()}: perm {perm} is not a permutation of rank {x.ndim}"
            )
        return (x.transpose(perm),)

    return compute


@registry.kernel("Shape", since=(1, 13, 15, 19, 21, 23, 24, 25))
def shape(node: NodeInfo) -> Compute:
    start = int(node.attr("start", 0))
    end = node.attr("end", None)
    # Python slicing clamps out-of-range start/end exactly as the spec asks.
    part = slice(start, None if end is None else int(end))
    return lambda x: (np.array(x.shape[part], dtype=np.int64),)


@registry.kernel("Size", since=(1, 13, 19, 21, 23, 24, 25))
def size(node: NodeInfo) -> Compute:
    return lambda x: (np.array(x.size, dtype=np.int64),)


# --- slicing and joining ----------------------------------------------------------------------


def _slice_key(node: NodeInfo, shape: tuple, starts, ends, axes, steps) -> tuple:
    rank = len(shape)
    if axes is None:
        axes = list(range(len(starts)))
    if steps is None:
        steps = [1] * len(starts)
    if not len(starts) == len(ends) == len(axes) == len(steps):
        raise ValueError(f"{node.describe()}: starts, ends, axes and steps differ in length")
    key = [slice(None)] * rank
    for a, s, e, st in zip(_norm_axes(node, axes, rank), starts, ends, steps):
        dim = shape[a]
        if st == 0:
            raise ValueError(f"{node.describe()}: slice step must not be zero")
        s = s + dim if s < 0 else s
        e = e + dim if e < 0 else e
        if st > 0:
            key[a] = slice(min(max(s, 0), dim), min(max(e, 0), dim), st)
        else:
            s = min(max(s, 0), dim - 1)
            e = min(max(e, -1), dim - 1)
            # An end of -1 means "past index 0", which Python spells None.
            key[a] = slice(s, None if e < 0 else e, st)
    return tuple(key)


@registry.kernel("Slice", since=(1, 10, 11, 13))
def slice_(node: NodeInfo) -> Compute:
    if node.since_version == 1:
        starts, ends = [int(v) for v in node.attr("starts")], [int(v) for v in node.attr("ends")]
        axes = node.attr("axes", None)
        axes = None if axes is None else [int(v) for v in axes]
        return lambda x: (x[_slice_key(node, x.shape, starts, ends, axes, None)],)

    consts = node.constant_inputs
    present = [i for i in range(1, 5) if node.has_input(i)]
    if all(i in consts for i in present):
        args = [_ints(consts[i]) if i in present else None for i in range(1, 5)]
        return lambda x, *_: (x[_slice_key(node, x.shape, *args)],)

    def compute(x, starts, ends, axes=None, steps=None):
        key = _slice_key(
            node,
            x.shape,
            _ints(starts),
            _ints(ends),
            None if axes is None else _ints(axes),
            None if steps is None else _ints(steps),
        )
        return (x[key],)

    return compute


@registry.kernel("Concat", since=(1, 4, 11, 13))
def concat(node: NodeInfo) -> Compute:
    axis = node.attr("axis", 1 if node.since_version == 1 else None)
    if axis is None:
        raise ValueError(f"{node.describe()}: Concat needs the axis attribute")
    axis = int(axis)

    def compute(*xs):
        a = _norm_axis(node, axis, xs[0].ndim)
        return (np.concatenate(xs, axis=a),)

    return compute


@registry.kernel("Split", since=(1, 2, 11, 13, 18))
def split(node: NodeInfo) -> Compute:
    axis = int(node.attr("axis", 0))
    n_out = node.num_outputs
    num_outputs = node.attrs.get("num_outputs")
    if num_outputs is not None and int(num_outputs) != n_out:
        raise ValueError(
            f"{node.describe()}: num_outputs={num_outputs} but the node has {n_out} outputs"
        )
    from_input = node.since_version >= 13 or node.since_version == 1
    fixed = _input_or_attr(node, 1, "split") if from_input else None
    if fixed is None and "split" in node.attrs:
        fixed = [int(v) for v in node.attrs["split"]]

    def compute(x, split_sizes=None):
        a = _norm_axis(node, axis, x.ndim)
        dim = x.shape[a]
        sizes = (
            fixed if fixed is not None else (None if split_sizes is None else _ints(split_sizes))
        )
        if sizes is None:
            if num_outputs is not None:
                chunk = -(-dim // n_out)
                sizes = [chunk] * (n_out - 1) + [dim - chunk * (n_out - 1)]
                if sizes[-1] < 0:
                    raise ValueError(
                        f"{node.describe()}: cannot split dim {dim} into {n_out} outputs"
                    )
            elif dim % n_out:
                raise ValueError(
                    f"{node.describe()}: dim {dim} does not split evenly into {n_out} outputs"
                )
            else:
                sizes = [dim // n_out] * n_out
        if len(sizes) != n_out or sum(sizes) != dim or min(sizes, default=0) < 0:
            raise ValueError(
                f"{node.describe()}: split {sizes} does not fit dim {dim} into {n_out} outputs"
            )
        key = [slice(None)] * x.ndim
        outs, pos = [], 0
        for s in sizes:
            key[a] = slice(pos, pos + s)
            outs.append(x[tuple(key)])
            pos += s
        return tuple(outs)

    return compute


@registry.kernel("Expand", since=(8, 13))
def expand(node: NodeInfo) -> Compute:
    def compute(x, shape):
        dims = _ints(shape)
        try:
            target = np.broadcast_shapes(x.shape, tuple(dims))
        except ValueError:
            raise ValueError(f"{node.describe()}: cannot expand {x.shape} to {dims}") from None
        if target == x.shape:
            return (x,)
        node.check_size(target, x.dtype)
        return (np.broadcast_to(x, target).copy(),)

    return compute


def _tile(x: np.ndarray, reps: list[int]) -> np.ndarray:
    """np.tile in one pass: broadcast x into a (rep, dim, rep, dim, ...) buffer, then merge."""
    out = np.empty([v for r, d in zip(reps, x.shape) for v in (r, d)], dtype=x.dtype)
    out[...] = x.reshape([v for d in x.shape for v in (1, d)])
    return out.reshape([r * d for r, d in zip(reps, x.shape)])


@registry.kernel("Tile", since=(1, 6, 13))
def tile(node: NodeInfo) -> Compute:
    if node.since_version == 1:

        def compute_v1(x, tiles, axis):
            reps = [1] * x.ndim
            reps[_norm_axis(node, int(_scalar(axis)), x.ndim)] = int(_scalar(tiles))
            node.check_size([r * d for r, d in zip(reps, x.shape)], x.dtype)
            return (_tile(x, reps),)

        return compute_v1
    fixed = _ints(node.constant_inputs[1]) if 1 in node.constant_inputs else None

    def compute(x, repeats):
        reps = fixed if fixed is not None else _ints(repeats)
        if len(reps) != x.ndim or min(reps, default=0) < 0:
            raise ValueError(f"{node.describe()}: repeats {reps} do not fit input rank {x.ndim}")
        node.check_size([r * d for r, d in zip(reps, x.shape)], x.dtype)
        return (_tile(x, reps),)

    return compute


# --- padding and block rearrangement ----------------------------------------------------------


def _pad(node: NodeInfo, x: np.ndarray, pads: list[int], mode: str, value, axes) -> np.ndarray:
    rank = x.ndim
    axes = list(range(rank)) if axes is None else _norm_axes(node, axes, rank)
    if len(pads) != 2 * len(axes):
        raise ValueError(f"{node.describe()}: {len(pads)} pads for {len(axes)} axes")
    before, after = [0] * rank, [0] * rank
    for i, a in enumerate(axes):
        before[a], after[a] = pads[i], pads[len(axes) + i]
    # Negative pads crop first; the remaining non-negative pads are then applied.
    crop = tuple(
        slice(-min(b, 0), x.shape[i] + min(e, 0)) for i, (b, e) in enumerate(zip(before, after))
    )
    if any(s.start > s.stop for s in crop):
        raise ValueError(f"{node.describe()}: pads {pads} crop more than shape {x.shape}")
    x = x[crop]
    widths = [(max(b, 0), max(e, 0)) for b, e in zip(before, after)]
    if not any(b or e for b, e in widths):
        return x
    node.check_size([d + b + e for d, (b, e) in zip(x.shape, widths)], x.dtype)
    if mode == "constant":
        out = np.empty([d + b + e for d, (b, e) in zip(x.shape, widths)], dtype=x.dtype)
        # Fill only the border slabs: the interior is written once, by the copy of x.
        for axis, (b, e) in enumerate(widths):
            key = [slice(None)] * rank
            for part in (slice(0, b), slice(out.shape[axis] - e, None)):
                if part.start != part.stop:
                    key[axis] = part
                    out[tuple(key)] = value
        out[tuple(slice(b, b + d) for d, (b, _) in zip(x.shape, widths))] = x
        return out
    if any(x.shape[i] == 0 for i, (b, e) in enumerate(widths) if b or e):
        raise ValueError(f"{node.describe()}: mode {mode!r} cannot pad an empty axis")
    if mode == "reflect" and any(max(w) >= d for d, w in zip(x.shape, widths) if max(w)):
        # A reflection never repeats the edge element, so it can reach at most dim - 1 beyond it.
        raise ValueError(
            f"{node.describe()}: reflect pads {pads} exceed dim - 1 of shape {x.shape}"
        )
    return np.pad(x, widths, mode={"edge": "edge", "reflect": "reflect", "wrap": "wrap"}[mode])


@registry.kernel("Pad", since=(1, 2, 11, 13, 18, 19, 21, 23, 24, 25))
def pad(node: NodeInfo) -> Compute:
    mode = node.attr("mode", "constant")
    allowed = ("constant", "reflect", "edge") + (("wrap",) if node.since_version >= 19 else ())
    if mode not in allowed:
        raise ValueError(f"{node.describe()}: unsupported pad mode {mode!r}")
    if node.since_version < 11:
        pads = [int(v) for v in node.attr("paddings" if node.since_version == 1 else "pads")]
        value = float(node.attr("value", 0.0))
        return lambda x: (_pad(node, x, pads, mode, np.asarray(value).astype(x.dtype), None),)
    fixed_pads = _ints(node.constant_inputs[1]) if 1 in node.constant_inputs else None
    fixed_axes = _ints(node.constant_inputs[3]) if 3 in node.constant_inputs else None

    def compute(x, pads, constant_value=None, axes=None):
        if constant_value is None or constant_value.size == 0:
            value = _zero(x.dtype)
        else:
            value = constant_value.reshape(-1)[0]
        p = fixed_pads if fixed_pads is not None else _ints(pads)
        ax = fixed_axes if fixed_axes is not None else (None if axes is None else _ints(axes))
        return (_pad(node, x, p, mode, value, ax),)

    return compute


@registry.kernel("CenterCropPad", since=18)
def center_crop_pad(node: NodeInfo) -> Compute:
    attr_axes = node.attr("axes", None)

    def compute(x, shape):
        target = _ints(shape)
        axes = list(range(x.ndim)) if attr_axes is None else _norm_axes(node, attr_axes, x.ndim)
        if len(target) != len(axes):
            raise ValueError(f"{node.describe()}: shape {target} does not match axes {axes}")
        out_shape = list(x.shape)
        src = [slice(None)] * x.ndim
        dst = [slice(None)] * x.ndim
        for a, t in zip(axes, target):
            d = x.shape[a]
            out_shape[a] = t
            if t < d:  # crop, the extra element going to the end
                off = (d - t) // 2
                src[a] = slice(off, off + t)
            elif t > d:  # pad, the extra element going to the end
                off = (t - d) // 2
                dst[a] = slice(off, off + d)
        if out_shape == list(x.shape):
            return (x,)
        out = np.full(out_shape, _zero(x.dtype), dtype=x.dtype)
        out[tuple(dst)] = x[tuple(src)]
        return (out,)

    return compute


def _block_mode(node: NodeInfo) -> tuple[int, str]:
    blocksize, mode = int(node.attr("blocksize")), node.attr("mode", "DCR")
    if blocksize < 1 or mode not in ("DCR", "CRD"):
        raise ValueError(f"{node.describe()}: invalid blocksize {blocksize} or mode {mode!r}")
    return blocksize, mode


def _check_4d(node: NodeInfo, x: np.ndarray) -> None:
    if x.ndim != 4:
        raise ValueError(f"{node.describe()}: input must be 4-D, got shape {x.shape}")


@registry.kernel("DepthToSpace", since=(1, 11, 13, 28))
def depth_to_space(node: NodeInfo) -> Compute:
    bs, mode = _block_mode(node)

    def compute(x):
        _check_4d(node, x)
        b, c, h, w = x.shape
        if c % (bs * bs):
            raise ValueError(
                f"{node.describe()}: channels {c} not divisible by blocksize^2 {bs * bs}"
            )
        cc = c // (bs * bs)
        if mode == "DCR":
            t = x.reshape(b, bs, bs, cc, h, w).transpose(0, 3, 4, 1, 5, 2)
        else:
            t = x.reshape(b, cc, bs, bs, h, w).transpose(0, 1, 4, 2, 5, 3)
        return (t.reshape(b, cc, h * bs, w * bs),)

    return compute


@registry.kernel("SpaceToDepth", since=(1, 13, 28))
def space_to_depth(node: NodeInfo) -> Compute:
    bs, mode = _block_mode(node)

    def compute(x):
        _check_4d(node, x)
        b, c, h, w = x.shape
        if h % bs or w % bs:
            raise ValueError(
                f"{node.describe()}: spatial dims {h}x{w} not divisible by blocksize {bs}"
            )
        t = x.reshape(b, c, h // bs, bs, w // bs, bs)
        t = t.transpose(0, 3, 5, 1, 2, 4) if mode == "DCR" else t.transpose(0, 1, 3, 5, 2, 4)
        return (t.reshape(b, c * bs * bs, h // bs, w // bs),)

    return compute


@registry.kernel("Trilu", since=14)
def trilu(node: NodeInfo) -> Compute:
    upper = bool(node.attr("upper", 1))

    def compute(x, k=None):
        if x.ndim < 2:
            raise ValueError(f"{node.describe()}: input must have rank >= 2, got {x.ndim}")
        kk = 0 if k is None else int(_scalar(k))
        n, m = x.shape[-2:]
        diff = np.arange(m)[None, :] - np.arange(n)[:, None]
        keep = diff >= kk if upper else diff <= kk
        return (np.where(keep, x, _zero(x.dtype)).astype(x.dtype, copy=False),)

    return compute
