"""Type-conversion ai.onnx kernels: Cast, CastLike and BitCast (strings, narrow floats and sub-byte ints included)."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import onnx

from tessera.provider import NodeInfo, np_dtype
from tessera_cpu.kernels._registry import registry

_F8 = {
    np.dtype(ml_dtypes.float8_e4m3fn),
    np.dtype(ml_dtypes.float8_e4m3fnuz),
    np.dtype(ml_dtypes.float8_e5m2),
    np.dtype(ml_dtypes.float8_e5m2fnuz),
}
_E8M0 = np.dtype(ml_dtypes.float8_e8m0fnu)
_SUB_BYTE = {
    np.dtype(ml_dtypes.int4),
    np.dtype(ml_dtypes.uint4),
    np.dtype(ml_dtypes.int2),
    np.dtype(ml_dtypes.uint2),
    np.dtype(ml_dtypes.float4_e2m1fn),
}
_STRING = np.dtype(object)
_ROUND_MODES = ("up", "down", "nearest")
_TYPE_TO_ELEM = {
    f"tensor({'float' if name == 'FLOAT' else name.lower()})": value
    for name, value in onnx.TensorProto.DataType.items()
    if value != 0
}


_WIDE_FLOATS = {
    np.dtype(np.float16),
    np.dtype(ml_dtypes.bfloat16),
    np.dtype(np.float32),
    np.dtype(np.float64),
}


def _to_float8(x: np.ndarray, target: np.dtype, saturate: bool) -> np.ndarray:
    if not saturate:
        return np.asarray(x).astype(target)
    src = x if x.dtype in _WIDE_FLOATS else x.astype(np.float32)
    limit = float(ml_dtypes.finfo(target).max)
    # Out-of-range values and infinities go to +-max; clip keeps NaN.
    return np.asarray(np.clip(src, -limit, limit)).astype(target)


def _to_e8m0(x: np.ndarray, saturate: bool, round_mode: str) -> np.ndarray:
    """E8M0 holds only a biased exponent: take float32's exponent field and round per mode."""
    # 1-D working copy: on 0-d arrays NumPy ops return scalars that cannot be indexed.
    bits = np.asarray(x, dtype=np.float32).reshape(-1).view(np.uint32)
    exponent = ((bits >> np.uint32(23)) & np.uint32(0xFF)).astype(np.uint16)
    mantissa = bits & np.uint32(0x7FFFFF)
    special = exponent == 0xFF
    if round_mode == "up":
        exponent += (mantissa != 0).astype(np.uint16)
    elif round_mode == "nearest":
        half = (mantissa & np.uint32(0x400000)) != 0
        rest = (mantissa & np.uint32(0x3FFFFF)) != 0
        exponent += (half & (rest | (exponent > 0))).astype(np.uint16)
    if saturate:
        np.minimum(exponent, 0xFE, out=exponent)
        # Infinities saturate to the largest exponent; NaN stays NaN.
        exponent[special & (mantissa == 0)] = 0xFE
        exponent[special & (mantissa != 0)] = 0xFF
    else:
        np.minimum(exponent, 0xFF, out=exponent)
        exponent[special] = 0xFF
    return exponent.astype(np.uint8).view(_E8M0).reshape(np.shape(x))


def _format_float(v: float) -> str:
    # ORT prints 8 significant digits with INF/-INF/NaN spelled its way.
    if v != v:
        return "NaN"
    if v in (float("inf"), float("-inf")):
        return "INF" if v > 0 else "-INF"
    return format(v, ".8g")


def _to_string(x: np.ndarray) -> np.ndarray:
    if x.dtype.kind == "b":
        flat = ["1" if v else "0" for v in x.reshape(-1).tolist()]
    elif x.dtype.kind in "iu":
        flat = [str(v) for v in x.reshape(-1).tolist()]
    else:
        flat = [_format_float(v) for v in x.astype(np.float64).reshape(-1).tolist()]
    out = np.empty(len(flat), dtype=object)
    out[:] = flat
    return out.reshape(x.shape)


def _parse_int(s: str) -> int:
    try:
        return int(s)
    except ValueError:
        return int(float(s))  # "100.5" -> 100, as ORT's strtoll-style parse gives


def _parse_bool(s: str) -> bool:
    low = s.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    return float(low) != 0.0


def _from_string(x: np.ndarray, target: np.dtype, node: NodeInfo) -> np.ndarray:
    """Parse strings into bool, int64/uint64 or float64, whichever suits ``target``."""
    flat = x.reshape(-1).tolist()
    try:
        if target.kind == "b":
            vals = np.array([_parse_bool(str(s)) for s in flat], dtype=np.bool_)
        elif target.kind in "iu":
            vals = np.array(
                [_parse_int(str(s)) for s in flat],
                dtype=np.int64 if target.kind == "i" else np.uint64,
            )
        else:
            vals = np.array([float(str(s)) for s in flat], dtype=np.float64)
    except (ValueError, OverflowError) as exc:
        raise ValueError(f"{node.describe()}: cannot cast a string to {target}: {exc}") from None
    return vals.reshape(x.shape)


