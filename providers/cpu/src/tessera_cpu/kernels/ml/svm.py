"""Support vector machines: SVMClassifier and SVMRegressor (ai.onnx.ml), as ORT evaluates them."""

from __future__ import annotations

import numpy as np

from tessera.provider import Compute, NodeInfo
from tessera_cpu.kernels._registry import registry
from tessera_cpu.kernels.ml._common import (
    ML,
    ML_INPUT_TYPES,
    as_2d,
    logistic,
    post_transform_name,
    probit,
)
from tessera_cpu.kernels.ml.linear import transform_scores

_KERNELS = ("LINEAR", "POLY", "RBF", "SIGMOID")


class _Kernel:
    """The kernel function k(x, v) for a batch of rows against every support vector."""

    def __init__(self, node: NodeInfo, vectors: np.ndarray, kind: str) -> None:
        if kind not in _KERNELS:
            raise ValueError(f"{node.describe()}: unknown kernel_type {kind!r}")
        params = list(node.attrs.get("kernel_params") or [])
        if params and len(params) < 3:
            raise ValueError(f"{node.describe()}: kernel_params must be [gamma, coef0, degree]")
        gamma, coef0, degree = [*params, 0.0, 0.0, 0.0][:3] if params else (0.0, 0.0, 0.0)
        self.kind = kind
        self.gamma = np.float32(gamma)
        self.coef0 = np.float32(coef0)
        self.degree = np.float32(degree)
        self.vectors_t = np.ascontiguousarray(vectors.T)  # (F, V)
        self.sq_norms = (vectors.astype(np.float64) ** 2).sum(axis=1)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if self.kind == "RBF":
            # ||x - v||^2 through one matrix product; clamp the rounding below zero.
            d = (x.astype(np.float64) ** 2).sum(axis=1, keepdims=True) + self.sq_norms
            d -= 2 * (x.astype(np.float64) @ self.vectors_t)
            return np.exp(-self.gamma * np.maximum(d, 0)).astype(np.float32)
        k = x @ self.vectors_t
        if self.kind == "LINEAR":
            return k
        k = self.gamma * k + self.coef0
        if self.kind == "POLY":
            return (
                k**2
                if self.degree == 2
                else (k**3 if self.degree == 3 else np.power(k, self.degree))
            )
        return np.tanh(k)


def _features(node: NodeInfo, x: np.ndarray, n_features: int) -> np.ndarray:
    x2 = as_2d(x).astype(np.float32, copy=False)
    if x2.shape[1] != n_features:
        raise ValueError(
            f"{node.describe()}: the input has {x2.shape[1]} features, the model {n_features}"
        )
    return x2


def _pairwise_probabilities(r: np.ndarray, k: int) -> np.ndarray:
    """Multiclass probabilities from pairwise ones (Wu, Lin and Weng), for every row at once.

    ``r`` is (N, k, k) with r[i, j] = P(i beats j). Works in float32 and iterates like libsvm
    so that the results follow ORT's.
    """
    n = r.shape[0]
    rt = np.swapaxes(r, 1, 2)
    q = -(rt * r)  # Q[i, j] = -r[j, i] r[i, j]
    diag = (rt * rt).sum(axis=2) - np.einsum("nii->ni", rt * rt)
    idx = np.arange(k)
    q[:, idx, idx] = diag
    q = q.astype(np.float32)
    p = np.full((n, k), 1 / k, dtype=np.float32)
    eps = np.float32(0.005 / k)
    active = np.arange(n)
    for _ in range(100):
        qa, pa = q[active], p[active]
        qp = np.einsum("nij,nj->ni", qa, pa)
        pqp = (pa * qp).sum(axis=1)
        err = np.abs(qp - pqp[:, None]).max(axis=1)
        go = err >= eps
        if not go.any():
            break
        active, qa, pa, qp, pqp = active[go], qa[go], pa[go], qp[go], pqp[go]
        for i in range(k):
            qii = qa[:, i, i]
            diff = (-qp[:, i] + pqp) / qii
            pa[:, i] += diff
            one = 1 + diff
            pqp = (pqp + diff * (diff * qii + 2 * qp[:, i])) / one / one
            qp = (qp + diff[:, None] * qa[:, i, :]) / one[:, None]
            pa /= one[:, None]
        p[active] = pa
    return p


