"""Elementwise kernels generated from tables: unary math and activations, broadcasting binary ops,
comparisons, logic, bitwise, variadic Max/Min/Sum/Mean, Where, Clip, Cast and CastLike."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from tessera.provider import NodeInfo
from tessera_opencl._runtime import Runtime, ctype, view_of
from tessera_opencl.kernels._registry import (
    ALL,
    BOOL,
    FLOATS,
    INTS,
    NUMERIC,
    SIGNED,
    UNSIGNED,
    check,
    flit,
    registry,
)

Expr = str | Callable[[NodeInfo], str]

# op -> (schema versions, accepted input types, expression over `a`)
UNARY: dict[str, tuple[tuple[int, ...], tuple[str, ...], Expr]] = {
    "Abs": ((6, 13), NUMERIC, "(a < (TA)0 ? (TA)(-a) : a)"),
    "Neg": ((6, 13), FLOATS + SIGNED, "-a"),
    "Exp": ((6, 13), FLOATS, "exp(a)"),
    "Log": ((6, 13), FLOATS, "log(a)"),
    "Sqrt": ((6, 13), FLOATS, "sqrt(a)"),
    "Reciprocal": ((6, 13), FLOATS, "(TA)1 / a"),
    "Floor": ((6, 13), FLOATS, "floor(a)"),
    "Ceil": ((6, 13), FLOATS, "ceil(a)"),
    "Round": ((11, 22), FLOATS, "rint(a)"),  # rint rounds half to even, as ONNX asks
    "Sign": ((9, 13), NUMERIC, "(TA)((a > (TA)0) - (a < (TA)0))"),
    "Sin": ((7, 22), FLOATS, "sin(a)"),
    "Cos": ((7, 22), FLOATS, "cos(a)"),
    "Tan": ((7, 22), FLOATS, "tan(a)"),
    "Asin": ((7, 22), FLOATS, "asin(a)"),
    "Acos": ((7, 22), FLOATS, "acos(a)"),
    "Atan": ((7, 22), FLOATS, "atan(a)"),
    "Sinh": ((9, 22), FLOATS, "sinh(a)"),
    "Cosh": ((9, 22), FLOATS, "cosh(a)"),
    "Asinh": ((9, 22), FLOATS, "asinh(a)"),
    "Acosh": ((9, 22), FLOATS, "acosh(a)"),
    "Atanh": ((9, 22), FLOATS, "atanh(a)"),
    "Erf": ((9, 13), FLOATS, "erf(a)"),
    "Relu": ((6, 13, 14), FLOATS + SIGNED, "(a > (TA)0 ? a : (TA)0)"),
    "Sigmoid": ((6, 13), FLOATS, "(TA)1 / ((TA)1 + exp(-a))"),
    "Tanh": ((6, 13), FLOATS, "tanh(a)"),
    "Softplus": ((1, 22), FLOATS, "(a > (TA)30 ? a : log1p(exp(a)))"),
    "Softsign": ((1, 22), FLOATS, "a / ((TA)1 + fabs(a))"),
    "Mish": ((18, 22), FLOATS, "a * tanh(a > (TA)30 ? a : log1p(exp(a)))"),
    "Not": ((1,), BOOL, "!a"),
    "BitwiseNot": ((18,), INTS, "~a"),
    "IsNaN": ((9, 13, 20), FLOATS, "isnan(a) != 0"),
    "Identity": ((1, 13, 14, 16, 19, 21, 23, 24, 25), ALL, "a"),
    "Elu": (
        (6, 22),
        FLOATS,
        lambda n: f"(a < (TA)0 ? {flit(n.attr('alpha', 1.0))} * (exp(a) - (TA)1) : a)",
    ),
    "Selu": (
        (6, 22),
        FLOATS,
        lambda n: (
            f"{flit(n.attr('gamma', 1.0507009873554805))} * (a <= (TA)0 ? "
            f"{flit(n.attr('alpha', 1.6732632423543772))} * (exp(a) - (TA)1) : a)"
        ),
    ),
    "LeakyRelu": (
        (6, 16),
        FLOATS,
        lambda n: f"(a < (TA)0 ? {flit(n.attr('alpha', 0.01))} * a : a)",
    ),
    "HardSigmoid": (
        (6, 22),
        FLOATS,
        lambda n: (
            f"fmax((TA)0, fmin((TA)1, {flit(n.attr('alpha', 0.2))} * a + "
            f"{flit(n.attr('beta', 0.5))}))"
        ),
    ),
    "HardSwish": ((14, 22), FLOATS, "a * fmax((TA)0, fmin((TA)1, a / (TA)6 + (TA)0.5))"),
    "ThresholdedRelu": (
        (10, 22),
        FLOATS,
        lambda n: f"(a > {flit(n.attr('alpha', 1.0))} ? a : (TA)0)",
    ),
    "Celu": (
        (12, 28),
        ("tensor(float)",),
        lambda n: (
            f"fmax((TA)0, a) + fmin((TA)0, {flit(n.attr('alpha', 1.0))} * "
            f"(exp(a / {flit(n.attr('alpha', 1.0))}) - (TA)1))"
        ),
    ),
    "Shrink": (
        (9,),
        FLOATS,
        lambda n: (
            f"(a < -{flit(n.attr('lambd', 0.5))} ? a + {flit(n.attr('bias', 0.0))} : "
            f"(a > {flit(n.attr('lambd', 0.5))} ? a - {flit(n.attr('bias', 0.0))} : (TA)0))"
        ),
    ),
    "Gelu": (
        (20,),
        FLOATS,
        lambda n: (
            "(TA)0.5 * a * ((TA)1 + tanh((TA)0.7978845608028654 * (a + (TA)0.044715 * a * a * a)))"
            if n.attr("approximate", "none") == "tanh"
            else "(TA)0.5 * a * ((TA)1 + erf(a * (TA)M_SQRT1_2))"
        ),
    ),
    "IsInf": (
        (10, 20),
        FLOATS,
        lambda n: (
            f"(isinf(a) != 0) && ((a > (TA)0 && {int(n.attr('detect_positive', 1))}) || "
            f"(a < (TA)0 && {int(n.attr('detect_negative', 1))}))"
        ),
    ),
    "Swish": ((24,), FLOATS, lambda n: f"a / ((TA)1 + exp(-{flit(n.attr('alpha', 1.0))} * a))"),
}

_CMP = NUMERIC + BOOL
# op -> (versions, types, expression over a and b, output is bool)
BINARY: dict[str, tuple[tuple[int, ...], tuple[str, ...], Expr, bool]] = {
    "Add": ((6, 7, 13, 14), NUMERIC, "a + b", False),
    "Sub": ((6, 7, 13, 14), NUMERIC, "a - b", False),
    "Mul": ((6, 7, 13, 14), NUMERIC, "a * b", False),
    "Equal": ((7, 11, 13, 19), _CMP, "a == b", True),
    "Less": ((7, 9, 13), NUMERIC, "a < b", True),
    "Greater": ((7, 9, 13), NUMERIC, "a > b", True),
    "LessOrEqual": ((12, 16), NUMERIC, "a <= b", True),
    "GreaterOrEqual": ((12, 16), NUMERIC, "a >= b", True),
    "And": ((7,), BOOL, "a && b", True),
    "Or": ((7,), BOOL, "a || b", True),
    "Xor": ((7,), BOOL, "(a != 0) != (b != 0)", True),
    "BitwiseAnd": ((18,), INTS, "a & b", False),
    "BitwiseOr": ((18,), INTS, "a | b", False),
    "BitwiseXor": ((18,), INTS, "a ^ b", False),
    "PRelu": (
        (7, 9, 16),
        (*FLOATS, "tensor(int32)", "tensor(int64)"),
        "(a < (TA)0 ? a * b : a)",
        False,
    ),
    "BitShift": (
        (11, 28),
        INTS,
        lambda n: (
            "((b < (TB)0 || b >= (TB)(8 * sizeof(TA))) ? (TO)0 : (TO)(a << b))"
            if n.attr("direction") == "LEFT"
            else "((b < (TB)0 || b >= (TB)(8 * sizeof(TA))) ? (a < (TA)0 ? (TO)-1 : (TO)0) : (TO)(a >> b))"
        ),
        False,
    ),
    "Div": (
        (7, 13, 14),
        NUMERIC,
        lambda n: (
            "a / b"
            if n.input_types[0] in FLOATS
            else "(b == (TB)0 ? (TO)0 : (TO)(a / b))"  # integer x/0 would trap the device
        ),
        False,
    ),
    "Mod": (
        (10, 13, 28),
        NUMERIC,
        lambda n: (
            ("fmod(a, b)" if n.input_types[0] in FLOATS else "(b == (TB)0 ? (TO)0 : a % b)")
            if n.attr("fmod", 0)
            else ("floor_mod(a, b)", _FLOOR_MOD)
            if n.input_types[0] in FLOATS
            else "(b == (TB)0 ? (TO)0 : (TO)(a % b + ((a % b != 0 && ((a % b < 0) != (b < 0))) ? b : 0)))"
        ),
        False,
    ),
    "Pow": (
        (7, 12, 13, 15),
        (*FLOATS, "tensor(int32)", "tensor(int64)"),
        lambda n: (
            "pow(a, (TA)b)" if n.input_types[0] in FLOATS else "rint(pow((double)a, (double)b))"
        ),
        False,
    ),
}


# Mod-28 with fmod=0 on floats: floor division's remainder, with the spec's special cases.
_FLOOR_MOD = """
#define floor_mod(x, y) floor_mod_impl((TO)(x), (TO)(y))
TO floor_mod_impl(TO x, TO y) {
  if (isnan(x) || isnan(y) || isinf(x) || y == (TO)0) return (TO)NAN;
  if (isinf(y)) return x == (TO)0 ? copysign((TO)0, y) : (((x < 0) == (y < 0)) ? x : y);
  TO r = fmod(x, y);
  if (r != (TO)0 && ((r < 0) != (y < 0))) r += y;
  return r == (TO)0 ? copysign((TO)0, y) : r;
}
"""


@check("Mod")
def _mod_float_needs_fmod(node: NodeInfo) -> str | None:
    if node.input_types[0] in FLOATS and not node.attr("fmod", 0) and node.opset < 28:
        return "Mod on floats needs fmod=1 before opset 28 (the ONNX spec)"
    return None


@check("BitShift")
def _signed_shift_from_28(node: NodeInfo) -> str | None:
    if node.input_types[0] not in UNSIGNED and node.opset < 28:
        return "signed BitShift exists from opset 28"
    return None


@check("Add", "Sub", "Mul", "Div")
def _no_legacy_broadcast(node: NodeInfo) -> str | None:
    if node.attr("broadcast", 0):
        return "the legacy broadcast/axis attributes (opset < 7) are not implemented on OpenCL"
    return None


def _expr(spec: Expr, node: NodeInfo) -> str:
    return spec(node) if callable(spec) else spec


def _variadic_expr(op: str, count: int, is_float: bool) -> str:
    """Max/Min/Sum/Mean over inputs a, b, c, ...; Max/Min propagate NaN as NumPy does."""
    names = "abcdefghijklmnop"[:count]
    if op in ("Sum", "Mean"):
        expr = " + ".join(names)
        return f"({expr}) / (TO){count}" if op == "Mean" else expr
    cmp = ">" if op == "Max" else "<"
    expr = names[0]
    for n in names[1:]:
        nan = f"isnan({n}) || " if is_float else ""
        expr = f"(({nan}{n} {cmp} ({expr})) ? {n} : ({expr}))"
    return expr


def _clip_expr(has_lo: bool, has_hi: bool) -> str:
    """Clip-11+ over x (a) and whichever of min/max are present (b, then c)."""
    expr = "a"
    if has_lo:
        expr = f"({expr} < b ? b : {expr})"
    if has_hi:
        last = "c" if has_lo else "b"
        expr = f"({expr} > {last} ? {last} : {expr})"
    return expr


def _clip6_expr(node: NodeInfo) -> str:
    lo = flit(node.attr("min", -3.4028234663852886e38))
    hi = flit(node.attr("max", 3.4028234663852886e38))
    return f"fmin(fmax(a, {lo}), {hi})"


def _cast_expr(src: np.dtype, dst: np.dtype) -> str:
    if dst == np.bool_:
        return "a != (TA)0"
    if src.kind == "f" and dst.kind in "iu":
        # C leaves NaN/out-of-range conversions undefined; NumPy gives the wrapped int64 value.
        return "(TO)(long)a"
    return "a"


_TYPE_DTYPES = {
    f"tensor({name})": np.dtype(dt)
    for name, dt in (
        ("float", "f4"),
        ("double", "f8"),
        ("int8", "i1"),
        ("int16", "i2"),
        ("int32", "i4"),
        ("int64", "i8"),
        ("uint8", "u1"),
        ("uint16", "u2"),
        ("uint32", "u4"),
        ("uint64", "u8"),
        ("bool", "?"),
    )
}


def elementwise_expr(node: NodeInfo) -> str | None:
    """The node's output as one OpenCL C expression over its present inputs named a, b, c, ...
    (C types TA, TB, ..., output type TO), for fusing it into a generated chain kernel.

    None when the node is not a plain broadcasting elementwise op of known dtypes, or when its
    expression needs a helper function (Mod's floor remainder on floats): such nodes run as
    their own kernels. Only nodes the provider already claims are asked.
    """
    op = node.op_type
    types = [t for t in node.input_types if t is not None] + list(node.output_types)
    present = [name for name in node.inputs if name]
    if len(node.outputs) != 1 or len(types) != len(present) + 1:
        return None  # an input or output of unknown type: no C signature to generate
    if any(t not in _TYPE_DTYPES for t in types):
        return None
    if op in UNARY:
        return _expr(UNARY[op][2], node)
    if op in BINARY:
        expr = _expr(BINARY[op][2], node)
        return None if isinstance(expr, tuple) else expr
    if op in ("Max", "Min", "Sum", "Mean") and len(present) <= 16:
        return _variadic_expr(op, len(present), node.input_types[0] in FLOATS)
    if op == "Where":
        return "a ? b : c"
    if op == "Clip":
        if node.opset < 11:  # Clip-6: bounds are attributes
            return _clip6_expr(node)
        return _clip_expr(node.has_input(1), node.has_input(2))
    if op == "Cast":
        return _cast_expr(_TYPE_DTYPES[types[0]], _TYPE_DTYPES[types[-1]])
    return None


def input_dtype(type_str: str) -> np.dtype:
    """NumPy dtype of an ONNX tensor type string this provider has a C type for."""
    return _TYPE_DTYPES[type_str]


def _broadcast(rt: Runtime, expr: str, out_dtype, inputs, preamble: str = ""):
    arrays = [rt.as_device(x) for x in inputs]
    shape = np.broadcast_shapes(*(a.shape for a in arrays))
    views = [view_of(a, shape) for a in arrays]
    return rt.strided(expr, out_dtype, shape, views, preamble=preamble)


def _unary_factory(spec: Expr):
    def factory(node: NodeInfo, rt: Runtime):
        expr = _expr(spec, node)
        out_dtype = node.output_dtype(0)

        if node.op_type == "Identity":
            return lambda x: (x,)  # device tensors are immutable: alias, no copy

        def compute(x):
            x = rt.as_device(x)
            return (rt.strided(expr, out_dtype or x.dtype, x.shape, [view_of(x)]),)

        return compute

    return factory


def _binary_factory(spec: Expr, boolean: bool):
    def factory(node: NodeInfo, rt: Runtime):
        expr, preamble = _expr(spec, node), ""
        if isinstance(expr, tuple):
            expr, preamble = expr
        fixed = np.dtype(np.bool_) if boolean else node.output_dtype(0)

        def compute(a, b):
            a = rt.as_device(a)
            return (_broadcast(rt, expr, fixed or a.dtype, [a, b], preamble),)

        return compute

    return factory


for _op, (_since, _types, _spec) in UNARY.items():
    registry.kernel(_op, since=_since, types={0: _types})(_unary_factory(_spec))
for _op, (_since, _types, _spec, _bool) in BINARY.items():
    registry.kernel(_op, since=_since, types={0: _types})(_binary_factory(_spec, _bool))


def _variadic_factory(op: str):
    def factory(node: NodeInfo, rt: Runtime):
        def compute(*xs):
            xs = [rt.as_device(x) for x in xs if x is not None]
            expr = _variadic_expr(op, len(xs), xs[0].dtype.kind == "f")
            return (_broadcast(rt, expr, xs[0].dtype, xs),)

        return compute

    return factory


for _op, _types in (("Max", NUMERIC), ("Min", NUMERIC), ("Sum", FLOATS), ("Mean", FLOATS)):
    registry.kernel(
        _op, since=(8, 12, 13) if _op in ("Max", "Min") else (8, 13), types={"T": _types}
    )(_variadic_factory(_op))


@check("Max", "Min", "Sum", "Mean")
def _few_inputs(node: NodeInfo) -> str | None:
    return "more than 16 inputs" if len(node.inputs) > 16 else None


@registry.kernel("Where", since=(9, 16), types={"T": ALL})
def where(node: NodeInfo, rt: Runtime):
    def compute(c, x, y):
        x = rt.as_device(x)
        return (_broadcast(rt, "a ? b : c", x.dtype, [c, x, y]),)

    return compute


@registry.kernel("Clip", since=(11, 12, 13), types={"T": NUMERIC})
def clip(node: NodeInfo, rt: Runtime):
    def compute(x, lo=None, hi=None):
        x = rt.as_device(x)
        inputs = [x] + [v for v in (lo, hi) if v is not None]
        return (_broadcast(rt, _clip_expr(lo is not None, hi is not None), x.dtype, inputs),)

    return compute


@registry.kernel("Clip", since=6, types={"T": FLOATS})
def clip6(node: NodeInfo, rt: Runtime):
    expr = _clip6_expr(node)

    def compute(x):
        x = rt.as_device(x)
        return (rt.strided(expr, x.dtype, x.shape, [view_of(x)]),)

    return compute


_CASTABLE = ALL


@registry.kernel("Cast", since=(6, 9, 13, 19, 21, 23, 24, 25, 28), types={0: _CASTABLE})
def cast(node: NodeInfo, rt: Runtime):
    dst = np.dtype(node.output_dtype(0))

    def compute(x):
        x = rt.as_device(x)
        if x.dtype == dst:
            return (x,)
        return (rt.strided(_cast_expr(x.dtype, dst), dst, x.shape, [view_of(x)]),)

    return compute


@registry.kernel("CastLike", since=(15, 19, 21, 23, 24, 25), types={0: _CASTABLE, 1: _CASTABLE})
def cast_like(node: NodeInfo, rt: Runtime):
    def compute(x, like):
        x = rt.as_device(x)
        dst = np.dtype(like.dtype)
        if x.dtype == dst:
            return (x,)
        return (rt.strided(_cast_expr(x.dtype, dst), dst, x.shape, [view_of(x)]),)

    return compute


@check("Cast", "CastLike")
def _cast_sat(node: NodeInfo) -> str | None:
    out = node.output_types[0] if node.output_types else None
    if out is None:
        return "the output type is unknown"
    if out not in _CASTABLE:
        return f"casting to {out} is not implemented on OpenCL"
    return None


__all__ = ["ctype"]
