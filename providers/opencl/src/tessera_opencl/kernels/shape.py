"""Shape and data-movement kernels: Reshape family (no copies), Transpose, Slice, Concat, Split,
Expand, Gather, GatherElements, Tile, Pad, Trilu, DepthToSpace, Shape/Size and constants."""

from __future__ import annotations

import numpy as np

from tessera.provider import NodeInfo
from tessera_opencl._runtime import Runtime, contiguous_strides, ctype, view_of
from tessera_opencl.kernels._registry import ALL, NUMERIC, check, constant_input, registry

_IDX = ("tensor(int32)", "tensor(int64)")
_NEW = (13, 21, 23, 24, 25)  # schema versions that only widened the type lists


def _ints(rt: Runtime, value) -> list[int]:
    return [int(v) for v in np.asarray(rt.host(value)).reshape(-1)]


def _axes(axes, rank: int) -> list[int]:
    return sorted(int(a) % rank if rank else 0 for a in axes)


# -- reinterpretations: a new shape over the same buffer ------------------------------------------
@registry.kernel("Reshape", since=(5, 13, 14, 19, 21, 23, 24, 25), types={"T": ALL})
def reshape(node: NodeInfo, rt: Runtime):
    allowzero = int(node.attr("allowzero", 0))

    def compute(x, shape):
        x = rt.as_device(x)
        dims = _ints(rt, shape)
        if not allowzero:
            dims = [x.shape[i] if d == 0 else d for i, d in enumerate(dims)]
        if -1 in dims:
            known = int(np.prod([d for d in dims if d != -1], dtype=np.int64))
            dims[dims.index(-1)] = x.size // known if known else 0
        return (x.reshape(tuple(dims)),)

    return compute


