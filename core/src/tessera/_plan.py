"""The execution plan: partitions become ordered steps over integer value slots.

Everything is decided here, at session creation: kernel lookup, attribute parsing, device
transfers and buffer lifetimes. ``Plan.run`` only walks the prebuilt steps.
"""

from __future__ import annotations

import contextvars
import dataclasses
import heapq
import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import onnx_ir as ir

from tessera._errors import (
    InvalidArgument,
    InvalidGraph,
    ProviderError,
    RuntimeFailure,
    TesseraError,
)
from tessera._extract import boundary
from tessera._feeds import DeviceFeed
from tessera._fusion import apply_fusions
from tessera._graph import implicit_inputs, make_node_info, node_reads
from tessera._kernels import DEFAULT_MAX_TENSOR_BYTES, NodeInfo
from tessera._parallel_plan import StepGraph, default_threads, run_parallel
from tessera._partition import Partition, partition_graph, unclaimed_error
from tessera._provider import CompiledSubgraph, ExecutionProvider, host_array
from tessera._types import dtype_of_type_string

HOST = "cpu"
# The RunOptions of the run in progress in this thread, when the caller passed some: plans then
# check ``terminate`` between steps. A context variable reaches the plans of Loop/If/Scan bodies
# without threading the options through every kernel.
RUN_OPTIONS: contextvars.ContextVar[Any] = contextvars.ContextVar(
    "tessera_run_options", default=None
)


@dataclasses.dataclass
class StepInfo:
    """What a step is, for explain(), profiling and error messages."""

    label: str
    op_type: str
    provider: str
    kind: str  # "kernel", "compiled" or "transfer"
    nodes: tuple[str, ...] = ()
    cost: float = 0.0  # estimated work (multiply-adds, or output elements), where shapes are known


@dataclasses.dataclass
class PlanOptions:
    providers: Sequence[ExecutionProvider]
    opsets: Mapping[str, int]
    fallback_disabled: bool = False
    max_depth: int = 64
    max_tensor_bytes: int = DEFAULT_MAX_TENSOR_BYTES
    optimization_level: int = 99  # SessionOptions.graph_optimization_level

    @property
    def fuse(self) -> bool:
        """Ask providers for fusions (ORT_ENABLE_EXTENDED and above)."""
        return self.optimization_level >= 2


class _ShortResult(Exception):
    """A step returned fewer values than its node has outputs."""

    def __init__(self, got: int, wanted: int) -> None:
        super().__init__(f"the kernel returned {got} output(s); the node has {wanted}")


