"""The kernel registry: kernels keyed by (domain, op_type, since_version) with type constraints.

A kernel is a *factory*. At session creation the core calls it once per node with a
:class:`NodeInfo`; it parses attributes and returns a ``compute(*inputs) -> tuple`` closure that the
run loop calls with no further dispatch.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import onnx
import onnx_ir as ir

from tessera._errors import InvalidArgument, NoKernelError
from tessera._types import dtype_of_type_string

Compute = Callable[..., tuple]
KernelFactory = Callable[["NodeInfo"], Compute]

_MISSING = object()
DEFAULT_MAX_TENSOR_BYTES = 8 << 30  # 8 GiB


def format_bytes(n: int) -> str:
    for unit, size in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} bytes"


@dataclasses.dataclass
class NodeInfo:
    """What a kernel factory knows about the node it builds a compute function for.

    ``inputs``/``outputs`` hold value names ("" for an omitted optional input). ``input_types``
    and ``output_types`` are ORT-style type strings (``tensor(float)``) or None where the model
    does not say. ``input_shapes`` hold static dims (int), symbolic dims (str) or None.
    ``implicit_inputs`` are outer-scope values used by the node's subgraphs: the run loop passes
    them after the explicit inputs, and :meth:`subgraph` runners take them as ``captured``.
    """

    op_type: str
    domain: str
    name: str
    opset: int
    attrs: dict[str, Any]
    inputs: list[str]
    outputs: list[str]
    input_types: list[str | None]
    output_types: list[str | None]
    input_shapes: list[tuple | None]
    output_shapes: list[tuple | None] = dataclasses.field(default_factory=list)
    implicit_inputs: list[str] = dataclasses.field(default_factory=list)
    since_version: int = 0
    # Set by the planner for nodes with graph attributes: attr name -> runner builder.
    _subgraph_builder: Callable[[str], Callable] | None = dataclasses.field(
        default=None, repr=False
    )
    # The largest tensor (in bytes) a kernel may allocate; SessionOptions.max_tensor_bytes.
    max_tensor_bytes: int = DEFAULT_MAX_TENSOR_BYTES
    # The onnx_ir.Graph holding the node, for ops that refer to other values by name (Gradient).
    graph: Any = dataclasses.field(default=None, repr=False)
    # Values known at creation (initializers and constants), by input position.
    constant_inputs: dict[int, Any] = dataclasses.field(default_factory=dict, repr=False)
    # For a node a provider's fusion made: the names of the nodes it replaced.
    fused_from: tuple[str, ...] = ()

    @property
    def num_inputs(self) -> int:
        return len(self.inputs)

    @property
    def num_outputs(self) -> int:
        return len(self.outputs)

    def attr(self, name: str, default: Any = _MISSING) -> Any:
        """An attribute's Python value, or ``default``; a missing required attribute raises."""
        if name in self.attrs:
            return self.attrs[name]
        if default is _MISSING:
            raise ValueError(
                f"node {self.name!r} ({self.op_type}) lacks the required attribute {name!r}"
            )
        return default

    def has_input(self, index: int) -> bool:
        """Whether optional input ``index`` is present (not omitted and not past the end)."""
        return index < len(self.inputs) and self.inputs[index] != ""

    def output_dtype(self, index: int = 0):
        """NumPy dtype of tensor output ``index`` when the model declares it, else None."""
        return dtype_of_type_string(
            self.output_types[index] if index < len(self.output_types) else None
        )

    def subgraph(self, attr_name: str) -> Callable[..., list]:
        """A runner for graph attribute ``attr_name``: ``runner(inputs, captured) -> list``.

        ``inputs`` are the subgraph's formal inputs in order; ``captured`` is the tuple of
        implicit-input values the node received after its explicit inputs.
        """
        if self._subgraph_builder is None:
            raise RuntimeError(f"node {self.name!r} ({self.op_type}) has no subgraph {attr_name!r}")
        return self._subgraph_builder(attr_name)

    def check_size(self, shape: Sequence[int], dtype: Any) -> None:
        """Raise :class:`InvalidArgument` before allocating a tensor of ``shape`` that is negative
        or larger than the session's ``max_tensor_bytes``. Kernels whose output size depends on
        data (ConstantOfShape, Expand, Tile, Range, Resize, Pad, ...) call this first."""
        count = 1
        for d in shape:
            d = int(d)
            if d < 0:
                raise InvalidArgument(
                    f"{self.describe()}: negative dimension {d} in shape {list(shape)}"
                )
            count *= d
        nbytes = count * np.dtype(dtype).itemsize
        if nbytes > self.max_tensor_bytes:
            raise InvalidArgument(
                f"{self.describe()}: a {np.dtype(dtype)} tensor of shape {list(shape)} needs "
                f"{format_bytes(nbytes)}, over the session limit of {format_bytes(self.max_tensor_bytes)}; "
                "raise SessionOptions.max_tensor_bytes if the model is legitimate"
            )

    def describe(self) -> str:
        return f"node {self.name!r} (op {self.domain or 'ai.onnx'}::{self.op_type}, opset {self.opset})"


