"""ONNX Attention (opsets 23-25) as one OpenCL kernel per query row: scaled QK, softcap, boolean or
additive mask, causal mask offset by the past length, grouped KV heads, softmax and P @ V."""

from __future__ import annotations

import numpy as np

from tessera.provider import NodeInfo
from tessera_opencl._runtime import Runtime, broadcast_strides, contiguous_strides, ctype
from tessera_opencl.kernels._registry import check, registry

_ATTN = """
__kernel void k(__global const T* q, __global const T* kk, __global const T* v, __global const M* mask,
                __global T* y, __global T* sc, __global T* qk, __global const long* m, T scale, T cap) {
  const long B = m[0], Hq = m[1], Sq = m[2], Dk = m[3], Hkv = m[4], L = m[5], Dv = m[6], Lm = m[7];
  const long row = get_global_id(0), i = row % Sq, h = (row / Sq) % Hq, b = row / (Sq * Hq);
  const long hk = h / (Hq / Hkv);
  __global const T* qr = q + row * Dk;
  __global const T* kb = kk + (b * Hkv + hk) * L * Dk;
  __global const T* vb = v + (b * Hkv + hk) * L * Dv;
  __global T* s = sc + row * L;
  __global T* o = qk + row * L;
  T mx = -INFINITY; int live = 0;
  for (long j = 0; j < L; ++j) {
    T acc = 0;
    for (long d = 0; d < Dk; ++d) acc += (qr[d] * scale) * (kb[j * Dk + d] * scale);
    if (MODE == 0) o[j] = acc;
    if (cap > (T)0) acc = cap * tanh(acc / cap);
    if (MODE == 1) o[j] = acc;
    T bias = 0;
    if (HAS_MASK) {
      if (j >= Lm) bias = -INFINITY;
      else {
        const M mv = mask[b * m[8] + h * m[9] + i * m[10] + j * m[11]];
        bias = BOOL_MASK ? ((mv != 0) ? (T)0 : -INFINITY) : (T)mv;
      }
    }
    if (CAUSAL && j > i + m[12]) bias = -INFINITY;
    if (bias != -INFINITY) live = 1;
    const T x = acc + bias;
    if (MODE == 2) o[j] = x;
    s[j] = x;
    if (x > mx) mx = x;
  }
  T sum = 0;
  for (long j = 0; j < L; ++j) sum += exp(s[j] - mx);
  for (long j = 0; j < L; ++j) {
    const T p = live ? exp(s[j] - mx) / sum : (T)0;
    s[j] = p;
    if (MODE == 3) o[j] = p;
  }
  __global T* yr = y + row * Dv;
  for (long d = 0; d < Dv; ++d) {
    T acc = 0;
    for (long j = 0; j < L; ++j) acc += s[j] * vb[j * Dv + d];
    yr[d] = acc;
  }
}
"""


def _heads_first(rt: Runtime, x, heads: int):
    """(B, S, H*D) -> contiguous (B, H, S, D); 4-D inputs pass through."""
    if x.ndim == 4:
        return x
    b, s, hd = x.shape
    d = hd // heads
    st = contiguous_strides((b, s, heads, d))
    shape = (b, heads, s, d)
    return rt.strided("a", x.dtype, shape, [(x, 0, [st[0], st[2], st[1], st[3]])])


def _concat_seq(rt: Runtime, past, new):
    if past is None:
        return new
    b, h, lp, d = past.shape
    out = rt.empty((b, h, lp + new.shape[2], d), new.dtype)
    ost = contiguous_strides(out.shape)
    rt.strided(
        "a",
        new.dtype,
        past.shape,
        [(past, 0, contiguous_strides(past.shape))],
        out=out,
        out_view=(0, ost),
    )
    rt.strided(
        "a",
        new.dtype,
        new.shape,
        [(new, 0, contiguous_strides(new.shape))],
        out=out,
        out_view=(lp * ost[2], ost),
    )
    return out