@registry.kernel("Flatten", since=(1, 9, 11, 13, 21, 23, 24, 25), types={"T": ALL})
def flatten(node: NodeInfo, rt: Runtime):
    axis = int(node.attr("axis", 1))

    def compute(x):
        x = rt.as_device(x)
        a = axis % (x.ndim or 1) if axis < 0 else axis
        outer = int(np.prod(x.shape[:a], dtype=np.int64))
        return (x.reshape((outer, x.size // outer if outer else int(np.prod(x.shape[a:])))),)

    return compute


@registry.kernel("Squeeze", since=(1, 11, 13, 21, 23, 24, 25), types={"T": ALL})
def squeeze(node: NodeInfo, rt: Runtime):
    attr_axes = node.attr("axes", None)

    def compute(x, axes=None):
        x = rt.as_device(x)
        picked = attr_axes if axes is None else _ints(rt, axes)
        if picked is None:
            dims = tuple(d for d in x.shape if d != 1)
        else:
            drop = set(_axes(picked, x.ndim))
            dims = tuple(d for i, d in enumerate(x.shape) if i not in drop)
        return (x.reshape(dims),)

    return compute


@registry.kernel("Unsqueeze", since=(1, 11, 13, 21, 23, 24, 25), types={"T": ALL})
def unsqueeze(node: NodeInfo, rt: Runtime):
    attr_axes = node.attr("axes", None)

    def compute(x, axes=None):
        x = rt.as_device(x)
        picked = attr_axes if axes is None else _ints(rt, axes)
        rank = x.ndim + len(picked)
        dims, it = [], iter(x.shape)
        add = set(_axes(picked, rank))
        for i in range(rank):
            dims.append(1 if i in add else next(it))
        return (x.reshape(tuple(dims)),)

    return compute


@registry.kernel(
    "Dropout", since=(7, 10, 12, 13, 22), types={"T": ("tensor(float)", "tensor(double)")}
)
def dropout(node: NodeInfo, rt: Runtime):
    mask_dtype = node.output_dtype(1) if node.num_outputs > 1 else None

    def compute(x, ratio=None, training=None):
        x = rt.as_device(x)
        if node.num_outputs > 1 and node.outputs[1]:
            mask = rt.strided("1", mask_dtype or np.bool_, x.shape, [])
            return (x, mask)
        return (x,)

    return compute


@check("Dropout")
def _inference_dropout_only(node: NodeInfo) -> str | None:
    if node.has_input(2):
        value = constant_input(node, 2)
        if value is None or bool(np.asarray(value)):
            return "training_mode may be true: random masks are not implemented on OpenCL"
    return None


# -- strided copies ----------------------------------------------------------------------------
@registry.kernel("Transpose", since=(1, 13, 21, 23, 24, 25), types={"T": ALL})
def transpose(node: NodeInfo, rt: Runtime):
    perm_attr = node.attr("perm", None)

    def compute(x):
        x = rt.as_device(x)
        perm = list(perm_attr) if perm_attr is not None else list(range(x.ndim))[::-1]
        src = contiguous_strides(x.shape)
        shape = tuple(x.shape[p] for p in perm)
        return (rt.strided("a", x.dtype, shape, [(x, 0, [src[p] for p in perm])]),)

    return compute


@registry.kernel("Expand", since=(8, 13), types={"T": ALL})
def expand(node: NodeInfo, rt: Runtime):
    def compute(x, shape):
        x = rt.as_device(x)
        out_shape = np.broadcast_shapes(x.shape, tuple(_ints(rt, shape)))
        return (rt.strided("a", x.dtype, out_shape, [view_of(x, out_shape)]),)

    return compute


def _slice_view(shape, starts, ends, axes, steps):
    strides = list(contiguous_strides(shape))
    out, offset, view = list(shape), 0, list(strides)
    for s, e, a, st in zip(starts, ends, axes, steps):
        dim = shape[a]
        r = range(*slice(s, e, st).indices(dim))
        out[a] = len(r)
        if len(r):
            offset += r.start * strides[a]
        view[a] = strides[a] * st
    return tuple(out), offset, view


@registry.kernel("Slice", since=(10, 11, 13), types={"T": ALL})
def slice_(node: NodeInfo, rt: Runtime):
    def compute(x, starts, ends, axes=None, steps=None):
        x = rt.as_device(x)
        s, e = _ints(rt, starts), _ints(rt, ends)
        ax = _ints(rt, axes) if axes is not None else list(range(len(s)))
        ax = [a % x.ndim for a in ax]
        st = _ints(rt, steps) if steps is not None else [1] * len(s)
        shape, off, strides = _slice_view(x.shape, s, e, ax, st)
        return (rt.strided("a", x.dtype, shape, [(x, off, strides)]),)

    return compute


@registry.kernel("Concat", since=(1, 4, 11, 13), types={"T": ALL})
def concat(node: NodeInfo, rt: Runtime):
    axis = int(node.attr("axis", 1))  # opset 1 defaulted to 1; later opsets require it

    def compute(*xs):
        xs = [rt.as_device(x) for x in xs]
        a = axis % xs[0].ndim
        shape = list(xs[0].shape)
        shape[a] = sum(x.shape[a] for x in xs)
        out = rt.empty(shape, xs[0].dtype)
        ostr = contiguous_strides(shape)
        pos = 0
        for x in xs:
            rt.strided(
                "a", out.dtype, x.shape, [view_of(x)], out=out, out_view=(pos * ostr[a], ostr)
            )
            pos += x.shape[a]
        return (out,)

    return compute


@registry.kernel("Split", since=(11, 13, 18), types={"T": ALL})
def split(node: NodeInfo, rt: Runtime):
    axis = int(node.attr("axis", 0))
    attr_split = node.attr("split", None)
    n_out = node.num_outputs

    def compute(x, sizes=None):
        x = rt.as_device(x)
        a = axis % x.ndim
        dim = x.shape[a]
        if sizes is not None:
            parts = _ints(rt, sizes)
        elif attr_split is not None:
            parts = list(attr_split)
        else:
            chunk = -(-dim // n_out)
            parts = [min(chunk, dim - i * chunk) for i in range(n_out)]
        strides = contiguous_strides(x.shape)
        outs, pos = [], 0
        for p in parts:
            shape = list(x.shape)
            shape[a] = p
            outs.append(rt.strided("a", x.dtype, shape, [(x, pos * strides[a], strides)]))
            pos += p
        return tuple(outs)

    return compute


@registry.kernel("DepthToSpace", since=(11, 13, 28), types={"T": ALL})
def depth_to_space(node: NodeInfo, rt: Runtime):
    bs, mode = int(node.attr("blocksize")), node.attr("mode", "DCR")

    def compute(x):
        x = rt.as_device(x)
        b, c, h, w = x.shape
        cc = c // (bs * bs)
        if mode == "DCR":
            inner, perm = (b, bs, bs, cc, h, w), (0, 3, 4, 1, 5, 2)
        else:
            inner, perm = (b, cc, bs, bs, h, w), (0, 1, 4, 2, 5, 3)
        st = contiguous_strides(inner)
        shape = tuple(inner[p] for p in perm)
        out = rt.strided("a", x.dtype, shape, [(x, 0, [st[p] for p in perm])])
        return (out.reshape((b, cc, h * bs, w * bs)),)

    return compute


@registry.kernel("SpaceToDepth", since=(13, 28), types={"T": ALL})
def space_to_depth(node: NodeInfo, rt: Runtime):
    bs = int(node.attr("blocksize"))
    # DCR puts the block offsets before the channel in the output depth; CRD after it.
    perm = (0, 1, 3, 5, 2, 4) if node.attr("mode", "DCR") == "CRD" else (0, 3, 5, 1, 2, 4)

    def compute(x):
        x = rt.as_device(x)
        b, c, h, w = x.shape
        inner = (b, c, h // bs, bs, w // bs, bs)
        st = contiguous_strides(inner)
        shape = tuple(inner[p] for p in perm)
        out = rt.strided("a", x.dtype, shape, [(x, 0, [st[p] for p in perm])])
        return (out.reshape((b, c * bs * bs, h // bs, w // bs)),)

    return compute


# -- indexing ----------------------------------------------------------------------------------
_GATHER = """
__kernel void k(__global T* out, __global const T* x, __global const I* ind,
                long n_idx, long dim, long inner) {
  long g = get_global_id(0);
  long i = g % inner, t = g / inner;
  long j = t % n_idx, o = t / n_idx;
  long q = (long)ind[j];
  if (q < 0) q += dim;
  out[g] = x[(o * dim + q) * inner + i];
}
"""


@registry.kernel("Gather", since=(11, 13), types={"T": ALL, "Tind": _IDX})
def gather(node: NodeInfo, rt: Runtime):
    axis = int(node.attr("axis", 0))

    def compute(x, ind):
        x, ind = rt.as_device(x), rt.as_device(ind)
        a = axis % x.ndim
        shape = x.shape[:a] + ind.shape + x.shape[a + 1 :]
        out = rt.empty(shape, x.dtype)
        src = f"#define T {ctype(x.dtype)}\n#define I {ctype(ind.dtype)}\n{_GATHER}"
        inner = int(np.prod(x.shape[a + 1 :], dtype=np.int64))
        args = (np.int64(max(ind.size, 1)), np.int64(x.shape[a]), np.int64(max(inner, 1)))
        rt.launch(rt.kernel(src), (out.size,), out.data, x.data, ind.data, *args)
        return (out,)

    return compute


def _indexed_source(rank: int, body: str, extra: str = "") -> str:
    """A kernel whose work-item g decomposes into ``rank`` coords c[d] over m[0:rank]."""
    return (
        f"__kernel void k(__global T* out, __global const T* x, {extra} __global const long* m) {{\n"
        f"  long g = get_global_id(0), r = g; long c[{max(rank, 1)}];\n"
        f"  for (int d = {rank - 1}; d >= 0; --d) {{ c[d] = r % m[d]; r /= m[d]; }}\n"
        f"{body}\n}}\n"
    )


@registry.kernel("GatherElements", since=(11, 13), types={"T": ALL, "Tind": _IDX})
def gather_elements(node: NodeInfo, rt: Runtime):
    axis = int(node.attr("axis", 0))

    def compute(x, ind):
        x, ind = rt.as_device(x), rt.as_device(ind)
        rank, a = x.ndim, axis % x.ndim
        body = (
            f"  long q = (long)ind[g]; if (q < 0) q += m[{2 * rank}]; c[{a}] = q; long o = 0;\n"
            f"  for (int d = 0; d < {rank}; ++d) o += c[d] * m[{rank} + d];\n  out[g] = x[o];"
        )
        src = f"#define T {ctype(x.dtype)}\n#define I {ctype(ind.dtype)}\n"
        src += _indexed_source(rank, body, "__global const I* ind,")
        out = rt.empty(ind.shape, x.dtype)
        meta = list(ind.shape) + list(contiguous_strides(x.shape)) + [x.shape[a]]
        rt.launch(rt.kernel(src), (out.size,), out.data, x.data, ind.data, rt.meta(meta))
        return (out,)

    return compute


@registry.kernel("Tile", since=(6, 13), types={"T": ALL})
def tile(node: NodeInfo, rt: Runtime):
    def compute(x, repeats):
        x = rt.as_device(x)
        reps = _ints(rt, repeats)
        rank = x.ndim
        shape = [d * r for d, r in zip(x.shape, reps)]
        body = (
            f"  long o = 0;\n  for (int d = 0; d < {rank}; ++d) "
            f"o += (c[d] % m[{rank} + d]) * m[{2 * rank} + d];\n  out[g] = x[o];"
        )
        src = f"#define T {ctype(x.dtype)}\n" + _indexed_source(rank, body)
        out = rt.empty(shape, x.dtype)
        meta = shape + list(x.shape) + list(contiguous_strides(x.shape))
        rt.launch(rt.kernel(src), (out.size,), out.data, x.data, rt.meta(meta))
        return (out,)

    return compute


_PAD_MODES = {
    "constant": "if (i < 0 || i >= n) { inside = 0; break; }",
    "edge": "i = i < 0 ? 0 : (i >= n ? n - 1 : i);",
    "reflect": "if (n == 1) i = 0; else { long p = 2 * (n - 1); i = i % p; if (i < 0) i += p; "
    "if (i >= n) i = p - i; }",
    "wrap": "i = i % n; if (i < 0) i += n;",
}


@registry.kernel(
    "Pad", since=(11, 13, 18, 19, 21, 23, 24, 25), types={"T": (*NUMERIC, "tensor(bool)")}
)
def pad(node: NodeInfo, rt: Runtime):
    mode = node.attr("mode", "constant")

    def compute(x, pads, value=None, axes=None):
        x = rt.as_device(x)
        rank = x.ndim
        p = _ints(rt, pads)
        ax = _axes(_ints(rt, axes), rank) if axes is not None else list(range(rank))
        begin, end = [0] * rank, [0] * rank
        for k, a in enumerate(ax):
            begin[a], end[a] = p[k], p[k + len(ax)]
        shape = [d + b + e for d, b, e in zip(x.shape, begin, end)]
        if value is None:
            value = np.zeros((), x.dtype)
        body = (
            "  long o = 0; int inside = 1;\n"
            f"  for (int d = 0; d < {rank}; ++d) {{ long n = m[{rank} + d]; "
            f"long i = c[d] - m[{2 * rank} + d];\n    {_PAD_MODES[mode]}\n"
            f"    o += i * m[{3 * rank} + d]; }}\n"
            "  out[g] = inside ? x[o] : v[0];"
        )
        src = f"#define T {ctype(x.dtype)}\n" + _indexed_source(rank, body, "__global const T* v,")
        out = rt.empty(shape, x.dtype)
        meta = shape + list(x.shape) + begin + list(contiguous_strides(x.shape))
        v = rt.as_device(np.asarray(rt.host(value), dtype=x.dtype).reshape(1))
        rt.launch(rt.kernel(src), (out.size,), out.data, x.data, v.data, rt.meta(meta))
        return (out,)

    return compute


@registry.kernel("Pad", since=2, types={"T": ("tensor(float)", "tensor(double)")})
def pad2(node: NodeInfo, rt: Runtime):
    pads = np.asarray(node.attr("pads"), np.int64)
    value = np.float64(node.attr("value", 0.0))
    inner = pad(node, rt)
    return lambda x: inner(x, pads, np.asarray(value, dtype=rt.as_device(x).dtype))


@check("Pad")
def _pad_mode(node: NodeInfo) -> str | None:
    mode = node.attr("mode", "constant")
    return None if mode in _PAD_MODES else f"Pad mode {mode!r} is not implemented on OpenCL"


@registry.kernel("Trilu", since=14, types={"T": ALL})
def trilu(node: NodeInfo, rt: Runtime):
    upper = int(node.attr("upper", 1))

    def compute(x, k=None):
        x = rt.as_device(x)
        kk = _ints(rt, k)[0] if k is not None else 0
        h, w = x.shape[-2], x.shape[-1]
        keep = "(j - i >= kk)" if upper else "(j - i <= kk)"
        src = (
            f"#define T {ctype(x.dtype)}\n__kernel void k(__global T* out, __global const T* x, "
            "long h, long w, long kk) {\n  long g = get_global_id(0);\n"
            "  long j = g % w, i = (g / w) % h;\n"
            f"  out[g] = {keep} ? x[g] : (T)0;\n}}\n"
        )
        out = rt.empty(x.shape, x.dtype)
        rt.launch(
            rt.kernel(src), (x.size,), out.data, x.data, np.int64(h), np.int64(w), np.int64(kk)
        )
        return (out,)

    return compute


# -- shapes and constants ------------------------------------------------------------------------
@registry.kernel("Shape", since=(15, 19, 21, 23, 24, 25))
def shape_(node: NodeInfo, rt: Runtime):
    start, end = node.attr("start", 0), node.attr("end", None)
    cache: dict[tuple, object] = {}

    def compute(x):
        dims = tuple(x.shape)
        if dims not in cache:
            cache[dims] = rt.upload(np.asarray(dims[start:end], dtype=np.int64))
        return (cache[dims],)

    return compute


@registry.kernel("Size", since=(13, 19, 21, 23, 24, 25))
def size_(node: NodeInfo, rt: Runtime):
    def compute(x):
        return (rt.upload(np.asarray(int(np.prod(x.shape, dtype=np.int64)), dtype=np.int64)),)

    return compute


@registry.kernel("Constant", since=(13, 19, 21, 23, 24, 25))
def constant(node: NodeInfo, rt: Runtime):
    if "value" in node.attrs:
        host = np.asarray(node.attrs["value"])
    elif "value_float" in node.attrs:
        host = np.asarray(node.attrs["value_float"], dtype=np.float32)
    elif "value_floats" in node.attrs:
        host = np.asarray(node.attrs["value_floats"], dtype=np.float32)
    elif "value_int" in node.attrs:
        host = np.asarray(node.attrs["value_int"], dtype=np.int64)
    else:
        host = np.asarray(node.attrs["value_ints"], dtype=np.int64)
    value = rt.upload(host)  # uploaded once, at session creation
    return lambda: (value,)


@check("Constant")
def _numeric_constant(node: NodeInfo) -> str | None:
    ok = ("value", "value_float", "value_floats", "value_int", "value_ints")
    if not any(k in node.attrs for k in ok):
        return "string and sparse constants stay on the host"
    if "value" in node.attrs and np.asarray(node.attrs["value"]).dtype not in {
        np.dtype(t) for t in ("f4", "f8", "i1", "u1", "i2", "u2", "i4", "u4", "i8", "u8", "?")
    }:
        return "the constant's dtype has no OpenCL kernel type"
    return None


@registry.kernel("ConstantOfShape", since=(9, 20, 21, 23, 24, 25))
def constant_of_shape(node: NodeInfo, rt: Runtime):
    value = node.attrs.get("value")
    host = np.zeros(1, np.float32) if value is None else np.asarray(value).reshape(-1)

    def compute(shape):
        dims = _ints(rt, shape)
        src = rt.upload(host)
        return (rt.strided("a", host.dtype, dims, [(src, 0, [0] * len(dims))]),)

    return compute


@registry.kernel(
    "Range",
    since=11,
    types={"T": (*NUMERIC[:2], "tensor(int16)", "tensor(int32)", "tensor(int64)")},
)
def range_(node: NodeInfo, rt: Runtime):
    def compute(start, limit, delta):
        s, lim, d = (np.asarray(rt.host(v)).reshape(()) for v in (start, limit, delta))
        dtype = s.dtype
        n = max(int(np.ceil((float(lim) - float(s)) / float(d))), 0)
        src = (
            f"#define T {ctype(dtype)}\n__kernel void k(__global T* out, T s, T d) "
            "{ long g = get_global_id(0); out[g] = (T)(s + (T)g * d); }"
        )
        out = rt.empty((n,), dtype)
        rt.launch(rt.kernel(src), (n,), out.data, dtype.type(s), dtype.type(d))
        return (out,)

    return compute
