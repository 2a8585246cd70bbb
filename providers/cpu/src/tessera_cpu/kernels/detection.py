"""Object-detection kernels: NonMaxSuppression."""

from __future__ import annotations

import numpy as np

from tessera.provider import NodeInfo
from tessera_cpu.kernels._registry import registry

_CHUNK = 512  # candidates examined together: bounds the pairwise IoU block to CHUNK^2


def _corners(boxes: np.ndarray, center_point_box: bool) -> np.ndarray:
    """[..., 4] boxes as float32 (y_min, x_min, y_max, x_max), computed as onnxruntime does."""
    b = boxes.astype(np.float32, copy=False)
    if center_point_box:
        xc, yc, w, h = b[..., 0], b[..., 1], b[..., 2], b[..., 3]
        hw, hh = w / np.float32(2), h / np.float32(2)
        return np.stack([yc - hh, xc - hw, yc + hh, xc + hw], axis=-1)
    # Corners may come in either diagonal order.
    y0, y1 = np.minimum(b[..., 0], b[..., 2]), np.maximum(b[..., 0], b[..., 2])
    x0, x1 = np.minimum(b[..., 1], b[..., 3]), np.maximum(b[..., 1], b[..., 3])
    return np.stack([y0, x0, y1, x1], axis=-1)


def _overlaps(
    a: np.ndarray, a_area: np.ndarray, b: np.ndarray, b_area: np.ndarray, threshold: float
) -> np.ndarray:
    """[len(a), len(b)] mask of pairs whose IoU exceeds ``threshold``."""
    ih = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    iw = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    np.maximum(ih, 0, out=ih)
    inter = np.multiply(ih, np.maximum(iw, 0, out=iw), out=ih)
    union = a_area[:, None] + b_area[None, :] - inter
    # Disjoint pairs give 0 (or 0/0 = nan) which never exceeds a threshold in [0, 1]; a box of
    # non-positive area cannot intersect anything, so no separate validity masks are needed.
    with np.errstate(divide="ignore", invalid="ignore"):
        return inter / union > np.float32(threshold)


def _select(
    corners: np.ndarray,
    areas: np.ndarray,
    scores: np.ndarray,
    limit: int,
    iou_threshold: float,
    score_threshold: float | None,
) -> np.ndarray:
    """Greedy NMS for one (batch, class): selected box indices in selection order.

    Candidates are taken in score order a chunk at a time: a chunk is first thinned by the
    boxes already selected, then resolved greedily with its own pairwise overlap matrix, so
    the Python-level loop runs once per selected box, not once per candidate.
    """  # fmt: skip
    idx = np.arange(scores.shape[0])
    if score_threshold is not None:
        idx = idx[scores > score_threshold]
    if idx.size == 0:
        return idx
    # Highest score first; a stable sort keeps the lower box index first among equal scores.
    order = np.argsort(-scores[idx])
    ranked = scores[idx[order]]
    if (ranked[1:] == ranked[:-1]).any():
        # Ties keep the lower box index first, which needs the (slower) stable sort.
        order = np.argsort(-scores[idx], kind="stable")
    idx = idx[order]
    cand, area = corners[idx], areas[idx]
    chosen: list[int] = []
    start = 0
    while start < idx.size and len(chosen) < limit:
        # Light suppression selects about one box per candidate: size chunks by what remains.
        want = limit - len(chosen)
        stop = min(idx.size, start + min(_CHUNK, want + want // 4 + 16))
        box, box_area = cand[start:stop], area[start:stop]
        if chosen:
            sel = np.asarray(chosen)
            alive = ~_overlaps(cand[sel], area[sel], box, box_area, iou_threshold).any(axis=0)
        else:
            alive = np.ones(stop - start, dtype=bool)
        over = _overlaps(box, box_area, box, box_area, iou_threshold)
        for pos in np.flatnonzero(alive).tolist():
            if len(chosen) >= limit:
                break
            if alive[pos]:
                chosen.append(start + pos)
                alive[pos + 1 :] &= ~over[pos, pos + 1 :]
        start = stop
    return idx[np.asarray(chosen, dtype=np.int64)]


@registry.kernel(
    "NonMaxSuppression",
    since=(10, 11),
    types={0: ("tensor(float)",), 1: ("tensor(float)",), 2: ("tensor(int64)",),
           3: ("tensor(float)",), 4: ("tensor(float)",)},
)  # fmt: skip
def non_max_suppression(node: NodeInfo):
    center = node.attr("center_point_box", 0)
    if center not in (0, 1):
        raise ValueError(f"{node.describe()}: center_point_box must be 0 or 1, got {center}")

    def compute(
        boxes, scores, max_output_boxes_per_class=None, iou_threshold=None, score_threshold=None
    ):
        if boxes.ndim != 3 or boxes.shape[2] != 4:
            raise ValueError(
                f"{node.describe()}: boxes must be [batch, boxes, 4], got {boxes.shape}"
            )
        if (
            scores.ndim != 3
            or scores.shape[0] != boxes.shape[0]
            or scores.shape[2] != boxes.shape[1]
        ):
            raise ValueError(
                f"{node.describe()}: scores {scores.shape} do not match boxes {boxes.shape}"
            )
        limit = 0
        if max_output_boxes_per_class is not None and max_output_boxes_per_class.size:
            limit = max(int(max_output_boxes_per_class.reshape(-1)[0]), 0)
        iou = 0.0
        if iou_threshold is not None and iou_threshold.size:
            iou = float(iou_threshold.reshape(-1)[0])
            if not 0.0 <= iou <= 1.0:
                raise ValueError(f"{node.describe()}: iou_threshold must be in [0, 1], got {iou}")
        thr = None
        if score_threshold is not None and score_threshold.size:
            thr = float(score_threshold.reshape(-1)[0])
        limit = min(limit, boxes.shape[1])
        out = []
        if limit > 0:
            corners = _corners(boxes, bool(center))
            areas = (corners[..., 2] - corners[..., 0]) * (corners[..., 3] - corners[..., 1])
            for b in range(scores.shape[0]):
                for c in range(scores.shape[1]):
                    sel = _select(corners[b], areas[b], scores[b, c], limit, iou, thr)
                    if sel.size:
                        rows = np.empty((sel.size, 3), dtype=np.int64)
                        rows[:, 0] = b
                        rows[:, 1] = c
                        rows[:, 2] = sel
                        out.append(rows)
        if not out:
            return (np.zeros((0, 3), dtype=np.int64),)
        return (np.concatenate(out, axis=0),)

    return compute
