"""Fused elementwise chains: which nodes fuse, and the ``cupy.ElementwiseKernel`` they become.

Rules, kept simple so a fused chain is exact: every member is a float op of the elementwise
table (:mod:`.elementwise`), reads and writes one float dtype (float32 or float64), and has one
output; a member's output is read only by one other member (once or more) and is not a graph
output. Members therefore form a tree whose root's output is the only value leaving the group,
which cannot make a cycle between partitions. The C body computes each member into a local in
graph order; the host mode evaluates the same members with their ``xp`` functions.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from tessera.provider import CompiledSubgraph, GraphView, NodeInfo
from tessera_cuda._backend import Backend, FusedSource
from tessera_cuda.kernels.elementwise import TABLE, attr_values, c_expression

_CTYPE = {"tensor(float)": ("float", "float32"), "tensor(double)": ("double", "float64")}


def fusable(node: NodeInfo) -> bool:
    """Whether ``node`` may be a member of a fused chain (the claim check runs separately)."""
    if node.domain != "" or node.op_type not in TABLE or len(node.outputs) != 1:
        return False
    types = [*node.input_types, *node.output_types]
    return bool(types) and types[0] in _CTYPE and all(t == types[0] for t in types)


def chains(view: GraphView, candidates: Sequence[int]) -> list[list[int]]:
    """Groups of two or more candidate keys that fuse, each in graph order."""
    keys = set(candidates)
    key_of = {id(view.ir_nodes[k]): k for k in keys if k in view.ir_nodes}
    parent: dict[int, int] = {}
    for k in keys:
        ir_node = view.ir_nodes.get(k)
        if ir_node is None:
            continue
        out = ir_node.outputs[0]
        if out.is_graph_output():
            continue
        uses = list(out.uses())
        users = {id(u[0]) for u in uses}
        if len(users) != 1:
            continue
        user = key_of.get(users.pop())
        if user is not None and view.nodes[user].output_types == view.nodes[k].output_types:
            parent[k] = user
    root: dict[int, int] = {}

    def find(k: int) -> int:
        while k in parent:
            k = parent[k]
        return k

    for k in keys:
        root[k] = find(k)
    groups: dict[int, list[int]] = {}
    for k, r in root.items():
        groups.setdefault(r, []).append(k)
    return [sorted(g) for g in groups.values() if len(g) > 1]


def build_source(nodes: Sequence[NodeInfo], inputs: Sequence[str], output: str) -> FusedSource:
    """The chain as CUDA C for ``cupy.ElementwiseKernel`` and as a host evaluator."""
    ctype, dtype = _CTYPE[nodes[0].output_types[0]]
    token = {name: f"x{i}" for i, name in enumerate(inputs)}
    lines = []
    for j, node in enumerate(nodes):
        args = [token[n] for n in node.inputs]
        expr = c_expression(node.op_type, node, ctype)
        # a and b are substituted whole-word: every table expression names them as such.
        expr = _substitute(expr, {"a": args[0], **({"b": args[1]} if len(args) > 1 else {})})
        token[node.outputs[0]] = f"t{j}"
        lines.append(f"{ctype} t{j} = {expr};")
    lines.append(f"y = {token[output]};")
    in_params = ", ".join(f"{dtype} x{i}" for i in range(len(inputs)))
    name = "tessera_fused_" + "_".join(n.op_type.lower() for n in nodes)[:80]
    steps = [
        (TABLE[n.op_type].fn, list(n.inputs), n.outputs[0], attr_values(n.op_type, n))
        for n in nodes
    ]

    def host(be: Backend, *values: Any) -> Any:
        env = dict(zip(inputs, values))
        for fn, names, out, attrs in steps:
            env[out] = fn(be, *[env[n] for n in names], **attrs)
        return be.xp.asarray(env[output], dtype=dtype)

    return FusedSource(name, in_params, f"{dtype} y", "\n".join(lines), host, np.dtype(dtype))


def _substitute(expr: str, names: Mapping[str, str]) -> str:
    out, word = [], ""
    for ch in expr + " ":
        if ch.isalnum() or ch == "_":
            word += ch
            continue
        if word:
            out.append(names.get(word, word))
            word = ""
        out.append(ch)
    return "".join(out)[:-1]


def compile_chain(subgraph: CompiledSubgraph, be: Backend) -> Callable[..., tuple]:
    """``fn(*inputs) -> (y,)`` for a claimed chain; constants are uploaded once, here."""
    if len(subgraph.outputs) != 1:
        raise ValueError(f"a fused chain has one output, this claim has {subgraph.outputs}")
    runtime = [n for n in subgraph.inputs]
    const_names = sorted(
        {n for node in subgraph.nodes for n in node.inputs if n in subgraph.constants}
    )
    source = build_source(subgraph.nodes, runtime + const_names, subgraph.outputs[0])
    consts = [be.asarray(np.asarray(subgraph.constants[n])) for n in const_names]
    kernel = be.fused(source)
    asarray = be.asarray

    def run(*values: Any) -> tuple:
        return (kernel(*[asarray(v) for v in values], *consts),)

    run.source = source  # type: ignore[attr-defined]  # tests read the generated C
    return run
