"""The provider contract: what a plugin's factory and execution provider must and may implement.

Required methods raise ``NotImplementedError`` naming what to implement; optional ones have safe
defaults. A kernel-based provider only needs a :class:`KernelRegistry`; a compiling provider
overrides :meth:`ExecutionProvider.get_capability` and :meth:`ExecutionProvider.compile`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import numpy as np

from tessera._fusion import Fusion
from tessera._kernels import Compute, KernelDef, KernelRegistry, NodeInfo

API_VERSION = "1.3"
"""The provider API version this core implements. A factory declares the version it targets in
``ProviderFactory.api_version``; the major numbers must match."""


@dataclasses.dataclass(frozen=True)
class Claim:
    """A provider's claim on nodes of a :class:`GraphView`.

    ``kind="kernel"`` claims exactly one node, run through the provider's kernel registry.
    ``kind="compiled"`` claims a group of nodes that the provider compiles into one callable
    with :meth:`ExecutionProvider.compile`.
    """

    nodes: tuple[int, ...]
    kind: Literal["kernel", "compiled"] = "kernel"
    note: str = ""


@dataclasses.dataclass
class GraphView:
    """The nodes still unassigned when a provider is asked for claims, keyed by node index."""

    nodes: dict[int, NodeInfo]
    graph: Any  # the onnx_ir.Graph
    ir_nodes: dict[int, Any] = dataclasses.field(default_factory=dict)  # key -> onnx_ir.Node
    opsets: Mapping[str, int] = dataclasses.field(default_factory=dict)
    # SessionOptions.graph_optimization_level (ORT's values; 99 = ORT_ENABLE_ALL). A provider
    # that fuses inside its claims fuses only from 2 (ORT_ENABLE_EXTENDED) up, as onnxruntime.
    optimization_level: int = 99

    @property
    def fusion_allowed(self) -> bool:
        """Whether the session's optimization level allows provider fusions (API 1.1)."""
        return self.optimization_level >= 2

    def __iter__(self):
        return iter(self.nodes.items())

    def __len__(self) -> int:
        return len(self.nodes)

    def extract(self, keys: Sequence[int]):
        """The nodes ``keys`` as a standalone ONNX model (see :class:`tessera._extract.ExtractedModel`),
        for asking a compiler what it supports."""
        from tessera._extract import extract_model

        return extract_model([self.ir_nodes[k] for k in sorted(keys)], self.graph, self.opsets)


@dataclasses.dataclass
class CompiledSubgraph:
    """What :meth:`ExecutionProvider.compile` receives: the claimed nodes and their boundary.

    The compiled callable is called with the values of ``inputs``, in order, and returns the
    values of ``outputs``, in order. ``constants`` are the initializers the nodes read; they are
    not passed at run time (:meth:`extract` embeds them in the model).
    """

    nodes: list[NodeInfo]
    inputs: list[str]
    outputs: list[str]
    graph: Any
    constants: dict[str, Any] = dataclasses.field(default_factory=dict)
    ir_nodes: list[Any] = dataclasses.field(default_factory=list)
    opsets: Mapping[str, int] = dataclasses.field(default_factory=dict)

    def extract(self):
        """The claim as a standalone ONNX model whose inputs and outputs are ``inputs``/``outputs``."""
        from tessera._extract import extract_model

        return extract_model(self.ir_nodes, self.graph, self.opsets)


@dataclasses.dataclass(frozen=True)
class OptionSpec:
    """One provider option: its type, default and a sentence of documentation."""

    type: type
    default: Any = None
    doc: str = ""


