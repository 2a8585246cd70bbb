"""The CPU provider's fusions (asked by the core after partitioning, see ExecutionProvider.fuse).

- ``Conv [-> Add/Sum(residual)] [-> Relu | LeakyRelu | Clip]`` becomes ``ai.tessera.cpu::FusedConv``;
- ``MatMul [-> Add(bias of shape (N,))] [-> Add(residual)] [-> elementwise activation]`` becomes
  ``ai.tessera.cpu::FusedMatMul``;
- inference ``BatchNormalization -> Relu | LeakyRelu | Clip`` becomes
  ``ai.tessera.cpu::FusedBatchNormalization`` (DenseNet's BN -> Relu -> Conv after a Concat, where
  the BN cannot be folded into a convolution).

The bias, the residual and the activation are applied to each block of the product while it is in
cache, instead of more passes over the whole tensor. Only float32/float64 chains fuse: a float16
chain rounds between its nodes, and the fused kernel would not.
"""

from __future__ import annotations

import math
from typing import Any

import onnx_ir as ir

from tessera.provider import Fusion, GraphView
from tessera_cpu.kernels import _fused_activation
from tessera_cpu.kernels.conv import ACTIVATIONS, FUSED_DOMAIN

_FLOATS = ("tensor(float)", "tensor(double)")


def _single_user(value: ir.Value, keys: dict[int, int]) -> int | None:
    """The key of the one claimed node reading ``value`` once; None otherwise."""
    if value.is_graph_output():
        return None
    uses = list(value.uses())
    if len(uses) != 1:
        return None
    return keys.get(id(uses[0][0]))


def _activation(view: GraphView, key: int) -> tuple[str, list[float]] | None:
    """(name, params) when node ``key`` is an activation FusedConv can apply."""
    info = view.nodes[key]
    if info.domain or info.op_type not in ACTIVATIONS:
        return None
    if info.op_type == "LeakyRelu":
        return "LeakyRelu", [float(info.attr("alpha", 0.01))]
    if info.op_type == "Clip":
        if info.opset < 11:  # min and max were attributes before opset 11
            bounds = [info.attr("min", None), info.attr("max", None)]
        else:
            bounds = []
            for i in (1, 2):
                if not info.has_input(i):
                    bounds.append(None)
                    continue
                value = info.constant_inputs.get(i)
                if value is None or getattr(value, "size", 0) != 1:
                    return None  # a bound known only at run time
                bounds.append(float(value.reshape(())))
        lo, hi = bounds
        return "Clip", [
            -math.inf if lo is None else float(lo),
            math.inf if hi is None else float(hi),
        ]
    return info.op_type, []


def fusions(view: GraphView) -> list[Fusion]:
    """Every FusedConv, FusedMatMul and FusedBatchNormalization chain among the provider's
    kernel claims."""
    keys = {id(node): k for k, node in view.ir_nodes.items()}
    taken: set[int] = set()
    found = conv_fusions(view, keys, taken)
    found += batch_norm_fusions(view, keys, taken)
    for k, info in view.nodes.items():
        if info.op_type == "MatMul" and not info.domain and info.output_types[0] in _FLOATS:
            fusion = _matmul_chain(view, keys, k)
            if fusion is not None and not taken.intersection(fusion.nodes):
                taken.update(fusion.nodes)
                found.append(fusion)
    return found


def _other_input(node: ir.Node, value: ir.Value) -> ir.Value | None:
    """The input of a two-input ``node`` that is not ``value`` (None if both are, or absent)."""
    others = [v for v in node.inputs if v is not value]
    return others[0] if len(node.inputs) == 2 and len(others) == 1 else None


