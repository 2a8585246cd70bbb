"""Dead-code elimination: nodes that no graph output depends on, and initializers nobody reads."""

from __future__ import annotations

import onnx_ir as ir

from tessera._graph import node_reads
from tessera.optimizer._rewrite import remove_nodes


def remove_dead_code(graph: ir.Graph) -> int:
    """Remove nodes of ``graph`` whose outputs reach no graph output; returns how many.

    Liveness walks back from the outputs through producers, counting the outer-scope values
    read inside If/Loop/Scan bodies, so a node feeding a subgraph stays.
    """
    live: set[int] = set()
    stack = [v.producer() for v in graph.outputs if v.producer() is not None]
    while stack:
        node = stack.pop()
        if id(node) in live or node.graph is not graph:
            continue
        live.add(id(node))
        for value in node_reads(node):
            producer = value.producer()
            if producer is not None and id(producer) not in live:
                stack.append(producer)
    dead = [n for n in graph if id(n) not in live]
    if dead:
        # Readers first, so no removed node is still read by another when it goes.
        remove_nodes(graph, list(reversed(dead)))
    return len(dead)


def remove_unused_initializers(graph: ir.Graph) -> int:
    """Drop initializers that are neither read, nor graph inputs, nor graph outputs."""
    unused = [
        name
        for name, v in graph.initializers.items()
        if not v.uses() and not v.is_graph_input() and not v.is_graph_output()
    ]
    for name in unused:
        graph.initializers.pop(name)
    return len(unused)
