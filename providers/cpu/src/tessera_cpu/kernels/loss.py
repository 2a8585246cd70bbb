"""Loss kernels: NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss."""

from __future__ import annotations

import numpy as np

from tessera.provider import FLOAT_TYPES, NodeInfo
from tessera_cpu.kernels._registry import registry

_INDEX_TYPES = ("tensor(int32)", "tensor(int64)")
_REDUCTIONS = ("none", "sum", "mean")


def _compute_dtype(dtype: np.dtype) -> np.dtype:
    return dtype if dtype in (np.float32, np.float64) else np.dtype(np.float32)


def _parse(node: NodeInfo) -> tuple[str, int | None]:
    reduction = node.attr("reduction", "mean")
    if isinstance(reduction, bytes):
        reduction = reduction.decode()
    if reduction not in _REDUCTIONS:
        raise ValueError(
            f"{node.describe()}: reduction must be one of {_REDUCTIONS}, got {reduction!r}"
        )
    ii = node.attr("ignore_index", None)
    return reduction, None if ii is None else int(ii)


def _nll(
    node: NodeInfo,
    logp: np.ndarray,
    target: np.ndarray,
    weight: np.ndarray | None,
    reduction: str,
    ii: int | None,
    lse: np.ndarray | None = None,
) -> np.ndarray:
    """Weighted negative log-likelihood of log-probabilities ``logp`` (N, C, d...) in their dtype.

    With ``lse`` (N, 1, d...), ``logp - lse`` are the log-probabilities (only picked entries are
    corrected)."""
    n, c = logp.shape[0], logp.shape[1]
    if target.shape != (n, *logp.shape[2:]):
        raise ValueError(
            f"{node.describe()}: target shape {target.shape} does not match input shape {logp.shape} "
            "without its class axis"
        )
    ignored = None if ii is None else target == ii
    t = target if ignored is None else np.where(ignored, 0, target)
    if t.size and (t.min() < 0 or t.max() >= c):
        raise ValueError(
            f"{node.describe()}: a target index is outside [0, {c}) and is not ignore_index"
        )
    t = t.astype(np.intp, copy=False)
    picked = np.take_along_axis(logp, t[:, None], axis=1)[:, 0]
    if lse is not None:
        picked -= lse[:, 0]
    loss = np.negative(picked)
    w = None
    if weight is not None:
        w = weight.astype(logp.dtype, copy=False)[t]
        if ignored is not None:
            w = np.where(ignored, logp.dtype.type(0), w)
    elif ignored is not None:
        w = (~ignored).astype(logp.dtype)
    if w is not None:
        loss *= w
    if ignored is not None:
        # An ignored entry read class 0 as a placeholder, which may be -inf (inf * 0 = NaN).
        loss[ignored] = 0
    if reduction == "none":
        return loss
    total = loss.sum(dtype=logp.dtype)
    if reduction == "sum":
        return np.asarray(total)
    denom = w.sum(dtype=logp.dtype) if w is not None else logp.dtype.type(loss.size)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(total / denom, dtype=logp.dtype)


@registry.kernel(
    "NegativeLogLikelihoodLoss", since=(12, 13, 22), types={"T": FLOAT_TYPES, "Tind": _INDEX_TYPES}
)
def negative_log_likelihood_loss(node: NodeInfo):
    reduction, ii = _parse(node)

    def compute(x, target, weight=None):
        if x.ndim < 2:
            raise ValueError(f"{node.describe()}: input must have rank >= 2, got shape {x.shape}")
        cdt = _compute_dtype(x.dtype)
        loss = _nll(node, x.astype(cdt, copy=False), target, weight, reduction, ii)
        return (loss.astype(x.dtype, copy=False),)

    return compute


@registry.kernel(
    "SoftmaxCrossEntropyLoss", since=(12, 13), types={"T": FLOAT_TYPES, "Tind": _INDEX_TYPES}
)
def softmax_cross_entropy_loss(node: NodeInfo):
    reduction, ii = _parse(node)
    want_log_prob = len(node.outputs) > 1 and bool(node.outputs[1])

    def compute(scores, labels, weights=None):
        if scores.ndim < 2:
            raise ValueError(
                f"{node.describe()}: scores must have rank >= 2, got shape {scores.shape}"
            )
        cdt = _compute_dtype(scores.dtype)
        s = scores.astype(cdt, copy=False)
        shifted = s - s.max(axis=1, keepdims=True)
        e = np.exp(shifted)
        lse = np.log(e.sum(axis=1, keepdims=True))
        if want_log_prob:
            shifted -= lse
            loss = _nll(node, shifted, labels, weights, reduction, ii)
            return loss.astype(scores.dtype, copy=False), shifted.astype(scores.dtype, copy=False)
        # Only the picked entries of log_softmax are needed: gather them from the shifted
        # scores and subtract their row's log-sum-exp, instead of a full pass over the array.
        loss = _nll(node, shifted, labels, weights, reduction, ii, lse=lse)
        return (loss.astype(scores.dtype, copy=False),)

    return compute
