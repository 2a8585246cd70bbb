"""The partitioner: providers claim nodes in priority order; the core validates every claim.

A claim is rejected (and recorded) if it names a node that is not in the view, overlaps a node
already claimed, or (for a compiled group) would make a cycle between partitions. A provider
whose capability query raises claims nothing and is recorded; the session stays correct.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import onnx_ir as ir

from tessera._errors import NoKernelError
from tessera._graph import node_reads
from tessera._kernels import NodeInfo
from tessera._provider import Claim, ExecutionProvider, GraphView


@dataclasses.dataclass
class Partition:
    """One provider's claim after validation: the node indices it covers."""

    provider: ExecutionProvider
    claim: Claim


@dataclasses.dataclass
class PartitionResult:
    partitions: list[Partition]
    owner: dict[int, Partition]
    rejected: list[str]  # human-readable reasons for claims the core refused


def _successors(graph_nodes: Sequence[ir.Node]) -> list[set[int]]:
    """Node index -> indices of nodes that read its outputs (subgraph reads count for their owner)."""
    producer = {id(v): i for i, n in enumerate(graph_nodes) for v in n.outputs}
    succ: list[set[int]] = [set() for _ in graph_nodes]
    for j, node in enumerate(graph_nodes):
        for v in node_reads(node):
            i = producer.get(id(v))
            if i is not None and i != j:
                succ[i].add(j)
    return succ


def _makes_cycle(group: set[int], succ: list[set[int]]) -> bool:
    """True if a path leaves ``group`` and re-enters it (the group is not convex)."""
    frontier = [j for i in group for j in succ[i] if j not in group]
    seen: set[int] = set()
    while frontier:
        k = frontier.pop()
        if k in seen:
            continue
        seen.add(k)
        for j in succ[k]:
            if j in group:
                return True
            frontier.append(j)
    return False


def partition_graph(
    graph: ir.Graph,
    nodes: Sequence[ir.Node],
    infos: dict[int, NodeInfo],
    providers: Sequence[ExecutionProvider],
    opsets: Mapping[str, int] | None = None,
    optimization_level: int = 99,
) -> PartitionResult:
    """Ask each provider, in order, for claims over the nodes still unassigned."""
    owner: dict[int, Partition] = {}
    partitions: list[Partition] = []
    rejected: list[str] = []
    succ: list[set[int]] | None = None
    for provider in providers:
        free = {k: v for k, v in infos.items() if k not in owner}
        if not free:
            break
        try:
            view = GraphView(free, graph, {k: nodes[k] for k in free}, opsets, optimization_level)
            claims = list(provider.get_capability(view) or [])
        except Exception as exc:  # noqa: BLE001 - a plugin may raise anything; isolate it
            rejected.append(f"{provider.name}: get_capability raised {type(exc).__name__}: {exc}")
            continue
        for claim in claims:
            problem = None
            if (
                not isinstance(claim, Claim)
                or not isinstance(claim.nodes, tuple)
                or not claim.nodes
                or not all(type(k) is int for k in claim.nodes)
            ):
                problem = f"malformed claim {claim!r}: nodes must be a non-empty tuple of node keys (ints)"
            else:
                unknown = [k for k in claim.nodes if k not in free]
                if unknown:
                    problem = f"claim names nodes that are unknown or already claimed: {unknown}"
                elif claim.kind == "kernel" and len(claim.nodes) != 1:
                    problem = "a kernel claim must name exactly one node"
                elif claim.kind == "compiled" and len(claim.nodes) > 1:
                    succ = succ or _successors(nodes)
                    if _makes_cycle(set(claim.nodes), succ):
                        problem = "the group would make a cycle between partitions"
                elif claim.kind not in ("kernel", "compiled"):
                    problem = f"unknown claim kind {claim.kind!r}"
            if problem:
                rejected.append(f"{provider.name}: {problem}")
                continue
            part = Partition(provider, claim)
            partitions.append(part)
            for k in claim.nodes:
                owner[k] = part
                free.pop(k, None)
    return PartitionResult(partitions, owner, rejected)


def unclaimed_error(
    infos: dict[int, NodeInfo],
    result: PartitionResult,
    providers: Sequence[ExecutionProvider],
    fallback_disabled: bool,
) -> NoKernelError:
    """An error naming every node no provider claimed, with each provider's reason."""
    lines = []
    for k, info in sorted(infos.items()):
        if k in result.owner:
            continue
        reasons = "; ".join(f"{p.name}: {p.decline_reason(info)}" for p in providers)
        lines.append(f"  - {info.describe()}: {reasons}")
    hint = (
        "CPU fallback is disabled (session.disable_cpu_ep_fallback); enable it or add a provider that runs these ops"
        if fallback_disabled
        else "no installed provider has kernels for these; `tessera providers --all` lists what can be installed"
    )
    return NoKernelError(
        f"{len(lines)} node(s) cannot be assigned to any provider ({hint}):\n" + "\n".join(lines)
    )
