"""Tree-ensemble kernels: TreeEnsembleRegressor, TreeEnsembleClassifier and TreeEnsemble (opset 5)."""

from __future__ import annotations

import numpy as np

from tessera.provider import Compute, NodeInfo
from tessera_cpu.kernels._registry import registry
from tessera_cpu.kernels.ml._common import (
    ML,
    ML_INPUT_TYPES,
    apply_transform,
    as_2d,
    class_labels,
    float_list,
    logistic,
    post_transform_name,
    probit,
)
from tessera_cpu.kernels.ml._forest import MEMBER, Forest, from_legacy

_AGGREGATES = ("AVERAGE", "SUM", "MIN", "MAX")
# The TreeEnsemble schema numbers post transforms NONE, SOFTMAX, LOGISTIC, SOFTMAX_ZERO, PROBIT.
# ORT 1.32 casts the number onto its own enum and so swaps 1 and 2; we follow the schema.
_V5_TRANSFORMS = ("NONE", "SOFTMAX", "LOGISTIC", "SOFTMAX_ZERO", "PROBIT")


def _compute_dtype(node: NodeInfo, tensor_attr: str):
    # Thresholds given as a double tensor, or a double input, compare in double; else float32.
    t = node.attrs.get(tensor_attr)
    if node.input_types and node.input_types[0] == "tensor(double)":
        return np.float64
    if t is not None and np.asarray(t).dtype == np.float64:
        return np.float64
    return np.float32


def _finish_regression(
    scores: np.ndarray, n_trees: int, how: str, base: np.ndarray | None, transform: str
) -> np.ndarray:
    k = scores.shape[1]
    dt = scores.dtype.type
    if how == "AVERAGE":
        scores = scores / dt(max(n_trees, 1))
    if base is not None and (len(base) == k or (k == 1 and len(base) == 1)):
        scores = scores + base.astype(dt)
    if k == 1:
        # A single target only ever gets PROBIT (ORT ignores the other transforms).
        return probit(scores) if transform == "PROBIT" else scores
    return apply_transform(scores, transform)


@registry.kernel("TreeEnsembleRegressor", since=(1, 3, 5), domain=ML, types={"T": ML_INPUT_TYPES})
def tree_ensemble_regressor(node: NodeInfo) -> Compute:
    how = node.attr("aggregate_function", "SUM")
    if how not in _AGGREGATES:
        raise ValueError(f"{node.describe()}: unknown aggregate_function {how!r}")
    transform = post_transform_name(node)
    n_targets = int(node.attr("n_targets", 1))
    dtype = _compute_dtype(node, "nodes_values_as_tensor")
    forest = from_legacy(node.describe(), node.attrs, "target", "target_ids", n_targets, dtype)
    base = float_list(node, "base_values", np.float32)
    if base is not None and len(base) not in (0, n_targets):
        raise ValueError(
            f"{node.describe()}: base_values must have 0 or {n_targets} values, got {len(base)}"
        )
    n_trees = len(forest.roots)

    def compute(x):
        x2 = as_2d(x).astype(dtype, copy=False)
        scores, _ = forest.aggregate(forest.leaves(x2), how)
        out = _finish_regression(scores, n_trees, how, base, transform)
        return (out.astype(np.float32, copy=False),)

    return compute


def _binary_scores(s0, s1, h0, h1, base, binary_case, all_positive, transform):
    """ORT's two-class rules: (label index, probability columns) for every row.

    A class no tree voted for reads as 0. With only one class scored the second column is
    derived from the first (1 - p for all-positive weights, else -s or logistic(-s)).
    """
    n = s0.shape[0]
    two = h1.copy()  # rows that keep two scores
    wa = -1  # how a lone score becomes two columns
    if base is not None and len(base) == 2:
        s1_new = np.where(h1, base[1] + s0, s1 + base[1])
        s0 = np.where(h1, -s1_new, s0 + base[0])
        s1 = s1_new
        two = np.ones(n, dtype=bool)
    elif base is not None and len(base) == 1:
        s0 = s0 + base[0]
    else:
        wa = 3
    pos = np.where(h1, s1, np.where(h0, s0, np.float32(0)))
    if binary_case:
        win = pos > (0.5 if all_positive else 0.0)
        wa = 0 if all_positive else 2
    else:
        win = pos > 0
    label = win.astype(np.int64)
    z = np.zeros((n, 2), dtype=np.float32)
    zero = np.float32(0)
    if two.any():
        both = np.stack([np.where(h0, s0, zero), np.where(h1, s1, zero)], axis=1)
        z[two] = apply_transform(both[two], transform)
    one = ~two
    if one.any():
        v = np.where(h0, s0, np.float32(0))[one]
        if transform == "PROBIT":
            z[one, 0] = probit(v)
        elif wa < 0:
            z[one, 0] = v
        elif transform == "LOGISTIC":
            z[one, 0] = logistic(-v)
            z[one, 1] = logistic(v)
        else:
            z[one, 0] = 1 - v if wa == 0 else -v
            z[one, 1] = v
    return label, z


