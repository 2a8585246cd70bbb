"""NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss: a per-element loss kernel, then sums
on the device for the "sum" and "mean" reductions."""

from __future__ import annotations

import numpy as np

from tessera.provider import NodeInfo
from tessera_opencl._runtime import Runtime, ctype, view_of
from tessera_opencl.kernels._registry import FLOATS, registry
from tessera_opencl.kernels.reduce import _BODIES, _SOFTMAX

_NLL = """
__kernel void k(__global T* loss, __global T* wout, __global const T* x, __global const I* t,
                __global const T* w, long C, long inner, long ignore) {
  const long g = get_global_id(0), n = g / inner, d = g % inner;
  const long c = (long)t[g];
  if (c == ignore) { loss[g] = (T)0; wout[g] = (T)0; return; }
  const T wc = HAS_W ? w[c] : (T)1;
  loss[g] = -x[(n * C + c) * inner + d] * wc;
  wout[g] = wc;
}
"""
_SUM = """
__kernel void k(__global T* out, __global const T* x, long n) {
  T acc = 0;
  for (long j = 0; j < n; ++j) acc += x[j];
  out[0] = acc;
}
"""


def _nll(rt: Runtime, node: NodeInfo, logp, target, weight):
    reduction = node.attr("reduction", "mean")
    ignore = node.attr("ignore_index", None)
    target = rt.as_device(target)
    _n, c = logp.shape[:2]
    inner = int(np.prod(logp.shape[2:], dtype=np.int64))
    loss = rt.empty(target.shape, logp.dtype)
    wsum = rt.empty(target.shape, logp.dtype)
    src = (
        f"#define T {ctype(logp.dtype)}\n#define I {ctype(target.dtype)}\n"
        f"#define HAS_W {int(weight is not None)}\n" + _NLL
    )
    w = rt.as_device(weight) if weight is not None else logp
    sentinel = np.int64(ignore if ignore is not None else np.iinfo(np.int64).min)
    rt.launch(
        rt.kernel(src),
        (loss.size,),
        loss.data,
        wsum.data,
        logp.data,
        target.data,
        w.data,
        np.int64(c),
        np.int64(max(inner, 1)),
        sentinel,
    )
    if reduction == "none":
        return loss
    sum_src = f"#define T {ctype(logp.dtype)}\n" + _SUM
    total = rt.empty((), logp.dtype)
    rt.launch(rt.kernel(sum_src), (1,), total.data, loss.data, np.int64(loss.size))
    if reduction == "sum":
        return total
    denom = rt.empty((), logp.dtype)
    rt.launch(rt.kernel(sum_src), (1,), denom.data, wsum.data, np.int64(wsum.size))
    return rt.strided("a / b", logp.dtype, (), [view_of(total), view_of(denom)])


@registry.kernel("NegativeLogLikelihoodLoss", since=(13, 22), types={"T": FLOATS})
def nll_loss(node: NodeInfo, rt: Runtime):
    def compute(x, target, weight=None):
        return (_nll(rt, node, rt.as_device(x), target, weight),)

    return compute


@registry.kernel("SoftmaxCrossEntropyLoss", since=(13,), types={"T": FLOATS})
def softmax_cross_entropy(node: NodeInfo, rt: Runtime):
    def compute(scores, labels, weights=None):
        x = rt.as_device(scores)
        c = x.shape[1]
        outer, inner = x.shape[0], int(np.prod(x.shape[2:], dtype=np.int64))
        logp = rt.empty(x.shape, x.dtype)
        src = f"#define T {ctype(x.dtype)}\n" + _SOFTMAX.replace("BODY", _BODIES["LogSoftmax"])
        rt.launch(rt.kernel(src), (outer * inner,), logp.data, x.data, np.int64(c), np.int64(inner))
        loss = _nll(rt, node, logp, labels, weights)
        return (loss, logp)[: node.num_outputs]

    return compute
