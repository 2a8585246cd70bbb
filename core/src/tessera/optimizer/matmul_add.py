"""MatMul + Add to Gemm, where Gemm's stricter shape rules hold: a 2-D left operand, a 2-D
right operand, and a constant bias that broadcasts to the (M, N) result."""

from __future__ import annotations

import onnx_ir as ir

from tessera.optimizer._rewrite import (
    constant_of,
    graph_input_ids,
    remove_nodes,
    replace_value,
    single_user,
)

_GEMM_TYPES = frozenset({ir.DataType.FLOAT, ir.DataType.DOUBLE, ir.DataType.FLOAT16})


def _rank2(value: ir.Value | None) -> tuple | None:
    if value is None or value.shape is None or len(value.shape) != 2:
        return None
    return tuple(value.shape)


def fuse_matmul_add(graph: ir.Graph) -> int:
    """Replace MatMul(A, B) + C with Gemm(A, B, C); returns how many were fused."""
    overridable = graph_input_ids(graph)
    fused = 0
    for matmul in list(graph):
        if matmul.op_type != "MatMul" or matmul.domain not in ("", "ai.onnx"):
            continue
        if len(matmul.inputs) != 2 or len(matmul.outputs) != 1:
            continue  # malformed; the planner reports it
        out = matmul.outputs[0]
        add = single_user(out)
        if add is None or add.op_type != "Add" or add.domain not in ("", "ai.onnx"):
            continue
        if len(add.inputs) != 2 or len(add.outputs) != 1:
            continue
        a_shape, b_shape = _rank2(matmul.inputs[0]), _rank2(matmul.inputs[1])
        if a_shape is None or b_shape is None or out.dtype not in _GEMM_TYPES:
            continue
        bias_value = add.inputs[1] if add.inputs[0] is out else add.inputs[0]
        bias = constant_of(bias_value, overridable)
        n = b_shape[1]
        m = a_shape[0]
        if bias is None or bias.dtype != out.dtype.numpy():
            continue
        ok = bias.shape in ((n,), (1, n), (1,), (1, 1)) or (
            isinstance(m, int) and bias.shape == (m, n)
        )
        if not ok or not isinstance(n, int):
            continue
        gemm = ir.Node(
            "",
            "Gemm",
            [matmul.inputs[0], matmul.inputs[1], bias_value],
            name=(matmul.name or "MatMul") + "_gemm",
            num_outputs=1,
        )
        result = gemm.outputs[0]
        result.shape = add.outputs[0].shape
        result.type = add.outputs[0].type
        graph.insert_before(add, gemm)
        if not replace_value(add.outputs[0], result):
            remove_nodes(graph, [gemm])
            continue
        remove_nodes(graph, [add, matmul])
        fused += 1
    return fused
