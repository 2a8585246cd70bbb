"""Feature preprocessing: Scaler, Normalizer, Binarizer, Imputer, ArrayFeatureExtractor, FeatureVectorizer."""

from __future__ import annotations

import numpy as np

from tessera.provider import Compute, NodeInfo
from tessera_cpu.kernels._registry import registry
from tessera_cpu.kernels.ml._common import ML, ML_INPUT_TYPES, as_2d


def _per_feature(node: NodeInfo, values: np.ndarray, name: str, x: np.ndarray) -> np.ndarray:
    # A one-value attribute applies to every feature; otherwise one value per column.
    width = x.shape[-1] if x.ndim else 1
    if values.size == 1 or values.size == width:
        return values
    raise ValueError(
        f"{node.describe()}: {name} has {values.size} values, the input has {width} features"
    )


@registry.kernel("Scaler", since=1, domain=ML, types={"T": ML_INPUT_TYPES})
def scaler(node: NodeInfo) -> Compute:
    offset = np.asarray(node.attrs.get("offset") or [0.0], dtype=np.float32)
    scale = np.asarray(node.attrs.get("scale") or [1.0], dtype=np.float32)

    def compute(x):
        xf = x.astype(np.float32, copy=False)
        o = _per_feature(node, offset, "offset", xf)
        s = _per_feature(node, scale, "scale", xf)
        return (((xf - o) * s).astype(np.float32, copy=False),)

    return compute


@registry.kernel("Normalizer", since=1, domain=ML, types={"T": ML_INPUT_TYPES})
def normalizer(node: NodeInfo) -> Compute:
    norm = node.attr("norm", "MAX")
    if norm not in ("MAX", "L1", "L2"):
        raise ValueError(f"{node.describe()}: norm must be MAX, L1 or L2, got {norm!r}")

    def compute(x):
        if x.ndim > 2:
            raise ValueError(
                f"{node.describe()}: the input must be 1-D or 2-D, got shape {x.shape}"
            )
        xf = x.astype(np.float32)
        if norm == "MAX":
            # A running "largest so far" skips NaN unless the row starts with one (ORT's loop).
            d = np.fmax.reduce(xf, axis=-1, keepdims=True) if xf.size else xf
            if xf.size:
                d = np.where(np.isnan(xf[..., :1]), np.float32(np.nan), d)
        elif norm == "L1":
            d = np.abs(xf).sum(axis=-1, keepdims=True)
        else:
            d = np.sqrt((xf * xf).sum(axis=-1, keepdims=True))
        with np.errstate(divide="ignore", invalid="ignore"):
            y = np.where(d != 0, xf / d, xf)
        return (y.astype(np.float32, copy=False),)

    return compute


@registry.kernel("Binarizer", since=1, domain=ML, types={"T": ML_INPUT_TYPES})
def binarizer(node: NodeInfo) -> Compute:
    threshold = float(node.attr("threshold", 0.0))

    def compute(x):
        t = np.asarray(threshold).astype(x.dtype) if x.dtype.kind == "f" else threshold
        # NaN is not above the threshold: 0 (the spec's formula; ORT rejects NaN inputs).
        return ((x > t).astype(x.dtype),)

    return compute


@registry.kernel("Imputer", since=1, domain=ML, types={"T": ML_INPUT_TYPES})
def imputer(node: NodeInfo) -> Compute:
    vf = node.attrs.get("imputed_value_floats")
    vi = node.attrs.get("imputed_value_int64s")
    if bool(vf) == bool(vi):
        raise ValueError(
            f"{node.describe()}: exactly one of imputed_value_floats, imputed_value_int64s is required"
        )
    rf = float(node.attr("replaced_value_float", 0.0))
    ri = int(node.attr("replaced_value_int64", 0))

    def compute(x):
        if x.dtype.kind == "f":
            if not vf:
                raise ValueError(f"{node.describe()}: a float input needs imputed_value_floats")
            values = _per_feature(node, np.asarray(vf, dtype=x.dtype), "imputed_value_floats", x)
            hit = np.isnan(x) if np.isnan(rf) else x == np.asarray(rf, dtype=x.dtype)
        else:
            if not vi:
                raise ValueError(f"{node.describe()}: an integer input needs imputed_value_int64s")
            values = _per_feature(
                node, np.asarray(vi, dtype=np.int64).astype(x.dtype), "imputed_value_int64s", x
            )
            hit = x == ri
        return (np.where(hit, values, x).astype(x.dtype, copy=False),)

    return compute


@registry.kernel(
    "ArrayFeatureExtractor", since=1, domain=ML, types={"T": (*ML_INPUT_TYPES, "tensor(string)")}
)
def array_feature_extractor(node: NodeInfo) -> Compute:
    def compute(x, indices):
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        width = x.shape[-1] if x.ndim else 0
        if idx.size == 0 or (idx.size and (idx.min() < 0 or idx.max() >= width)):
            raise ValueError(
                f"{node.describe()}: indices must be non-empty and lie in [0, {width})"
            )
        y = np.take(x, idx, axis=-1)
        if x.ndim == 1:
            y = y.reshape(1, -1)
        return (y,)

    return compute


@registry.kernel("FeatureVectorizer", since=1, domain=ML, types={"T1": ML_INPUT_TYPES})
def feature_vectorizer(node: NodeInfo) -> Compute:
    dims = [int(d) for d in node.attr("inputdimensions")]
    if len(dims) != node.num_inputs:
        raise ValueError(
            f"{node.describe()}: inputdimensions has {len(dims)} entries for {node.num_inputs} inputs"
        )
    total = sum(dims)
    starts = np.concatenate([[0], np.cumsum(dims)])

    def compute(*xs):
        first = xs[0]
        n = 1 if first.ndim <= 1 else first.shape[0]
        y = np.zeros((n, total), dtype=np.float32)
        for x, s, d in zip(xs, starts, dims):
            x2 = as_2d(x) if x.ndim else x.reshape(1, 1)
            if x2.shape[0] != n:
                raise ValueError(f"{node.describe()}: inputs disagree on the batch size")
            w = min(d, x2.shape[1])
            # Narrower inputs are zero-padded, wider ones truncated.
            y[:, s : s + w] = x2[:, :w]
        return (y,)

    return compute
