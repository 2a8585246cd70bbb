"""Feed validation: every input is checked for name, kind, dtype, rank and fixed dims before a run."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import onnx_ir as ir

from tessera._errors import InvalidArgument
from tessera._graph import shape_tuple
from tessera._types import np_dtype, type_string, value_type_string


@dataclasses.dataclass(frozen=True)
class InputSpec:
    name: str
    type_str: str | None
    kind: str  # "tensor", "seq", "optional", "map", "unknown"
    dtype: np.dtype | None
    dims: tuple | None
    has_default: bool


def input_spec(value: ir.Value, has_default: bool) -> InputSpec:
    t = value.type
    kind, dtype = "unknown", None
    if isinstance(t, ir.TensorType):
        kind = "tensor"
        if t.dtype != ir.DataType.UNDEFINED:
            dtype = np_dtype(t.dtype)
    elif isinstance(t, ir.SequenceType):
        kind = "seq"
    elif isinstance(t, ir.OptionalType):
        kind = "optional"
    elif t is not None:
        kind = "map"
    return InputSpec(
        value.name,
        type_string(t),
        kind,
        dtype,
        shape_tuple(value) if kind == "tensor" else None,
        has_default,
    )


def check_tensor(spec: InputSpec, value: Any) -> np.ndarray:
    if not isinstance(value, np.ndarray):
        if not isinstance(value, (list, tuple, int, float, bool, np.generic)):
            raise InvalidArgument(
                f"input {spec.name!r} must be a numpy.ndarray of {spec.type_str}, got {type(value).__name__}"
            )
        try:
            dtype = spec.dtype if spec.dtype is not None and spec.dtype != object else None
            value = np.asarray(value, dtype=dtype)
        except (ValueError, TypeError, OverflowError) as exc:
            raise InvalidArgument(
                f"input {spec.name!r} cannot be converted to a {spec.type_str} array ({exc}); "
                "pass a numpy.ndarray"
            ) from None
    elif type(value) is not np.ndarray:
        # Subclasses (np.matrix, masked arrays) would carry their own semantics into kernels;
        # onnxruntime reads the plain buffer, and so do we.
        value = np.asarray(value)
    if not value.dtype.isnative:
        # onnxruntime reinterprets big-endian buffers as native (wrong values); convert instead.
        value = value.astype(value.dtype.newbyteorder("="))
    if spec.dtype is not None and value.dtype != spec.dtype:
        if not (spec.dtype == object and value.dtype.kind == "U"):
            raise InvalidArgument(
                f"input {spec.name!r} has dtype {value.dtype} ({value_type_string(value)}), "
                f"expected {spec.type_str}; convert it with .astype(numpy.{spec.dtype.name})"
                if spec.dtype != object
                else f"input {spec.name!r} has dtype {value.dtype}, expected tensor(string) (an object or str array)"
            )
        value = value.astype(object)
    if spec.dims is not None:
        if value.ndim != len(spec.dims):
            raise InvalidArgument(
                f"input {spec.name!r} has rank {value.ndim} (shape {list(value.shape)}), "
                f"expected rank {len(spec.dims)} (shape {_dims(spec.dims)})"
            )
        for axis, (want, got) in enumerate(zip(spec.dims, value.shape)):
            if isinstance(want, int) and want != got:
                raise InvalidArgument(
                    f"input {spec.name!r} has shape {list(value.shape)}, expected {_dims(spec.dims)}: "
                    f"dimension {axis} must be {want}, got {got}"
                )
    # A read-only view: kernels may return views of a feed (Identity, Reshape), and the session
    # copies read-only outputs, so the caller never gets its own input back as an output; a
    # kernel that wrongly writes into a feed fails instead of changing the caller's array.
    if value.flags.writeable:
        value = value.view()
        value.flags.writeable = False
    return value


def _dims(dims: tuple) -> str:
    return "[" + ", ".join(str(d) if d is not None else "?" for d in dims) + "]"


def order_feeds(specs: Sequence[InputSpec], feed: Mapping[str, Any]) -> list[Any]:
    """Validated values in graph-input order; raises InvalidArgument naming the input at fault."""
    if not isinstance(feed, Mapping):
        raise InvalidArgument(
            f"input_feed must be a dict of input name -> value, got {type(feed).__name__}"
        )
    known = {s.name for s in specs}
    extra = [k for k in feed if k not in known]
    if extra:
        required = [s.name for s in specs if not s.has_default]
        raise InvalidArgument(f"unknown input name(s) {extra}; the model's inputs are {required}")
    values = []
    for spec in specs:
        if spec.name not in feed:
            if spec.has_default:
                values.append(None)
                continue
            raise InvalidArgument(
                f"missing input {spec.name!r} ({spec.type_str}); feed every model input"
            )
        value = feed[spec.name]
        if spec.kind == "tensor":
            value = check_tensor(spec, value)
        elif spec.kind == "seq" and not isinstance(value, list):
            raise InvalidArgument(
                f"input {spec.name!r} is {spec.type_str}: pass a list of numpy arrays"
            )
        values.append(value)
    return values
