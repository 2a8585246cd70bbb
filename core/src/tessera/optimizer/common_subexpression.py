"""Common subexpression elimination: two nodes with the same op, attributes and inputs compute
the same values, so the second one's readers read the first one's outputs."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx_ir as ir

from tessera.optimizer._rewrite import has_subgraph, remove_nodes, replace_value
from tessera.optimizer.constant_folding import NONDETERMINISTIC

_MAX_TENSOR_ATTR = 4096  # elements; bigger Constant values are not worth hashing


def _attr_key(attr: Any) -> Any:
    if not isinstance(attr, ir.Attr) or attr.is_ref():
        return None
    kind, value = attr.type, attr.value
    if kind == ir.AttributeType.TENSOR:
        array = value.numpy()
        if array.size > _MAX_TENSOR_ATTR or array.dtype.kind == "O":
            return None
        return (str(array.dtype), array.shape, np.ascontiguousarray(array).tobytes())
    if kind in (ir.AttributeType.INTS, ir.AttributeType.FLOATS, ir.AttributeType.STRINGS):
        return (kind, tuple(value))
    if kind in (ir.AttributeType.INT, ir.AttributeType.FLOAT, ir.AttributeType.STRING):
        return (kind, value)
    return None  # graphs, sparse tensors, type protos: not compared


def _node_key(node: ir.Node) -> tuple | None:
    attrs = []
    for name, attr in sorted(node.attributes.items()):
        key = _attr_key(attr)
        if key is None:
            return None
        attrs.append((name, key))
    inputs = tuple(id(v) if v is not None else None for v in node.inputs)
    return (node.domain, node.op_type, node.overload, len(node.outputs), inputs, tuple(attrs))


def eliminate_common_subexpressions(graph: ir.Graph) -> int:
    """Merge duplicate nodes of ``graph``; returns how many were removed. Linear in graph size:
    nodes are visited in order and keyed by the identity of their (already merged) inputs."""
    seen: dict[tuple, ir.Node] = {}
    removed = 0
    for node in list(graph):
        if node.op_type in NONDETERMINISTIC or has_subgraph(node):
            continue
        key = _node_key(node)
        if key is None:
            continue
        first = seen.get(key)
        if first is None:
            seen[key] = node
            continue
        if any(o.is_graph_output() for o in node.outputs):
            continue  # keeping both keeps every output name
        for old, new in zip(node.outputs, first.outputs):
            replace_value(old, new)
        remove_nodes(graph, [node])
        removed += 1
    return removed
