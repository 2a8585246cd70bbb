"""CumSum, OneHot and the scatters (ScatterElements, ScatterND). Scatters copy the data, then apply
updates in order in one work-item, which keeps ONNX's sequential semantics for repeated indices."""

from __future__ import annotations

import numpy as np

from tessera.provider import NodeInfo
from tessera_opencl._runtime import Runtime, contiguous_strides, ctype, view_of
from tessera_opencl.kernels._registry import ALL, NUMERIC, check, registry

_IDX = ("tensor(int32)", "tensor(int64)")

_CUMSUM = """
__kernel void k(__global T* out, __global const T* x, long L, long inner) {
  const long g = get_global_id(0), o = g / inner, i = g % inner;
  __global const T* p = x + o * L * inner + i;
  __global T* q = out + o * L * inner + i;
  T acc = 0;
  for (long s = 0; s < L; ++s) {
    const long j = REVERSE ? L - 1 - s : s;
    if (EXCLUSIVE) { q[j * inner] = acc; acc += p[j * inner]; }
    else { acc += p[j * inner]; q[j * inner] = acc; }
  }
}
"""


@registry.kernel("CumSum", since=(11, 14), types={"T": NUMERIC})
def cumsum(node: NodeInfo, rt: Runtime):
    flags = (
        f"#define REVERSE {int(node.attr('reverse', 0))}\n"
        f"#define EXCLUSIVE {int(node.attr('exclusive', 0))}\n"
    )

    def compute(x, axis):
        x = rt.as_device(x)
        a = int(np.asarray(rt.host(axis)).reshape(-1)[0]) % x.ndim
        outer = int(np.prod(x.shape[:a], dtype=np.int64))
        inner = int(np.prod(x.shape[a + 1 :], dtype=np.int64))
        out = rt.empty(x.shape, x.dtype)
        src = f"#define T {ctype(x.dtype)}\n" + flags + _CUMSUM
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


_COMBINE = {
    "none": "u",
    "add": "d + u",
    "mul": "d * u",
    "max": "(u > d ? u : d)",
    "min": "(u < d ? u : d)",
}

_SCATTER_ELEMENTS = """
__kernel void k(__global T* out, __global const I* ind, __global const T* upd,
                __global const long* m, long n) {
  // m: rank, index shape[rank], out strides[rank], axis, axis dim
  const long rank = m[0], axis = m[2 * rank + 1], dim = m[2 * rank + 2];
  for (long g = 0; g < n; ++g) {
    long r = g, off = 0;
    for (long d = rank - 1; d >= 0; --d) {
      long c = r % m[1 + d]; r /= m[1 + d];
      if (d == axis) { c = (long)ind[g]; if (c < 0) c += dim; }
      off += c * m[1 + rank + d];
    }
    const T d = out[off], u = upd[g];
    out[off] = COMBINE;
  }
}
"""


def _copy(rt: Runtime, x):
    return rt.strided("a", x.dtype, x.shape, [view_of(x)])


@registry.kernel("ScatterElements", since=(11, 13, 16, 18), types={"T": ALL, "Tind": _IDX})
def scatter_elements(node: NodeInfo, rt: Runtime):
    axis, combine = int(node.attr("axis", 0)), _COMBINE[node.attr("reduction", "none")]

    def compute(data, ind, upd):
        data, ind, upd = rt.as_device(data), rt.as_device(ind), rt.as_device(upd)
        out = _copy(rt, data)
        rank, a = data.ndim, axis % data.ndim
        meta = [rank, *ind.shape, *contiguous_strides(data.shape), a, data.shape[a]]
        src = f"#define T {ctype(data.dtype)}\n#define I {ctype(ind.dtype)}\n#define COMBINE {combine}\n"
        if ind.size:
            rt.launch(
                rt.kernel(src + _SCATTER_ELEMENTS),
                (1,),
                out.data,
                ind.data,
                upd.data,
                rt.meta(meta),
                np.int64(ind.size),
            )
        return (out,)

    return compute


_SCATTER_ND = """
__kernel void k(__global T* out, __global const long* ind, __global const T* upd,
                __global const long* m, long n_upd, long k, long slice) {
  // m: data shape[k], data strides[k]
  for (long u = 0; u < n_upd; ++u) {
    long off = 0;
    for (long j = 0; j < k; ++j) { long c = ind[u * k + j]; if (c < 0) c += m[j]; off += c * m[k + j]; }
    for (long s = 0; s < slice; ++s) { const T d = out[off + s], u2 = upd[u * slice + s]; out[off + s] = COMBINE; }
  }
}
"""


@registry.kernel("ScatterND", since=(11, 13, 16, 18), types={"T": ALL})
def scatter_nd(node: NodeInfo, rt: Runtime):
    combine = _COMBINE[node.attr("reduction", "none")].replace("u", "u2")

    def compute(data, ind, upd):
        data, upd = rt.as_device(data), rt.as_device(upd)
        ind = rt.as_device(ind)
        k = ind.shape[-1]
        n_upd = int(np.prod(ind.shape[:-1], dtype=np.int64))
        slice_size = int(np.prod(data.shape[k:], dtype=np.int64))
        out = _copy(rt, data)
        strides = contiguous_strides(data.shape)[:k]
        src = f"#define T {ctype(data.dtype)}\n#define COMBINE {combine}\n" + _SCATTER_ND
        if n_upd:
            rt.launch(
                rt.kernel(src),
                (1,),
                out.data,
                ind.data,
                upd.data,
                rt.meta([*data.shape[:k], *strides]),
                np.int64(n_upd),
                np.int64(k),
                np.int64(slice_size),
            )
        return (out,)

    return compute


@check("ScatterElements", "ScatterND")
def _known_reduction(node: NodeInfo) -> str | None:
    r = node.attr("reduction", "none")
    return None if r in _COMBINE else f"reduction {r!r} is not implemented on OpenCL"


_ONEHOT = """
__kernel void k(__global T* out, __global const I* ind, __global const T* v, long depth, long inner) {
  const long g = get_global_id(0), i = g % inner, d = (g / inner) % depth, o = g / (inner * depth);
  long q = (long)ind[o * inner + i];
  if (q < 0) q += depth;
  out[g] = q == d ? v[1] : v[0];
}
"""


@registry.kernel("OneHot", since=(11,), types={"T1": NUMERIC, "T2": NUMERIC, "T3": ALL})
def one_hot(node: NodeInfo, rt: Runtime):
    axis = int(node.attr("axis", -1))

    def compute(ind, depth, values):
        ind, values = rt.as_device(ind), rt.as_device(values)
        dep = int(np.asarray(rt.host(depth)).reshape(-1)[0])
        a = axis % (ind.ndim + 1)
        shape = (*tuple(ind.shape[:a]), dep, *tuple(ind.shape[a:]))
        inner = int(np.prod(ind.shape[a:], dtype=np.int64))
        out = rt.empty(shape, values.dtype)
        src = f"#define T {ctype(values.dtype)}\n#define I {ctype(ind.dtype)}\n" + _ONEHOT
        rt.launch(
            rt.kernel(src),
            (out.size,),
            out.data,
            ind.data,
            values.data,
            np.int64(dep),
            np.int64(max(inner, 1)),
        )
        return (out,)

    return compute


@check("OneHot")
def _integer_indices(node: NodeInfo) -> str | None:
    t = node.input_types[0] if node.input_types else None
    if t is not None and "int" not in t:
        return "OneHot with float indices is not implemented on OpenCL"
    return None
