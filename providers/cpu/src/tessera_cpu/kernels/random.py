"""Random-number kernels: RandomUniform(Like), RandomNormal(Like), Bernoulli and Multinomial.

Kernels are stateless: a node with a ``seed`` builds a fresh generator from that seed on every
run (so it repeats its draws run after run); a node without one draws fresh OS entropy per run.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np

from tessera.provider import FLOAT_TYPES, NodeInfo, np_dtype
from tessera_cpu.kernels._registry import registry

_FLOATS = {np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64),
           np.dtype(ml_dtypes.bfloat16)}  # fmt: skip
_BERNOULLI_OUT = (
    *FLOAT_TYPES,
    "tensor(bool)",
    *tuple(f"tensor({p}int{b})" for p in ("", "u") for b in (8, 16, 32, 64)),
)


def _rng_factory(node: NodeInfo):
    """A callable returning the generator for one run."""
    seed = node.attr("seed", None)
    if seed is None:
        return np.random.default_rng
    # The seed attribute is a float: its bit pattern seeds the generator, so 0.5 and 1.0 differ.
    entropy = int(np.float64(seed).view(np.uint64))
    seq = np.random.SeedSequence(entropy)
    return lambda: np.random.default_rng(seq)


def _float_dtype(node: NodeInfo, dt: np.dtype | None, what: str) -> np.dtype:
    if dt is None or dt not in _FLOATS:
        raise ValueError(
            f"{node.describe()}: {what} {dt} is not float16, bfloat16, float or double"
        )
    return dt


def _draw(rng: np.random.Generator, kind: str, shape, dt: np.dtype, a: float, b: float):
    # Generators produce float32/float64 natively; the half-width types are cast from float32.
    gen_dt = np.float64 if dt == np.float64 else np.float32
    if kind == "uniform":
        out = rng.random(shape, dtype=gen_dt)
        out *= gen_dt(b - a)
        out += gen_dt(a)
    else:
        out = rng.standard_normal(shape, dtype=gen_dt)
        out *= gen_dt(b)
        out += gen_dt(a)
    return out if out.dtype == dt else out.astype(dt)


def _shape_op(node: NodeInfo, kind: str, a: float, b: float):
    shape = tuple(int(d) for d in node.attr("shape"))
    if any(d < 0 for d in shape):
        raise ValueError(f"{node.describe()}: shape {shape} has a negative dimension")
    dt = _float_dtype(node, np_dtype(node.attr("dtype", 1)), "dtype")
    make = _rng_factory(node)

    def compute():
        return (_draw(make(), kind, shape, dt, a, b),)

    return compute


def _like_op(node: NodeInfo, kind: str, a: float, b: float):
    attr = node.attr("dtype", None)
    fixed = _float_dtype(node, np_dtype(attr), "dtype") if attr is not None else None
    if fixed is None and node.input_types and node.input_types[0] is not None:
        if node.input_types[0] not in FLOAT_TYPES:
            raise ValueError(
                f"{node.describe()}: input type {node.input_types[0]} is not a float type "
                "and no dtype attribute is given"
            )
    make = _rng_factory(node)

    def compute(x):
        dt = fixed or _float_dtype(node, x.dtype, "input type")
        return (_draw(make(), kind, x.shape, dt, a, b),)

    return compute


@registry.kernel("RandomUniform", since=(1, 22))
def random_uniform(node: NodeInfo):
    return _shape_op(node, "uniform", node.attr("low", 0.0), node.attr("high", 1.0))


@registry.kernel("RandomNormal", since=(1, 22))
def random_normal(node: NodeInfo):
    return _shape_op(node, "normal", node.attr("mean", 0.0), node.attr("scale", 1.0))


@registry.kernel("RandomUniformLike", since=(1, 22))
def random_uniform_like(node: NodeInfo):
    return _like_op(node, "uniform", node.attr("low", 0.0), node.attr("high", 1.0))


@registry.kernel("RandomNormalLike", since=(1, 22))
def random_normal_like(node: NodeInfo):
    return _like_op(node, "normal", node.attr("mean", 0.0), node.attr("scale", 1.0))


@registry.kernel("Bernoulli", since=(15, 22), types={"T1": FLOAT_TYPES, "T2": _BERNOULLI_OUT})
def bernoulli(node: NodeInfo):
    attr = node.attr("dtype", None)
    fixed = np_dtype(attr) if attr is not None else None
    make = _rng_factory(node)

    def compute(x):
        p = x if x.dtype in (np.float32, np.float64) else x.astype(np.float32)
        hit = make().random(x.shape, dtype=p.dtype) < p
        return (hit.astype(fixed or x.dtype),)

    return compute


@registry.kernel(
    "Multinomial",
    since=(7, 22),
    types={"T1": FLOAT_TYPES, "T2": ("tensor(int32)", "tensor(int64)")},
)
def multinomial(node: NodeInfo):
    out_dt = np_dtype(node.attr("dtype", 6))
    if out_dt not in (np.int32, np.int64):
        raise ValueError(f"{node.describe()}: dtype must be int32 or int64, got {out_dt}")
    samples = node.attr("sample_size", 1)
    if samples < 0:
        raise ValueError(f"{node.describe()}: sample_size must be non-negative, got {samples}")
    make = _rng_factory(node)

    def compute(x):
        if x.ndim != 2:
            raise ValueError(f"{node.describe()}: input must be [batch, classes], got {x.shape}")
        batch, classes = x.shape
        if classes == 0:
            raise ValueError(f"{node.describe()}: input has no classes")
        # The input holds unnormalized log-probabilities: a stable softmax gives the CDF per row.
        logits = x.astype(np.float64)
        prob = np.exp(logits - logits.max(axis=1, keepdims=True))
        cdf = np.cumsum(prob, axis=1)
        cdf /= cdf[:, -1:]
        # Offsetting row i by i makes one sorted array, so a single searchsorted serves all rows.
        rows = np.arange(batch, dtype=np.float64)[:, None]
        flat = (cdf + rows).ravel()
        u = make().random((batch, samples)) + rows
        idx = np.searchsorted(flat, u.ravel(), side="right").reshape(batch, samples)
        idx -= (np.arange(batch) * classes)[:, None]
        np.clip(idx, 0, classes - 1, out=idx)
        return (idx.astype(out_dt),)

    return compute