class ExecutionProvider:
    """Base class of a created provider. Subclasses set ``registry`` or override ``compile``."""

    name: str = ""
    device: str = "cpu"
    precision: str = "fp32"
    supports_concurrent_run: bool = True
    efficient_intra_op: bool = False
    """True when the provider's kernels split their own work across the session's threads at
    little cost per split (a native thread pool): concurrent branches would only compete with
    them, so sessions that leave ``execution_mode`` alone stay sequential. (API 1.3)"""
    registry: KernelRegistry | None = None

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        self.options = dict(options or {})

    # -- capability -----------------------------------------------------------------------------
    def get_capability(self, view: GraphView) -> list[Claim]:
        """Claims over ``view``'s nodes. The default claims each node the registry can run."""
        if self.registry is None:
            raise NotImplementedError(
                f"provider {self.name!r}: set `registry` to a KernelRegistry, or override "
                "get_capability() (and compile()) for a compiling provider"
            )
        return [
            Claim((key,)) for key, node in view if isinstance(self.registry.find(node), KernelDef)
        ]

    def decline_reason(self, node: NodeInfo) -> str:
        """Why this provider does not claim ``node`` (shown by ``session.explain()``)."""
        if self.registry is None:
            return "not part of any claim"
        found = self.registry.find(node)
        return found if isinstance(found, str) else "claimed by a provider earlier in the order"

    # -- execution ------------------------------------------------------------------------------
    def create_kernel(self, node: NodeInfo) -> Compute:
        """The compute function for a node this provider claimed with ``kind="kernel"``."""
        if self.registry is None:
            raise NotImplementedError(
                f"provider {self.name!r} made a kernel claim but has no `registry`"
            )
        return self.registry.build(node)

    def fuse(self, view: GraphView) -> Sequence[Fusion]:
        """Fusions over this provider's kernel claims, asked once per session after
        partitioning (at ``ORT_ENABLE_EXTENDED`` and above). ``view`` holds only the nodes this
        provider claimed as kernels, with the whole graph for looking at consumers. Each
        :class:`~tessera.provider.Fusion` replaces a chain of them by one node of the provider's
        own domain, which its registry must have a kernel for. The default fuses nothing."""
        return []

    def compile(self, subgraph: CompiledSubgraph) -> Callable[..., Sequence[Any]]:
        """Compile a ``kind="compiled"`` claim into ``fn(*inputs) -> outputs``."""
        raise NotImplementedError(
            f"provider {self.name!r} made a compiled claim: implement compile(subgraph)"
        )

    # -- transfers (host is NumPy) ----------------------------------------------------------------
    def to_device(self, value: Any) -> Any:
        """Host value -> this provider's device. The default keeps host values as they are."""
        return value

    def to_host(self, value: Any) -> Any:
        """Device value -> NumPy. The default assumes values already live on the host."""
        return value

    def adopt(self, value: Any) -> Any | None:
        """A device value made outside this session (another session's output kept on its
        device, or an OrtValue the caller made): return it as this provider's kernels read it,
        after whatever synchronisation that needs, or None if it cannot be read here directly
        (another device, another context). On None the core copies it through the host. The
        default adopts nothing. Added in API 1.2."""
        return None

    # -- optional run hooks -------------------------------------------------------------------------
    def on_run_start(self) -> None:
        """Called before each ``run()`` that uses this provider."""

    def on_run_end(self) -> None:
        """Called after each ``run()`` that uses this provider (also when it raised)."""


class ProviderFactory:
    """A provider as a plugin declares it. Subclasses set the class attributes and ``create``."""

    name: str = ""
    aliases: tuple[str, ...] = ()
    vendor: str = ""
    version: str = "0"
    api_version: str = ""
    """The provider API this factory was written against (``"1.0"``). Required: a factory that
    leaves it empty is reported broken, since it cannot promise to work with any core."""
    default_priority: int = 0
    """Higher runs earlier in the claim order. The CPU provider uses -1000 so it comes last."""
    options: Mapping[str, OptionSpec] = {}
    threads_option: str = ""
    """The option that takes ``SessionOptions.intra_op_num_threads`` (when the session sets it and
    the user's options for this provider do not). Empty: the session's thread count is not
    passed. (API 1.1)"""
    distribution: str = ""

    def devices(self) -> list[str]:
        """Usable devices, probed lazily. Return [] with ``self.unavailable_reason`` set when the
        provider is installed but has no hardware (no driver, no device, library missing)."""
        return ["cpu"]

    unavailable_reason: str = ""

    def auto_select(self) -> bool:
        """Whether this provider joins sessions that name no providers. Optional; the default is
        yes. A provider whose only devices would be slower than the CPU provider (an OpenCL CPU
        device, say) returns False and is used only when asked for by name."""
        return True

    def create(self, options: Mapping[str, Any]) -> ExecutionProvider:
        raise NotImplementedError(
            f"provider factory {self.name!r}: implement create(options) -> ExecutionProvider"
        )

    def validate_options(self, options: Mapping[str, Any]) -> dict[str, Any]:
        """Options checked against ``self.options`` with defaults filled in; unknown ones raise."""
        from tessera._errors import InvalidArgument

        unknown = sorted(set(options) - set(self.options))
        if unknown:
            valid = ", ".join(sorted(self.options)) or "(none)"
            raise InvalidArgument(
                f"provider {self.name!r} has no option(s) {', '.join(map(repr, unknown))}; "
                f"valid options: {valid}"
            )
        resolved = {k: spec.default for k, spec in self.options.items()}
        for key, value in options.items():
            spec = self.options[key]
            try:
                resolved[key] = _convert_option(value, spec.type)
            except (TypeError, ValueError):
                raise InvalidArgument(
                    f"provider {self.name!r} option {key!r} must be {spec.type.__name__}, "
                    f"got {value!r}"
                ) from None
        return resolved

    def all_names(self) -> tuple[str, ...]:
        return (self.name, *self.aliases)


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _convert_option(value: Any, kind: type) -> Any:
    """Convert an option value to its declared type. ORT-style options often arrive as strings,
    and ``bool("false")`` is True, so booleans are parsed rather than cast."""
    if isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
        return value
    if kind is bool:
        text = str(value).strip().lower()
        if text in _TRUE or text in _FALSE:
            return text in _TRUE
        raise ValueError(value)
    return kind(value)


def host_array(value: Any) -> Any:
    """Normalise a result for the caller: NumPy scalars become 0-d arrays, and read-only arrays
    (constants of the model, or views of them) are copied so the caller owns what it gets."""
    if isinstance(value, np.ndarray):
        return value if value.flags.writeable else value.copy()
    if isinstance(value, np.generic):
        return np.asarray(value)
    return value