def _matmul_chain(view: GraphView, keys: dict[int, int], k: int) -> Fusion | None:
    info = view.nodes[k]
    a_shape, b_shape = info.input_shapes[0], info.input_shapes[1]
    if a_shape is None or b_shape is None or len(a_shape) < 2 or len(b_shape) != 2:
        return None
    n = b_shape[1]
    mm = view.ir_nodes[k]
    group, bias, z = [k], "", ""
    value = mm.outputs[0]
    nxt = _single_user(value, keys)
    if nxt is not None and view.nodes[nxt].op_type == "Add" and not view.nodes[nxt].domain:
        other = _other_input(view.ir_nodes[nxt], value)
        if other is not None and isinstance(n, int) and _shape_of(other) == (n,):
            group.append(nxt)
            bias = other.name
            value = view.ir_nodes[nxt].outputs[0]
            nxt = _single_user(value, keys)
    if nxt is not None and view.nodes[nxt].op_type == "Add" and not view.nodes[nxt].domain:
        other = _other_input(view.ir_nodes[nxt], value)
        if other is not None:
            group.append(nxt)
            z = other.name
            value = view.ir_nodes[nxt].outputs[0]
            nxt = _single_user(value, keys)
    attrs: dict[str, Any] = {}
    act = _elementwise_activation(view, nxt) if nxt is not None else None
    if act is not None:
        group.append(nxt)
        attrs = act
    if len(group) == 1:
        return None
    return Fusion(
        tuple(group),
        "FusedMatMul",
        FUSED_DOMAIN,
        (mm.inputs[0].name, mm.inputs[1].name, bias, z),
        attrs,
    )


def _shape_of(value: ir.Value) -> tuple | None:
    shape = value.shape
    if shape is None:
        return None
    dims = tuple(shape)
    return dims if all(isinstance(d, int) for d in dims) else None


def _elementwise_activation(view: GraphView, key: int) -> dict | None:
    """The FusedMatMul attributes for activation node ``key``, or None if it cannot fuse."""
    info = view.nodes[key]
    if info.domain or info.op_type not in _fused_activation.ELEMENTWISE:
        return None
    if info.op_type == "Clip":
        clip = _activation(view, key)
        if clip is None:
            return None
        lo, hi = clip[1]
        return {"activation": "Clip", "activation_min": lo, "activation_max": hi}
    if len(info.inputs) != 1:
        return None
    return _fused_activation.activation_attributes(info.op_type, info.opset, info.attrs)


def conv_fusions(view: GraphView, keys: dict[int, int], taken: set[int]) -> list[Fusion]:
    fusions: list[Fusion] = []
    for k, info in view.nodes.items():
        if info.op_type != "Conv" or info.domain or info.output_types[0] not in _FLOATS:
            continue
        conv = view.ir_nodes[k]
        group = [k]
        z = ""
        nxt = _single_user(conv.outputs[0], keys)
        if (
            nxt is not None
            and view.nodes[nxt].op_type in ("Add", "Sum")
            and not view.nodes[nxt].domain
        ):
            add = view.ir_nodes[nxt]
            other = _other_input(add, conv.outputs[0])
            if other is not None:
                group.append(nxt)
                z = other.name
                nxt = _single_user(add.outputs[0], keys)
        act = _activation(view, nxt) if nxt is not None else None
        if act is not None:
            group.append(nxt)
        if len(group) == 1 or taken.intersection(group):
            continue  # two convolutions feeding one Add: the first one takes it
        taken.update(group)
        attrs: dict[str, Any] = dict(conv.attributes)
        attrs["activation"] = act[0] if act else ""
        if act and act[1]:
            attrs["activation_params"] = act[1]
        inputs = [v.name if v is not None else "" for v in conv.inputs] + ["", ""]
        fusions.append(Fusion(tuple(group), "FusedConv", FUSED_DOMAIN, (*inputs[:3], z), attrs))
    return fusions


def batch_norm_fusions(view: GraphView, keys: dict[int, int], taken: set[int]) -> list[Fusion]:
    """Inference BatchNormalization (one output, float/double) whose output only an activation
    FusedConv takes reads: the activation is applied in the same pass."""
    fusions: list[Fusion] = []
    for k, info in view.nodes.items():
        if (
            info.op_type != "BatchNormalization"
            or info.domain
            or info.output_types[0] not in _FLOATS
            or sum(1 for o in info.outputs if o) != 1
            or bool(info.attr("training_mode", 0))
            or k in taken
        ):
            continue
        bn = view.ir_nodes[k]
        nxt = _single_user(bn.outputs[0], keys)
        act = _activation(view, nxt) if nxt is not None and nxt not in taken else None
        if act is None:
            continue
        taken.update((k, nxt))
        attrs: dict[str, Any] = {
            "epsilon": float(info.attr("epsilon", 1e-5)),
            "activation": act[0],
        }
        if act[1]:
            attrs["activation_params"] = act[1]
        inputs = tuple(v.name if v is not None else "" for v in bn.inputs)
        fusions.append(Fusion((k, nxt), "FusedBatchNormalization", FUSED_DOMAIN, inputs, attrs))
    return fusions
