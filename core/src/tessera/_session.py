"""InferenceSession: ORT's Python API over Tessera's plan, plus assignments and explain()."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import onnx
import onnx_ir as ir

from tessera import _providers
from tessera._errors import InvalidArgument, InvalidGraph, TesseraError
from tessera._feeds import InputSpec, input_spec, order_feeds
from tessera._model import prepare_model
from tessera._options import (
    ExecutionMode,
    ModelMetadata,
    NodeArg,
    RunOptions,
    SessionOptions,
)
from tessera._parallel_plan import default_threads
from tessera._plan import (
    AUTO_MIN_PARALLELISM,
    CONFIG_AUTO_PARALLEL,
    RUN_OPTIONS,
    Plan,
    PlanOptions,
    build_plan,
    enable_parallel,
)
from tessera._profiling import Profiler
from tessera._provider import host_array
from tessera._types import type_string
from tessera.optimizer import fold_limit, optimize, save_optimized

logger = logging.getLogger("tessera")

# ORT severities: 0 verbose, 1 info, 2 warning, 3 error, 4 fatal.
_LOG_LEVELS = {
    0: logging.DEBUG,
    1: logging.INFO,
    2: logging.WARNING,
    3: logging.ERROR,
    4: logging.CRITICAL,
}


def _node_arg(value: ir.Value, declared: dict[str, str] | None = None) -> NodeArg:
    if declared and value.name in declared:
        return NodeArg(value.name, declared[value.name], [])
    shape = []
    if value.shape is not None:
        for d in value.shape:
            shape.append(d if isinstance(d, int) else getattr(d, "value", None))
    return NodeArg(value.name, type_string(value.type) or "unknown", shape)


class InferenceSession:
    """Load a model, partition it across providers, and run it.

    ``InferenceSession(path_or_bytes, sess_options=None, providers=None, provider_options=None)``
    takes the same arguments as ``onnxruntime.InferenceSession``. ``providers`` are names (ORT's
    ``"CPUExecutionProvider"`` or Tessera's ``"cpu"``) or ``(name, options)`` tuples.
    """

    def __init__(
        self,
        path_or_bytes: str | os.PathLike | bytes | onnx.ModelProto,
        sess_options: SessionOptions | None = None,
        providers: Sequence[Any] | None = None,
        provider_options: Sequence[Mapping[str, Any]] | None = None,
        **kwargs: Any,
    ) -> None:
        if kwargs:
            raise InvalidArgument(f"unexpected keyword argument(s) {sorted(kwargs)}")
        self._sess_options = sess_options or SessionOptions()
        opts = self._sess_options
        self._model_path = (
            os.fspath(path_or_bytes) if isinstance(path_or_bytes, (str, os.PathLike)) else None
        )
        self._model = prepare_model(path_or_bytes, max_subgraph_depth=opts.max_subgraph_depth)
        created = _providers.resolve(
            providers,
            provider_options,
            not opts.fallback_disabled,
            opts.intra_op_num_threads,
            {"enable_cpu_mem_arena": bool(opts.enable_cpu_mem_arena)},
        )
        if not created:
            raise InvalidArgument("no provider could be created for this session")
        self._factories = [f for f, _, _ in created]
        self._providers = [p for _, p, _ in created]
        self._provider_options = {p.name: {k: str(v) for k, v in o.items()} for _, p, o in created}
        graph = self._model.graph
        opsets = dict(self._model.opset_imports)
        opsets.setdefault("", opsets.get("ai.onnx", 1))
        try:
            self._optimization = optimize(
                self._model,
                opts.graph_optimization_level,
                providers=self._providers,
                max_fold_elements=fold_limit(opts._config),
            )
        except TesseraError:
            raise
        except Exception as exc:
            raise InvalidGraph(
                f"graph optimization failed ({type(exc).__name__}: {exc}); the model may be "
                "malformed. Set SessionOptions.graph_optimization_level = ORT_DISABLE_ALL to run "
                "it unoptimized"
            ) from exc
        self._log(1, str(self._optimization))
        self._plan: Plan = build_plan(
            graph,
            PlanOptions(
                self._providers,
                opsets,
                opts.fallback_disabled,
                opts.max_subgraph_depth,
                opts.max_tensor_bytes,
                optimization_level=int(opts.graph_optimization_level),
            ),
        )
        initializer_names = set(graph.initializers)
        self._input_specs: list[InputSpec] = [
            input_spec(v, v.name in initializer_names) for v in graph.inputs
        ]
        declared = self._model.meta.get("tessera.map_types", {})
        self._inputs = [
            _node_arg(v, declared) for v in graph.inputs if v.name not in initializer_names
        ]
        self._overridable = [_node_arg(v) for v in graph.inputs if v.name in initializer_names]
        self._outputs = [_node_arg(v, declared) for v in graph.outputs]
        self._output_index = {o.name: i for i, o in enumerate(self._outputs)}
        serial = not all(p.supports_concurrent_run for p in self._providers)
        self._run_lock = threading.Lock() if serial else None
        self._parallel_reason = self._choose_execution(opts, serial)
        self._profiler = Profiler(opts.profile_file_prefix) if opts.enable_profiling else None
        self._log_partition()
        if opts.optimized_model_filepath:
            save_optimized(self._model, opts.optimized_model_filepath)

    def _choose_execution(self, opts: SessionOptions, serial: bool) -> str:
        """Run independent steps concurrently when asked (ORT_PARALLEL), or, unless the caller
        chose an execution mode, when the graph's branches carry enough of its work
        (inception blocks). Returns why, for explain()."""
        host = not serial and all(p.device.split(":")[0] == "cpu" for p in self._providers)
        mode = ExecutionMode(opts.execution_mode)
        if mode == ExecutionMode.ORT_PARALLEL:
            # Concurrent steps only where every provider computes on the host and allows it;
            # a device provider's queue or stream orders its own work.
            if not host:
                self._log(
                    2,
                    "execution_mode ORT_PARALLEL: a provider here does not run steps "
                    "concurrently on the host, so the session runs sequentially",
                )
                return ""
            if enable_parallel(self._plan, opts.inter_op_num_threads):
                return "execution_mode ORT_PARALLEL"
            return ""
        auto = opts._config.get(CONFIG_AUTO_PARALLEL, "1") != "0"
        if not auto or "execution_mode" in opts._explicit or not host:
            return ""
        if any(p.efficient_intra_op for p in self._providers):
            return ""  # its kernels use every thread already, at a small cost per split
        threads = int(opts.intra_op_num_threads) or default_threads()
        if enable_parallel(self._plan, threads, min_parallelism=AUTO_MIN_PARALLELISM):
            graph = self._plan.parallel
            return (
                f"automatic: the branches hold {graph.parallelism:.2f}x the critical path's "
                f"work (set execution_mode, or config entry {CONFIG_AUTO_PARALLEL}=0, to choose)"
            )
        return ""

    def _log(self, severity: int, message: str) -> None:
        if severity >= self._sess_options.log_severity_level:
            logger.log(_LOG_LEVELS.get(severity, logging.WARNING), message)

    def _log_partition(self) -> None:
        counts: dict[str, int] = {}
        for provider in self._plan.assignments.values():
            counts[provider] = counts.get(provider, 0) + 1
        self._log(1, "partition: " + ", ".join(f"{p} {n} node(s)" for p, n in counts.items()))
        if self._plan.declined:
            self._log(
                2,
                f"{len(self._plan.declined)} node(s) fell back to {self._providers[-1].name} because the "
                "providers ahead of it declined them; session.explain() lists each with the reason",
            )
        for reason in self._plan.rejected_claims:
            self._log(2, f"rejected claim: {reason}")

    # -- ORT API ------------------------------------------------------------------------------------
    def run(
        self,
        output_names: Sequence[str] | None,
        input_feed: Mapping[str, Any],
        run_options: RunOptions | None = None,
    ) -> list[Any]:
        """Run the model; returns the requested outputs (all when ``output_names`` is None)."""
        picks = self._pick_outputs(output_names)
        results = self._run_values(input_feed, run_options)
        return [host_array(results[i]) for i in picks]

    def _run_values(
        self,
        input_feed: Mapping[str, Any],
        run_options: RunOptions | None = None,
        keep: frozenset[int] = frozenset(),
    ) -> list[Any]:
        """Every output of one run, in graph order; those in ``keep`` stay on their device."""
        values = order_feeds(self._input_specs, input_feed)
        token = RUN_OPTIONS.set(run_options) if run_options is not None else None
        try:
            if self._run_lock is not None:
                with self._run_lock:
                    return self._execute(values, keep)
            return self._execute(values, keep)
        finally:
            if token is not None:
                RUN_OPTIONS.reset(token)

    def _execute(self, values: list[Any], keep: frozenset[int] = frozenset()) -> list[Any]:
        plan = self._plan
        for hook in plan.run_start_hooks:
            hook()
        try:
            # NaN and inf are legitimate ONNX results (Sqrt of a negative, Log of 0); NumPy's
            # warnings about them are noise to the caller, as onnxruntime gives none.
            with np.errstate(all="ignore"):
                if self._profiler is not None:
                    return self._profiler.record(plan, values, keep)
                return plan.run(values, keep=keep)
        finally:
            for hook in plan.run_end_hooks:
                hook()

    def _pick_outputs(self, output_names: Sequence[str] | None) -> list[int]:
        if output_names is None:
            return list(range(len(self._outputs)))
        if isinstance(output_names, str):
            output_names = [output_names]
        picks = []
        for name in output_names:
            if name not in self._output_index:
                raise InvalidArgument(
                    f"unknown output name {name!r}; the model's outputs are {list(self._output_index)}"
                )
            picks.append(self._output_index[name])
        return picks

    def get_inputs(self) -> list[NodeArg]:
        return list(self._inputs)

    def get_outputs(self) -> list[NodeArg]:
        return list(self._outputs)

    def get_overridable_initializers(self) -> list[NodeArg]:
        return list(self._overridable)

    def get_providers(self) -> list[str]:
        return [p.name for p in self._providers]

    def get_provider_options(self) -> dict[str, dict[str, str]]:
        return {k: dict(v) for k, v in self._provider_options.items()}

    def get_session_options(self) -> SessionOptions:
        return self._sess_options

    def get_modelmeta(self) -> ModelMetadata:
        m = self._model
        return ModelMetadata(
            producer_name=m.producer_name or "",
            graph_name=m.graph.name or "",
            domain=m.domain or "",
            description=m.doc_string or "",
            graph_description=m.graph.doc_string or "",
            version=int(m.model_version or 0),
            custom_metadata_map=dict(m.metadata_props),
        )

    def end_profiling(self) -> str:
        """Write the Chrome-trace JSON of the runs so far and return its path ("" if disabled)."""
        return self._profiler.write() if self._profiler is not None else ""

    def io_binding(self):
        from tessera._iobinding import IOBinding

        return IOBinding(self)

    def run_with_iobinding(self, iobinding, run_options: RunOptions | None = None) -> None:
        iobinding._run(run_options)

    # -- beyond ORT -----------------------------------------------------------------------------
    @property
    def assignments(self) -> dict[str, str]:
        """Node name (``{op_type}_{index}`` if unnamed) -> the provider that runs it.
        Nodes inside subgraphs appear as ``parent/attribute/node``."""
        return dict(self._plan.assignments)

    def explain(self) -> str:
        """A readable account of the partition: per-provider counts, transfers, and why each
        node that fell back to CPU was declined by the providers ahead of it."""
        from tessera._explain import explain

        return explain(self)
