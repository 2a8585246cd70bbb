"""ORT-compatible option objects: SessionOptions, RunOptions, GraphOptimizationLevel, metadata."""

from __future__ import annotations

import dataclasses
import enum


class GraphOptimizationLevel(enum.IntEnum):
    ORT_DISABLE_ALL = 0
    ORT_ENABLE_BASIC = 1
    ORT_ENABLE_EXTENDED = 2
    ORT_ENABLE_LAYOUT = 3
    ORT_ENABLE_ALL = 99


class ExecutionMode(enum.IntEnum):
    ORT_SEQUENTIAL = 0
    ORT_PARALLEL = 1


class SessionOptions:
    """Session settings, named as in onnxruntime. Unknown attributes are rejected."""

    def __init__(self) -> None:
        self.graph_optimization_level = GraphOptimizationLevel.ORT_ENABLE_ALL
        self.optimized_model_filepath = ""
        self.intra_op_num_threads = 0
        self.inter_op_num_threads = 0
        self.execution_mode = ExecutionMode.ORT_SEQUENTIAL
        self.enable_profiling = False
        self.profile_file_prefix = "tessera_profile"
        self.log_severity_level = 2
        self.log_verbosity_level = 0
        self.logid = ""
        self.enable_cpu_mem_arena = True
        self.enable_mem_pattern = True
        self.enable_mem_reuse = True
        self.use_deterministic_compute = False
        self.max_subgraph_depth = 64
        """Deepest If/Loop/Scan nesting a model may have (Tessera only)."""
        self.max_tensor_bytes = 8 << 30
        """Largest tensor a model may make a kernel allocate, in bytes (Tessera only). Checked at
        creation for shapes known statically and at run time for data-dependent ones."""
        self._config: dict[str, str] = {}
        self._explicit: set[str] = set()  # options the caller set (not left at their default)

    def __setattr__(self, name: str, value) -> None:
        if not name.startswith("_") and "_config" in self.__dict__:
            if not hasattr(self, name):
                raise AttributeError(f"SessionOptions has no option {name!r}")
            self._explicit.add(name)
        super().__setattr__(name, value)

    def add_session_config_entry(self, key: str, value: str) -> None:
        self._config[str(key)] = str(value)

    def get_session_config_entry(self, key: str) -> str:
        if key not in self._config:
            raise KeyError(f"session config entry {key!r} is not set")
        return self._config[key]

    def add_free_dimension_override_by_name(self, name: str, value: int) -> None:
        self._config[f"tessera.free_dim.{name}"] = str(int(value))

    @property
    def fallback_disabled(self) -> bool:
        return self._config.get("session.disable_cpu_ep_fallback", "0") == "1"


class RunOptions:
    """Per-run settings, named as in onnxruntime."""

    def __init__(self) -> None:
        self.log_severity_level = 2
        self.log_verbosity_level = 0
        self.run_tag = ""
        self.terminate = False
        self.only_execute_path_to_fetches = False
        self._config: dict[str, str] = {}

    def add_run_config_entry(self, key: str, value: str) -> None:
        self._config[str(key)] = str(value)

    def get_run_config_entry(self, key: str) -> str:
        return self._config[key]


@dataclasses.dataclass(frozen=True)
class NodeArg:
    """A graph input or output as ORT describes it: name, ORT type string, shape."""

    name: str
    type: str
    shape: list


@dataclasses.dataclass(frozen=True)
class ModelMetadata:
    producer_name: str
    graph_name: str
    domain: str
    description: str
    graph_description: str
    version: int
    custom_metadata_map: dict
