"""Optimizer kernels of the ai.onnx.preview.training domain: Adagrad, Adam and Momentum."""

from __future__ import annotations

import numpy as np

from tessera.provider import NodeInfo
from tessera_cpu.kernels._registry import registry

_DOMAIN = "ai.onnx.preview.training"
_TYPES = {
    "T1": ("tensor(float)", "tensor(double)"),
    "T2": ("tensor(int64)",),
    "T3": ("tensor(float)", "tensor(double)"),
}


def _groups(node: NodeInfo, per_tensor: int) -> int:
    """Number of optimized tensors; the variadic inputs come as `per_tensor` equal groups."""
    n = node.num_inputs - 2
    if n <= 0 or n % per_tensor:
        raise ValueError(
            f"{node.describe()}: expected R, T and {per_tensor} equal groups of tensors, "
            f"got {node.num_inputs} inputs"
        )
    k = n // per_tensor
    if node.num_outputs > (per_tensor - 1) * k:
        raise ValueError(
            f"{node.describe()}: {node.num_outputs} outputs, at most {(per_tensor - 1) * k} expected"
        )
    return k


def _scalar(v: np.ndarray, node: NodeInfo, what: str):
    a = np.asarray(v)
    if a.size != 1:
        raise ValueError(f"{node.describe()}: {what} must be a scalar, got shape {a.shape}")
    return a.reshape(())[()]


@registry.kernel("Adagrad", since=1, domain=_DOMAIN, types=_TYPES)
def adagrad(node: NodeInfo):
    k = _groups(node, 3)
    norm = node.attr("norm_coefficient", 0.0)
    decay = node.attr("decay_factor", 0.0)
    eps = node.attr("epsilon", 1e-6)

    def compute(r, t, *tensors):
        xs, gs, hs = tensors[:k], tensors[k : 2 * k], tensors[2 * k :]
        rate = _scalar(r, node, "R") / (1 + _scalar(t, node, "T") * decay)
        new_x, new_h = [], []
        for x, g, h in zip(xs, gs, hs):
            dt = x.dtype.type
            g_reg = dt(norm) * x + g
            h_new = h + g_reg * g_reg
            x_new = x - dt(rate) * g_reg / (np.sqrt(h_new) + dt(eps))
            new_x.append(x_new.astype(x.dtype, copy=False))
            new_h.append(h_new.astype(h.dtype, copy=False))
        return tuple(new_x + new_h)

    return compute


@registry.kernel("Adam", since=1, domain=_DOMAIN, types=_TYPES)
def adam(node: NodeInfo):
    k = _groups(node, 4)
    alpha = node.attr("alpha", 0.9)
    beta = node.attr("beta", 0.999)
    eps = node.attr("epsilon", 1e-6)
    norm = node.attr("norm_coefficient", 0.0)
    norm_post = node.attr("norm_coefficient_post", 0.0)

    def compute(r, t, *tensors):
        xs, gs = tensors[:k], tensors[k : 2 * k]
        vs, hs = tensors[2 * k : 3 * k], tensors[3 * k :]
        step = int(_scalar(t, node, "T"))
        rate = _scalar(r, node, "R")
        if step > 0:
            rate = rate * np.sqrt(1 - beta**step) / (1 - alpha**step)
        new_x, new_v, new_h = [], [], []
        for x, g, v, h in zip(xs, gs, vs, hs):
            dt = x.dtype.type
            g_reg = dt(norm) * x + g
            v_new = dt(alpha) * v + dt(1 - alpha) * g_reg
            h_new = dt(beta) * h + dt(1 - beta) * g_reg * g_reg
            x_new = x - dt(rate) * v_new / (np.sqrt(h_new) + dt(eps))
            if norm_post:
                x_new = dt(1 - norm_post) * x_new
            new_x.append(x_new.astype(x.dtype, copy=False))
            new_v.append(v_new.astype(v.dtype, copy=False))
            new_h.append(h_new.astype(h.dtype, copy=False))
        return tuple(new_x + new_v + new_h)

    return compute


@registry.kernel("Momentum", since=1, domain=_DOMAIN, types=_TYPES)
def momentum(node: NodeInfo):
    k = _groups(node, 3)
    alpha = node.attr("alpha")
    beta = node.attr("beta")
    norm = node.attr("norm_coefficient")
    mode = node.attr("mode")
    if mode not in ("standard", "nesterov"):
        raise ValueError(f"{node.describe()}: mode must be 'standard' or 'nesterov', got {mode!r}")
    nesterov = mode == "nesterov"

    def compute(r, t, *tensors):
        xs, gs, vs = tensors[:k], tensors[k : 2 * k], tensors[2 * k :]
        rate = _scalar(r, node, "R")
        beta_adj = beta if _scalar(t, node, "T") > 0 else 1.0
        new_x, new_v = [], []
        for x, g, v in zip(xs, gs, vs):
            dt = x.dtype.type
            g_reg = dt(norm) * x + g
            v_new = dt(alpha) * v + dt(beta_adj) * g_reg
            if nesterov:
                x_new = x - dt(rate) * (g_reg + dt(alpha) * v_new)
            else:
                x_new = x - dt(rate) * v_new
            new_x.append(x_new.astype(x.dtype, copy=False))
            new_v.append(v_new.astype(v.dtype, copy=False))
        return tuple(new_x + new_v)

    return compute
