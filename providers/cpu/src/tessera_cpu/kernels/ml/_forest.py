"""Vectorized tree-ensemble evaluation: every (row, tree) pair descends one level per step."""

from __future__ import annotations

import numpy as np

# Mode codes follow the TreeEnsemble (opset 5) enumeration; LEAF is ours.
LEQ, LT, GTE, GT, EQ, NEQ, MEMBER, LEAF = range(8)
MODE_CODES = {
    "BRANCH_LEQ": LEQ,
    "BRANCH_LT": LT,
    "BRANCH_GTE": GTE,
    "BRANCH_GT": GT,
    "BRANCH_EQ": EQ,
    "BRANCH_NEQ": NEQ,
    "BRANCH_MEMBER": MEMBER,
    "LEAF": LEAF,
}
_CMP = {
    LEQ: np.less_equal,
    LT: np.less,
    GTE: np.greater_equal,
    GT: np.greater,
    EQ: np.equal,
    NEQ: np.not_equal,
}


_BLOCK_PAIRS = 1 << 15  # (row, tree) pairs per block


class _Scratch:
    """Per-call temporaries of one block, reused from level to level and block to block."""

    def __init__(self, size: int, x_dtype, thr_dtype) -> None:
        self.nodes = (np.empty(size, dtype=np.intp), np.empty(size, dtype=np.intp))
        self.pos = np.empty(size, dtype=np.intp)
        self.val = np.empty(size, dtype=x_dtype)
        self.thr = np.empty(size, dtype=thr_dtype)
        self.cond = np.empty(size, dtype=bool)


