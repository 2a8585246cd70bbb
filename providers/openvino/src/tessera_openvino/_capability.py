"""Which free nodes OpenVINO takes, asked of OpenVINO itself, and their split into convex groups.

The free nodes are extracted as one ONNX model, converted by OpenVINO's ONNX frontend (partially,
when some op has no conversion) and passed to ``Core.query_model``. Each OpenVINO op is traced
back to the ONNX node whose outputs it computes, so a node is claimed only when every op of its
decomposition is supported.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from typing import Any

from tessera.provider import GraphView
from tessera_openvino._declines import decline_reason
from tessera_openvino._lowering import (
    LoweringError,
    global_average_pool_outputs,
    lower_global_average_pools,
)

_FRAMEWORK_TYPES = ("NotSupportedONNXNode", "FrameworkNode", "ONNXFrameworkNode")
_MAX_ROUNDS = 6


def _first_line(exc: BaseException) -> str:
    """OpenVINO's messages start with C++ source locations; keep the line that says what failed."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    useful = [ln for ln in lines if not ln.startswith(("Exception from", "Check "))]
    return (useful or lines or [type(exc).__name__])[-1][:200]


def _convert(core: Any, onnx_model: Any) -> Any:
    """The OpenVINO model for ``onnx_model``, lowered (``_lowering``); unconvertible ops become
    framework nodes."""
    model_bytes = onnx_model.SerializeToString()
    try:
        ov_model = core.read_model(model_bytes)
    except Exception:  # noqa: BLE001 - OpConversionFailure and friends: convert what converts
        from openvino.frontend import FrontEndManager

        frontend = FrontEndManager().load_by_framework("onnx")
        ov_model = frontend.convert_partially(frontend.load(io.BytesIO(model_bytes)))
    return lower_global_average_pools(ov_model, global_average_pool_outputs(onnx_model))


def _op_owners(ov_model: Any, producer_of: dict[str, int]) -> dict[int, list[Any]]:
    """ONNX node key -> the OpenVINO ops that compute it (its decomposition)."""
    owned: dict[int, list[Any]] = {}

    def names_of(op: Any) -> set[str]:
        return {n for out in op.outputs() for n in out.get_names()}

    for op in ov_model.get_ordered_ops():
        if op.get_type_name() in ("Parameter", "Result"):
            continue
        owners = {producer_of[n] for n in names_of(op) if n in producer_of}
        if not owners:
            continue
        # Walk back through the unnamed ops that only exist inside this node's decomposition.
        # Python wrappers of one OpenVINO node differ; its friendly name is the stable identity.
        stack, seen = [op], set()
        while stack:
            cur = stack.pop()
            if cur.get_friendly_name() in seen:
                continue
            seen.add(cur.get_friendly_name())
            for key in owners:
                owned.setdefault(key, []).append(cur)
            for inp in cur.inputs():
                src = inp.get_source_output().get_node()
                if src.get_type_name() not in ("Parameter", "Result") and not names_of(src):
                    stack.append(src)
    return owned


