"""Elementwise ops from one table: each op is a CUDA C expression and an ``xp`` function.

Single nodes run the ``xp`` function (CuPy's own ufuncs on a GPU). Chains of float ops are fused
into one ``cupy.ElementwiseKernel`` whose body is generated from the C expressions
(:mod:`tessera_cuda.kernels.fusion`); the host-module test mode evaluates the same chain with the
``xp`` functions, so the chain logic is tested everywhere and the C text on a GPU.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from tessera.provider import NodeInfo
from tessera_cuda.kernels._registry import ALL, BOOL, FLOATS, NUMERIC, SIGNED, check, registry

Fn = Callable[..., Any]  # fn(be, *inputs, **attrs) -> array


@dataclasses.dataclass(frozen=True)
class ElementwiseOp:
    """One op of the table. ``c`` is a C++ expression over ``a`` (and ``b``) of type ``T`` with
    ``{attr}`` placeholders; ``fn`` computes the same with the backend's ``xp``."""

    arity: int
    c: str
    fn: Fn
    versions: tuple[int, ...]
    types: tuple[str, ...] = FLOATS
    attrs: tuple[tuple[str, float], ...] = ()


def _lit(value: float, ctype: str) -> str:
    """A float attribute as an exact C literal of ``ctype`` (repr round-trips the float32 value)."""
    v = float(value)
    if math.isnan(v):
        return f"(({ctype})NAN)"
    if math.isinf(v):
        return f"(({ctype})({'-' if v < 0 else ''}INFINITY))"
    return f"(({ctype}){v!r})"


def _s(a: Any, v: float) -> Any:
    """A scalar of ``a``'s dtype, so float32 math stays float32."""
    return a.dtype.type(v)


def _where(be, cond, x, y):
    return be.xp.where(cond, x, y).astype(x.dtype, copy=False)


def _gelu(be, a, approximate="none"):
    xp = be.xp
    if approximate == "tanh":
        inner = _s(a, math.sqrt(2 / math.pi)) * (a + _s(a, 0.044715) * a * a * a)
        return _s(a, 0.5) * a * (_s(a, 1) + xp.tanh(inner))
    return _s(a, 0.5) * a * (_s(a, 1) + be.erf(a * _s(a, 1 / math.sqrt(2))))


UNARY: dict[str, ElementwiseOp] = {
    "Abs": ElementwiseOp(1, "fabs(a)", lambda be, a: be.xp.abs(a), (6, 13), NUMERIC),
    "Neg": ElementwiseOp(1, "(-a)", lambda be, a: be.xp.negative(a), (6, 13), FLOATS + SIGNED),
    "Exp": ElementwiseOp(1, "exp(a)", lambda be, a: be.xp.exp(a), (6, 13)),
    "Log": ElementwiseOp(1, "log(a)", lambda be, a: be.xp.log(a), (6, 13)),
    "Sqrt": ElementwiseOp(1, "sqrt(a)", lambda be, a: be.xp.sqrt(a), (6, 13)),
    "Reciprocal": ElementwiseOp(1, "((T)1 / a)", lambda be, a: _s(a, 1) / a, (6, 13)),
    "Tanh": ElementwiseOp(1, "tanh(a)", lambda be, a: be.xp.tanh(a), (6, 13)),
    "Erf": ElementwiseOp(1, "erf(a)", lambda be, a: be.erf(a), (9, 13)),
    "Floor": ElementwiseOp(1, "floor(a)", lambda be, a: be.xp.floor(a), (6, 13)),
    "Ceil": ElementwiseOp(1, "ceil(a)", lambda be, a: be.xp.ceil(a), (6, 13)),
    "Sin": ElementwiseOp(1, "sin(a)", lambda be, a: be.xp.sin(a), (7, 22)),
    "Cos": ElementwiseOp(1, "cos(a)", lambda be, a: be.xp.cos(a), (7, 22)),
    # a < 0 ? 0 : a keeps NaN, as NumPy's maximum does.
    "Relu": ElementwiseOp(
        1,
        "(a < (T)0 ? (T)0 : a)",
        lambda be, a: _where(be, a < 0, _s(a, 0), a),
        (6, 13, 14),
        FLOATS + SIGNED,
    ),
    "Sigmoid": ElementwiseOp(
        1, "((T)1 / ((T)1 + exp(-a)))", lambda be, a: _s(a, 1) / (_s(a, 1) + be.xp.exp(-a)), (6, 13)
    ),
    "LeakyRelu": ElementwiseOp(
        1,
        "(a < (T)0 ? {alpha} * a : a)",
        lambda be, a, alpha: _where(be, a < 0, _s(a, alpha) * a, a),
        (6, 16),
        attrs=(("alpha", 0.01),),
    ),
    "Elu": ElementwiseOp(
        1,
        "(a < (T)0 ? {alpha} * (exp(a) - (T)1) : a)",
        lambda be, a, alpha: _where(be, a < 0, _s(a, alpha) * (be.xp.exp(a) - _s(a, 1)), a),
        (6, 22),
        attrs=(("alpha", 1.0),),
    ),
    "HardSigmoid": ElementwiseOp(
        1,
        "fmin(fmax({alpha} * a + {beta}, (T)0), (T)1)",
        lambda be, a, alpha, beta: be.xp.minimum(
            be.xp.maximum(_s(a, alpha) * a + _s(a, beta), _s(a, 0)), _s(a, 1)
        ),
        (6, 22),
        attrs=(("alpha", 0.2), ("beta", 0.5)),
    ),
    "Softplus": ElementwiseOp(
        1, "log(exp(a) + (T)1)", lambda be, a: be.xp.log(be.xp.exp(a) + _s(a, 1)), (1, 22)
    ),
    "Softsign": ElementwiseOp(
        1, "(a / ((T)1 + fabs(a)))", lambda be, a: a / (_s(a, 1) + be.xp.abs(a)), (1, 22)
    ),
    "HardSwish": ElementwiseOp(
        1,
        "(a * fmin(fmax(a * ((T)1 / (T)6) + (T)0.5, (T)0), (T)1))",
        lambda be, a: (
            a * be.xp.minimum(be.xp.maximum(a * _s(a, 1 / 6) + _s(a, 0.5), _s(a, 0)), _s(a, 1))
        ),
        (14, 22),
    ),
}

