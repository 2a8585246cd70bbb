"""Activations applied inside fused kernels, built from the CPU provider's own kernels.

A fused node names its activation (``activation="Gelu"``), the ai.onnx opset it came from
(``activation_opset``) and that node's attributes with an ``activation_`` prefix
(``activation_approximate="tanh"``). The activation's registered kernel is built from them, so a
fused chain computes each element exactly as the unfused activation would: it is the same code,
applied to one block of the output at a time.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from tessera.provider import NodeInfo

PREFIX = "activation_"
# Unary elementwise ops a fused kernel may apply block by block (Clip only with constant bounds,
# which the fusion turns into activation_min / activation_max).
ELEMENTWISE = frozenset(
    {
        "Relu",
        "LeakyRelu",
        "Sigmoid",
        "Tanh",
        "Gelu",
        "HardSigmoid",
        "HardSwish",
        "Softplus",
        "Softsign",
        "Elu",
        "Selu",
        "Celu",
        "Mish",
        "ThresholdedRelu",
        "Erf",
        "Clip",
    }
)


def relu(y: np.ndarray) -> None:
    """The Relu kernel's ``np.maximum(x, 0)``, in place."""
    np.maximum(y, y.dtype.type(0), out=y)


def leaky_relu(alpha: float) -> Callable[[np.ndarray], None]:
    """The LeakyRelu kernel's ``max(x, alpha * x)`` (``min`` for alpha > 1), in place."""
    pick = np.maximum if alpha <= 1 else np.minimum

    def apply(y: np.ndarray) -> None:
        pick(y, y * alpha, out=y)

    return apply


def clip(lo: float, hi: float) -> Callable[[np.ndarray], None]:
    """Clip with constant bounds (-inf / inf where absent), in place."""

    def apply(y: np.ndarray) -> None:
        np.maximum(y, y.dtype.type(lo), out=y)
        np.minimum(y, y.dtype.type(hi), out=y)

    return apply


def activation_attributes(op_type: str, opset: int, attrs: dict) -> dict:
    """The fused node's attributes describing activation ``op_type`` with ``attrs``."""
    out = {"activation": op_type, "activation_opset": int(opset)}
    out.update({PREFIX + k: v for k, v in attrs.items()})
    return out


def build(node: NodeInfo) -> Callable[[np.ndarray], None] | None:
    """An in-place ``apply(block)`` for the fused node's activation, or None when it has none."""
    op = node.attr("activation", "") or ""
    if not op:
        return None
    if op not in ELEMENTWISE:
        raise ValueError(
            f"{node.describe()}: activation {op!r} is not one of {sorted(ELEMENTWISE)}"
        )
    if op == "Relu":
        return relu
    if op == "Clip":
        return clip(
            float(node.attr(PREFIX + "min", -np.inf)), float(node.attr(PREFIX + "max", np.inf))
        )
    from tessera_cpu.kernels._registry import registry

    attrs = {
        k[len(PREFIX) :]: v
        for k, v in node.attrs.items()
        if k.startswith(PREFIX) and k != "activation_opset"
    }
    type_string = node.input_types[0] if node.input_types else None
    info = NodeInfo(
        op_type=op,
        domain="",
        name=f"{node.name}/{op}",
        opset=int(node.attr("activation_opset", 0)) or 21,
        attrs=attrs,
        inputs=["x"],
        outputs=["y"],
        input_types=[type_string],
        output_types=[type_string],
        input_shapes=[None],
    )
    try:
        compute = registry.build(info)
    except Exception as exc:
        raise ValueError(f"{node.describe()}: activation {op} cannot be built: {exc}") from exc

    in_place = None
    if op == "Gelu":  # compiled loops work in place on the block
        from tessera_cpu.kernels.activation import gelu32_loops

        in_place = gelu32_loops(str(attrs.get("approximate", "none")))

    def apply(y: np.ndarray) -> None:
        if in_place is not None and y.dtype == np.float32 and in_place(y):
            return
        y[...] = compute(y)[0]

    return apply
