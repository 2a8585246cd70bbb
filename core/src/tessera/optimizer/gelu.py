"""Gelu recognition: ``x * 0.5 * (1 + erf(x / sqrt(2)))`` becomes Gelu, and GPT-2's
``x * 0.5 * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3)))`` becomes Gelu(approximate="tanh")
(opset 20+; earlier models keep the pattern, as Gelu is not an ONNX op before opset 20)."""

from __future__ import annotations

import math

import onnx_ir as ir

from tessera.optimizer._pattern import is_scalar_const, only_reader, other_input
from tessera.optimizer._rewrite import graph_input_ids, remove_nodes, replace_value


def _half_times(x: ir.Value, add: ir.Node, overridable: set[int]):
    """The tail shared by both forms: ``(x * add) * 0.5`` or ``(x * 0.5) * add``; returns the
    nodes after ``add`` and the final output, or None."""
    mul = only_reader(add.outputs[0], "Mul")
    if mul is None:
        return None
    other = other_input(mul, add.outputs[0])
    if other is x:
        half = only_reader(mul.outputs[0], "Mul")
        if half is None or not is_scalar_const(other_input(half, mul.outputs[0]), 0.5, overridable):
            return None
        return [mul, half], half.outputs[0]
    producer = other.producer() if other is not None else None
    if (
        producer is not None
        and producer.op_type == "Mul"
        and producer.inputs[0] is x
        and is_scalar_const(producer.inputs[1], 0.5, overridable)
        and only_reader(other, "Mul") is mul
    ):
        return [producer, mul], mul.outputs[0]
    return None


def _match_tanh(tanh: ir.Node, overridable: set[int]):
    """``Tanh(k * (x + c * Pow(x, 3)))`` followed by ``+ 1`` and the 0.5 * x tail."""
    scaled = tanh.inputs[0]
    outer = scaled.producer() if scaled is not None else None
    if outer is None or outer.op_type != "Mul" or only_reader(scaled, "Tanh") is not tanh:
        return None
    inner = outer.inputs[0]
    if not is_scalar_const(outer.inputs[1], math.sqrt(2 / math.pi), overridable):
        return None
    add_inner = inner.producer() if inner is not None else None
    if add_inner is None or add_inner.op_type != "Add" or only_reader(inner, "Mul") is not outer:
        return None
    for x, cubic in (add_inner.inputs, reversed(add_inner.inputs)):
        scale = cubic.producer() if cubic is not None else None
        if scale is None or scale.op_type != "Mul" or only_reader(cubic, "Add") is not add_inner:
            continue
        if not is_scalar_const(scale.inputs[1], 0.044715, overridable):
            continue
        power = scale.inputs[0].producer() if scale.inputs[0] is not None else None
        if (
            power is None
            or power.op_type != "Pow"
            or power.inputs[0] is not x
            or not is_scalar_const(power.inputs[1], 3.0, overridable)
            or only_reader(power.outputs[0], "Mul") is not scale
        ):
            continue
        add_one = only_reader(tanh.outputs[0], "Add")
        if add_one is None or not is_scalar_const(
            other_input(add_one, tanh.outputs[0]), 1.0, overridable
        ):
            return None
        tail = _half_times(x, add_one, overridable)
        if tail is None:
            return None
        nodes, out = tail
        return [power, scale, add_inner, outer, tanh, add_one, *nodes], x, out
    return None


def _match(erf: ir.Node, overridable: set[int]):
    scaled = erf.inputs[0]
    pre = scaled.producer() if scaled is not None else None
    if pre is None or pre.domain not in ("", "ai.onnx") or scaled.is_graph_output():
        return None
    if pre.op_type == "Div" and is_scalar_const(pre.inputs[1], math.sqrt(2.0), overridable):
        x = pre.inputs[0]
    elif pre.op_type == "Mul" and is_scalar_const(pre.inputs[1], 1 / math.sqrt(2.0), overridable):
        x = pre.inputs[0]
    else:
        return None
    if len(list(scaled.uses())) != 1:
        return None
    add = only_reader(erf.outputs[0], "Add")
    if add is None or not is_scalar_const(other_input(add, erf.outputs[0]), 1.0, overridable):
        return None
    tail = _half_times(x, add, overridable)
    if tail is None:
        return None
    nodes, out = tail
    return [pre, erf, add, *nodes], x, out


def fuse_gelu(graph: ir.Graph, opset: int) -> int:
    """Replace each erf or tanh Gelu pattern with a Gelu node; returns how many."""
    if opset < 20:
        return 0
    overridable = graph_input_ids(graph)
    fused = 0
    for node in list(graph):
        if node.domain not in ("", "ai.onnx") or node.graph is not graph:
            continue
        if node.op_type == "Erf":
            found, attrs = _match(node, overridable), []
        elif node.op_type == "Tanh":
            found, attrs = _match_tanh(node, overridable), [ir.AttrString("approximate", "tanh")]
        else:
            continue
        if found is None:
            continue
        nodes, x, out = found
        gelu = ir.Node(
            "", "Gelu", [x], attrs, name=(node.name or node.op_type) + "_gelu", num_outputs=1
        )
        gelu.outputs[0].shape = out.shape
        gelu.outputs[0].type = out.type
        graph.insert_before(nodes[-1], gelu)
        if not replace_value(out, gelu.outputs[0]):
            remove_nodes(graph, [gelu])
            continue
        remove_nodes(graph, list(reversed(nodes)))
        fused += 1
    return fused