# Gelu's expression depends on a string attribute, so it has one entry per form.
GELU_C = {
    "none": "((T)0.5 * a * ((T)1 + erf(a * (T)0.7071067811865476)))",
    "tanh": "((T)0.5 * a * ((T)1 + tanh((T)0.7978845608028654 * (a + (T)0.044715 * a * a * a))))",
}
UNARY["Gelu"] = ElementwiseOp(1, GELU_C["none"], _gelu, (20,))


def _max(be, a, b):
    return be.xp.maximum(a, b)


def _min(be, a, b):
    return be.xp.minimum(a, b)


BINARY: dict[str, ElementwiseOp] = {
    "Add": ElementwiseOp(2, "(a + b)", lambda be, a, b: a + b, (7, 13, 14), NUMERIC),
    "Sub": ElementwiseOp(2, "(a - b)", lambda be, a, b: a - b, (7, 13, 14), NUMERIC),
    "Mul": ElementwiseOp(2, "(a * b)", lambda be, a, b: a * b, (7, 13, 14), NUMERIC),
    "Div": ElementwiseOp(2, "(a / b)", lambda be, a, b: a / b, (7, 13, 14)),
    # An integer exponent (Pow's T1) is converted to the base's type; fused chains see one type.
    "Pow": ElementwiseOp(
        2,
        "pow(a, b)",
        lambda be, a, b: be.xp.power(a, b.astype(a.dtype, copy=False)),
        (7, 12, 13, 15),
    ),
    # Two-input Max/Min; NaN propagates from either side, as NumPy's maximum/minimum.
    "Max": ElementwiseOp(2, "((a != a || a > b) ? a : b)", _max, (8, 12, 13), NUMERIC),
    "Min": ElementwiseOp(2, "((a != a || a < b) ? a : b)", _min, (8, 12, 13), NUMERIC),
}
TABLE: dict[str, ElementwiseOp] = {**UNARY, **BINARY}


def attr_values(op: str, node: NodeInfo) -> dict[str, Any]:
    spec = TABLE[op]
    values = {name: float(node.attr(name, default)) for name, default in spec.attrs}
    if op == "Gelu":
        values["approximate"] = str(node.attr("approximate", "none"))
    return values


def c_expression(op: str, node: NodeInfo, ctype: str) -> str:
    """The op's C expression for ``node`` with attributes inlined as ``ctype`` literals."""
    spec = TABLE[op]
    template = GELU_C[str(node.attr("approximate", "none"))] if op == "Gelu" else spec.c
    numeric = {k: v for k, v in attr_values(op, node).items() if k != "approximate"}
    values = {name: _lit(v, ctype) for name, v in numeric.items()}
    return template.format(**values).replace("(T)", f"({ctype})")


@check("Gelu")
def _gelu_form(node: NodeInfo) -> str | None:
    form = node.attr("approximate", "none")
    return None if form in GELU_C else f"Gelu approximate={form!r} is not 'none' or 'tanh'"


def _register_table() -> None:
    for op, spec in TABLE.items():
        if op in ("Max", "Min"):
            continue  # variadic: registered below

        def factory(node: NodeInfo, be, _spec=spec, _op=op):
            attrs = attr_values(_op, node)
            fn = _spec.fn
            if attrs:
                return lambda *xs: (fn(be, *xs, **attrs),)
            return lambda *xs: (fn(be, *xs),)

        registry.kernel(op, spec.versions, types={"T": spec.types})(factory)


_register_table()


