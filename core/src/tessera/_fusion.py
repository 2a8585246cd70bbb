"""Provider-specific fusions: after partitioning, a provider may replace a chain of the nodes it
claimed as kernels by one node of its own domain (Conv+Relu -> ``ai.tessera.cpu::FusedConv``).

Fusions happen here, inside one provider's claim, rather than in the optimizer, because whether a
fused kernel exists depends on the provider that runs the nodes. The core checks each proposal
(the nodes are the provider's kernel claims, values made inside the group are read only inside it
and are not graph outputs, the fused node reads only values from outside the group), rewrites the
graph so ``optimized_model_filepath`` saves the fused node in its domain, and plans the fused node
as an ordinary kernel claim of the provider. A refused proposal leaves the nodes as they were and
is recorded with its reason, like a refused claim.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import onnx_ir as ir

from tessera._graph import node_reads

if TYPE_CHECKING:
    from tessera._partition import Partition, PartitionResult


@dataclasses.dataclass(frozen=True)
class Fusion:
    """One proposed fusion: ``nodes`` (view keys, in graph order) become one ``domain::op_type``
    node reading ``inputs`` (value names, "" for an omitted optional input) and producing the
    outputs of the last node of ``nodes``."""

    nodes: tuple[int, ...]
    op_type: str
    domain: str
    inputs: tuple[str, ...]
    attributes: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    version: int = 1


def _problem(fusion: Any, keys: set[int], ir_nodes: Mapping[int, ir.Node]) -> str | None:
    """Why ``fusion`` cannot be applied, or None."""
    if not isinstance(fusion, Fusion):
        return f"not a Fusion: {fusion!r}"
    if not fusion.nodes or not all(type(k) is int for k in fusion.nodes):
        return f"malformed fusion {fusion!r}: nodes must be a non-empty tuple of node keys"
    if not fusion.domain or fusion.domain in ("ai.onnx", "ai.onnx.ml"):
        return f"fused op {fusion.op_type!r} must be in the provider's own domain, not {fusion.domain!r}"
    stray = [k for k in fusion.nodes if k not in keys]
    if stray:
        return f"fusion names nodes that are not this provider's kernel claims: {stray}"
    group = [ir_nodes[k] for k in fusion.nodes]
    if any(
        n.attributes and any(a.type == ir.AttributeType.GRAPH for a in n.attributes.values())
        for n in group
    ):
        return "nodes with subgraphs cannot be fused"
    members = {id(n) for n in group}
    made = {}
    for n in group:
        for v in n.outputs:
            made[id(v)] = v
    for v in group[-1].outputs:
        made.pop(id(v))
    for v in made.values():
        if v.is_graph_output():
            return f"value {v.name!r} made inside the group is a graph output"
        outside = [u.name for u, _ in v.uses() if id(u) not in members]
        if outside:
            return f"value {v.name!r} made inside the group is read by {outside}"
    available = {v.name for n in group for v in node_reads(n) if id(v) not in made}
    missing = [name for name in fusion.inputs if name and name not in available]
    if missing:
        return f"the fused node reads {missing}, which the group does not read from outside"
    return None


def _attr(name: str, value: Any) -> ir.Attr:
    if isinstance(value, bool):
        value = int(value)
    if isinstance(value, ir.Attr):
        return value
    return ir.convenience.convert_attribute(name, value)


def _replace(graph: ir.Graph, group: list[ir.Node], fusion: Fusion) -> ir.Node:
    """Rewrite ``group`` into one node in ``graph``; the group's outputs keep their names."""
    values = {v.name: v for n in group for v in node_reads(n) if v.name}
    last = group[-1]
    node = ir.Node(
        fusion.domain,
        fusion.op_type,
        [values[name] if name else None for name in fusion.inputs],
        [_attr(k, v) for k, v in fusion.attributes.items()],
        num_outputs=len(last.outputs),
        version=fusion.version,
        name=last.name,
    )
    for old, new in zip(last.outputs, node.outputs):
        new.type, new.shape = old.type, old.shape
        name = old.name
        old.replace_all_uses_with(new, replace_graph_outputs=True)
        old.name = None
        new.name = name
    graph.insert_after(last, node)
    graph.remove(group, safe=True)
    return node


def apply_fusions(
    graph: ir.Graph,
    nodes: list[ir.Node],
    infos: dict,
    result: PartitionResult,
    make_info,
) -> dict[int, int]:
    """Ask every provider with kernel claims for fusions and apply the valid ones.

    ``nodes``, ``infos`` and ``result.owner`` are updated in place: fused nodes are removed and
    each new node is appended with a new key. Returns the scheduling rank of each new key (the
    position of the group's last node), so the plan keeps the graph's order.
    """
    from tessera._partition import Partition
    from tessera._provider import Claim, GraphView

    rank: dict[int, int] = {}
    if any(n.op_type == "Gradient" and n.domain == "ai.onnx.preview.training" for n in nodes):
        return rank  # Gradient differentiates the graph's nodes as they are: rewrite nothing
    by_provider: dict[int, tuple[Any, list[int]]] = {}
    for k, part in result.owner.items():
        if part.claim.kind == "kernel":
            by_provider.setdefault(id(part.provider), (part.provider, []))[1].append(k)
    for provider, keys in by_provider.values():
        fuse = getattr(provider, "fuse", None)
        if fuse is None:
            continue
        keys.sort()
        view = GraphView({k: infos[k] for k in keys}, graph, {k: nodes[k] for k in keys})
        try:
            proposals = list(fuse(view) or [])
        except Exception as exc:  # noqa: BLE001 - a plugin may raise anything; isolate it
            result.rejected.append(f"{provider.name}: fuse raised {type(exc).__name__}: {exc}")
            continue
        free = set(keys)
        for fusion in proposals:
            problem = _problem(fusion, free, view.ir_nodes)
            if problem:
                result.rejected.append(f"{provider.name}: fusion refused: {problem}")
                continue
            group = [nodes[k] for k in fusion.nodes]
            node = _replace(graph, group, fusion)
            key = len(nodes)
            nodes.append(node)
            info = make_info(node, key)
            info.fused_from = tuple(infos[k].name for k in fusion.nodes)
            infos[key] = info
            part: Partition = Partition(provider, Claim((key,), "kernel"))
            result.partitions.append(part)
            result.owner[key] = part
            rank[key] = max(rank.get(k, k) for k in fusion.nodes)
            for k in fusion.nodes:
                free.discard(k)
                del result.owner[k]
                del infos[k]
            opset = graph.opset_imports.get(fusion.domain)
            if opset is None or opset < fusion.version:
                graph.opset_imports[fusion.domain] = fusion.version
    return rank
