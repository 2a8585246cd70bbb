"""Linear models: LinearRegressor and LinearClassifier (ai.onnx.ml)."""

from __future__ import annotations

import numpy as np

from tessera.provider import Compute, NodeInfo
from tessera_cpu.kernels._registry import registry
from tessera_cpu.kernels.ml._common import (
    ML,
    ML_INPUT_TYPES,
    apply_transform,
    as_2d,
    logistic,
    post_transform_name,
    probit,
)


def _coefficients(node: NodeInfo, n_out: int) -> np.ndarray:
    coef = np.asarray(node.attr("coefficients"), dtype=np.float32)
    if n_out <= 0 or coef.size % n_out:
        raise ValueError(
            f"{node.describe()}: {coef.size} coefficients do not split into {n_out} rows"
        )
    return np.ascontiguousarray(coef.reshape(n_out, -1).T)  # (F, n_out), ready for x @ w


def _check_features(node: NodeInfo, x: np.ndarray, w: np.ndarray) -> None:
    if x.shape[1] != w.shape[0]:
        raise ValueError(
            f"{node.describe()}: the input has {x.shape[1]} features, the model {w.shape[0]}"
        )


def transform_scores(scores: np.ndarray, transform: str) -> np.ndarray:
    """ORT's score update: one column only ever gets PROBIT, wider ones every transform."""
    if scores.shape[1] == 1:
        return probit(scores) if transform == "PROBIT" else scores
    return apply_transform(scores, transform)


@registry.kernel("LinearRegressor", since=1, domain=ML, types={"T": ML_INPUT_TYPES})
def linear_regressor(node: NodeInfo) -> Compute:
    transform = post_transform_name(node)
    targets = int(node.attr("targets", 1))
    w = _coefficients(node, targets)
    b = np.asarray(node.attrs.get("intercepts") or np.zeros(targets), dtype=np.float32)
    if b.size != targets:
        raise ValueError(f"{node.describe()}: intercepts has {b.size} values, targets is {targets}")

    def compute(x):
        x2 = as_2d(x).astype(np.float32, copy=False)
        _check_features(node, x2, w)
        y = x2 @ w
        y += b
        return (transform_scores(y, transform).astype(np.float32, copy=False),)

    return compute


@registry.kernel("LinearClassifier", since=1, domain=ML, types={"T1": ML_INPUT_TYPES})
def linear_classifier(node: NodeInfo) -> Compute:
    transform = post_transform_name(node)
    lab_s = node.attrs.get("classlabels_strings")
    lab_i = node.attrs.get("classlabels_ints")
    if lab_s and lab_i:
        raise ValueError(
            f"{node.describe()}: both classlabels_ints and classlabels_strings are set"
        )
    is_str = bool(lab_s)
    labels = (
        np.array(list(lab_s), dtype=object) if is_str else np.asarray(lab_i or [], dtype=np.int64)
    )
    intercepts = node.attrs.get("intercepts")
    if not intercepts:
        raise ValueError(
            f"{node.describe()}: intercepts is required (it gives the number of classes)"
        )
    b = np.asarray(intercepts, dtype=np.float32)
    n_out = b.size
    w = _coefficients(node, n_out)
    if n_out > 1 and len(labels) != n_out:
        raise ValueError(f"{node.describe()}: {n_out} score columns but {len(labels)} class labels")
    if n_out == 1 and len(labels) != 2:
        raise ValueError(
            f"{node.describe()}: one score column (binary) needs exactly 2 class labels, got {len(labels)}"
        )
    if n_out == 1:
        # One score column: its sign picks between the two labels.
        pos, neg = labels[1], labels[0]
    add_second = n_out == 1

    def compute(x):
        x2 = as_2d(x).astype(np.float32, copy=False)
        _check_features(node, x2, w)
        scores = x2 @ w
        scores += b
        if n_out == 1:
            s = scores[:, 0]
            label = np.where(s > 0, pos, neg)
        else:
            label = labels[np.argmax(scores, axis=1)]
        if add_second:
            s = scores[:, 0]
            if transform == "PROBIT":
                z = np.stack([probit(s), np.zeros_like(s)], axis=1)
            elif transform == "LOGISTIC":
                z = np.stack([logistic(-s), logistic(s)], axis=1)
            else:
                z = np.stack([1 - s, s], axis=1)
        else:
            z = transform_scores(scores, transform)
        return (
            np.asarray(label, dtype=object if is_str else np.int64),
            z.astype(np.float32, copy=False),
        )

    return compute
