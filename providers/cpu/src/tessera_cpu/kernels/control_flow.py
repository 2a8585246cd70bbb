"""Control flow (If, Loop, Scan): drive the subgraph runners the core builds for graph attributes."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from tessera.provider import NodeInfo
from tessera_cpu.kernels._registry import registry

# Every schema version after the first differs only in the value types it admits.
_IF_LOOP_VERSIONS = (1, 11, 13, 16, 19, 21, 23, 24, 25)
_SCAN_VERSIONS = (8, 9, 11, 16, 19, 21, 23, 24, 25)


def _flag(node: NodeInfo, value, what: str) -> bool:
    arr = np.asarray(value)
    if arr.size != 1:
        raise ValueError(
            f"{node.describe()}: {what} must hold exactly one element, got shape {arr.shape}"
        )
    return bool(arr.reshape(()))


def _empty_output(node: NodeInfo, index: int, fixed: dict[int, int]) -> np.ndarray:
    """A scan output of a zero-trip loop. The dims in ``fixed`` (axis -> size) are known; the
    others come from the model's declared output shape when it states them all, else the
    output is 1-D. The dtype is the declared one (float32 when the model does not say)."""
    shape = node.output_shapes[index] if index < len(node.output_shapes) else None
    dims = [0]
    if shape is not None and all(-len(shape) <= a < len(shape) for a in fixed):
        known = {a % len(shape): v for a, v in fixed.items()}
        if all(isinstance(d, int) for i, d in enumerate(shape) if i not in known):
            dims = [known.get(i, d) for i, d in enumerate(shape)]
    dtype = node.output_dtype(index) or np.dtype(np.float32)
    return np.zeros(tuple(dims), dtype)


def _stack(node: NodeInfo, values: list, which: str) -> np.ndarray:
    first = np.shape(values[0])
    for v in values:
        if np.shape(v) != first:
            raise ValueError(
                f"{node.describe()}: {which} changes shape across iterations "
                f"({first} then {np.shape(v)})"
            )
    return np.stack(values, axis=0)


@registry.kernel("If", since=_IF_LOOP_VERSIONS)
def if_(node: NodeInfo) -> Callable[..., tuple]:
    then_branch = node.subgraph("then_branch")
    else_branch = node.subgraph("else_branch")
    n = node.num_inputs

    def compute(*args):
        explicit, captured = args[:n], args[n:]
        branch = then_branch if _flag(node, explicit[0], "the condition") else else_branch
        return tuple(branch([], captured))

    return compute


@registry.kernel("Loop", since=_IF_LOOP_VERSIONS)
def loop(node: NodeInfo) -> Callable[..., tuple]:
    body = node.subgraph("body")
    n = node.num_inputs
    if n < 2:
        raise ValueError(
            f"{node.describe()}: Loop needs the M and cond inputs (either may be empty)"
        )
    n_carried = n - 2
    n_scan = node.num_outputs - n_carried
    if n_scan < 0:
        raise ValueError(
            f"{node.describe()}: {n_carried} loop-carried inputs but only {node.num_outputs} outputs"
        )

    def compute(*args):
        explicit, captured = args[:n], args[n:]
        trip_count, cond = explicit[0], explicit[1]
        carried = list(explicit[2:])
        max_trips = None
        if trip_count is not None:
            t = np.asarray(trip_count)
            if t.size != 1:
                raise ValueError(f"{node.describe()}: M must be a scalar, got shape {t.shape}")
            max_trips = int(t.reshape(()))
        keep = True if cond is None else _flag(node, cond, "cond")
        scans: list[list] = [[] for _ in range(n_scan)]
        i = 0
        while keep and (max_trips is None or i < max_trips):
            outs = body([np.asarray(i, np.int64), np.asarray(keep), *carried], captured)
            keep = _flag(node, outs[0], "the body's condition output")
            carried = list(outs[1 : 1 + n_carried])
            for acc, v in zip(scans, outs[1 + n_carried :]):
                acc.append(v)
            i += 1
        results = carried
        for k, acc in enumerate(scans):
            if acc:
                results.append(_stack(node, acc, f"scan output {k}"))
            else:
                results.append(_empty_output(node, n_carried + k, {0: 0}))
        return tuple(results)

    return compute


def _axes(node: NodeInfo, name: str, count: int) -> list[int]:
    values = list(node.attr(name, [0] * count))
    if len(values) != count:
        raise ValueError(f"{node.describe()}: {name} has {len(values)} entries, expected {count}")
    return [int(v) for v in values]


@registry.kernel("Scan", since=_SCAN_VERSIONS)
def scan(node: NodeInfo) -> Callable[..., tuple]:
    if node.since_version == 8:
        return _scan8(node)
    body = node.subgraph("body")
    n = node.num_inputs
    m = int(node.attr("num_scan_inputs"))
    n_state = n - m
    n_scan_out = node.num_outputs - n_state
    if m < 1 or n_state < 0 or n_scan_out < 0:
        raise ValueError(
            f"{node.describe()}: num_scan_inputs={m} does not fit {n} inputs and {node.num_outputs} outputs"
        )
    in_axes = _axes(node, "scan_input_axes", m)
    in_dirs = _axes(node, "scan_input_directions", m)
    out_axes = _axes(node, "scan_output_axes", n_scan_out)
    out_dirs = _axes(node, "scan_output_directions", n_scan_out)

    def compute(*args):
        explicit, captured = args[:n], args[n:]
        states = list(explicit[:n_state])
        xs = []
        for j, x in enumerate(explicit[n_state:]):
            ax = in_axes[j]
            if not -x.ndim <= ax < x.ndim:
                raise ValueError(
                    f"{node.describe()}: scan_input_axes[{j}]={ax} is out of range for rank {x.ndim}"
                )
            x = np.moveaxis(x, ax, 0)
            xs.append(x[::-1] if in_dirs[j] else x)
        steps = xs[0].shape[0]
        if any(x.shape[0] != steps for x in xs):
            raise ValueError(
                f"{node.describe()}: scan inputs have different lengths {[x.shape[0] for x in xs]}"
            )
        outs: list[list] = [[] for _ in range(n_scan_out)]
        for t in range(steps):
            res = body([*states, *(x[t] for x in xs)], captured)
            states = list(res[:n_state])
            for acc, v in zip(outs, res[n_state:]):
                acc.append(v)
        results = states
        for k, acc in enumerate(outs):
            if not acc:
                results.append(_empty_output(node, n_state + k, {out_axes[k]: 0}))
                continue
            y = _stack(node, acc, f"scan output {k}")
            if out_dirs[k]:
                y = y[::-1]
            ax = out_axes[k]
            if not -y.ndim <= ax < y.ndim:
                raise ValueError(
                    f"{node.describe()}: scan_output_axes[{k}]={ax} is out of range for rank {y.ndim}"
                )
            if ax % y.ndim:
                y = np.moveaxis(y, 0, ax % y.ndim)
            results.append(np.ascontiguousarray(y))
        return tuple(results)

    return compute


def _scan8(node: NodeInfo) -> Callable[..., tuple]:
    """Scan-8: every state and scan input carries a leading batch axis, the scan axis is 1, and
    an optional sequence_lens input shortens each batch entry's scan (outputs padded with zeros)."""
    body = node.subgraph("body")
    n = node.num_inputs
    m = int(node.attr("num_scan_inputs"))
    n_state = n - 1 - m
    n_scan_out = node.num_outputs - n_state
    if m < 1 or n_state < 0 or n_scan_out < 0:
        raise ValueError(
            f"{node.describe()}: num_scan_inputs={m} does not fit {n} inputs and {node.num_outputs} outputs"
        )
    dirs = _axes(node, "directions", m)

    def compute(*args):
        explicit, captured = args[:n], args[n:]
        lens, states, xs = explicit[0], explicit[1 : 1 + n_state], explicit[1 + n_state :]
        batch, steps = xs[0].shape[0], xs[0].shape[1]
        if any(x.shape[:2] != (batch, steps) for x in xs):
            raise ValueError(f"{node.describe()}: scan inputs disagree on [batch, sequence] dims")
        lens = (
            np.full(batch, steps, np.int64) if lens is None else np.asarray(lens).astype(np.int64)
        )
        if lens.shape != (batch,) or (lens < 0).any() or (lens > steps).any():
            raise ValueError(
                f"{node.describe()}: sequence_lens must hold {batch} values in [0, {steps}]"
            )
        final: list[list] = [[] for _ in range(n_state)]
        per_batch: list[list] = [[] for _ in range(n_scan_out)]
        for b in range(batch):
            st = [s[b] for s in states]
            length = int(lens[b])
            outs: list[list] = [[] for _ in range(n_scan_out)]
            for t in range(length):
                feeds = [x[b, length - 1 - t if d else t] for x, d in zip(xs, dirs)]
                res = body([*st, *feeds], captured)
                st = list(res[:n_state])
                for acc, v in zip(outs, res[n_state:]):
                    acc.append(v)
            for acc, v in zip(final, st):
                acc.append(v)
            for k, acc in enumerate(outs):
                per_batch[k].append(_stack(node, acc, f"scan output {k}") if acc else None)
        results = [
            _stack(node, acc, f"final state {j}") if acc else states[j]
            for j, acc in enumerate(final)
        ]
        for k, items in enumerate(per_batch):
            known = next((y for y in items if y is not None), None)
            if known is None:
                results.append(_empty_output(node, n_state + k, {0: batch, 1: steps}))
                continue
            y = np.zeros((batch, steps, *known.shape[1:]), known.dtype)
            for b, item in enumerate(items):
                if item is not None:
                    y[b, : item.shape[0]] = item
            results.append(y)
        return tuple(results)

    return compute