class Plan:
    """Prebuilt steps for one (sub)graph. ``run`` is reentrant: all state is per call."""

    def __init__(self) -> None:
        self.template: list[Any] = []
        self.input_slots: list[int] = []
        self.captured_slots: list[int] = []
        self.output_slots: list[int] = []
        # Main graph only: outputs stay where they were computed until the end of the run,
        # where ``output_to_host`` (the producing device's to_host, None on the host) brings
        # them back, unless the caller keeps them on the device (IOBinding.bind_output).
        self.output_to_host: list[Callable[[Any], Any] | None] = []
        self.output_devices: list[str] = []
        self.steps: list[tuple[Callable, tuple[int, ...], tuple[int, ...], tuple[int, ...]]] = []
        self.step_info: list[StepInfo] = []
        self.assignments: dict[str, str] = {}
        self.claims: dict[str, str] = {}
        self.rejected_claims: list[str] = []
        self.declined: dict[str, list[str]] = {}
        self.fused: dict[str, tuple[str, ...]] = {}  # fused node -> the nodes it replaced
        self.transfers: int = 0
        self.run_start_hooks: list[Callable[[], None]] = []
        self.run_end_hooks: list[Callable[[], None]] = []
        # Main graph: transfers of a feed read it from its own slot here (input slot -> slot),
        # so a device feed (IOBinding) reaches them as it is, to be adopted by their provider,
        # while the input slot holds its host copy for the nodes in ``host_read_inputs``.
        self.feed_slots: dict[int, int] = {}
        self.host_read_inputs: frozenset[int] = frozenset()
        # ExecutionMode.ORT_PARALLEL (set by the session): independent steps run concurrently
        # on ``parallel_threads`` threads (tessera/_parallel_plan.py).
        self.parallel: StepGraph | None = None
        self.parallel_threads = 1

    def _start(self, inputs: Sequence[Any], captured: Sequence[Any]) -> list[Any]:
        """A fresh slot list: constants from the template, then feeds (None keeps an
        initializer's default) and captured outer-scope values."""
        env = self.template.copy()
        for slot, value in zip(self.input_slots, inputs):
            if value is None and env[slot] is not None:
                continue  # an initializer's default (its feed slot has it from the template)
            if type(value) is DeviceFeed and slot in self.host_read_inputs:
                value = dataclasses.replace(value, copied=value.host())  # one copy per run
                env[slot] = value.copied
            else:
                env[slot] = value if type(value) is not DeviceFeed else None
            feed = self.feed_slots.get(slot)
            if feed is not None:
                env[feed] = value
        for slot, value in zip(self.captured_slots, captured):
            env[slot] = value
        return env

    def _outputs(self, env: list[Any], keep: frozenset[int]) -> list[Any]:
        if not self.output_to_host:
            return [env[s] for s in self.output_slots]
        return [
            env[slot] if move is None or i in keep else move(env[slot])
            for i, (slot, move) in enumerate(zip(self.output_slots, self.output_to_host))
        ]

    def run(
        self,
        inputs: Sequence[Any],
        captured: Sequence[Any] = (),
        keep: frozenset[int] = frozenset(),
    ) -> list[Any]:
        """Run the steps; outputs come back on the host except those whose index is in ``keep``,
        which stay on the device that computed them."""
        # RunOptions given to this run (through a context variable, so nested Loop/If/Scan plans
        # see them too): ``terminate`` is checked before every step.
        options = RUN_OPTIONS.get()
        env = self._start(inputs, captured)
        if self.parallel is not None and run_parallel(
            self.steps,
            self.parallel,
            env,
            self.parallel_threads,
            lambda: options is not None and options.terminate,
            self._failure,
            _ShortResult,
        ):
            return self._outputs(env, keep)
        fn, ins = None, ()
        try:
            for fn, ins, outs, frees in self.steps:
                if options is not None and options.terminate:
                    raise RuntimeFailure(
                        "the run was terminated: RunOptions.terminate was set to True"
                    )
                results = fn(*[env[i] for i in ins])
                if len(results) < len(outs):  # more is allowed: unrequested optional outputs
                    raise _ShortResult(len(results), len(outs))
                for slot, value in zip(outs, results):
                    env[slot] = value
                for slot in frees:
                    env[slot] = None
        except TesseraError:
            raise
        except Exception as exc:
            raise self._failure(fn, ins, exc) from exc
        return self._outputs(env, keep)

    def run_profiled(
        self,
        inputs: Sequence[Any],
        captured: Sequence[Any],
        events: list,
        keep: frozenset[int] = frozenset(),
    ) -> list[Any]:
        """Like :meth:`run`, recording one (StepInfo, start_s, duration_s, inputs, outputs) per step."""
        env = self._start(inputs, captured)
        for info, (fn, ins, outs, frees) in zip(self.step_info, self.steps):
            args = [env[i] for i in ins]
            start = time.perf_counter()
            try:
                results = fn(*args)
            except TesseraError:
                raise
            except Exception as exc:
                raise self._failure(fn, ins, exc) from exc
            events.append((info, start, time.perf_counter() - start, args, results))
            if len(results) < len(outs):
                raise self._failure(fn, ins, _ShortResult(len(results), len(outs)))
            for slot, value in zip(outs, results):
                env[slot] = value
            for slot in frees:
                env[slot] = None
        return self._outputs(env, keep)

    def _failure(self, fn: Callable, ins: tuple, exc: Exception) -> RuntimeFailure:
        for info, step in zip(self.step_info, self.steps):
            if step[0] is fn and step[1] is ins:
                return RuntimeFailure(
                    f"{info.kind} step {info.label!r} (op {info.op_type}) on {info.provider} "
                    f"failed: {type(exc).__name__}: {exc}"
                )
        return RuntimeFailure(f"a step failed: {type(exc).__name__}: {exc}")


