"""Reductions over any set of axes (ReduceSum/Mean/Max/Min/Prod/L1/L2/LogSum/LogSumExp/SumSquare),
ArgMax/ArgMin, and the row-wise Softmax, LogSoftmax and Hardmax."""

from __future__ import annotations

import numpy as np

from tessera.provider import NodeInfo
from tessera_opencl._runtime import Runtime, _coalesce, contiguous_strides, ctype
from tessera_opencl.kernels._registry import BOOL, FLOATS, NUMERIC, check, registry

# op -> (init, step over v, final over acc and count R); "first" starts from the first element.
_REDUCE = {
    "ReduceSum": ("0", "acc += v;", "acc"),
    "ReduceMean": ("0", "acc += v;", "acc / (ACC)R"),
    "ReduceProd": ("1", "acc *= v;", "acc"),
    "ReduceSumSquare": ("0", "acc += v * v;", "acc"),
    "ReduceL1": ("0", "acc += (v < (ACC)0 ? -v : v);", "acc"),
    "ReduceL2": ("0", "acc += v * v;", "sqrt(acc)"),
    "ReduceLogSum": ("0", "acc += v;", "log(acc)"),
    "ReduceMax": ("EMPTY_MAX", "acc = (v > acc || ISNAN(v)) ? v : acc;", "acc"),
    "ReduceMin": ("EMPTY_MIN", "acc = (v < acc || ISNAN(v)) ? v : acc;", "acc"),
    "ReduceLogSumExp": ("0", "acc += exp(v - mx);", "log(acc) + mx"),
}
_VERSIONS = {
    "ReduceSum": (11, 13),
    "ReduceLogSum": (11, 13, 18, 28),
    "ReduceLogSumExp": (11, 13, 18, 28),
    "ReduceMax": (11, 12, 13, 18, 20),
    "ReduceMin": (11, 12, 13, 18, 20),
}
_ACC = {"float": "float", "double": "double"}
_LIMITS = {
    "float": ("-INFINITY", "INFINITY"),
    "double": ("-INFINITY", "INFINITY"),
    "char": ("CHAR_MIN", "CHAR_MAX"),
    "uchar": ("0", "UCHAR_MAX"),
    "short": ("SHRT_MIN", "SHRT_MAX"),
    "ushort": ("0", "USHRT_MAX"),
    "int": ("INT_MIN", "INT_MAX"),
    "uint": ("0", "UINT_MAX"),
    "long": ("LONG_MIN", "LONG_MAX"),
    "ulong": ("0", "ULONG_MAX"),
}


def _reduce_source(op: str, t: str, rank_k: int, rank_r: int, is_bool: bool) -> str:
    init, step, final = _REDUCE[op]
    acc = _ACC.get(t, "long" if t[0] != "u" else "ulong")
    if op in ("ReduceMax", "ReduceMin"):
        acc = t
    lo, hi = _LIMITS[t]
    if is_bool:
        lo, hi = "0", "1"
    isnan = "isnan(x)" if t in ("float", "double") else "0"
    loop_idx = (
        f"    long q = j, off = base;\n"
        f"    for (int d = {rank_r - 1}; d >= 0; --d) {{ off += (q % m[{2 * rank_k} + d]) * "
        f"m[{2 * rank_k + rank_r} + d]; q /= m[{2 * rank_k} + d]; }}\n"
    )
    lse = ""
    if op == "ReduceLogSumExp":
        lse = (
            "  ACC mx = -INFINITY;\n"
            f"  for (long j = 0; j < R; ++j) {{\n{loop_idx}    ACC v = (ACC)x[off]; mx = v > mx ? v : mx; }}\n"
            "  if (R == 0 || isinf(mx)) mx = (mx > 0 ? mx : 0);\n"
        )
    return (
        f"#define T {t}\n#define ACC {acc}\n#define ISNAN(x) {isnan}\n"
        f"#define EMPTY_MAX {lo}\n#define EMPTY_MIN {hi}\n"
        "__kernel void k(__global T* out, __global const T* x, __global const long* m, long R) {\n"
        "  long g = get_global_id(0), r = g, base = 0;\n"
        f"  for (int d = {rank_k - 1}; d >= 0; --d) {{ base += (r % m[d]) * m[{rank_k} + d]; r /= m[d]; }}\n"
        f"{lse}  ACC acc = (ACC)({init});\n"
        f"  for (long j = 0; j < R; ++j) {{\n{loop_idx}    ACC v = (ACC)x[off]; {step} }}\n"
        f"  out[g] = (T)({final});\n}}\n"
    )


def _reduce_axes(node: NodeInfo, rt: Runtime, axes_input, rank: int) -> list[int] | None:
    """The reduced axes, or None for "reduce nothing" (noop_with_empty_axes)."""
    axes = node.attr("axes", None)
    if axes_input is not None:
        axes = [int(a) for a in np.asarray(rt.host(axes_input)).reshape(-1)]
    if not axes:
        return None if node.attr("noop_with_empty_axes", 0) else list(range(rank))
    return sorted({int(a) % rank for a in axes})