@registry.kernel("Attention", since=(23, 24), types={"T1": ("tensor(float)", "tensor(double)")})
def attention(node: NodeInfo, rt: Runtime):
    causal = int(node.attr("is_causal", 0))
    mode = int(node.attr("qk_matmul_output_mode", 0))
    cap = float(node.attr("softcap", 0.0))
    scale_attr = node.attr("scale", None)
    qh, kvh = node.attr("q_num_heads", None), node.attr("kv_num_heads", None)

    def compute(q, k, v, mask=None, past_k=None, past_v=None, *_):
        q, k, v = rt.as_device(q), rt.as_device(k), rt.as_device(v)
        three_d = q.ndim == 3
        q4 = _heads_first(rt, q, qh) if three_d else q
        k4 = _heads_first(rt, k, kvh) if three_d else k
        v4 = _heads_first(rt, v, kvh) if three_d else v
        pk = rt.as_device(past_k) if past_k is not None else None
        pv = rt.as_device(past_v) if past_v is not None else None
        kp, vp = _concat_seq(rt, pk, k4), _concat_seq(rt, pv, v4)
        b, hq, sq, dk = q4.shape
        hkv, length, dv = kp.shape[1], kp.shape[2], vp.shape[3]
        dt = q.dtype.type
        scale = dt(np.sqrt(dt(scale_attr if scale_attr is not None else 1 / np.sqrt(dk))))
        y4 = rt.empty((b, hq, sq, dv), q.dtype)
        scratch = rt.empty((b, hq, sq, length), q.dtype)
        qk = rt.empty((b, hq, sq, length), q.dtype)
        if mask is not None:
            mask = rt.as_device(mask)
            lm = mask.shape[-1]
            mst = broadcast_strides(mask.shape, (b, hq, sq, lm))
        else:
            lm, mst = length, [0, 0, 0, 0]
        offset = pk.shape[2] if pk is not None else 0
        meta = [b, hq, sq, dk, hkv, length, dv, lm, *mst, offset]
        mdt = mask.dtype if mask is not None else q.dtype
        src = (
            f"#define T {ctype(q.dtype)}\n#define M {ctype(mdt)}\n#define MODE {mode}\n"
            f"#define HAS_MASK {int(mask is not None)}\n#define BOOL_MASK {int(mdt == np.bool_)}\n"
            f"#define CAUSAL {causal}\n" + _ATTN
        )
        mbuf = (mask if mask is not None else q4).base_data
        rt.launch(
            rt.kernel(src),
            (b * hq * sq,),
            q4.base_data,
            kp.base_data,
            vp.base_data,
            mbuf,
            y4.data,
            scratch.data,
            qk.data,
            rt.meta(meta),
            scale,
            dt(cap),
        )
        if three_d:
            st = contiguous_strides(y4.shape)
            y = rt.strided("a", q.dtype, (b, sq, hq, dv), [(y4, 0, [st[0], st[2], st[1], st[3]])])
            y = y.reshape((b, sq, hq * dv))
        else:
            y = y4
        return (y, kp, vp, qk)[: node.num_outputs]

    return compute


@check("Attention")
def _plain_attention(node: NodeInfo) -> str | None:
    if node.has_input(6):
        return "nonpad_kv_seqlen (external KV cache) is not implemented on OpenCL"
    if node.attr("left_window_size", -1) != -1 or node.attr("right_window_size", -1) != -1:
        return "sliding-window Attention is not implemented on OpenCL"
    precision = node.attr("softmax_precision", None)
    if precision not in (None, 1, 11) or (precision == 11) != (
        node.input_types[0] == "tensor(double)"
    ):
        if precision is not None:
            return "softmax_precision different from the input type is not implemented on OpenCL"
    if node.has_input(4) != node.has_input(5):
        return "past_key without past_value (or the reverse) is not implemented on OpenCL"
    return None
