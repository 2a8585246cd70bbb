"""Graph optimizations run at session creation, at ORT's levels: basic (constant folding, dead
code, Identity/Dropout, common subexpressions) and extended (Conv+BN, MatMul+Add, LayerNorm, Gelu).

The passes work on the main graph of an onnx-ir model in place; If/Loop/Scan bodies are left as
they are (only their outer-scope reads are respected). See docs/optimizer.md.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

import onnx_ir as ir

from tessera._errors import InvalidArgument
from tessera._options import GraphOptimizationLevel
from tessera.optimizer.common_subexpression import eliminate_common_subexpressions
from tessera.optimizer.constant_folding import (
    DEFAULT_MAX_ELEMENTS,
    Evaluator,
    fold_constants,
    kernel_evaluator,
)
from tessera.optimizer.conv_bn import fold_conv_batchnorm
from tessera.optimizer.conv_mul_add import fold_conv_mul_add
from tessera.optimizer.dead_code import remove_dead_code, remove_unused_initializers
from tessera.optimizer.gelu import fuse_gelu
from tessera.optimizer.identity_elimination import eliminate_identities
from tessera.optimizer.layer_norm import fuse_layer_norm
from tessera.optimizer.matmul_add import fuse_matmul_add

__all__ = ["OptimizationReport", "fold_limit", "kernel_evaluator", "optimize", "save_optimized"]

CONFIG_MAX_FOLD_ELEMENTS = "tessera.optimizer.max_fold_elements"
"""Session config entry: the largest constant (in elements) constant folding may create."""


@dataclasses.dataclass
class OptimizationReport:
    """What each pass changed (count of rewrites) and how long the passes took."""

    level: int
    changes: dict[str, int] = dataclasses.field(default_factory=dict)
    seconds: float = 0.0

    def __str__(self) -> str:
        done = ", ".join(f"{k} {v}" for k, v in self.changes.items() if v) or "no changes"
        return f"optimizer level {self.level}: {done} ({self.seconds * 1e3:.1f} ms)"


def _level(level: Any) -> int:
    try:
        value = int(level)
    except (TypeError, ValueError):
        raise InvalidArgument(
            f"graph_optimization_level must be a GraphOptimizationLevel, got {level!r}"
        ) from None
    if value < 0:
        raise InvalidArgument(
            f"graph_optimization_level must be 0, 1, 2, 3 or 99 (GraphOptimizationLevel), got {value}"
        )
    return value


def fold_limit(config: Mapping[str, str]) -> int:
    """The constant-folding size cap from the session config entry, or the default."""
    raw = config.get(CONFIG_MAX_FOLD_ELEMENTS)
    if raw is None:
        return DEFAULT_MAX_ELEMENTS
    try:
        return int(raw)
    except ValueError:
        raise InvalidArgument(
            f"session config entry {CONFIG_MAX_FOLD_ELEMENTS!r} must be an integer number of "
            f"elements, got {raw!r}"
        ) from None


def save_optimized(model: ir.Model, path: str | os.PathLike) -> None:
    """Write the optimized model as a standalone ONNX file."""
    ir.save(model, os.fspath(path))


def _pin_initializer_inputs(graph: ir.Graph) -> int:
    """Before IR version 4 every initializer had to be listed as a graph input too; like
    onnxruntime, treat them as constants (not overridable), so they can be folded."""
    kept = [v for v in graph.inputs if not v.is_initializer()]
    pinned = len(graph.inputs) - len(kept)
    if pinned:
        graph.inputs.clear()
        graph.inputs.extend(kept)
    return pinned


def optimize(
    model: ir.Model,
    level: int | GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL,
    *,
    providers: Sequence[Any] = (),
    evaluator: Evaluator | None = None,
    max_fold_elements: int = DEFAULT_MAX_ELEMENTS,
) -> OptimizationReport:
    """Optimize ``model`` in place at ``level`` and report what changed.

    ``evaluator`` runs nodes for constant folding; without one, the kernels of the first host
    provider in ``providers`` that has a kernel registry are used (none: only Shape/Size fold).
    """
    value = _level(level)
    report = OptimizationReport(value)
    if value <= GraphOptimizationLevel.ORT_DISABLE_ALL:
        return report
    start = time.perf_counter()
    graph = model.graph
    opsets: Mapping[str, int] = dict(model.opset_imports)
    opset = int(opsets.get("", opsets.get("ai.onnx", 1)))
    if evaluator is None:
        evaluator = kernel_evaluator(providers, {"": opset, **opsets})
    changes = report.changes
    if model.ir_version is not None and model.ir_version < 4:
        changes["constant_inputs"] = _pin_initializer_inputs(graph)
        # IR 4 is the first to allow initializers that are not inputs; the saved model needs it.
        model.ir_version = 4
    changes["identity"] = eliminate_identities(graph)
    changes["constant_folding"] = fold_constants(graph, evaluator, max_fold_elements)
    changes["cse"] = eliminate_common_subexpressions(graph)
    if value >= GraphOptimizationLevel.ORT_ENABLE_EXTENDED:
        changes["conv_bn"] = fold_conv_batchnorm(graph)
        changes["conv_mul_add"] = fold_conv_mul_add(graph)
        changes["matmul_add"] = fuse_matmul_add(graph)
        changes["layer_norm"] = fuse_layer_norm(graph, opset)
        changes["gelu"] = fuse_gelu(graph, opset)
    changes["dead_nodes"] = remove_dead_code(graph)
    changes["unused_initializers"] = remove_unused_initializers(graph)
    report.seconds = time.perf_counter() - start
    return report
