"""Graph-level facts the planner and partitioner need: node descriptions, implicit inputs, names."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import onnx_ir as ir

from tessera._kernels import NodeInfo, attribute_value
from tessera._types import type_string


def shape_tuple(value: ir.Value | None) -> tuple | None:
    """Static dims as ints, symbolic dims as strings, unknown dims as None; None if no shape."""
    if value is None or value.shape is None:
        return None
    dims = []
    for d in value.shape:
        if isinstance(d, int):
            dims.append(d)
        else:
            dims.append(d.value if getattr(d, "value", None) is not None else None)
    return tuple(dims)


def node_display_name(node: ir.Node, index: int) -> str:
    """The node's name, or ``{op_type}_{index}`` where the model left it unnamed."""
    return node.name or f"{node.op_type}_{index}"


def implicit_inputs(graph: ir.Graph) -> list[ir.Value]:
    """Outer-scope values a (sub)graph reads: used by its nodes (or their subgraphs) but neither
    produced inside it nor among its inputs and initializers. Order of first use."""
    local: set[int] = {id(v) for v in graph.inputs}
    local.update(id(v) for v in graph.initializers.values())
    seen: set[int] = set()
    found: list[ir.Value] = []
    for node in graph:
        for v in node_reads(node):
            if id(v) not in local and id(v) not in seen:
                seen.add(id(v))
                found.append(v)
        local.update(id(v) for v in node.outputs)
    return found


def node_reads(node: ir.Node) -> list[ir.Value]:
    """Explicit inputs of ``node`` followed by the outer-scope values its subgraphs read."""
    reads = [v for v in node.inputs if v is not None]
    for sub in subgraphs(node):
        reads.extend(implicit_inputs(sub))
    return reads


def subgraphs(node: ir.Node) -> Iterable[ir.Graph]:
    for attr in node.attributes.values():
        if attr.type == ir.AttributeType.GRAPH:
            yield attr.value
        elif attr.type == ir.AttributeType.GRAPHS:
            yield from attr.value


def node_implicit_inputs(node: ir.Node) -> list[ir.Value]:
    """Outer values the node's subgraphs read, in order of first use. A value that is also an
    explicit input stays in the list: the subgraph reads it by name, not through the input."""
    out: list[ir.Value] = []
    seen: set[int] = set()
    for sub in subgraphs(node):
        for v in implicit_inputs(sub):
            if id(v) not in seen:
                seen.add(id(v))
                out.append(v)
    return out


def make_node_info(
    node: ir.Node,
    index: int,
    opsets: Mapping[str, int],
    constants: Mapping[str, Any] | None = None,
) -> NodeInfo:
    """Describe ``node`` for kernel factories and capability queries. ``constants`` maps
    initializer names to arrays already made (the plan's); others are converted here."""
    domain = "" if node.domain == "ai.onnx" else node.domain
    opset = opsets.get(domain, opsets.get("ai.onnx", 1) if domain == "" else 1)
    if node.version is not None and domain not in opsets:
        opset = node.version
    attrs = {}
    for name, attr in node.attributes.items():
        if isinstance(attr, ir.Attr) and not attr.is_ref():
            attrs[name] = attribute_value(attr)
    known = constants or {}
    consts = {
        i: known[v.name] if v.name in known else v.const_value.numpy()
        for i, v in enumerate(node.inputs)
        if v is not None and v.const_value is not None and v.is_initializer()
    }
    return NodeInfo(
        op_type=node.op_type,
        domain=domain,
        name=node_display_name(node, index),
        opset=opset,
        attrs=attrs,
        inputs=[v.name if v is not None else "" for v in node.inputs],
        outputs=[v.name or "" for v in node.outputs],
        input_types=[type_string(v.type) if v is not None else None for v in node.inputs],
        output_types=[type_string(v.type) for v in node.outputs],
        input_shapes=[shape_tuple(v) for v in node.inputs],
        output_shapes=[shape_tuple(v) for v in node.outputs],
        implicit_inputs=[v.name for v in node_implicit_inputs(node)],
        constant_inputs=consts,
        graph=node.graph,
    )
