"""MatMul and Gemm as one cuBLAS call each (``be.matmul``; TF32 only when the user allows it)."""

from __future__ import annotations

from tessera.provider import NodeInfo
from tessera_cuda.kernels._registry import FLOATS, registry


@registry.kernel("MatMul", (9, 13), types={"T": FLOATS})
def matmul(node: NodeInfo, be):
    def compute(a, b):
        return (be.matmul(a, b),)

    return compute


@registry.kernel("Gemm", (7, 9, 11, 13), types={"T": FLOATS})
def gemm(node: NodeInfo, be):
    alpha = float(node.attr("alpha", 1.0))
    beta = float(node.attr("beta", 1.0))
    trans_a = bool(node.attr("transA", 0))
    trans_b = bool(node.attr("transB", 0))

    def compute(a, b, c=None):
        y = be.matmul(a.T if trans_a else a, b.T if trans_b else b)
        if alpha != 1.0:
            y *= y.dtype.type(alpha)
        if c is not None and beta != 0.0:
            y += c * c.dtype.type(beta) if beta != 1.0 else c
        return (y,)

    return compute
