"""LayerNormalization recognition: the decomposed mean/variance/normalise/scale/shift pattern
that exporters emit becomes one LayerNormalization node (opset 17 and later)."""

from __future__ import annotations

import onnx_ir as ir

from tessera.optimizer._pattern import (
    is_scalar_const,
    only_reader,
    other_input,
    readers,
    reduces_last_axis,
)
from tessera.optimizer._rewrite import constant_of, graph_input_ids, remove_nodes, replace_value

_FLOATS = frozenset(
    {ir.DataType.FLOAT, ir.DataType.DOUBLE, ir.DataType.FLOAT16, ir.DataType.BFLOAT16}
)


def _match(mean1: ir.Node, overridable: set[int]):
    """The nodes, input, epsilon, scale, bias and output of one pattern rooted at ``mean1``."""
    x = mean1.inputs[0]
    if x is None or x.dtype not in _FLOATS:
        return None
    rank = len(x.shape) if x.shape is not None else None
    if not reduces_last_axis(mean1, rank, overridable):
        return None
    sub = only_reader(mean1.outputs[0], "Sub")
    if sub is None or sub.inputs[0] is not x or sub.inputs[1] is not mean1.outputs[0]:
        return None
    d = sub.outputs[0]
    if d.is_graph_output():
        return None
    users = [n for n, _ in d.uses()]
    divs = readers(d, "Div")
    pows = [n for n in readers(d, "Pow") if is_scalar_const(n.inputs[1], 2.0, overridable)]
    squares = [n for n in readers(d, "Mul") if n.inputs[0] is d and n.inputs[1] is d]
    square = (pows or squares or [None])[0]
    if square is None or len(divs) != 1 or len(users) != 2:
        return None
    div = divs[0]
    mean2 = only_reader(square.outputs[0], "ReduceMean")
    if mean2 is None or not reduces_last_axis(mean2, rank, overridable):
        return None
    add_eps = only_reader(mean2.outputs[0], "Add")
    if add_eps is None:
        return None
    eps_value = other_input(add_eps, mean2.outputs[0])
    eps = constant_of(eps_value, overridable)
    if eps is None or eps.size != 1:
        return None
    sqrt = only_reader(add_eps.outputs[0], "Sqrt")
    if sqrt is None or div.inputs[0] is not d or div.inputs[1] is not sqrt.outputs[0]:
        return None
    if only_reader(sqrt.outputs[0], "Div") is not div:
        return None
    mul = only_reader(div.outputs[0], "Mul")
    if mul is None:
        return None
    scale = other_input(mul, div.outputs[0])
    scale_array = constant_of(scale, overridable)
    if scale_array is None or scale_array.ndim != 1 or scale_array.dtype != x.dtype.numpy():
        return None
    if rank is not None and isinstance(x.shape[-1], int) and x.shape[-1] != scale_array.shape[0]:
        return None
    nodes = [mean1, sub, square, mean2, add_eps, sqrt, div, mul]
    out, bias = mul.outputs[0], None
    add = only_reader(out, "Add")
    if add is not None:
        candidate = other_input(add, out)
        array = constant_of(candidate, overridable)
        if (
            array is not None
            and array.shape == scale_array.shape
            and array.dtype == scale_array.dtype
        ):
            bias, out = candidate, add.outputs[0]
            nodes.append(add)
    return nodes, x, float(eps.reshape(())), scale, bias, out


def fuse_layer_norm(graph: ir.Graph, opset: int) -> int:
    """Replace each decomposed layer normalisation with LayerNormalization; returns how many."""
    if opset < 17:
        return 0
    overridable = graph_input_ids(graph)
    fused = 0
    for node in list(graph):
        if (
            node.op_type != "ReduceMean"
            or node.domain not in ("", "ai.onnx")
            or node.graph is not graph
        ):
            continue
        found = _match(node, overridable)
        if found is None:
            continue
        nodes, x, eps, scale, bias, out = found
        inputs = [x, scale] + ([bias] if bias is not None else [])
        ln = ir.Node(
            "",
            "LayerNormalization",
            inputs,
            attributes=[ir.AttrInt64("axis", -1), ir.AttrFloat32("epsilon", eps)],
            name=(node.name or "ReduceMean") + "_layernorm",
            num_outputs=1,
        )
        ln.outputs[0].shape = out.shape
        ln.outputs[0].type = out.type
        graph.insert_before(nodes[-1], ln)
        if not replace_value(out, ln.outputs[0]):
            remove_nodes(graph, [ln])
            continue
        remove_nodes(graph, list(reversed(nodes)))
        fused += 1
    return fused
