"""Linear quantization kernels: QuantizeLinear, DequantizeLinear and DynamicQuantizeLinear."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import onnx

from tessera.provider import NodeInfo, np_dtype, tensor_type_string
from tessera_cpu.kernels._registry import registry

_QL_VERSIONS = (10, 13, 19, 21, 23, 24, 25, 28)

# Integer targets saturate to their range; the float8/float4 ones go through ml_dtypes casts.
_INT_RANGES = {
    np.dtype(np.int8): (-128, 127),
    np.dtype(np.uint8): (0, 255),
    np.dtype(np.int16): (-32768, 32767),
    np.dtype(np.uint16): (0, 65535),
    np.dtype(ml_dtypes.int4): (-8, 7),
    np.dtype(ml_dtypes.uint4): (0, 15),
    np.dtype(ml_dtypes.int2): (-2, 1),
    np.dtype(ml_dtypes.uint2): (0, 3),
}
_FLOAT8 = {
    np.dtype(t)
    for t in (
        ml_dtypes.float8_e4m3fn,
        ml_dtypes.float8_e4m3fnuz,
        ml_dtypes.float8_e5m2,
        ml_dtypes.float8_e5m2fnuz,
    )
}
_FLOAT4 = np.dtype(ml_dtypes.float4_e2m1fn)
_E8M0 = np.dtype(ml_dtypes.float8_e8m0fnu)

_QUANT_TYPES = (
    "tensor(int8)", "tensor(uint8)", "tensor(int16)", "tensor(uint16)",
    "tensor(int4)", "tensor(uint4)", "tensor(int2)", "tensor(uint2)",
    "tensor(float8e4m3fn)", "tensor(float8e4m3fnuz)", "tensor(float8e5m2)",
    "tensor(float8e5m2fnuz)", "tensor(float4e2m1)",
)  # fmt: skip
_HIGH_TYPES = ("tensor(float)", "tensor(float16)", "tensor(bfloat16)", "tensor(int32)")
_SCALE_TYPES = ("tensor(float)", "tensor(float16)", "tensor(bfloat16)", "tensor(int32)",
                "tensor(float8e8m0)")  # fmt: skip
_TYPE_TO_ELEM = {tensor_type_string(e): e for e in onnx.TensorProto.DataType.values() if e}
_OUT_FLOATS = {np.dtype(np.float32), np.dtype(np.float16), np.dtype(ml_dtypes.bfloat16)}


def _expander(node: NodeInfo, axis: int, block_size: int, index: int):
    """Returns f(param, x_shape) reshaping a scale/zero point to broadcast against x.

    Blocked parameters are repeated along ``axis``; when the parameter is an initializer (the
    run loop then passes the same array every run) the repeated copy is cached per array and
    input shape, since that is the costly part.
    """
    cache: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}
    cacheable = index in node.constant_inputs

    def expand(p: np.ndarray, shape: tuple) -> np.ndarray:
        if p.ndim == 0:
            return p
        if p.size == 1 and not block_size:
            return p.reshape(())
        rank = len(shape)
        if not -rank <= axis < rank:
            raise ValueError(
                f"{node.describe()}: axis {axis} is out of range for input rank {rank}"
            )
        ax = axis % rank
        if not block_size:
            if p.ndim != 1 or p.shape[0] != shape[ax]:
                raise ValueError(
                    f"{node.describe()}: per-axis parameter of shape {p.shape} does not match "
                    f"dimension {shape[ax]} of axis {ax} (input shape {shape}); "
                    "blocked quantization needs the block_size attribute"
                )
            dims = [1] * rank
            dims[ax] = p.shape[0]
            return p.reshape(dims)
        key = (id(p), shape)
        if cacheable:
            hit = cache.get(key)
            if hit is not None and hit[0] is p:
                return hit[1]
        if p.ndim != rank:
            raise ValueError(
                f"{node.describe()}: blocked parameter of shape {p.shape} must have the rank "
                f"of the input {shape}"
            )
        want = -(-shape[ax] // block_size)
        other_ok = all(p.shape[d] == shape[d] for d in range(rank) if d != ax)
        if p.shape[ax] != want or not other_ok:
            raise ValueError(
                f"{node.describe()}: blocked parameter shape {p.shape} does not match input "
                f"shape {shape} with block_size {block_size} on axis {ax}"
            )
        out = np.repeat(p, block_size, axis=ax)
        if out.shape[ax] != shape[ax]:
            out = out[(slice(None),) * ax + (slice(0, shape[ax]),)]
        if cacheable:
            if len(cache) > 8:  # a bound, should the caller pass fresh arrays after all
                cache.clear()
            cache[key] = (p, out)
        return out

    return expand


def _common_attrs(node: NodeInfo) -> tuple[int, int]:
    axis = node.attr("axis", 1) if node.since_version >= 13 else 1
    block_size = node.attr("block_size", 0) if node.since_version >= 21 else 0
    if block_size < 0:
        raise ValueError(f"{node.describe()}: block_size must be positive, got {block_size}")
    return axis, block_size


def _param_ok(p: np.ndarray, node: NodeInfo, since_blocked: bool) -> None:
    if not since_blocked and p.ndim > 1:
        raise ValueError(
            f"{node.describe()}: scale and zero point must be a scalar or a 1-D tensor"
        )


@registry.kernel(
    "QuantizeLinear",
    since=_QL_VERSIONS,
    # By input position: the type-parameter names moved between schema versions.
    types={0: _HIGH_TYPES, 1: _SCALE_TYPES, 2: _QUANT_TYPES},
)
def quantize_linear(node: NodeInfo):
    axis, block_size = _common_attrs(node)
    saturate = bool(node.attr("saturate", 1)) if node.since_version >= 19 else True
    out_attr = node.attr("output_dtype", 0) if node.since_version >= 21 else 0
    precision = node.attr("precision", 0) if node.since_version >= 23 else 0
    declared = np_dtype(out_attr) if out_attr else None
    zp_np = _type_dtype(node.input_types[2]) if node.has_input(2) else None
    if declared is not None and zp_np is not None and zp_np != declared:
        raise ValueError(
            f"{node.describe()}: output_dtype {declared} differs from the zero point type {zp_np}"
        )
    if (
        declared is not None
        and declared not in _INT_RANGES
        and declared not in _FLOAT8
        and declared != _FLOAT4
    ):
        raise ValueError(f"{node.describe()}: output_dtype {declared} is not a quantized type")
    calc = np_dtype(precision) if precision else None
    if calc is not None and calc.kind != "f" and calc != np.dtype(ml_dtypes.bfloat16):
        raise ValueError(f"{node.describe()}: precision {calc} is not a float type")
    expand_s = _expander(node, axis, block_size, 1)
    expand_z = _expander(node, axis, block_size, 2)
    blocked_ok = node.since_version >= 21

    def compute(x, scale, zero_point=None):
        _param_ok(scale, node, blocked_ok)
        target = zero_point.dtype if zero_point is not None else (declared or np.dtype(np.uint8))
        # The division runs in the precision attribute's type when given; otherwise in the
        # scale's type, except that half-width and non-float scales divide in float32 as
        # onnxruntime does (a float16 quotient would round before the integer rounding).
        ct = calc or (scale.dtype if scale.dtype == np.float64 else np.dtype(np.float32))
        s = expand_s(scale, x.shape)
        q = np.divide(x.astype(ct, copy=False), s.astype(ct, copy=False))
        if target in _INT_RANGES:
            lo, hi = _INT_RANGES[target]
            # Round in the division's type, then widen so the zero point add is exact.
            wide = np.float64 if ct == np.float64 else np.float32
            q = np.rint(q, out=q).astype(wide, copy=False)  # q is our own buffer
            if zero_point is not None:
                q += expand_z(zero_point, x.shape).astype(wide)
            np.clip(q, lo, hi, out=q)
            return (q.astype(target),)
        if zero_point is not None and np.any(zero_point.astype(np.float32)):
            q = q.astype(np.float32) + expand_z(zero_point, x.shape).astype(np.float32)
        if target in _FLOAT8 and saturate:
            fmax = float(ml_dtypes.finfo(target).max)
            q = np.clip(q, -fmax, fmax)
        if target in _FLOAT8 or target == _FLOAT4:
            return (q.astype(target),)
        raise ValueError(f"{node.describe()}: unsupported quantized type {target}")

    return compute


def _type_dtype(t: str | None) -> np.dtype | None:
    """NumPy dtype of an ORT-style tensor type string, None when unknown."""
    elem = _TYPE_TO_ELEM.get(t) if t else None
    return None if elem is None else np_dtype(elem)


@registry.kernel(
    "DequantizeLinear",
    since=_QL_VERSIONS,
    types={
        0: (*_QUANT_TYPES, "tensor(int32)"),
        1: (*_SCALE_TYPES[:3], "tensor(float8e8m0)"),
        2: (*_QUANT_TYPES, "tensor(int32)"),
    },
)
def dequantize_linear(node: NodeInfo):
    axis, block_size = _common_attrs(node)
    out_attr = node.attr("output_dtype", 0) if node.since_version >= 23 else 0
    declared = np_dtype(out_attr) if out_attr else None
    if declared is not None and declared not in _OUT_FLOATS:
        raise ValueError(
            f"{node.describe()}: output_dtype {declared} is not float, float16 or bfloat16"
        )
    scale_dt = _type_dtype(node.input_types[1]) if len(node.input_types) > 1 else None
    if declared is None and scale_dt == _E8M0:
        raise ValueError(f"{node.describe()}: a float8e8m0 scale needs the output_dtype attribute")
    expand_s = _expander(node, axis, block_size, 1)
    expand_z = _expander(node, axis, block_size, 2)
    blocked_ok = node.since_version >= 21
    zp_const = node.constant_inputs.get(2)
    # A constant all-zero zero point (the common symmetric case) costs nothing at run time.
    skip_zp = zp_const is not None and not np.any(zp_const.astype(np.float32))

    def compute(x, scale, zero_point=None):
        _param_ok(scale, node, blocked_ok)
        out = declared or scale.dtype
        if out == _E8M0:
            raise ValueError(
                f"{node.describe()}: a float8e8m0 scale needs the output_dtype attribute"
            )
        ct = np.float64 if out == np.float64 else np.float32
        if zero_point is not None and zero_point.dtype != x.dtype:
            raise ValueError(
                f"{node.describe()}: zero point type {zero_point.dtype} differs from input type {x.dtype}"
            )
        if zero_point is None or skip_zp:
            dx = x.astype(ct)
        elif x.dtype == np.int32:
            # float32 cannot hold every int32: subtract in integers so the difference is exact.
            z = expand_z(zero_point, x.shape).astype(np.int64)
            dx = np.subtract(x, z, dtype=np.int64).astype(ct)
        else:
            # Narrow integers and the float8/float4 codes are exact in float32.
            dx = x.astype(ct)
            dx -= expand_z(zero_point, x.shape).astype(ct)
        s = expand_s(scale, x.shape)
        dx *= s.astype(ct, copy=False)
        if dx.dtype == out:
            return (dx,)
        with np.errstate(over="ignore"):  # overflow to inf in float16 is the defined result
            return (dx.astype(out),)

    return compute


@registry.kernel("DynamicQuantizeLinear", since=11, types={"T1": ("tensor(float)",)})
def dynamic_quantize_linear(node: NodeInfo):
    f32 = np.float32

    def compute(x):
        if x.size:
            hi = max(f32(0), f32(x.max()))
            lo = min(f32(0), f32(x.min()))
        else:
            hi = lo = f32(0)
        # A constant-zero input has no range: onnxruntime then reports a scale of 1.
        scale = (hi - lo) / f32(255) if hi != lo else f32(1.0)
        zp = np.rint(np.clip(f32(0) - lo / scale, 0, 255))
        q = x / scale
        np.rint(q, out=q)
        q += zp
        np.clip(q, 0, 255, out=q)
        return (
            q.astype(np.uint8),
            np.asarray(scale, dtype=f32),
            np.asarray(zp, dtype=np.uint8),
        )

    return compute
