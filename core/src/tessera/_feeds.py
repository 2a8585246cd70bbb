"""Feed validation: every input is checked for name, kind, dtype, rank and fixed dims before a run."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
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


@dataclasses.dataclass(frozen=True)
class DeviceFeed:
    """A bound input that lives on a device (``IOBinding.bind_ortvalue_input`` of a device
    OrtValue). A provider on that device reads it in place (``ExecutionProvider.adopt``);
    anything else gets a host copy, made through ``to_host``."""

    value: Any
    device_type: str
    device_id: int
    dtype: np.dtype
    shape: tuple[int, ...]
    to_host: Callable[[Any], Any]
    copied: np.ndarray | None = None  # this run's host copy, once one was made

    def host(self) -> np.ndarray:
        if self.copied is not None:
            return self.copied
        value = np.asarray(self.to_host(self.value))
        value.flags.writeable = False  # as check_tensor leaves host feeds
        return value

    def on(self, device: str) -> bool:
        """Whether a plan device string ("opencl:...", "cuda:0") is of this value's type."""
        return device.split(":", 1)[0].lower() == self.device_type


def check_device_feed(spec: InputSpec, feed: DeviceFeed) -> DeviceFeed:
    if spec.kind != "tensor":
        raise InvalidArgument(
            f"input {spec.name!r} is {spec.type_str}; only tensors can be bound on a device"
        )
    if spec.dtype is not None and feed.dtype != spec.dtype:
        raise InvalidArgument(
            f"input {spec.name!r} is bound to a {feed.device_type} value of dtype {feed.dtype}, "
            f"expected {spec.type_str}"
        )
    _check_dims(spec, feed.shape)
    return feed


def _check_dims(spec: InputSpec, shape: tuple) -> None:
    if spec.dims is None:
        return
    if len(shape) != len(spec.dims):
        raise InvalidArgument(
            f"input {spec.name!r} has rank {len(shape)} (shape {list(shape)}), "
            f"expected rank {len(spec.dims)} (shape {_dims(spec.dims)})"
        )
    for axis, (want, got) in enumerate(zip(spec.dims, shape)):
        if isinstance(want, int) and want != got:
            raise InvalidArgument(
                f"input {spec.name!r} has shape {list(shape)}, expected {_dims(spec.dims)}: "
                f"dimension {axis} must be {want}, got {got}"
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
    _check_dims(spec, value.shape)
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
        if isinstance(value, DeviceFeed):
            value = check_device_feed(spec, value)
        elif spec.kind == "tensor":
            value = check_tensor(spec, value)
        elif spec.kind == "seq" and not isinstance(value, list):
            raise InvalidArgument(
                f"input {spec.name!r} is {spec.type_str}: pass a list of numpy arrays"
            )
        values.append(value)
    return values
