"""MatMul and Gemm: one tiled OpenCL kernel (local-memory tiles) with batch broadcasting,
transposes as strides, and Gemm's alpha, beta and broadcast C."""

from __future__ import annotations

import numpy as np

from tessera.provider import NodeInfo
from tessera_opencl._runtime import Runtime, broadcast_strides, ctype
from tessera_opencl.kernels._registry import FLOATS, registry

_GEMM = """
__kernel void k(__global const T* A, __global const T* B, __global const T* Cin,
                __global T* out, __global const long* offs, __global const long* m,
                T alpha, T beta) {
  const long M = m[0], N = m[1], K = m[2];
  const long sam = m[3], sak = m[4], sbk = m[5], sbn = m[6], scm = m[7], scn = m[8];
  const int lx = get_local_id(0), ly = get_local_id(1);
  const long col = get_global_id(0), row = get_global_id(1), b = get_global_id(2);
  __global const T* a = A + offs[2 * b];
  __global const T* bb = B + offs[2 * b + 1];
  __local T As[TS][TS + 1];
  __local T Bs[TS][TS + 1];
  T acc = 0;
  for (long t = 0; t < K; t += TS) {
    As[ly][lx] = (row < M && t + lx < K) ? a[row * sam + (t + lx) * sak] : (T)0;
    Bs[ly][lx] = (t + ly < K && col < N) ? bb[(t + ly) * sbk + col * sbn] : (T)0;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int q = 0; q < TS; ++q) acc += As[ly][q] * Bs[q][lx];
    barrier(CLK_LOCAL_MEM_FENCE);
  }
  if (row < M && col < N) {
    T v = alpha * acc;
    if (HAS_C) v += beta * Cin[row * scm + col * scn];
    out[b * M * N + row * N + col] = v;
  }
}
"""


def gemm_launch(
    rt: Runtime,
    a,
    b,
    m,
    n,
    k,
    strides,
    offs,
    c=None,
    c_strides=(0, 0),
    alpha=1.0,
    beta=0.0,
    batch=1,
):
    """out[batch, m, n] = alpha * A @ B (+ beta * C), with element strides for A, B and C."""
    tile = 16 if rt.device.max_work_group_size >= 256 else 8
    src = (
        f"#define T {ctype(a.dtype)}\n#define TS {tile}\n#define HAS_C {int(c is not None)}\n"
        + _GEMM
    )
    out = rt.empty((batch, m, n), a.dtype)
    meta = [m, n, k, *strides, *c_strides]
    up = lambda v: -(-v // tile) * tile  # noqa: E731
    cbuf = (c if c is not None else a).base_data
    rt.launch(
        rt.kernel(src),
        (up(n), up(m), batch),
        a.base_data,
        b.base_data,
        cbuf,
        out.data,
        rt.meta(offs),
        rt.meta(meta),
        a.dtype.type(alpha),
        a.dtype.type(beta),
        local=(tile, tile, 1),
    )
    return out


_MM_TYPES = (*FLOATS, "tensor(int32)", "tensor(int64)", "tensor(uint32)", "tensor(uint64)")


@registry.kernel("MatMul", since=(9, 13), types={"T": _MM_TYPES})
def matmul(node: NodeInfo, rt: Runtime):
    def compute(a, b):
        a, b = rt.as_device(a), rt.as_device(b)
        a2 = a.reshape((1, a.shape[0])) if a.ndim == 1 else a
        b2 = b.reshape((b.shape[0], 1)) if b.ndim == 1 else b
        m, k, n = a2.shape[-2], a2.shape[-1], b2.shape[-1]
        batch_shape = np.broadcast_shapes(a2.shape[:-2], b2.shape[:-2])
        nb = int(np.prod(batch_shape, dtype=np.int64))
        ia = np.arange(int(np.prod(a2.shape[:-2], dtype=np.int64))).reshape(a2.shape[:-2])
        ib = np.arange(int(np.prod(b2.shape[:-2], dtype=np.int64))).reshape(b2.shape[:-2])
        oa = np.broadcast_to(ia, batch_shape).reshape(-1) * (m * k)
        ob = np.broadcast_to(ib, batch_shape).reshape(-1) * (k * n)
        offs = np.stack([oa, ob], axis=1).reshape(-1).tolist()
        shape = (*tuple(batch_shape), m, n)
        if nb == 0 or m == 0 or n == 0:
            out = rt.empty(shape, a.dtype)
        else:
            if k == 0:
                out = rt.strided("0", a.dtype, shape, [])
            else:
                out = gemm_launch(rt, a2, b2, m, n, k, (k, 1, n, 1), offs, batch=nb).reshape(shape)
        if a.ndim == 1:
            out = out.reshape((*shape[:-2], n))
        if b.ndim == 1:
            out = out.reshape(out.shape[:-1])
        return (out,)

    return compute


@registry.kernel("Gemm", since=(7, 9, 11, 13), types={"T": _MM_TYPES})
def gemm(node: NodeInfo, rt: Runtime):
    ta, tb = int(node.attr("transA", 0)), int(node.attr("transB", 0))
    alpha, beta = float(node.attr("alpha", 1.0)), float(node.attr("beta", 1.0))

    def compute(a, b, c=None):
        a, b = rt.as_device(a), rt.as_device(b)
        m, k = (a.shape[1], a.shape[0]) if ta else a.shape
        n = b.shape[0] if tb else b.shape[1]
        sa = (1, m) if ta else (k, 1)
        sb = (1, k) if tb else (n, 1)
        cs = (0, 0)
        if c is not None:
            c = rt.as_device(c)
            cs = tuple(broadcast_strides(c.shape, (m, n)))
        if m == 0 or n == 0:
            return (rt.empty((m, n), a.dtype),)
        out = gemm_launch(rt, a, b, m, n, k, (*sa, *sb), [0, 0], c, cs, alpha, beta)
        return (out.reshape((m, n)),)

    return compute