@registry.kernel("TreeEnsembleClassifier", since=(1, 3, 5), domain=ML, types={"T1": ML_INPUT_TYPES})
def tree_ensemble_classifier(node: NodeInfo) -> Compute:
    transform = post_transform_name(node)
    labels, is_str = class_labels(node)
    if labels is None:
        raise ValueError(
            f"{node.describe()}: classlabels_int64s or classlabels_strings is required"
        )
    k = len(labels)
    if k < 2:
        raise ValueError(f"{node.describe()}: a classifier needs at least two class labels")
    dtype = _compute_dtype(node, "nodes_values_as_tensor")
    forest = from_legacy(node.describe(), node.attrs, "class", "class_ids", k, dtype)
    base = float_list(node, "base_values", np.float32)
    if base is not None and len(base) not in (0, k) and not (k == 2 and len(base) == 1):
        raise ValueError(
            f"{node.describe()}: base_values must have 0 or {k} values, got {len(base)}"
        )
    class_ids = np.asarray(node.attrs.get("class_ids", []), dtype=np.int64)
    cw = float_list(node, "class_weights", np.float64)
    binary_case = k == 2 and len(np.unique(class_ids)) == 1
    all_positive = cw is None or bool((cw >= 0).all())

    def compute(x):
        x2 = as_2d(x).astype(dtype, copy=False)
        scores, has = forest.aggregate(forest.leaves(x2), "SUM", need_has=True)
        if k > 2:
            if base is not None and len(base):
                nb = min(len(base), k)
                scores[:, :nb] += base[:nb]
                has[:, :nb] = True
            idx = np.argmax(np.where(has, scores, np.float32(-np.inf)), axis=1)
            z = apply_transform(np.where(has, scores, np.float32(0)), transform)
            lab = labels[idx]
        else:
            idx, z = _binary_scores(
                scores[:, 0],
                scores[:, 1],
                has[:, 0],
                has[:, 1],
                base,
                binary_case,
                all_positive,
                transform,
            )
            # Two int labels both carrying weights: ORT answers the literal 1/0, not the label.
            lab = labels[idx] if (is_str or binary_case) else idx
        return (
            np.asarray(lab, dtype=object if is_str else np.int64),
            z.astype(np.float32, copy=False),
        )

    return compute


