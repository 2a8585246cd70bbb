"""Elementwise-chain fusion: claimed elementwise nodes whose intermediate values nobody else
reads become one generated OpenCL C kernel, so the intermediates never reach device memory.

:func:`find_chains` picks the groups (the provider claims each as one ``compiled`` claim) and
:func:`compile_chain` generates the kernel. Each node becomes a C function built from the same
expression its stand-alone kernel uses (``elementwise_expr``), with its own input and output
types, so a fused chain rounds exactly as the unfused nodes do.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from tessera.provider import CompiledSubgraph, GraphView, NodeInfo
from tessera_opencl._runtime import Runtime, ctype, view_of
from tessera_opencl.kernels.elementwise import elementwise_expr, input_dtype

MAX_INPUTS = 16
"""Values one fused kernel may read (named a..p in the generated code)."""

_NAMES = "abcdefghijklmnop"


def _subgraph_reads(graph: Any) -> set[int]:
    """ids of every value read anywhere inside ``graph`` (and its nested graphs)."""
    found: set[int] = set()
    for node in graph:
        found.update(id(v) for v in node.inputs if v is not None)
        for sub in _graphs_of(node):
            found |= _subgraph_reads(sub)
    return found


def _graphs_of(node: Any) -> Iterable[Any]:
    for attr in node.attributes.values():
        value = getattr(attr, "value", None)
        if hasattr(value, "initializers") and hasattr(value, "outputs"):
            yield value  # a GRAPH attribute
        elif isinstance(value, (list, tuple)):
            yield from (g for g in value if hasattr(g, "initializers"))


def find_chains(view: GraphView, fusable: Iterable[int]) -> list[tuple[int, ...]]:
    """Groups of two or more ``fusable`` nodes to run as one kernel, each in topological order.

    A group has one sink; every other member's output is read only by members of the group and
    is not a graph output, nor read by a nested graph. Those are the values that need never
    materialise, and the rule also keeps each group convex (no path leaves it and comes back).
    """
    fusable = set(fusable)
    nodes = view.ir_nodes
    readers: dict[int, set[int]] = {}  # id(value) -> ids of the nodes (of this graph) reading it
    pinned = {id(v) for v in view.graph.outputs}  # values that must materialise
    for node in view.graph:
        for v in node.inputs:
            if v is not None:
                readers.setdefault(id(v), set()).add(id(node))
        for sub in _graphs_of(node):
            pinned |= _subgraph_reads(sub)
    producer = {id(v): k for k in fusable for v in nodes[k].outputs}

    def outside_inputs(group: set[int]) -> int:
        made = {id(v) for k in group for v in nodes[k].outputs}
        return len({id(v) for k in group for v in nodes[k].inputs if v is not None} - made)

    taken: set[int] = set()
    chains: list[tuple[int, ...]] = []
    # Keys are topological positions: going from the last node back, the first free fusable
    # node seen is a sink, and its producers are absorbed while all their readers are members.
    for sink in sorted(fusable, reverse=True):
        if sink in taken:
            continue
        group, members = {sink}, {id(nodes[sink])}
        grown = True
        while grown:
            grown = False
            for k in sorted(group, reverse=True):
                for v in nodes[k].inputs:
                    p = producer.get(id(v)) if v is not None else None
                    if p is None or p in group or p in taken or id(v) in pinned:
                        continue
                    if not readers.get(id(v), set()) <= members:
                        continue
                    if outside_inputs(group | {p}) > MAX_INPUTS:
                        continue
                    group.add(p)
                    members.add(id(nodes[p]))
                    grown = True
        if len(group) > 1:
            chains.append(tuple(sorted(group)))
            taken |= group
    return sorted(chains)


def compile_chain(sub: CompiledSubgraph, rt: Runtime) -> Callable[..., tuple[Any, ...]]:
    """One kernel computing ``sub``'s single output from its inputs and constants.

    Raises ValueError naming the problem when ``sub`` is not a chain :func:`find_chains` makes
    (more than one output, a node that is not elementwise, too many inputs).
    """
    if len(sub.outputs) != 1:
        raise ValueError(
            f"an elementwise chain must have one output, got {sub.outputs}: the chain finder "
            "only groups nodes whose intermediates are read inside the group"
        )
    sources = list(sub.inputs) + list(sub.constants)
    if len(sources) > MAX_INPUTS:
        raise ValueError(f"a chain reads {len(sources)} values; at most {MAX_INPUTS} fit a kernel")
    var = {name: _NAMES[k] for k, name in enumerate(sources)}
    prelude: list[str] = []
    body: list[str] = []
    for j, node in enumerate(sub.nodes):
        prelude.append(_node_function(j, node))
        args = []
        for name in node.inputs:
            if not name:
                continue  # an omitted optional input (Clip's min or max)
            if name not in var:
                raise ValueError(f"{node.describe()} reads {name!r} before the chain makes it")
            args.append(var[name])
        out_c = ctype(input_dtype(node.output_types[0]))
        body.append(f"  {out_c} v{j} = n{j}({', '.join(args)});")
        var[node.outputs[0]] = f"v{j}"
    out_name = sub.outputs[0]
    out_dtype = next(input_dtype(n.output_types[0]) for n in sub.nodes if n.outputs[0] == out_name)
    prelude_src, result = "\n".join(prelude), var[out_name]
    constants = [rt.upload(np.asarray(sub.constants[name])) for name in sub.constants]

    def run(*inputs: Any) -> tuple[Any, ...]:
        arrays = [rt.as_device(x) for x in inputs] + constants
        shape = np.broadcast_shapes(*(a.shape for a in arrays))
        views = [view_of(a, shape) for a in arrays]
        out = rt.strided(result, out_dtype, shape, views, prelude=prelude_src, body=body)
        return (out,)

    return run


def _node_function(j: int, node: NodeInfo) -> str:
    """``TO n{j}(TA a, TB b, ...)`` returning the node's expression, under its own type macros."""
    expr = elementwise_expr(node)
    if expr is None:
        raise ValueError(f"{node.describe()} is not an elementwise op this provider can fuse")
    types = [ctype(input_dtype(t)) for name, t in zip(node.inputs, node.input_types) if name]
    macros = [f"T{_NAMES[k].upper()}" for k in range(len(types))] + ["TO"]
    lines = [
        f"#define {m} {t}"
        for m, t in zip(macros, [*types, ctype(input_dtype(node.output_types[0]))])
    ]
    params = ", ".join(f"{m} {_NAMES[k]}" for k, m in enumerate(macros[:-1]))
    lines.append(f"TO n{j}({params}) {{ return (TO)({expr}); }}")
    lines += [f"#undef {m}" for m in macros]
    return "\n".join(lines)


def chain_note(infos: Mapping[int, NodeInfo], keys: Sequence[int]) -> str:
    """A short description of a chain for ``session.explain()`` and claim notes."""
    return "fused elementwise chain: " + " -> ".join(infos[k].op_type for k in keys)