def _check_order(graph: ir.Graph, nodes: list[ir.Node], known: set[int]) -> list[ir.Node]:
    """Nodes in a topological order (stable); undefined inputs and cycles are errors."""
    producer = {id(v): i for i, n in enumerate(nodes) for v in n.outputs}
    waiting: list[int] = []
    indegree = [0] * len(nodes)
    users: list[list[int]] = [[] for _ in nodes]
    for j, node in enumerate(nodes):
        for v in node_reads(node):
            if id(v) in known:
                continue
            i = producer.get(id(v))
            if i is None:
                raise InvalidGraph(
                    f"node {node.name or node.op_type!r} (op {node.op_type}) reads {v.name!r}, "
                    "which is not a graph input, an initializer or the output of any node"
                )
            if i == j:
                raise InvalidGraph(
                    f"node {node.name or node.op_type!r} reads its own output {v.name!r}"
                )
            indegree[j] += 1
            users[i].append(j)
    waiting = [j for j, d in enumerate(indegree) if d == 0]
    heapq.heapify(waiting)
    order: list[int] = []
    while waiting:
        i = heapq.heappop(waiting)
        order.append(i)
        for j in users[i]:
            indegree[j] -= 1
            if indegree[j] == 0:
                heapq.heappush(waiting, j)
    if len(order) != len(nodes):
        stuck = [
            nodes[j].name or f"{nodes[j].op_type}_{j}" for j in range(len(nodes)) if indegree[j] > 0
        ]
        raise InvalidGraph(f"the graph has a cycle through node(s) {stuck[:10]}")
    return [nodes[i] for i in order]


