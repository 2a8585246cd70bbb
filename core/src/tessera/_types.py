"""ONNX value types: element-type <-> NumPy dtype mapping and ORT-style type strings."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import onnx
import onnx_ir as ir

# ONNX element type number -> NumPy dtype. The narrow float and int types come from ml_dtypes.
_ELEM_TO_NP: dict[int, np.dtype] = {
    onnx.TensorProto.FLOAT: np.dtype(np.float32),
    onnx.TensorProto.UINT8: np.dtype(np.uint8),
    onnx.TensorProto.INT8: np.dtype(np.int8),
    onnx.TensorProto.UINT16: np.dtype(np.uint16),
    onnx.TensorProto.INT16: np.dtype(np.int16),
    onnx.TensorProto.INT32: np.dtype(np.int32),
    onnx.TensorProto.INT64: np.dtype(np.int64),
    onnx.TensorProto.STRING: np.dtype(object),
    onnx.TensorProto.BOOL: np.dtype(np.bool_),
    onnx.TensorProto.FLOAT16: np.dtype(np.float16),
    onnx.TensorProto.DOUBLE: np.dtype(np.float64),
    onnx.TensorProto.UINT32: np.dtype(np.uint32),
    onnx.TensorProto.UINT64: np.dtype(np.uint64),
    onnx.TensorProto.COMPLEX64: np.dtype(np.complex64),
    onnx.TensorProto.COMPLEX128: np.dtype(np.complex128),
    onnx.TensorProto.BFLOAT16: np.dtype(ml_dtypes.bfloat16),
    onnx.TensorProto.FLOAT8E4M3FN: np.dtype(ml_dtypes.float8_e4m3fn),
    onnx.TensorProto.FLOAT8E4M3FNUZ: np.dtype(ml_dtypes.float8_e4m3fnuz),
    onnx.TensorProto.FLOAT8E5M2: np.dtype(ml_dtypes.float8_e5m2),
    onnx.TensorProto.FLOAT8E5M2FNUZ: np.dtype(ml_dtypes.float8_e5m2fnuz),
    onnx.TensorProto.UINT4: np.dtype(ml_dtypes.uint4),
    onnx.TensorProto.INT4: np.dtype(ml_dtypes.int4),
    onnx.TensorProto.FLOAT4E2M1: np.dtype(ml_dtypes.float4_e2m1fn),
    onnx.TensorProto.FLOAT8E8M0: np.dtype(ml_dtypes.float8_e8m0fnu),
    onnx.TensorProto.UINT2: np.dtype(ml_dtypes.uint2),
    onnx.TensorProto.INT2: np.dtype(ml_dtypes.int2),
}
_NP_TO_ELEM: dict[np.dtype, int] = {dt: elem for elem, dt in _ELEM_TO_NP.items()}
_NP_TO_ELEM[np.dtype(np.str_)] = onnx.TensorProto.STRING


def np_dtype(elem_type: int | ir.DataType) -> np.dtype:
    """NumPy dtype for an ONNX element type (a TensorProto number or an ``ir.DataType``)."""
    try:
        return _ELEM_TO_NP[int(elem_type)]
    except KeyError:
        raise ValueError(f"ONNX element type {elem_type!r} has no NumPy equivalent") from None


def elem_type(dtype: np.dtype | type) -> int:
    """ONNX element type number for a NumPy dtype."""
    dt = np.dtype(dtype)
    if dt.kind == "U":
        return onnx.TensorProto.STRING
    try:
        return _NP_TO_ELEM[dt]
    except KeyError:
        raise ValueError(f"NumPy dtype {dt} has no ONNX element type") from None


def tensor_type_string(elem: int | ir.DataType) -> str:
    """ORT's spelling of a tensor type: ``tensor(float)``, ``tensor(int64)``, ..."""
    name = onnx.TensorProto.DataType.Name(int(elem)).lower()
    return f"tensor({'float' if name == 'float' else name})"


def type_string(t: ir.TypeProtocol | None) -> str | None:
    """ORT-style type string for an onnx-ir type: ``tensor(float)``, ``seq(tensor(int64))``,
    ``optional(tensor(float))``, ``map(int64,tensor(float))``. None when the type is unknown."""
    if t is None:
        return None
    if isinstance(t, ir.TensorType):
        if t.dtype == ir.DataType.UNDEFINED:
            return None
        return tensor_type_string(t.dtype)
    if isinstance(t, ir.SequenceType):
        inner = type_string(t.elem_type)
        return f"seq({inner})" if inner else None
    if isinstance(t, ir.OptionalType):
        inner = type_string(t.elem_type)
        return f"optional({inner})" if inner else None
    # Maps and sparse tensors: fall back to the proto's own rendering.
    return str(t).lower()


def value_type_string(value: object) -> str:
    """ORT-style type string of a runtime value (array, list, dict or None)."""
    if isinstance(value, np.ndarray):
        return tensor_type_string(elem_type(value.dtype))
    if isinstance(value, np.generic):
        return tensor_type_string(elem_type(value.dtype))
    if isinstance(value, list):
        return f"seq({value_type_string(value[0])})" if value else "seq(?)"
    if isinstance(value, dict):
        return "map"
    if value is None:
        return "optional(none)"
    return type(value).__name__


def dtype_of_type_string(type_str: str | None) -> np.dtype | None:
    """NumPy dtype for an ORT tensor type string (``tensor(float)`` -> float32), else None."""
    elem = _TYPE_STRING_TO_ELEM.get(type_str) if type_str else None
    return None if elem is None else _ELEM_TO_NP[elem]


_TYPE_STRING_TO_ELEM = {tensor_type_string(e): e for e in _ELEM_TO_NP}

FLOAT_TYPES = ("tensor(float16)", "tensor(float)", "tensor(double)", "tensor(bfloat16)")
SIGNED_INT_TYPES = ("tensor(int8)", "tensor(int16)", "tensor(int32)", "tensor(int64)")
UNSIGNED_INT_TYPES = ("tensor(uint8)", "tensor(uint16)", "tensor(uint32)", "tensor(uint64)")
INT_TYPES = SIGNED_INT_TYPES + UNSIGNED_INT_TYPES
NUMERIC_TYPES = FLOAT_TYPES + INT_TYPES
ALL_TENSOR_TYPES = tuple(sorted({tensor_type_string(e) for e in _ELEM_TO_NP}))