def query_supported(
    core: Any, device: str, view: GraphView, keys: Iterable[int]
) -> tuple[set[int], dict[int, str], Any]:
    """(supported keys, reason per declined key, and (OpenVINO model, ONNX model) of exactly the
    supported keys, or None) for ``keys`` of ``view``."""
    reasons: dict[int, str] = {}
    remaining = []
    for key in keys:
        why = decline_reason(view.nodes[key])
        if why:
            reasons[key] = why
        else:
            remaining.append(key)
    for _ in range(_MAX_ROUNDS):
        if not remaining:
            break
        extracted = view.extract(remaining)
        producer_of = {out: key for key in remaining for out in view.nodes[key].outputs if out}
        try:
            ov_model = _convert(core, extracted.model)
            owned = _op_owners(ov_model, producer_of)
            dropped = [
                key
                for key in remaining
                if any(op.get_type_name() in _FRAMEWORK_TYPES for op in owned.get(key, []))
            ]
            for key in dropped:
                reasons[key] = "OpenVINO's ONNX frontend has no conversion for this op"
            # A model with unconverted ops cannot be queried: ask again without them.
            answer = {} if dropped else core.query_model(ov_model, device)
        except LoweringError as exc:
            # Only the nodes that could not be lowered go; the rest is asked again.
            lost = [k for k in remaining if set(view.nodes[k].outputs) & exc.outputs]
            for key in lost:
                reasons[key] = f"OpenVINO: {exc}"
            remaining = [k for k in remaining if k not in lost]
            continue
        except Exception as exc:  # noqa: BLE001 - whatever OpenVINO raises, decline the lot
            for key in remaining:
                reasons[key] = f"OpenVINO could not read the subgraph: {_first_line(exc)}"
            return set(), reasons, None
        for key in [] if dropped else remaining:
            ops = owned.get(key, [])
            if not ops:
                reasons[key] = "OpenVINO's converted model does not compute this node"
            elif not all(op.get_friendly_name() in answer for op in ops):
                missing = sorted(
                    {op.get_type_name() for op in ops if op.get_friendly_name() not in answer}
                )
                reasons[key] = f"OpenVINO {device} does not support {', '.join(missing)}"
            else:
                continue
            dropped.append(key)
        if not dropped:
            return set(remaining), reasons, (ov_model, extracted.model)
        # Ask again without the declined nodes: their neighbours may have been judged in their
        # shadow (an op after an unconverted one has unknown input types).
        remaining = [k for k in remaining if k not in dropped]
        for key in remaining:
            reasons.pop(key, None)
    for key in remaining:
        reasons.setdefault(key, "OpenVINO's answer did not settle; declined to stay correct")
    return set(), reasons, None


def _reads(node: Any) -> list[Any]:
    """Values a node reads, including those its subgraphs read from outer scopes."""
    values = [v for v in node.inputs if v is not None]
    stack = [a.value for a in node.attributes.values() if a.type.name in ("GRAPH", "GRAPHS")]
    while stack:
        item = stack.pop()
        for g in item if isinstance(item, list | tuple) else [item]:
            for inner in g:
                values.extend(v for v in inner.inputs if v is not None)
                stack.extend(
                    a.value for a in inner.attributes.values() if a.type.name in ("GRAPH", "GRAPHS")
                )
    return values


def convex_groups(view: GraphView, supported: set[int]) -> list[list[int]]:
    """``supported`` split into connected groups that no path leaves and re-enters."""
    nodes = list(view.graph)
    index = {id(n): i for i, n in enumerate(nodes)}
    producer = {id(v): i for i, n in enumerate(nodes) for v in n.outputs}
    succ: list[set[int]] = [set() for _ in nodes]
    for j, n in enumerate(nodes):
        for v in _reads(n):
            i = producer.get(id(v))
            if i is not None and i != j:
                succ[i].add(j)
    pred: list[set[int]] = [set() for _ in nodes]
    for i, js in enumerate(succ):
        for j in js:
            pred[j].add(i)
    key_of = {index[id(view.ir_nodes[k])]: k for k in supported if id(view.ir_nodes[k]) in index}

    def components(members: set[int]) -> list[set[int]]:
        out, seen = [], set()
        for start in sorted(members):
            if start in seen:
                continue
            comp, stack = set(), [start]
            while stack:
                i = stack.pop()
                if i in comp:
                    continue
                comp.add(i)
                stack.extend(j for j in succ[i] | pred[i] if j in members and j not in comp)
            seen |= comp
            out.append(comp)
        return out

    def downstream_of_exits(group: set[int]) -> set[int]:
        frontier = [j for i in group for j in succ[i] if j not in group]
        reached: set[int] = set()
        while frontier:
            k = frontier.pop()
            if k not in reached:
                reached.add(k)
                frontier.extend(succ[k])
        return group & reached

    groups: list[set[int]] = []
    work = components(set(key_of))
    while work:
        comp = work.pop()
        tainted = downstream_of_exits(comp)
        if not tainted:
            groups.append(comp)
            continue
        # The part upstream of every exit is convex; the rest is split again.
        work.extend(components(comp - tainted))
        work.extend(components(tainted))
    return sorted((sorted(key_of[i] for i in g) for g in groups), key=lambda ks: ks[0])
