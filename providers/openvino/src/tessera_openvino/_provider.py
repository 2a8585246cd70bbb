"""The OpenVINO execution provider: claims what OpenVINO supports, compiles each claim once."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import openvino

from tessera.provider import (
    Claim,
    CompiledSubgraph,
    ExecutionProvider,
    GraphView,
    NodeInfo,
    np_dtype,
)
from tessera_openvino._capability import convex_groups, query_supported
from tessera_openvino._compiled import CompiledPartition
from tessera_openvino._factory import PRECISIONS
from tessera_openvino._lowering import read_model


class BoundaryMismatch(ValueError):
    """OpenVINO's model of a subgraph does not expose the subgraph's boundary values."""


def boundary_positions(ov_model: Any, onnx_model: Any) -> list[int]:
    """For each OpenVINO input, the position of the ONNX boundary input it reads.

    OpenVINO drops inputs it does not need and may move a tensor's names (through an Identity
    or a Dropout) onto its source; a claim whose boundary it changed this way is declined.
    """
    names = [v.name for v in onnx_model.graph.input]
    positions = []
    for port in ov_model.inputs:
        found = [i for i, n in enumerate(names) if n in port.get_names()]
        if len(found) != 1:
            raise BoundaryMismatch(
                f"OpenVINO's input {sorted(port.get_names())} is not one boundary input of {names}"
            )
        positions.append(found[0])
    outputs = [sorted(port.get_names()) for port in ov_model.outputs]
    wanted = [v.name for v in onnx_model.graph.output]
    if len(outputs) != len(wanted) or any(w not in o for w, o in zip(wanted, outputs)):
        raise BoundaryMismatch(f"OpenVINO's outputs {outputs} do not match {wanted}")
    return positions


class OpenVINOExecutionProvider(ExecutionProvider):
    name = "OpenVINOExecutionProvider"
    # OpenVINO reads and writes host NumPy memory, so values cross no device boundary.
    device = "cpu"
    supports_concurrent_run = True

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(options)
        self.device_type: str = self.options.get("device_type", "CPU")
        hint, self.precision = PRECISIONS[self.options.get("precision", "f32")]
        self.core = openvino.Core()
        self.config = self._compile_config(hint)
        self._declined: dict[tuple[str, ...], str] = {}
        # Models read during the capability query, reused by compile() (read each claim once).
        self._prepared: dict[frozenset[int], tuple[Any, Any, list[int]]] = {}
        self._lock = threading.Lock()

    def _compile_config(self, hint: str) -> dict[str, Any]:
        """Compile properties: f32 unless asked (OpenVINO's CPU default is bf16 where the CPU
        has AVX512_BF16, which silently changes results)."""
        config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY"}
        if self.device_type == "AUTO" or "INFERENCE_PRECISION_HINT" in self._properties():
            config["INFERENCE_PRECISION_HINT"] = hint
        if self.options.get("num_streams"):
            config["NUM_STREAMS"] = str(self.options["num_streams"])
        if self.options.get("num_of_threads"):
            config["INFERENCE_NUM_THREADS"] = int(self.options["num_of_threads"])
        if self.options.get("cache_dir"):
            config["CACHE_DIR"] = str(self.options["cache_dir"])
        return config

    def _properties(self) -> set[str]:
        try:
            return set(self.core.get_property(self.device_type, "SUPPORTED_PROPERTIES"))
        except Exception:  # noqa: BLE001 - an absent property list just means no hints
            return set()

    # -- capability -----------------------------------------------------------------------------
    def get_capability(self, view: GraphView) -> list[Claim]:
        device = "CPU" if self.device_type == "AUTO" else self.device_type
        supported, reasons, queried = query_supported(self.core, device, view, [k for k, _ in view])
        claims = []
        for keys in convex_groups(view, supported):
            ident = frozenset(id(view.ir_nodes[k]) for k in keys)
            try:
                if queried is not None and set(keys) == supported:
                    ov_model, extracted = queried  # the common case: one group, read once
                else:
                    extracted = view.extract(keys).model
                    ov_model = read_model(self.core, extracted)
                positions = boundary_positions(ov_model, extracted)
            except Exception as exc:  # noqa: BLE001 - decline the group, keep the session correct
                boundary = isinstance(exc, BoundaryMismatch)
                why = "changes this subgraph's boundary" if boundary else "could not read it"
                for k in keys:
                    reasons[k] = f"OpenVINO {why}: {exc}"
                continue
            with self._lock:
                self._prepared[ident] = (ov_model, extracted, positions)
            claims.append(Claim(tuple(keys), kind="compiled", note=f"OpenVINO {self.device_type}"))
        with self._lock:
            for key, why in reasons.items():
                self._declined[tuple(view.nodes[key].outputs)] = why
        return claims

    def decline_reason(self, node: NodeInfo) -> str:
        return self._declined.get(tuple(node.outputs), "claimed by a provider earlier in the order")

    # -- compile ----------------------------------------------------------------------------------
    def compile(self, subgraph: CompiledSubgraph) -> CompiledPartition:
        with self._lock:
            prepared = self._prepared.pop(frozenset(id(n) for n in subgraph.ir_nodes), None)
        if prepared is None:
            extracted = subgraph.extract().model
            ov_model = read_model(self.core, extracted)
            prepared = (ov_model, extracted, boundary_positions(ov_model, extracted))
        ov_model, extracted, positions = prepared
        graph = extracted.graph
        return CompiledPartition(
            self._compile_model,
            ov_model,
            [np_dtype(v.type.tensor_type.elem_type) for v in graph.input],
            positions,
            [
                np_dtype(v.type.tensor_type.elem_type) if v.type.tensor_type.elem_type else None
                for v in graph.output
            ],
            dynamic=bool(self.options.get("enable_dynamic_shapes", True)),
        )

    def _compile_model(self, ov_model: Any) -> Any:
        return self.core.compile_model(ov_model, self.device_type, self.config)