@registry.kernel("Max", (8, 12, 13), types={"T": NUMERIC})
@registry.kernel("Min", (8, 12, 13), types={"T": NUMERIC})
@registry.kernel("Sum", (8, 13), types={"T": FLOATS})
def variadic(node: NodeInfo, be):
    fn = {"Max": _max, "Min": _min, "Sum": lambda be, a, b: a + b}[node.op_type]

    def compute(*xs):
        out = xs[0]
        for x in xs[1:]:
            out = fn(be, out, x)
        if len(xs) == 1:
            out = be.xp.array(out, copy=True)
        return (out,)

    return compute


_COMPARE = {
    "Equal": lambda xp, a, b: xp.equal(a, b),
    "Less": lambda xp, a, b: xp.less(a, b),
    "Greater": lambda xp, a, b: xp.greater(a, b),
    "LessOrEqual": lambda xp, a, b: xp.less_equal(a, b),
    "GreaterOrEqual": lambda xp, a, b: xp.greater_equal(a, b),
}
_COMPARE_VERSIONS = {
    "Equal": (7, 11, 13),
    "Less": (7, 9, 13),
    "Greater": (7, 9, 13),
    "LessOrEqual": (12, 16),
    "GreaterOrEqual": (12, 16),
}
_LOGIC = {
    "And": lambda xp, a, b: xp.logical_and(a, b),
    "Or": lambda xp, a, b: xp.logical_or(a, b),
    "Xor": lambda xp, a, b: xp.logical_xor(a, b),
}


def _binary_xp(fns: dict[str, Callable], versions: dict[str, tuple[int, ...]], types) -> None:
    for op, fn in fns.items():

        def factory(node: NodeInfo, be, _fn=fn):
            xp = be.xp
            return lambda a, b: (_fn(xp, a, b),)

        registry.kernel(op, versions[op], types={"T": types})(factory)


_binary_xp(_COMPARE, _COMPARE_VERSIONS, NUMERIC + BOOL)
_binary_xp(_LOGIC, {"And": (7,), "Or": (7,), "Xor": (7,)}, BOOL)


@registry.kernel("Not", 1, types={"T": BOOL})
def logical_not(node: NodeInfo, be):
    xp = be.xp
    return lambda a: (xp.logical_not(a),)


@registry.kernel("Where", (9, 16), types={"T": ALL})
def where(node: NodeInfo, be):
    xp = be.xp
    return lambda c, a, b: (xp.where(c, a, b),)


@registry.kernel("Clip", (11, 12, 13), types={"T": NUMERIC})
def clip(node: NodeInfo, be):
    xp = be.xp

    def compute(x, lo=None, hi=None):
        out = x
        if lo is not None:
            out = xp.maximum(out, lo.astype(x.dtype))
        if hi is not None:
            out = xp.minimum(out, hi.astype(x.dtype))
        if out is x:
            out = xp.array(x, copy=True)
        return (out,)

    return compute


_CAST_VERSIONS = (6, 9, 13, 19, 21, 23, 24, 25)


@registry.kernel("Cast", _CAST_VERSIONS, types={"T1": ALL, "T2": ALL})
def cast(node: NodeInfo, be):
    dtype = node.output_dtype(0)
    if dtype is None:
        from tessera.provider import np_dtype

        dtype = np_dtype(int(node.attr("to")))
    dtype = np.dtype(dtype)
    xp = be.xp

    def compute(x):
        return (xp.asarray(x).astype(dtype, copy=True),)

    return compute


@check("Cast")
def _cast_target(node: NodeInfo) -> str | None:
    out = node.output_types[0] if node.output_types else None
    if out is not None and out not in ALL:
        return f"Cast to {out} has no kernel (the provider casts between {', '.join(ALL)})"
    return None


@registry.kernel("Identity", (1, 13, 14, 16, 19, 21, 23, 24, 25), types={"V": ALL, "T": ALL})
def identity(node: NodeInfo, be):
    return lambda x: (x,)


@registry.kernel("Constant", (13, 19, 21, 23, 24, 25))
def constant(node: NodeInfo, be):
    value = None
    for key in ("value", "value_float", "value_floats", "value_int", "value_ints"):
        if key in node.attrs:
            value = node.attrs[key]
            dtype = {"value_float": np.float32, "value_floats": np.float32}.get(key, np.int64)
            value = np.asarray(value) if key == "value" else np.asarray(value, dtype)
            break
    if value is None:
        raise ValueError(f"{node.describe()}: only tensor and numeric Constants are supported")
    if value.dtype.kind in "iu" and value.ndim <= 1 and value.size <= 64:
        device_value = value  # a shape argument: it stays on the host, like to_device's
    else:
        device_value = be.asarray(value)  # uploaded once, at session creation
    return lambda: (device_value,)


@check("Constant")
def _constant_form(node: NodeInfo) -> str | None:
    if not any(
        k in node.attrs for k in ("value", "value_float", "value_floats", "value_int", "value_ints")
    ):
        return "Constant with a sparse or string value is not supported"
    return None