class _Builder:
    """Builds one Plan; nested graphs get their own builder through the subgraph runners."""

    def __init__(self, options: PlanOptions, depth: int = 0, prefix: str = "") -> None:
        self.options = options
        self.depth = depth
        self.prefix = prefix
        self.plan = Plan()
        self.slot_of: dict[str, int] = {}
        self.device_of: dict[int, str] = {}
        self.moved: dict[tuple[int, str], int] = {}

    def slot(self, name: str, device: str = HOST) -> int:
        if name not in self.slot_of:
            self.slot_of[name] = len(self.plan.template)
            self.plan.template.append(None)
            self.device_of[self.slot_of[name]] = device
        return self.slot_of[name]

    def new_slot(self, device: str) -> int:
        self.plan.template.append(None)
        idx = len(self.plan.template) - 1
        self.device_of[idx] = device
        return idx

    def build(self, graph: ir.Graph, captured: Sequence[str] = ()) -> Plan:
        if self.depth > self.options.max_depth:
            raise InvalidGraph(
                f"subgraphs nest deeper than {self.options.max_depth} levels; raise "
                "SessionOptions.max_subgraph_depth if the model is legitimate"
            )
        plan = self.plan
        known: set[int] = set()
        for v in graph.inputs:
            plan.input_slots.append(self.slot(v.name))
            known.add(id(v))
        for v in graph.initializers.values():
            try:
                value = v.const_value.numpy() if v.const_value is not None else None
            except (ValueError, TypeError) as exc:
                raise InvalidGraph(f"initializer {v.name!r} cannot be read: {exc}") from exc
            if isinstance(value, np.ndarray):
                # Read-only: a kernel that writes into a constant fails loudly, and any view of it
                # is read-only too, which tells the session to copy it before handing it out.
                value.setflags(write=False)
            plan.template[self.slot(v.name)] = value
            known.add(id(v))
        for name in captured:
            plan.captured_slots.append(self.slot(name))
        # Only values an enclosing graph provides count as defined; a dangling reference in the
        # main graph is an error, not an outer-scope capture.
        captured_set = set(captured)
        known.update(id(v) for v in implicit_inputs(graph) if v.name in captured_set)
        nodes = _check_order(graph, list(graph), known)
        # Kernels get the very arrays the run loop passes (read-only, converted once), so they
        # may test identity; outer initializers a subgraph captures are converted by make_node_info.
        constants = {
            v.name: plan.template[self.slot_of[v.name]]
            for v in graph.initializers.values()
            if plan.template[self.slot_of[v.name]] is not None
        }
        infos = {
            i: make_node_info(n, i, self.options.opsets, constants) for i, n in enumerate(nodes)
        }
        for info in infos.values():
            info.max_tensor_bytes = self.options.max_tensor_bytes
            self._check_static_sizes(info)
        result = partition_graph(
            graph,
            nodes,
            infos,
            self.options.providers,
            self.options.opsets,
            int(self.options.optimization_level),
        )
        plan.rejected_claims.extend(result.rejected)
        if len(result.owner) != len(infos):
            raise unclaimed_error(
                infos, result, self.options.providers, self.options.fallback_disabled
            )
        self._record_declines(infos, result.owner)
        rank: dict[int, int] = {}
        if self.options.fuse and self.depth == 0:
            before = len(result.rejected)
            rank = apply_fusions(graph, nodes, infos, result, self._node_info(constants))
            plan.rejected_claims.extend(result.rejected[before:])
        for part in self._ordered(nodes, result.owner, rank):
            self._emit(
                part,
                [infos[k] for k in part.claim.nodes],
                [nodes[k] for k in part.claim.nodes],
                graph,
            )
        for v in graph.outputs:
            if v.name not in self.slot_of:
                raise InvalidGraph(f"graph output {v.name!r} is never produced")
            slot = self.slot_of[v.name]
            device = self.device_of[slot]
            if self.depth > 0 or device == HOST:
                plan.output_slots.append(self._on_device(slot, HOST, None))
                plan.output_to_host.append(None)
                plan.output_devices.append(HOST)
                continue
            producer = self._device_provider.get(device)
            plan.output_slots.append(slot)
            plan.output_to_host.append(producer.to_host if producer is not None else None)
            plan.output_devices.append(device)
            plan.transfers += 1  # made at the end of the run, unless the caller keeps it there
        inputs = set(plan.input_slots)
        plan.host_read_inputs = frozenset(
            s
            for s in [*plan.output_slots, *(s for _, ins, _, _ in plan.steps for s in ins)]
            if s in inputs
        )
        self._plan_frees()
        return plan

    def _node_info(self, constants: Mapping[str, Any]) -> Callable[[ir.Node, int], NodeInfo]:
        def make(node: ir.Node, key: int) -> NodeInfo:
            info = make_node_info(node, key, self.options.opsets, constants)
            info.max_tensor_bytes = self.options.max_tensor_bytes
            return info

        return make

    def _check_static_sizes(self, info: NodeInfo) -> None:
        """Refuse, at creation, an output whose inferred static shape exceeds the size limit."""
        for shape, type_str in zip(info.output_shapes, info.output_types):
            dtype = dtype_of_type_string(type_str)
            # Shape inference writes -1 for some unknown dims: only fully known shapes count.
            if (
                shape is None
                or dtype is None
                or not all(isinstance(d, int) and d >= 0 for d in shape)
            ):
                continue
            try:
                info.check_size(shape, dtype)
            except InvalidArgument as exc:
                raise InvalidGraph(str(exc)) from None

    def _record_declines(self, infos: dict[int, NodeInfo], owner: dict[int, Partition]) -> None:
        """For nodes that fell to the last provider, each earlier provider's reason to decline."""
        providers = list(self.options.providers)
        if len(providers) < 2:
            return
        fallback = providers[-1]
        for k, info in infos.items():
            if owner[k].provider is fallback:
                self.plan.declined[self.prefix + info.name] = [
                    f"{p.name}: {p.decline_reason(info)}" for p in providers[:-1]
                ]

    def _ordered(
        self, nodes: list[ir.Node], owner: dict[int, Partition], rank: Mapping[int, int]
    ) -> list[Partition]:
        """Partitions in a topological order (Kahn, by first node position; a fused node takes
        the position ``rank`` gives it)."""
        producer = {id(v): i for i in owner for v in nodes[i].outputs}
        parts: dict[int, Partition] = {}
        first: dict[int, int] = {}
        for k, part in owner.items():
            parts[id(part)] = part
            position = rank.get(k, k)
            first[id(part)] = min(first.get(id(part), position), position)
        deps: dict[int, set[int]] = {pid: set() for pid in parts}
        for j in owner:
            pj = id(owner[j])
            for v in node_reads(nodes[j]):
                i = producer.get(id(v))
                if i is not None and id(owner[i]) != pj:
                    deps[pj].add(id(owner[i]))
        users: dict[int, list[int]] = {pid: [] for pid in parts}
        for pid, ds in deps.items():
            for d in ds:
                users[d].append(pid)
        remaining = {pid: len(ds) for pid, ds in deps.items()}
        ready = [(first[pid], pid) for pid, n in remaining.items() if n == 0]
        heapq.heapify(ready)
        out: list[Partition] = []
        while ready:
            _, pid = heapq.heappop(ready)
            out.append(parts[pid])
            for u in users[pid]:
                remaining[u] -= 1
                if remaining[u] == 0:
                    heapq.heappush(ready, (first[u], u))
        if len(out) != len(parts):
            raise InvalidGraph("partitions form a cycle; a provider's claims were inconsistent")
        return out

    def _on_device(self, slot: int, device: str, provider: ExecutionProvider | None) -> int:
        """The slot holding ``slot``'s value on ``device``, adding a transfer step if needed."""
        source = self.device_of[slot]
        if source == device:
            return slot
        key = (slot, device)
        if key in self.moved:
            return self.moved[key]
        read = slot
        if self.depth == 0 and slot in self.plan.input_slots:
            read = self.plan.feed_slots.get(slot)
            if read is None:
                read = self.plan.feed_slots[slot] = self.new_slot(HOST)
                self.plan.template[read] = self.plan.template[slot]
        producer = self._device_provider.get(source)
        steps: list[Callable[[Any], Any]] = []
        if source != HOST and producer is not None:
            steps.append(producer.to_host)
        if device != HOST and provider is not None:
            steps.append(provider.to_device)

        def transfer(value, _steps=tuple(steps)):
            if type(value) is DeviceFeed:  # a bound device input: adopted where it already is
                adopted = provider.adopt(value.value) if value.on(device) and provider else None
                if adopted is not None:
                    return (adopted,)
                value = value.host()
            for move in _steps:
                value = move(value)
            return (value,)

        target = self.new_slot(device)
        constant = self.plan.template[slot]
        if constant is not None and slot not in self.plan.input_slots:
            self.plan.template[target] = transfer(constant)[0]  # move constants once, at creation
        else:
            self.plan.steps.append((transfer, (read,), (target,), ()))
            self.plan.step_info.append(
                StepInfo(f"transfer {source}->{device}", "MemcpyTransfer", "core", "transfer")
            )
            self.plan.transfers += 1
        self.moved[key] = target
        return target

    @property
    def _device_provider(self) -> dict[str, ExecutionProvider]:
        return {p.device: p for p in self.options.providers}

    def _emit(
        self, part: Partition, infos: list[NodeInfo], nodes: list[ir.Node], graph: ir.Graph
    ) -> None:
        provider = part.provider
        device = provider.device
        if part.claim.kind == "kernel":
            info, node = infos[0], nodes[0]
            self._attach_subgraphs(info, node)
            try:
                fn = provider.create_kernel(info)
            except TesseraError:
                raise
            except Exception as exc:
                raise InvalidGraph(f"{info.describe()} on {provider.name}: {exc}") from exc
            reads = info.inputs + info.implicit_inputs
            writes = info.outputs
            label, op = self.prefix + info.name, info.op_type
        else:
            inputs, constants, outputs = boundary(nodes, graph)
            reads = [v.name for v in inputs]
            writes = [v.name for v in outputs]
            try:
                fn_compiled = provider.compile(
                    CompiledSubgraph(
                        infos,
                        reads,
                        writes,
                        graph,
                        {v.name: self.plan.template[self.slot_of[v.name]] for v in constants},
                        list(nodes),
                        self.options.opsets,
                    )
                )
            except TesseraError:
                raise
            except Exception as exc:
                names = ", ".join(i.name for i in infos[:5]) + (" ..." if len(infos) > 5 else "")
                raise ProviderError(
                    f"{provider.name} failed to compile its claim on node(s) {names}: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc

            def fn(*args, _f=fn_compiled):
                return tuple(_f(*args))

            label, op = self.prefix + f"{provider.name}_fused_{len(self.plan.steps)}", "Compiled"
        ins = tuple(
            self._on_device(self.slot_of[n], device, provider) if n else self._none_slot()
            for n in reads
        )
        outs = tuple(self.slot(n, device) if n else self._junk_slot() for n in writes)
        self.plan.steps.append((fn, ins, outs, ()))
        self.plan.step_info.append(
            StepInfo(
                label,
                op,
                provider.name,
                part.claim.kind,
                tuple(i.name for i in infos),
                sum(estimated_cost(i) for i in infos),
            )
        )
        for i in infos:
            self.plan.assignments[self.prefix + i.name] = provider.name
            self.plan.claims[self.prefix + i.name] = part.claim.kind
            if i.fused_from:
                self.plan.fused[self.prefix + i.name] = i.fused_from
                for name in i.fused_from:
                    self.plan.assignments[self.prefix + name] = provider.name
                    self.plan.claims[self.prefix + name] = "fused"
        for hook, hooks in (
            (provider.on_run_start, self.plan.run_start_hooks),
            (provider.on_run_end, self.plan.run_end_hooks),
        ):
            if (
                getattr(hook, "__func__", None)
                not in (ExecutionProvider.on_run_start, ExecutionProvider.on_run_end)
                and hook not in hooks
            ):
                hooks.append(hook)

    def _none_slot(self) -> int:
        if "" not in self.slot_of:
            self.slot_of[""] = self.new_slot(HOST)
        return self.slot_of[""]

    def _junk_slot(self) -> int:
        return self.new_slot(HOST)

    def _attach_subgraphs(self, info: NodeInfo, node: ir.Node) -> None:
        graphs = {
            name: a.value for name, a in node.attributes.items() if a.type == ir.AttributeType.GRAPH
        }
        if not graphs:
            return
        node_captured = list(info.implicit_inputs)
        builder_options = self.options
        depth, prefix = self.depth + 1, f"{self.prefix}{info.name}/"

        def build_runner(attr_name: str):
            if attr_name not in graphs:
                raise InvalidGraph(f"{info.describe()} has no graph attribute {attr_name!r}")
            sub = graphs[attr_name]
            names = [v.name for v in implicit_inputs(sub)]
            child = _Builder(builder_options, depth, f"{prefix}{attr_name}/")
            plan = child.build(sub, names)
            self.plan.assignments.update(plan.assignments)
            self.plan.claims.update(plan.claims)
            index = [node_captured.index(n) for n in names]
            run = plan.run

            def runner(inputs: Sequence[Any], captured: Sequence[Any]) -> list[Any]:
                return run(inputs, [captured[i] for i in index])

            runner.plan = plan  # type: ignore[attr-defined]
            return runner

        info._subgraph_builder = build_runner

    def _plan_frees(self) -> None:
        """Release each intermediate slot right after its last reader."""
        plan = self.plan
        keep = kept_slots(plan)
        last: dict[int, int] = {}
        for idx, (_, ins, outs, _) in enumerate(plan.steps):
            for s in ins:
                last[s] = idx
            for s in outs:
                last.setdefault(s, idx)
        frees: list[list[int]] = [[] for _ in plan.steps]
        for s, idx in last.items():
            if s not in keep:
                frees[idx].append(s)
        plan.steps = [
            (fn, ins, outs, tuple(frees[i])) for i, (fn, ins, outs, _) in enumerate(plan.steps)
        ]


_PRODUCTS = frozenset({"Conv", "FusedConv", "ConvTranspose", "MatMul", "FusedMatMul", "Gemm"})


def estimated_cost(info: NodeInfo) -> float:
    """Rough work of a node: multiply-adds for convolutions and products, else output elements
    (0 where the output shape is not static). Only relative sizes matter (parallel runs)."""
    shape = info.output_shapes[0] if info.output_shapes else None
    if not shape or not all(isinstance(d, int) for d in shape):
        return 0.0
    size = float(math.prod(shape))
    if info.op_type in _PRODUCTS and not info.domain.startswith("ai.onnx.ml"):
        ref = info.input_shapes[1 if "Conv" in info.op_type else 0] if info.input_shapes else None
        if ref and all(isinstance(d, int) for d in ref):
            inner = math.prod(ref[1:]) if "Conv" in info.op_type else ref[-1]
            return size * float(inner)
    return size


def kept_slots(plan: Plan) -> set[int]:
    """Slots a run never releases: inputs, outputs, captured values, feeds and constants."""
    keep = set(plan.output_slots) | set(plan.input_slots) | set(plan.captured_slots)
    keep.update(plan.feed_slots.values())
    keep.update(i for i, v in enumerate(plan.template) if v is not None)
    return keep


# Sessions that leave execution_mode alone run in parallel when the graph's total estimated
# work is at least this many times its critical path's (inception_v2 1.46, inception_v1 1.29;
# ResNet-50 1.10, squeezenet 1.06, densenet121 1.00), and at least AUTO_MIN_WORK of it.
AUTO_MIN_PARALLELISM = 1.25
AUTO_MIN_WORK = 1e8
CONFIG_AUTO_PARALLEL = "tessera.execution.auto_parallel"


def enable_parallel(plan: Plan, threads: int, min_parallelism: float = 0.0) -> bool:
    """Run ``plan``'s independent steps concurrently on ``threads`` threads (0: every CPU);
    False when it has no two steps that could run together, or (``min_parallelism``) when its
    estimated work is too small or too sequential for that to pay."""
    threads = int(threads) or default_threads()
    graph = StepGraph(plan.steps, kept_slots(plan), [i.cost for i in plan.step_info])
    if threads < 2 or graph.branches < 2:
        return False
    if min_parallelism and (graph.parallelism < min_parallelism or graph.total < AUTO_MIN_WORK):
        return False
    plan.parallel, plan.parallel_threads = graph, threads
    return True


def build_plan(graph: ir.Graph, options: PlanOptions) -> Plan:
    return _Builder(options).build(graph)


def normalize_output(value: Any) -> Any:
    return host_array(value)