@dataclasses.dataclass(frozen=True)
class KernelDef:
    domain: str
    op_type: str
    since_version: int
    types: Mapping[str | int, frozenset[str]] | None
    factory: KernelFactory


def _schema(domain: str, op_type: str, opset: int):
    try:
        return onnx.defs.get_schema(op_type, opset, domain)
    except onnx.defs.SchemaError:
        return None


def schema_version(domain: str, op_type: str, opset: int) -> int | None:
    """The op's schema version in effect at ``opset`` (None for ops onnx does not know)."""
    schema = _schema(domain, op_type, opset)
    return schema.since_version if schema is not None else None


class KernelRegistry:
    """Kernels for one provider, keyed by ``(domain, op_type, since_version)``.

    Lookup picks the registration whose ``since_version`` equals the op's schema version in
    effect at the model's opset (the highest schema version at or below it). A kernel therefore
    declares every schema version it implements, and never claims a newer version whose semantics
    it has not seen. For domains onnx has no schemas for, the highest registered
    ``since_version`` at or below the model's opset is used.
    """

    def __init__(self, provider_name: str = "") -> None:
        self.provider_name = provider_name
        self._defs: dict[tuple[str, str], dict[int, KernelDef]] = {}
        self._checks: dict[tuple[str, str], list[Callable[[NodeInfo], str | None]]] = {}

    def check(
        self, *op_types: str, domain: str = ""
    ) -> Callable[[Callable[[NodeInfo], str | None]], Callable[[NodeInfo], str | None]]:
        """Decorator registering a claim check for ``op_types`` (API 1.1).

        ``fn(node)`` runs after a kernel matched the node (``node.since_version`` is set) and
        returns why the node is declined anyway (an attribute or input form the kernel does not
        implement), or None. :meth:`find` returns that reason, so the default capability query
        declines the node and ``session.explain()`` shows why. Several checks of one op all
        apply, in registration order.
        """

        def register(fn: Callable[[NodeInfo], str | None]) -> Callable[[NodeInfo], str | None]:
            for op in op_types:
                self._checks.setdefault((domain, op), []).append(fn)
            return fn

        return register

    def kernel(
        self,
        op_type: str,
        since: int | Iterable[int],
        *,
        domain: str = "",
        types: Mapping[str | int, Iterable[str]] | None = None,
    ) -> Callable[[KernelFactory], KernelFactory]:
        """Decorator registering a kernel factory for one or more schema versions.

        ``types`` maps a type-constraint name of the op's schema (``"T"``) or an input index to
        the type strings the kernel accepts; inputs not named are unconstrained.
        """
        versions = (since,) if isinstance(since, int) else tuple(since)
        frozen = None if types is None else {k: frozenset(v) for k, v in types.items()}

        def register(factory: KernelFactory) -> KernelFactory:
            slot = self._defs.setdefault((domain, op_type), {})
            for v in versions:
                if v in slot:
                    raise ValueError(
                        f"{self.provider_name or 'registry'}: {domain or 'ai.onnx'}::{op_type} "
                        f"version {v} is registered twice"
                    )
                slot[v] = KernelDef(domain, op_type, v, frozen, factory)
            return factory

        return register

    def ops(self) -> list[tuple[str, str, list[int]]]:
        """Every registered (domain, op_type, versions), sorted."""
        return sorted((d, o, sorted(v)) for (d, o), v in self._defs.items())

    def versions(self, domain: str, op_type: str) -> list[int]:
        return sorted(self._defs.get((domain, op_type), {}))

    def find(self, node: NodeInfo) -> KernelDef | str:
        """The matching KernelDef, or a sentence saying why there is none."""
        slot = self._defs.get((node.domain, node.op_type))
        where = f"{node.domain or 'ai.onnx'}::{node.op_type}"
        if not slot:
            return f"no kernel for {where}"
        wanted = schema_version(node.domain, node.op_type, node.opset)
        if wanted is None:
            candidates = [v for v in slot if v <= node.opset]
            if not candidates:
                return f"{where} kernels exist for versions {sorted(slot)}, none at or below opset {node.opset}"
            wanted = max(candidates)
        kdef = slot.get(wanted)
        if kdef is None:
            return (
                f"{where} at opset {node.opset} is schema version {wanted}; "
                f"kernels are registered for versions {sorted(slot)}"
            )
        bad = self._type_mismatch(kdef, node)
        if bad:
            return bad
        checks = self._checks.get((node.domain, node.op_type))
        if checks:
            node.since_version = kdef.since_version
            for fn in checks:
                reason = fn(node)
                if reason:
                    return reason
        return kdef

    def lookup(self, node: NodeInfo) -> KernelDef:
        """Like :meth:`find`, but a miss raises :class:`NoKernelError` naming node and provider."""
        found = self.find(node)
        if isinstance(found, str):
            raise NoKernelError(
                f"{self.provider_name or 'provider'} cannot run {node.describe()}: {found}"
            )
        return found

    @staticmethod
    def _type_mismatch(kdef: KernelDef, node: NodeInfo) -> str | None:
        if not kdef.types:
            return None
        schema = _schema(node.domain, node.op_type, node.opset)
        params: list[str | None] = []
        if schema is not None:
            formal = list(schema.inputs)
            for i in range(len(node.inputs)):
                if formal:
                    p = formal[min(i, len(formal) - 1)]
                    if (
                        i >= len(formal)
                        and p.option != onnx.defs.OpSchema.FormalParameterOption.Variadic
                    ):
                        params.append(None)
                    else:
                        params.append(p.type_str)
                else:
                    params.append(None)
        for i, t in enumerate(node.input_types):
            if t is None or not node.has_input(i):
                continue
            allowed = kdef.types.get(i)
            name = params[i] if i < len(params) else None
            if allowed is None and name is not None:
                allowed = kdef.types.get(name)
            if allowed is not None and t not in allowed:
                label = f"input {i}" + (f" (type parameter {name})" if name else "")
                return f"{label} has type {t}, the kernel accepts {', '.join(sorted(allowed))}"
        return None

    def build(self, node: NodeInfo) -> Compute:
        """Look up and instantiate the kernel for ``node``."""
        kdef = self.lookup(node)
        node.since_version = kdef.since_version
        return kdef.factory(node)


def attribute_value(attr: ir.Attr) -> Any:
    """Python value of an onnx-ir attribute: numbers, str, lists, NumPy arrays, or ir.Graph."""
    kind = attr.type
    value = attr.value
    if kind == ir.AttributeType.TENSOR:
        return value.numpy()
    if kind == ir.AttributeType.TENSORS:
        return [t.numpy() for t in value]
    if kind == ir.AttributeType.STRING:
        return value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else value
    if kind == ir.AttributeType.STRINGS:
        return [v.decode("utf-8", "surrogateescape") if isinstance(v, bytes) else v for v in value]
    if kind in (ir.AttributeType.INTS, ir.AttributeType.FLOATS):
        return list(value)
    if kind == ir.AttributeType.SPARSE_TENSOR:
        return value
    return value


def constant_tensor(value: ir.Value) -> Any | None:
    """The NumPy value of an initializer, or None."""
    tensor = value.const_value
    return None if tensor is None else tensor.numpy()


def node_signature(types: Sequence[str | None]) -> str:
    return ", ".join(t or "?" for t in types)