@registry.kernel("SVMClassifier", since=1, domain=ML, types={"T1": ML_INPUT_TYPES})
def svm_classifier(node: NodeInfo) -> Compute:
    d = node.describe()
    transform = post_transform_name(node)
    lab_s = node.attrs.get("classlabels_strings")
    lab_i = node.attrs.get("classlabels_ints")
    if not lab_s and not lab_i:
        raise ValueError(f"{d}: one of classlabels_strings, classlabels_ints is required")
    is_str = bool(lab_s)
    labels = np.array(list(lab_s), dtype=object) if is_str else np.asarray(lab_i, dtype=np.int64)
    k = len(labels)
    coef = np.asarray(node.attr("coefficients"), dtype=np.float32)
    rho = np.asarray(node.attr("rho"), dtype=np.float32)
    prob_a = np.asarray(node.attrs.get("prob_a") or [], dtype=np.float32)
    prob_b = np.asarray(node.attrs.get("prob_b") or [], dtype=np.float32)
    if prob_a.size != prob_b.size:
        raise ValueError(f"{d}: prob_a and prob_b must have the same length")
    per_class = np.asarray(node.attrs.get("vectors_per_class") or [], dtype=np.int64)
    n_vec = int(per_class.sum())
    n_pairs = k * (k - 1) // 2
    have_proba = prob_a.size > 0
    all_positive = bool((coef >= 0).all())
    if coef.size == 0:
        raise ValueError(f"{d}: coefficients are empty")
    if n_vec > 0:
        sv = np.asarray(node.attr("support_vectors"), dtype=np.float32)
        if sv.size % n_vec:
            raise ValueError(f"{d}: support_vectors do not split into {n_vec} vectors")
        n_feat = sv.size // n_vec
        if len(per_class) != k:
            raise ValueError(f"{d}: vectors_per_class has {len(per_class)} entries for {k} classes")
        if coef.size < (k - 1) * n_vec or rho.size < n_pairs:
            raise ValueError(
                f"{d}: coefficients or rho are too short for {k} classes and {n_vec} vectors"
            )
        if have_proba and prob_a.size < n_pairs:
            raise ValueError(f"{d}: prob_a/prob_b need {n_pairs} values")
        kernel = _Kernel(node, sv.reshape(n_vec, n_feat), node.attr("kernel_type", "LINEAR"))
        # One matrix turns kernel values into every one-vs-one score: pair (i, j) weighs class
        # i's vectors by coefficient row j-1 and class j's vectors by row i.
        c = coef[: (k - 1) * n_vec].reshape(k - 1, n_vec)
        start = np.concatenate([[0], np.cumsum(per_class)])
        mix = np.zeros((n_vec, n_pairs), dtype=np.float32)
        pair_i, pair_j = [], []
        p = 0
        for i in range(k - 1):
            for j in range(i + 1, k):
                si, sj = slice(start[i], start[i + 1]), slice(start[j], start[j + 1])
                mix[si, p] = c[j - 1, si]
                mix[sj, p] = c[i, sj]
                pair_i.append(i)
                pair_j.append(j)
                p += 1
        pair_i, pair_j = np.asarray(pair_i), np.asarray(pair_j)
    else:
        if coef.size % k:
            raise ValueError(f"{d}: {coef.size} coefficients do not split into {k} classes")
        n_feat = coef.size // k
        if rho.size < 1:
            raise ValueError(f"{d}: rho must have at least one value")
        w = np.ascontiguousarray(coef.reshape(k, n_feat).T)

    def compute(x):
        x2 = _features(node, x, n_feat)
        n = x2.shape[0]
        if n_vec == 0:
            scores = x2 @ w + rho[0]
            top = np.argmax(scores, axis=1)
            if k == 2:
                best = scores[np.arange(n), top]
                win = (best >= 0.5) if all_positive else (best > 0)
                top = np.where(win, 1, top)
            return labels[top], transform_scores(scores, transform).astype(np.float32)
        pair = (kernel(x2).astype(np.float64) @ mix + rho[:n_pairs]).astype(np.float32)
        votes = np.zeros((n, k), dtype=np.int64)
        pos = pair > 0
        for q in range(n_pairs):
            votes[:, pair_i[q]] += pos[:, q]
            votes[:, pair_j[q]] += ~pos[:, q]
        top = np.argmax(votes, axis=1)
        if have_proba:
            v = 1 - logistic(pair * prob_a[:n_pairs] + prob_b[:n_pairs])
            v = np.clip(v, np.float32(1e-7), np.float32(1 - 1e-7))
            r = np.zeros((n, k, k), dtype=np.float32)
            r[:, pair_i, pair_j] = v
            r[:, pair_j, pair_i] = 1 - v
            z = transform_scores(_pairwise_probabilities(r, k), transform)
        elif k == 2:
            s = pair[:, 0]
            if transform == "PROBIT":
                z = np.stack([probit(s), np.zeros_like(s)], axis=1)
            elif transform == "NONE":
                z = np.stack([-s, s], axis=1)
            elif transform == "LOGISTIC":
                z = np.stack([logistic(-s), logistic(s)], axis=1)
            else:
                z = np.stack([1 - s, s], axis=1)
        else:
            z = transform_scores(pair, transform)
        return labels[top], z.astype(np.float32, copy=False)

    def finish(x):
        label, z = compute(x)
        return (np.asarray(label, dtype=object if is_str else np.int64), z)

    return finish


@registry.kernel("SVMRegressor", since=1, domain=ML, types={"T": ML_INPUT_TYPES})
def svm_regressor(node: NodeInfo) -> Compute:
    d = node.describe()
    post_transform_name(node)  # validated only: ORT applies no post transform to SVMRegressor
    coef = np.asarray(node.attr("coefficients"), dtype=np.float32)
    rho = np.asarray(node.attrs.get("rho") or [0.0], dtype=np.float32)
    n_vec = int(node.attr("n_supports", 0))
    one_class = bool(node.attr("one_class", 0))
    if n_vec > 0:
        sv = np.asarray(node.attr("support_vectors"), dtype=np.float32)
        if sv.size % n_vec or coef.size < n_vec:
            raise ValueError(f"{d}: support_vectors/coefficients do not match n_supports={n_vec}")
        n_feat = sv.size // n_vec
        kernel = _Kernel(node, sv.reshape(n_vec, n_feat), node.attr("kernel_type", "LINEAR"))
        w = coef[:n_vec].reshape(n_vec, 1)
    else:
        n_feat = coef.size
        w = coef.reshape(n_feat, 1)

    def compute(x):
        x2 = _features(node, x, n_feat)
        k = kernel(x2) if n_vec > 0 else x2
        y = k @ w + rho[0]
        if one_class:
            y = np.where(y > 0, np.float32(1), np.float32(-1))
        return (y.astype(np.float32, copy=False),)

    return compute
