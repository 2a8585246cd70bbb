"""Matching helpers for the fusion passes: find an op among a value's readers, read constants."""

from __future__ import annotations

import onnx_ir as ir

from tessera.optimizer._rewrite import constant_of, int_attr, int_list_attr


def readers(value: ir.Value, op_type: str) -> list[ir.Node]:
    return [n for n, _ in value.uses() if n.op_type == op_type and n.domain in ("", "ai.onnx")]


def only_reader(value: ir.Value, op_type: str) -> ir.Node | None:
    """The single reader of ``value`` when it is an ``op_type`` node and value is no output."""
    if value.is_graph_output():
        return None
    uses = list(value.uses())
    if len(uses) != 1:
        return None
    node = uses[0][0]
    return node if node.op_type == op_type and node.domain in ("", "ai.onnx") else None


def other_input(node: ir.Node, value: ir.Value) -> ir.Value | None:
    """For a binary node reading ``value``, its other operand (None if it reads it twice)."""
    a, b = node.inputs[0], node.inputs[1]
    if a is value and b is not value:
        return b
    if b is value and a is not value:
        return a
    return None


def reduces_last_axis(node: ir.Node, rank: int | None, overridable: set[int]) -> bool:
    """Whether a ReduceMean averages over the last axis only, keeping dims."""
    if int_attr(node, "keepdims", 1) != 1:
        return False
    axes = int_list_attr(node, "axes")
    if axes is None and len(node.inputs) > 1 and node.inputs[1] is not None:
        array = constant_of(node.inputs[1], overridable)
        axes = None if array is None else [int(a) for a in array.reshape(-1)]
    if axes is None or len(axes) != 1:
        return False
    return axes[0] == -1 or (rank is not None and axes[0] == rank - 1)


def is_scalar_const(
    value: ir.Value | None, target: float, overridable: set[int], tol: float = 1e-3
) -> bool:
    array = constant_of(value, overridable)
    if array is None or array.size != 1 or array.dtype.kind not in "fiu":
        return False
    return abs(float(array.reshape(())) - target) <= tol * max(1.0, abs(target))
