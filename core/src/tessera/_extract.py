"""Cutting a group of nodes out of a graph as a standalone ONNX model.

Compiling providers need this twice: to ask their compiler which nodes it supports, and to
compile a claim. Boundary inputs become graph inputs, initializers the group reads are embedded,
and values the rest of the graph (or the graph's outputs) read become graph outputs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import onnx
import onnx_ir as ir
from onnx import helper

from tessera._graph import node_reads


@dataclasses.dataclass
class ExtractedModel:
    """A standalone model and the names of its boundary, in order."""

    model: onnx.ModelProto
    inputs: list[str]
    outputs: list[str]
    constants: list[str]


def boundary(
    nodes: Sequence[ir.Node], graph: ir.Graph
) -> tuple[list[ir.Value], list[ir.Value], list[ir.Value]]:
    """(runtime inputs, initializer inputs, outputs) of ``nodes`` within ``graph``."""
    members = {id(n) for n in nodes}
    produced = {id(v) for n in nodes for v in n.outputs}
    inputs: list[ir.Value] = []
    constants: list[ir.Value] = []
    seen: set[int] = set()
    for n in nodes:
        for v in node_reads(n):
            if id(v) in produced or id(v) in seen:
                continue
            seen.add(id(v))
            (constants if v.is_initializer() and v.const_value is not None else inputs).append(v)
    graph_outputs = {id(v) for v in graph.outputs}
    read_outside = {id(v) for n in graph if id(n) not in members for v in node_reads(n)}
    outputs = [
        v
        for n in nodes
        for v in n.outputs
        if v.name and (id(v) in graph_outputs or id(v) in read_outside)
    ]
    return inputs, constants, outputs


def extract_model(
    nodes: Sequence[ir.Node], graph: ir.Graph, opsets: Mapping[str, int], ir_version: int = 10
) -> ExtractedModel:
    """The nodes as an ONNX ModelProto with their boundary as inputs/outputs."""
    inputs, constants, outputs = boundary(nodes, graph)
    graph_proto = helper.make_graph(
        [ir.serde.serialize_node(n) for n in nodes],
        "tessera_subgraph",
        [ir.serde.serialize_value(v) for v in inputs],
        [ir.serde.serialize_value(v) for v in outputs],
        [ir.serde.serialize_tensor(v.const_value) for v in constants],
    )
    for t, v in zip(graph_proto.initializer, constants):
        t.name = v.name
    imports = [helper.make_opsetid(d, int(v)) for d, v in opsets.items() if d != "ai.onnx"]
    model = helper.make_model(graph_proto, opset_imports=imports, ir_version=ir_version)
    return ExtractedModel(
        model, [v.name for v in inputs], [v.name for v in outputs], [v.name for v in constants]
    )