def _reduce_factory(op: str):
    def factory(node: NodeInfo, rt: Runtime):
        keepdims = int(node.attr("keepdims", 1))

        def compute(x, axes=None):
            x = rt.as_device(x)
            red = _reduce_axes(node, rt, axes, x.ndim)
            if red is None:
                return (x,)  # noop: the tensor itself
            strides = contiguous_strides(x.shape)
            kept = [i for i in range(x.ndim) if i not in red]
            kshape, (kstr,) = _coalesce([x.shape[i] for i in kept], [[strides[i] for i in kept]])
            rshape, (rstr,) = _coalesce([x.shape[i] for i in red], [[strides[i] for i in red]])
            R = int(np.prod(rshape, dtype=np.int64))
            out_shape = (
                [1 if i in red else d for i, d in enumerate(x.shape)]
                if keepdims
                else [x.shape[i] for i in kept]
            )
            out = rt.empty(out_shape, x.dtype)
            src = _reduce_source(op, ctype(x.dtype), len(kshape), len(rshape), x.dtype == np.bool_)
            meta = kshape + kstr + rshape + rstr
            rt.launch(rt.kernel(src), (out.size,), out.data, x.data, rt.meta(meta), np.int64(R))
            return (out,)

        return compute

    return factory


for _op in _REDUCE:
    _types = NUMERIC + (BOOL if _op in ("ReduceMax", "ReduceMin") else ())
    if _op in ("ReduceLogSum", "ReduceLogSumExp", "ReduceL2", "ReduceMean"):
        _types = FLOATS
    registry.kernel(_op, since=_VERSIONS.get(_op, (11, 13, 18)), types={"T": _types})(
        _reduce_factory(_op)
    )


@check(*_REDUCE)
def _bool_only_at_20(node: NodeInfo) -> str | None:
    if node.input_types and node.input_types[0] == "tensor(bool)" and node.opset < 20:
        return "bool reductions exist from opset 20"
    return None


_ARG = """
__kernel void k(__global long* out, __global const T* x, long L, long inner) {
  long g = get_global_id(0), o = g / inner, i = g % inner;
  __global const T* p = x + o * L * inner + i;
  long best = 0; T bv = p[0];
  for (long j = 1; j < L; ++j) { T v = p[j * inner]; if (v CMP bv) { bv = v; best = j; } }
  out[g] = best;
}
"""


def _arg_factory(op: str):
    def factory(node: NodeInfo, rt: Runtime):
        axis, keepdims = int(node.attr("axis", 0)), int(node.attr("keepdims", 1))
        last = int(node.attr("select_last_index", 0))
        cmp = (">" if op == "ArgMax" else "<") + ("=" if last else "")

        def compute(x):
            x = rt.as_device(x)
            a = axis % x.ndim
            outer = int(np.prod(x.shape[:a], dtype=np.int64))
            inner = int(np.prod(x.shape[a + 1 :], dtype=np.int64))
            shape = list(x.shape)
            if keepdims:
                shape[a] = 1
            else:
                del shape[a]
            out = rt.empty(shape, np.int64)
            src = f"#define T {ctype(x.dtype)}\n" + _ARG.replace("CMP", cmp)
            rt.launch(
                rt.kernel(src),
                (outer * inner,),
                out.data,
                x.data,
                np.int64(x.shape[a]),
                np.int64(inner),
            )
            return (out,)

        return compute

    return factory


for _op in ("ArgMax", "ArgMin"):
    registry.kernel(_op, since=(11, 12, 13), types={"T": NUMERIC})(_arg_factory(_op))

_SOFTMAX = """
__kernel void k(__global T* out, __global const T* x, long L, long inner) {
  long g = get_global_id(0), o = g / inner, i = g % inner;
  __global const T* p = x + o * L * inner + i;
  __global T* q = out + o * L * inner + i;
  T mx = p[0]; long arg = 0;
  for (long j = 1; j < L; ++j) if (p[j * inner] > mx) { mx = p[j * inner]; arg = j; }
  T s = 0;
  for (long j = 0; j < L; ++j) s += exp(p[j * inner] - mx);
  for (long j = 0; j < L; ++j) { T v = p[j * inner]; q[j * inner] = BODY; }
}
"""
_BODIES = {
    "Softmax": "exp(v - mx) / s",
    "LogSoftmax": "v - mx - log(s)",
    "Hardmax": "(T)(j == arg)",
}


def _softmax_factory(op: str):
    def factory(node: NodeInfo, rt: Runtime):
        legacy = node.since_version < 13 if node.since_version else node.opset < 13
        axis = int(node.attr("axis", 1 if legacy else -1))

        def compute(x):
            x = rt.as_device(x)
            a = axis % max(x.ndim, 1)
            outer = int(np.prod(x.shape[:a], dtype=np.int64))
            if legacy:  # opset < 13: the input is coerced to 2-D at axis
                length, inner = int(np.prod(x.shape[a:], dtype=np.int64)), 1
            else:
                length = x.shape[a]
                inner = int(np.prod(x.shape[a + 1 :], dtype=np.int64))
            out = rt.empty(x.shape, x.dtype)
            src = f"#define T {ctype(x.dtype)}\n" + _SOFTMAX.replace("BODY", _BODIES[op])
            rt.launch(
                rt.kernel(src),
                (outer * inner,),
                out.data,
                x.data,
                np.int64(length),
                np.int64(inner),
            )
            return (out,)

        return compute

    return factory


for _op in _BODIES:
    registry.kernel(_op, since=(1, 11, 13), types={"T": FLOATS})(_softmax_factory(_op))
