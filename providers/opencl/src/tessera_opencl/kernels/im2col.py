"""Convolution as im2col + a register-blocked GEMM, for CPU-type OpenCL devices (PoCL) where
float8 vector loads beat local-memory tiling; depthwise-like convolutions stay direct."""

from __future__ import annotations

import numpy as np

from tessera_opencl._runtime import Runtime, ctype

_IM2COL = """
__kernel void k(__global T* col, __global const T* x, __global const long* m, long n, long p0, long pn,
                long c0) {
  const long C = m[0], D = m[1], H = m[2], W = m[3], OH = m[6], OW = m[7];
  const long KD = m[8], KH = m[9], KW = m[10];
  const long g = get_global_id(0), pj = g % pn, r = g / pn, p = p0 + pj;
  const long kw = r % KW, kh = (r / KW) % KH, kd = (r / (KW * KH)) % KD, ic = r / (KW * KH * KD);
  const long ow = p % OW, oh = (p / OW) % OH, od = p / (OW * OH);
  const long id = od * m[11] - m[17] + kd * m[14];
  const long ih = oh * m[12] - m[18] + kh * m[15];
  const long iw = ow * m[13] - m[19] + kw * m[16];
  const int inside = id >= 0 && id < D && ih >= 0 && ih < H && iw >= 0 && iw < W;
  col[g] = inside ? x[(((n * C + c0 + ic) * D + id) * H + ih) * W + iw] : (T)0;
}
"""

# C[r, c] (row stride ldc) = A[r, :] . B[:, c] (+ bias[r]); each work-item does 4 rows x 8 columns.
_GEMM8 = """
__kernel void k(__global const T* A, __global const T* B, __global T* C, __global const T* bias,
                long M, long N, long K, long ldc, long c_off, long a_off) {
  C += c_off; A += a_off; bias += a_off / K;
  const long c0 = get_global_id(0) * 8, r0 = get_global_id(1) * 4;
  if (c0 + 8 <= N && r0 + 4 <= M) {
    T8 a0 = 0, a1 = 0, a2 = 0, a3 = 0;
    __global const T* A0 = A + r0 * K;
    for (long q = 0; q < K; ++q) {
      const T8 b = vload8(0, B + q * N + c0);
      a0 += A0[q] * b; a1 += A0[K + q] * b; a2 += A0[2 * K + q] * b; a3 += A0[3 * K + q] * b;
    }
    if (HAS_B) { a0 += bias[r0]; a1 += bias[r0 + 1]; a2 += bias[r0 + 2]; a3 += bias[r0 + 3]; }
    vstore8(a0, 0, C + r0 * ldc + c0); vstore8(a1, 0, C + (r0 + 1) * ldc + c0);
    vstore8(a2, 0, C + (r0 + 2) * ldc + c0); vstore8(a3, 0, C + (r0 + 3) * ldc + c0);
    return;
  }
  for (long r = r0; r < r0 + 4 && r < M; ++r)
    for (long c = c0; c < c0 + 8 && c < N; ++c) {
      T acc = HAS_B ? bias[r] : (T)0;
      for (long q = 0; q < K; ++q) acc += A[r * K + q] * B[q * N + c];
      C[r * ldc + c] = acc;
    }
}
"""

_MAX_COL = 1 << 23  # elements of one im2col chunk (32 MiB of float32)


def conv_im2col(rt: Runtime, x, w, b, out, meta: list[int], group: int = 1) -> None:
    """``out`` = Conv(x, w, b), one im2col + GEMM per image, group and column chunk; ``meta`` is
    the direct kernel's geometry."""
    t = ctype(x.dtype)
    n_img, oc = x.shape[0], w.shape[0] // group
    cpg = x.shape[1] // group
    ck = int(np.prod(w.shape[1:], dtype=np.int64))
    p_total = int(np.prod(out.shape[2:], dtype=np.int64))
    chunk = max(8, min(p_total, _MAX_COL // max(ck, 1)) // 8 * 8)
    col = rt.empty((ck * chunk,), x.dtype)
    im2col = rt.kernel(f"#define T {t}\n" + _IM2COL)
    gemm = rt.kernel(
        f"#define T {t}\n#define T8 {t}8\n#define HAS_B {int(b is not None)}\n" + _GEMM8
    )
    bias = (b if b is not None else w).base_data
    geometry = rt.meta(meta)
    for n in range(n_img):
        for g in range(group):
            for p0 in range(0, p_total, chunk):
                pn = min(chunk, p_total - p0)
                geo = (np.int64(n), np.int64(p0), np.int64(pn), np.int64(g * cpg))
                rt.launch(im2col, (ck * pn,), col.data, x.data, geometry, *geo)
                c_off = ((n * group + g) * oc) * p_total + p0
                sizes = (np.int64(oc), np.int64(pn), np.int64(ck), np.int64(p_total))
                offsets = (np.int64(c_off), np.int64(g * oc * ck))
                grid = (-(-pn // 8), -(-oc // 4))
                rt.launch(gemm, grid, w.base_data, col.data, out.data, bias, *sizes, *offsets)