class Forest:
    """A flat node table (interior nodes and leaves) plus per-leaf target weights.

    ``feature``, ``threshold``, ``mode``, ``true_next``, ``false_next``, ``missing_true`` are
    indexed by global node id; leaves point to themselves. ``weights``/``has`` are
    (n_nodes, n_targets): the leaf's contribution and whether it contributes to a target.
    """

    def __init__(
        self,
        describe: str,
        feature,
        threshold,
        mode,
        true_next,
        false_next,
        missing_true,
        roots,
        weights,
        has,
        members: dict[int, np.ndarray] | None = None,
    ) -> None:
        self.describe = describe
        self.feature = np.asarray(feature, dtype=np.int64)
        self.threshold = np.asarray(threshold)
        self.mode = np.asarray(mode, dtype=np.int8)
        self.true_next = np.asarray(true_next, dtype=np.int64)
        self.false_next = np.asarray(false_next, dtype=np.int64)
        self.missing_true = np.asarray(missing_true, dtype=bool)
        self.roots = np.asarray(roots, dtype=np.int64)
        self.weights = weights
        self.has = has
        self.n_targets = weights.shape[1]
        n = len(self.mode)
        for arr, what in (
            (self.true_next, "true"),
            (self.false_next, "false"),
            (self.roots, "root"),
        ):
            if arr.size and (arr.min() < 0 or arr.max() >= n):
                raise ValueError(f"{describe}: a {what} node id is out of range")
        self.is_leaf = self.mode == LEAF
        branch_modes = set(np.unique(self.mode[~self.is_leaf]).tolist())
        self.modes = sorted(branch_modes)
        self.any_missing = bool(self.missing_true[~self.is_leaf].any())
        self.max_feature = int(self.feature[~self.is_leaf].max()) if (~self.is_leaf).any() else -1
        self.depth = self._depth()
        self._members(members or {})
        self._layout()
        # Only leaves that carry weights matter for aggregation; pack them.
        self._w: dict = {}

    def _depth(self) -> int:
        # Longest root-to-leaf path, found level by level; a cycle would never finish.
        frontier = np.unique(self.roots)
        depth = 0
        while frontier.size:
            frontier = frontier[~self.is_leaf[frontier]]
            if not frontier.size:
                break
            depth += 1
            if depth > len(self.mode):
                raise ValueError(f"{self.describe}: the trees contain a cycle")
            frontier = np.unique(
                np.concatenate([self.true_next[frontier], self.false_next[frontier]])
            )
        return depth

    def _members(self, members: dict[int, np.ndarray]) -> None:
        # Set membership as one sorted lookup: (node, rank of value among all members).
        self.member_values = None
        if not members:
            return
        allv = np.unique(
            np.concatenate([np.asarray(v, dtype=np.float64) for v in members.values()])
        )
        keys = []
        for nid, vals in members.items():
            ranks = np.searchsorted(allv, np.asarray(vals, dtype=np.float64))
            keys.append(nid * (len(allv) + 1) + ranks)
        self.member_values = allv
        self.member_keys = np.unique(np.concatenate(keys)).astype(np.int64)

    def _is_member(self, nodes: np.ndarray, x: np.ndarray) -> np.ndarray:
        allv = self.member_values
        xv = x.astype(np.float64)
        r = np.searchsorted(allv, xv)
        rc = np.minimum(r, len(allv) - 1)
        found = allv[rc] == xv
        key = nodes * (len(allv) + 1) + rc
        pos = np.searchsorted(self.member_keys, key)
        pos = np.minimum(pos, len(self.member_keys) - 1)
        return found & (self.member_keys[pos] == key)

    def _layout(self) -> None:
        # Re-lay the table so that a branch's false and true children sit side by side:
        # the next node is then child[node] + cond, one gather instead of two and a select.
        # Shared children are copied shallowly (a copy keeps its own child pointer).
        n = len(self.mode)
        br = np.flatnonzero(~self.is_leaf)
        pair_start = n + 2 * np.arange(len(br), dtype=np.int64)
        orig = np.concatenate(
            [np.arange(n), np.stack([self.false_next[br], self.true_next[br]], 1).ravel()]
        )
        child_of = np.arange(n, dtype=np.int64)
        child_of[br] = pair_start
        idx = np.arange(len(orig))
        self._orig = orig
        leafy = self.is_leaf[orig]
        self._child = np.where(leafy, idx, child_of[orig]).astype(np.intp)
        self._feature = self.feature[orig].astype(np.intp)
        thr = self.threshold[orig].copy()
        # A NaN threshold makes every ordered comparison false, so a leaf stays put.
        thr[leafy] = np.nan
        self._thr = thr
        self._mode = self.mode[orig]
        self._missing = self.missing_true[orig] & ~leafy
        self._leaf = leafy
        self._uniform = (
            self.modes[0] if len(self.modes) == 1 and self.modes[0] not in (NEQ, MEMBER) else None
        )

    def leaves(self, x: np.ndarray) -> np.ndarray:
        """Leaf node id reached by every (row, tree): shape (N, n_trees)."""
        n, f = x.shape
        if self.max_feature >= f:
            raise ValueError(
                f"{self.describe}: a node tests feature {self.max_feature}, the input has {f}"
            )
        t = len(self.roots)
        x = np.ascontiguousarray(x)
        out = np.empty((n, t), dtype=np.intp)
        # Rows go in blocks small enough for the per-level temporaries to stay in cache.
        rows = max(1, _BLOCK_PAIRS // max(t, 1))
        scratch = _Scratch(min(n, rows) * t, x.dtype, self._thr.dtype)
        for r0 in range(0, n, rows):
            r1 = min(n, r0 + rows)
            out[r0:r1] = self._descend(x[r0:r1].reshape(-1), r1 - r0, f, scratch).reshape(
                r1 - r0, t
            )
        return np.take(self._orig, out)

    def _descend(self, flat: np.ndarray, n: int, f: int, sc: _Scratch) -> np.ndarray:
        t = len(self.roots)
        total = n * t
        cur = 0
        node = sc.nodes[0][:total]
        node.reshape(n, t)[:] = self.roots
        base = np.repeat(np.arange(n, dtype=np.intp) * f, t)
        result = None
        pos = None
        child, feature, thr = self._child, self._feature, self._thr
        take = np.take  # much faster than fancy indexing for 1-D gathers
        for _ in range(self.depth):
            m = len(node)
            p, val, th, cond = sc.pos[:m], sc.val[:m], sc.thr[:m], sc.cond[:m]
            take(feature, node, out=p, mode="clip")
            p += base
            take(flat, p, out=val, mode="clip")
            if self._uniform is not None:
                take(thr, node, out=th, mode="clip")
                _CMP[self._uniform](val, th, out=cond)
            else:
                cond[:] = False
                mode = take(self._mode, node, mode="clip")
                for code in self.modes:
                    sel = np.flatnonzero(mode == code)
                    if code == MEMBER:
                        cond[sel] = self._is_member(self._orig[node[sel]], val[sel])
                    else:
                        cond[sel] = _CMP[code](val[sel], thr[node[sel]])
            if self.any_missing:
                cond |= take(self._missing, node, mode="clip") & np.isnan(val)
            cur = 1 - cur
            nxt = sc.nodes[cur][:m]
            take(child, node, out=nxt, mode="clip")
            nxt += cond
            node = nxt
            done = take(self._leaf, node, mode="clip")
            k = np.count_nonzero(done)
            if 2 * k > m:
                # Most pairs have finished: set them aside and keep descending the rest.
                keep = ~done
                if result is None:
                    result = node.copy()
                    pos = np.flatnonzero(keep)
                else:
                    result[pos[done]] = node[done]
                    pos = pos[keep]
                kept = node[keep]
                node = sc.nodes[cur][: len(kept)]
                node[:] = kept
                base = base[keep]
                if not len(node):
                    break
        if result is None:
            return node.copy()
        if len(node):
            result[pos] = node
        return result

    def aggregate(
        self, leaves: np.ndarray, how: str, dtype=np.float32, need_has: bool = False
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """(scores, has_score), both (N, n_targets); 0 where nothing contributed.

        Trees are accumulated one after another in ``dtype`` (float32 for the classic ops),
        the order and precision ORT sums in, so that ties and thresholds come out the same.
        """
        n, t = leaves.shape
        k = self.n_targets
        w = self._w.get((how, dtype))
        if w is None:
            if how in ("MIN", "MAX"):
                fill = np.inf if how == "MIN" else -np.inf
                w = np.where(self.has, self.weights, fill).astype(dtype)
            else:
                w = self.weights.astype(dtype)
            w = self._w.setdefault((how, dtype), w)
        track = need_has or how in ("MIN", "MAX")
        scores = np.empty((n, k), dtype=dtype)
        has = np.empty((n, k), dtype=bool) if track else None
        red = {"MIN": np.minimum, "MAX": np.maximum}.get(how, np.add)
        rows = max(1, _BLOCK_PAIRS // max(t * k, 1))
        for r0 in range(0, n, rows):
            r1 = min(n, r0 + rows)
            # Tree-major (t, rows) leaf ids: reducing over axis 0 adds tree after tree.
            lt = np.ascontiguousarray(leaves[r0:r1].T)
            if k == 1:
                scores[r0:r1, 0] = red.reduce(np.take(w[:, 0], lt), axis=0) if t else 0
                if track:
                    has[r0:r1, 0] = (
                        np.logical_or.reduce(np.take(self.has[:, 0], lt), axis=0) if t else False
                    )
            else:
                scores[r0:r1] = red.reduce(np.take(w, lt, axis=0), axis=0) if t else 0
                if track:
                    has[r0:r1] = (
                        np.logical_or.reduce(np.take(self.has, lt, axis=0), axis=0) if t else False
                    )
        if how in ("MIN", "MAX"):
            scores = np.where(has, scores, dtype(0))
        return scores, has


def from_legacy(
    describe: str, attrs: dict, weights_prefix: str, ids_name: str, n_targets: int, thr_dtype
) -> Forest:
    """Build a Forest from TreeEnsembleRegressor/Classifier attributes (nodes_* and targets/classes)."""
    tree_ids = np.asarray(attrs["nodes_treeids"], dtype=np.int64)
    node_ids = np.asarray(attrs["nodes_nodeids"], dtype=np.int64)
    n = len(tree_ids)
    modes_s = attrs["nodes_modes"]
    fields = ("nodes_featureids", "nodes_truenodeids", "nodes_falsenodeids")
    for name in fields:
        if len(attrs.get(name, ())) != n:
            raise ValueError(f"{describe}: {name} must have one entry per node ({n})")
    if len(modes_s) != n:
        raise ValueError(f"{describe}: nodes_modes must have one entry per node ({n})")
    try:
        mode = np.array([MODE_CODES[m] for m in modes_s], dtype=np.int8)
    except KeyError as exc:
        raise ValueError(f"{describe}: unknown node mode {exc.args[0]!r}") from None
    if (mode == MEMBER).any():
        raise ValueError(f"{describe}: BRANCH_MEMBER is only valid in TreeEnsemble")
    values = attrs.get("nodes_values_as_tensor")
    if values is None:
        values = attrs.get("nodes_values")
    thr = (
        np.zeros(n, dtype=thr_dtype)
        if values is None
        else np.asarray(values).reshape(-1).astype(thr_dtype)
    )
    if len(thr) != n:
        raise ValueError(f"{describe}: nodes_values must have one entry per node ({n})")
    # Map (tree, node id) to a global position with one sorted search.
    key = tree_ids * (1 << 32) + node_ids
    order = np.argsort(key, kind="stable")
    skey = key[order]
    if n and (np.diff(skey) == 0).any():
        raise ValueError(f"{describe}: a (tree id, node id) pair appears twice")

    def lookup(tids, nids, what):
        k = np.asarray(tids, dtype=np.int64) * (1 << 32) + np.asarray(nids, dtype=np.int64)
        p = np.minimum(np.searchsorted(skey, k), max(n - 1, 0))
        if n == 0 or (skey[p] != k).any():
            raise ValueError(f"{describe}: a {what} refers to a node that does not exist")
        return order[p]

    leaf = mode == LEAF
    idx = np.arange(n)
    tn = np.where(leaf, idx, 0)
    fn = np.where(leaf, idx, 0)
    br = ~leaf
    if br.any():
        tn[br] = lookup(tree_ids[br], np.asarray(attrs["nodes_truenodeids"])[br], "true node id")
        fn[br] = lookup(tree_ids[br], np.asarray(attrs["nodes_falsenodeids"])[br], "false node id")
    miss = attrs.get("nodes_missing_value_tracks_true") or [0] * n
    if len(miss) != n:
        raise ValueError(
            f"{describe}: nodes_missing_value_tracks_true must have one entry per node"
        )
    # A tree's root is its first node in attribute order (what ORT assumes).
    _, first = np.unique(tree_ids, return_index=True)
    roots = np.sort(first)
    w_ids = np.asarray(attrs.get(f"{weights_prefix}_treeids", []), dtype=np.int64)
    w_nodes = np.asarray(attrs.get(f"{weights_prefix}_nodeids", []), dtype=np.int64)
    w_tgt = np.asarray(attrs.get(ids_name, []), dtype=np.int64)
    w_val = attrs.get(f"{weights_prefix}_weights_as_tensor")
    if w_val is None:
        w_val = attrs.get(f"{weights_prefix}_weights", [])
    w_val = np.asarray(w_val, dtype=np.float64).reshape(-1)
    if not (len(w_ids) == len(w_nodes) == len(w_tgt) == len(w_val)):
        raise ValueError(f"{describe}: the {weights_prefix}_* attributes have different lengths")
    if len(w_tgt) and (w_tgt.min() < 0 or w_tgt.max() >= n_targets):
        raise ValueError(f"{describe}: {ids_name} must lie in [0, {n_targets})")
    weights = np.zeros((n, n_targets), dtype=np.float64)
    has = np.zeros((n, n_targets), dtype=bool)
    if len(w_ids):
        pos = lookup(w_ids, w_nodes, "weight")
        np.add.at(weights, (pos, w_tgt), w_val)
        has[pos, w_tgt] = True
    feat = np.where(leaf, 0, np.asarray(attrs["nodes_featureids"], dtype=np.int64))
    return Forest(
        describe, feat, thr, mode, tn, fn, np.asarray(miss, dtype=bool), roots, weights, has
    )
