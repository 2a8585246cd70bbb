"""Shared helpers of the ai.onnx.ml kernels: post transforms, attribute parsing and type sets."""

from __future__ import annotations

import numpy as np

from tessera.provider import NodeInfo

ML = "ai.onnx.ml"
ML_INPUT_TYPES = ("tensor(float)", "tensor(double)", "tensor(int64)", "tensor(int32)")

_SQRT2 = np.float32(np.sqrt(2))
# Constants rounded the way ORT's float code rounds them (it matters near 0.5).
_ERF_A = np.float32(2) / (np.float32(np.pi) * np.float32(0.147))
_ERF_B = np.float32(1) / np.float32(0.147)
_POST_TRANSFORMS = ("NONE", "LOGISTIC", "SOFTMAX", "SOFTMAX_ZERO", "PROBIT")


def post_transform_name(node: NodeInfo) -> str:
    name = node.attr("post_transform", "NONE")
    if name not in _POST_TRANSFORMS:
        raise ValueError(f"{node.describe()}: unknown post_transform {name!r}")
    return name


def float_list(node: NodeInfo, name: str, dtype=np.float32) -> np.ndarray | None:
    """A FLOATS attribute or its ``<name>_as_tensor`` twin, as an array (None when absent)."""
    value = node.attrs.get(name)
    tensor = node.attrs.get(f"{name}_as_tensor")
    if value is not None and tensor is not None:
        raise ValueError(f"{node.describe()}: both {name} and {name}_as_tensor are set")
    if tensor is not None:
        return np.asarray(tensor).reshape(-1).astype(dtype if dtype is not None else tensor.dtype)
    if value is None:
        return None
    return np.asarray(value, dtype=np.float32 if dtype is None else dtype)


def as_2d(x: np.ndarray) -> np.ndarray:
    """ML ops read a 1-D input as a single row (ORT does the same)."""
    if x.ndim == 1:
        return x.reshape(1, -1)
    if x.ndim == 2:
        return x
    return x.reshape(x.shape[0], -1)


def logistic(v: np.ndarray) -> np.ndarray:
    e = np.exp(-np.abs(v))
    p = 1 / (1 + e)
    return np.where(v < 0, 1 - p, p).astype(v.dtype, copy=False)


def erf_inv(x: np.ndarray) -> np.ndarray:
    # The same closed-form approximation ORT uses, so that PROBIT outputs agree with it.
    x = x.astype(np.float32, copy=False)
    sgn = np.where(x < 0, np.float32(-1), np.float32(1))
    y = (1 - x) * (1 + x)
    with np.errstate(divide="ignore", invalid="ignore"):
        lg = np.log(y)
        v = _ERF_A + np.float32(0.5) * lg
        v2 = _ERF_B * lg
        v3 = -v + np.sqrt(v * v - v2)
        return sgn * np.sqrt(v3)


def probit(v: np.ndarray) -> np.ndarray:
    return (_SQRT2 * erf_inv(2 * v.astype(np.float32, copy=False) - 1)).astype(v.dtype, copy=False)


def softmax(v: np.ndarray) -> np.ndarray:
    e = np.exp(v - v.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def softmax_zero(v: np.ndarray) -> np.ndarray:
    # Scores that are exactly (nearly) zero mean "no evidence" and stay zero.
    m = v.max(axis=-1, keepdims=True)
    nz = np.abs(v) > 1e-7
    e = np.where(nz, np.exp(v - m), v * np.exp(-m))
    s = np.where(nz, e, 0).sum(axis=-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        return e / s


def apply_transform(scores: np.ndarray, name: str) -> np.ndarray:
    """Post transform over the last axis of (N, C) scores."""
    if name == "NONE":
        return scores
    if name == "LOGISTIC":
        return logistic(scores)
    if name == "SOFTMAX":
        return softmax(scores)
    if name == "SOFTMAX_ZERO":
        return softmax_zero(scores)
    return probit(scores)


def class_labels(
    node: NodeInfo, ints: str = "classlabels_int64s", strings: str = "classlabels_strings"
):
    """(labels array, is_string): int64 or object array of the classifier's labels."""
    lab_i = node.attrs.get(ints)
    lab_s = node.attrs.get(strings)
    if lab_i and lab_s:
        raise ValueError(f"{node.describe()}: both {ints} and {strings} are set")
    if lab_s:
        return np.array(list(lab_s), dtype=object), True
    if lab_i:
        return np.asarray(lab_i, dtype=np.int64), False
    return None, False