def _forest_v5(node: NodeInfo, dtype) -> Forest:
    d = node.describe()
    feat = np.asarray(node.attr("nodes_featureids"), dtype=np.int64)
    n = len(feat)
    splits = np.asarray(node.attr("nodes_splits")).reshape(-1)
    modes = np.asarray(node.attr("nodes_modes")).reshape(-1).astype(np.int64)
    tnode = np.asarray(node.attr("nodes_truenodeids"), dtype=np.int64)
    fnode = np.asarray(node.attr("nodes_falsenodeids"), dtype=np.int64)
    tleaf = np.asarray(node.attr("nodes_trueleafs"), dtype=bool)
    fleaf = np.asarray(node.attr("nodes_falseleafs"), dtype=bool)
    miss = np.asarray(node.attrs.get("nodes_missing_value_tracks_true") or [0] * n, dtype=bool)
    for arr, name in (
        (splits, "nodes_splits"),
        (modes, "nodes_modes"),
        (tnode, "nodes_truenodeids"),
        (fnode, "nodes_falsenodeids"),
        (tleaf, "nodes_trueleafs"),
        (fleaf, "nodes_falseleafs"),
        (miss, "nodes_missing_value_tracks_true"),
    ):
        if len(arr) != n:
            raise ValueError(f"{d}: {name} must have one entry per node ({n})")
    if ((modes < 0) | (modes > MEMBER)).any():
        raise ValueError(f"{d}: nodes_modes values must lie in [0, 6]")
    targets = np.asarray(node.attr("leaf_targetids"), dtype=np.int64)
    lw = np.asarray(node.attr("leaf_weights")).reshape(-1).astype(np.float64)
    n_leaves = len(targets)
    if len(lw) != n_leaves:
        raise ValueError(f"{d}: leaf_weights and leaf_targetids differ in length")
    n_targets = int(node.attr("n_targets", int(targets.max()) + 1 if n_leaves else 1))
    if n_leaves and (targets.min() < 0 or targets.max() >= n_targets):
        raise ValueError(f"{d}: leaf_targetids must lie in [0, {n_targets})")
    for ids, leafy, what in ((tnode, tleaf, "true"), (fnode, fleaf, "false")):
        bound = np.where(leafy, n_leaves, n)
        if ((ids < 0) | (ids >= bound)).any():
            raise ValueError(f"{d}: a {what} branch id is out of range")
    members = {}
    member_nodes = np.flatnonzero(modes == MEMBER)
    if member_nodes.size:
        mv = node.attrs.get("membership_values")
        if mv is None:
            raise ValueError(f"{d}: BRANCH_MEMBER nodes need membership_values")
        mv = np.asarray(mv, dtype=np.float64).reshape(-1)
        cuts = np.flatnonzero(np.isnan(mv))
        groups = np.split(mv, cuts)
        groups = [g[~np.isnan(g)] for g in groups]
        if mv.size and np.isnan(mv[-1]):
            groups = groups[:-1]
        if len(groups) < member_nodes.size:
            raise ValueError(
                f"{d}: membership_values has {len(groups)} sets for {member_nodes.size} BRANCH_MEMBER nodes"
            )
        members = dict(zip(member_nodes.tolist(), groups))
    total = n + n_leaves
    leaf_ids = np.arange(n, total)
    all_feat = np.concatenate([feat, np.zeros(n_leaves, dtype=np.int64)])
    thr = np.concatenate([splits.astype(dtype), np.zeros(n_leaves, dtype=dtype)])
    mode = np.concatenate([modes, np.full(n_leaves, 7)])
    tn = np.concatenate([np.where(tleaf, tnode + n, tnode), leaf_ids])
    fn = np.concatenate([np.where(fleaf, fnode + n, fnode), leaf_ids])
    missing = np.concatenate([miss, np.zeros(n_leaves, dtype=bool)])
    weights = np.zeros((total, n_targets), dtype=np.float64)
    has = np.zeros((total, n_targets), dtype=bool)
    weights[leaf_ids, targets] = lw
    has[leaf_ids, targets] = True
    roots = np.asarray(node.attr("tree_roots"), dtype=np.int64)
    if roots.size and (roots.min() < 0 or roots.max() >= n):
        raise ValueError(f"{d}: tree_roots must index nodes_*")
    return Forest(d, all_feat, thr, mode, tn, fn, missing, roots, weights, has, members)


@registry.kernel(
    "TreeEnsemble",
    since=5,
    domain=ML,
    types={"T": ("tensor(float)", "tensor(double)", "tensor(float16)")},
)
def tree_ensemble(node: NodeInfo) -> Compute:
    agg = int(node.attr("aggregate_function", 1))
    post = int(node.attr("post_transform", 0))
    if not 0 <= agg < 4:
        raise ValueError(f"{node.describe()}: aggregate_function must be 0..3, got {agg}")
    if not 0 <= post < 5:
        raise ValueError(f"{node.describe()}: post_transform must be 0..4, got {post}")
    how, transform = _AGGREGATES[agg], _V5_TRANSFORMS[post]
    splits = node.attr("nodes_splits")
    dtype = np.float64 if np.asarray(splits).dtype == np.float64 else np.float32
    forest = _forest_v5(node, dtype)
    n_trees = len(forest.roots)

    def compute(x):
        x2 = as_2d(x).astype(dtype, copy=False)
        scores, _ = forest.aggregate(forest.leaves(x2), how, dtype)
        out = _finish_regression(scores, n_trees, how, None, transform)
        return (out.astype(x.dtype, copy=False),)

    return compute
