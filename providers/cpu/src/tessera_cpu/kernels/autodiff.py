"""Gradient (ai.onnx.preview.training): reverse-mode differentiation of the subgraph from xs to y.

At creation the kernel finds the nodes that compute ``y`` from ``xs``/``zs`` (and constants),
builds their CPU kernels, and checks that every one has a gradient rule; at run time it
recomputes the forward values and accumulates vector-Jacobian products back to ``xs``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from tessera.provider import NodeInfo, node_info
from tessera_cpu.kernels._registry import registry


def _unbroadcast(grad: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum ``grad`` down to ``shape`` (undo NumPy broadcasting)."""
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    axes = tuple(range(extra)) + tuple(
        i + extra for i, d in enumerate(shape) if d == 1 and grad.shape[i + extra] != 1
    )
    return grad.sum(axis=axes, keepdims=True).reshape(shape)


def _matmul_vjp(g, a, b):
    a2 = a[None, :] if a.ndim == 1 else a
    b2 = b[:, None] if b.ndim == 1 else b
    g2 = g
    if a.ndim == 1:
        g2 = np.expand_dims(g2, -2)
    if b.ndim == 1:
        g2 = np.expand_dims(g2, -1)
    ga = g2 @ np.swapaxes(b2, -1, -2)
    gb = np.swapaxes(a2, -1, -2) @ g2
    ga = _unbroadcast(ga, a2.shape).reshape(a.shape)
    gb = _unbroadcast(gb, b2.shape).reshape(b.shape)
    return [ga, gb]


# op -> rule(grad_of_output, inputs, output) -> gradient per input (None: not differentiable)
_RULES: dict[str, Callable[[np.ndarray, list, np.ndarray], list]] = {
    "Add": lambda g, x, y: [g, g],
    "Sub": lambda g, x, y: [g, -g],
    "Mul": lambda g, x, y: [g * x[1], g * x[0]],
    "Div": lambda g, x, y: [g / x[1], -g * x[0] / (x[1] * x[1])],
    "Neg": lambda g, x, y: [-g],
    "Identity": lambda g, x, y: [g],
    "Sum": lambda g, x, y: [g] * len(x),
    "Relu": lambda g, x, y: [g * (x[0] > 0)],
    "Sigmoid": lambda g, x, y: [g * y * (1 - y)],
    "Tanh": lambda g, x, y: [g * (1 - y * y)],
    "Exp": lambda g, x, y: [g * y],
    "Log": lambda g, x, y: [g / x[0]],
    "Sqrt": lambda g, x, y: [g / (2 * y)],
    "MatMul": lambda g, x, y: _matmul_vjp(g, x[0], x[1]),
}


@registry.kernel("Gradient", since=1, domain="ai.onnx.preview.training")
def gradient(node: NodeInfo):
    xs = list(node.attr("xs"))
    zs = list(node.attr("zs", []))
    target = node.attr("y")
    graph = node.graph
    if graph is None:
        raise ValueError(f"{node.describe()}: Gradient needs the graph that holds it")
    nodes = list(graph)
    producers = {v.name: (i, n) for i, n in enumerate(nodes) for v in n.outputs}
    constants = {
        name: v.const_value.numpy()
        for name, v in graph.initializers.items()
        if v.const_value is not None
    }
    feeds = set(xs) | set(zs)
    needed: set[int] = set()
    stack = [target]
    while stack:
        name = stack.pop()
        if name in feeds or name in constants or not name:
            continue
        if name not in producers:
            raise ValueError(
                f"{node.describe()}: y={target!r} depends on {name!r}, which is neither in xs/zs "
                "nor computed from them; add it to zs"
            )
        index, producer = producers[name]
        if index not in needed:
            needed.add(index)
            stack.extend(v.name for v in producer.inputs if v is not None)
    opsets = dict(graph.opset_imports)
    forward = []
    for index in sorted(needed):
        info = node_info(nodes[index], index, opsets)
        if info.op_type not in _RULES or info.domain:
            raise ValueError(
                f"{node.describe()}: no gradient rule for {info.describe()}; "
                f"differentiable ops: {', '.join(sorted(_RULES))}"
            )
        forward.append((info, registry.build(info), _RULES[info.op_type]))
    feed_names = xs + zs

    def compute(*values):
        env = dict(constants)
        env.update(zip(feed_names, values))
        for info, fn, _ in forward:
            env.update(zip(info.outputs, fn(*[env[n] if n else None for n in info.inputs])))
        grads = {target: np.ones_like(env[target])}
        for info, _, rule in reversed(forward):
            g = grads.get(info.outputs[0])
            if g is None:
                continue
            args = [env[n] for n in info.inputs]
            for name, arg, dx in zip(info.inputs, args, rule(g, args, env[info.outputs[0]])):
                if dx is None:
                    continue
                dx = _unbroadcast(np.asarray(dx), np.shape(arg))
                grads[name] = grads[name] + dx if name in grads else dx
        return tuple(
            np.asarray(grads.get(x, np.zeros_like(env[x])), dtype=np.asarray(env[x]).dtype)
            for x in xs
        )

    return compute