def cast_array(
    x: np.ndarray, target: np.dtype, saturate: bool, round_mode: str, node: NodeInfo
) -> np.ndarray:
    """``x`` converted to ``target`` by ONNX Cast rules."""
    if x.dtype == target:
        # Saturation also maps a float8 type's own infinities (E5M2) to its max.
        if saturate and target in _F8 and np.isinf(x).any():
            return _to_float8(x, target, saturate)
        return x
    if target == _STRING:
        return _to_string(x)
    if x.dtype == _STRING:
        # Parsed values then follow the numeric rules (float8 saturation included).
        x = _from_string(x, target, node)
        if x.dtype == target:
            return x
    with np.errstate(invalid="ignore", over="ignore"):
        if target in _F8:
            return _to_float8(x, target, saturate)
        if target == _E8M0:
            return _to_e8m0(x, saturate, round_mode)
        if target.kind == "b":
            return np.asarray(x != 0)  # NaN compares unequal to zero, so it maps to True
        return x.astype(target)


def _attrs(node: NodeInfo) -> tuple[bool, str]:
    saturate = bool(node.attr("saturate", 1))
    round_mode = node.attr("round_mode", "up")
    if round_mode not in _ROUND_MODES:
        raise ValueError(
            f"{node.describe()}: round_mode must be one of {_ROUND_MODES}, got {round_mode!r}"
        )
    return saturate, round_mode


@registry.kernel("Cast", since=(1, 6, 9, 13, 19, 21, 23, 24, 25, 28))
def cast(node: NodeInfo):
    to = node.attr("to")
    if isinstance(to, str):  # opset 1 names the type as a string, e.g. "FLOAT"
        try:
            to = onnx.TensorProto.DataType.Value(to.upper())
        except ValueError:
            raise ValueError(f"{node.describe()}: unknown target type {to!r}") from None
    try:
        target = np_dtype(to)
    except ValueError:
        raise ValueError(
            f"{node.describe()}: casting to element type {to} is not supported"
        ) from None
    saturate, round_mode = _attrs(node)

    def compute(x):
        return (cast_array(x, target, saturate, round_mode, node),)

    return compute


@registry.kernel("CastLike", since=(15, 19, 21, 23, 24, 25))
def cast_like(node: NodeInfo):
    saturate, round_mode = _attrs(node)

    def compute(x, like):
        return (cast_array(x, like.dtype, saturate, round_mode, node),)

    return compute


# Sub-byte types have no whole-byte NumPy view to reinterpret, so BitCast declines them.
_BITCAST_TYPES = tuple(
    t
    for t in (
        "tensor(bool)",
        "tensor(int8)",
        "tensor(uint8)",
        "tensor(int16)",
        "tensor(uint16)",
        "tensor(int32)",
        "tensor(uint32)",
        "tensor(int64)",
        "tensor(uint64)",
        "tensor(float16)",
        "tensor(bfloat16)",
        "tensor(float)",
        "tensor(double)",
        "tensor(complex64)",
        "tensor(complex128)",
        "tensor(float8e4m3fn)",
        "tensor(float8e4m3fnuz)",
        "tensor(float8e5m2)",
        "tensor(float8e5m2fnuz)",
        "tensor(float8e8m0)",
    )
)


@registry.kernel("BitCast", since=26, types={"T1": _BITCAST_TYPES})
def bit_cast(node: NodeInfo):
    to = node.attr("to")
    try:
        target = np_dtype(to)
    except ValueError:
        raise ValueError(
            f"{node.describe()}: BitCast to element type {to} is not supported"
        ) from None
    if target in _SUB_BYTE or target == _STRING:
        raise ValueError(
            f"{node.describe()}: BitCast to {target} (sub-byte or string) is not supported"
        )
    source = node.input_types[0] if node.input_types else None
    elem = _TYPE_TO_ELEM.get(source) if source else None
    if elem is not None and np_dtype(elem).itemsize != target.itemsize:
        raise ValueError(
            f"{node.describe()}: BitCast needs equal element sizes, got {source} and {target}"
        )

    def compute(x):
        if x.dtype.itemsize != target.itemsize:
            raise ValueError(
                f"{node.describe()}: BitCast needs equal element sizes, got {x.dtype} and {target}"
            )
        return (np.asarray(x, order="C").view(target),)

    return compute
