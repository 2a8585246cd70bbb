"""Rewrites of the OpenVINO model read from a claim, where OpenVINO's own conversion of an ONNX
op is accepted but computes it in an order that breaks ONNX's results.

``GlobalAveragePool``: OpenVINO's frontend makes it a ``ReduceMean`` over the spatial axes. On the
channels-last layout the CPU plugin gives a convolution's output here, that kernel runs the
channels past the last multiple of 16 through another code path, so identical channels average
to values an ulp apart. The suite's squeezenet (1,000 identical channels, a softmax over logits
of 6.7e9) turns that ulp into a wrong answer. Here the op becomes an ``AvgPool`` whose window is
the whole (static) spatial extent, which runs every channel through the same code in whatever
layout it gets and costs no layout change; with dynamic spatial dims it becomes ``Reshape`` to
``(N, C, -1)``, a ``ReduceMean`` over that one innermost axis (every channel one row reduced by
the same code) and an ``Unsqueeze`` back to ``(N, C, 1, ...)``, which costs a reorder.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import openvino.opset13 as ops


class LoweringError(ValueError):
    """Some ``GlobalAveragePool`` outputs could not be rewritten; ``outputs`` names them."""

    def __init__(self, message: str, outputs: set[str]) -> None:
        super().__init__(message)
        self.outputs = outputs


def global_average_pool_outputs(onnx_model: Any) -> set[str]:
    """Output names of the ``GlobalAveragePool`` nodes of ``onnx_model``'s top-level graph."""
    return {
        node.output[0]
        for node in onnx_model.graph.node
        if node.op_type == "GlobalAveragePool" and node.domain in ("", "ai.onnx")
    }


def lower_global_average_pools(ov_model: Any, outputs: set[str]) -> Any:
    """Replace the ops OpenVINO made for the ``GlobalAveragePool`` outputs ``outputs`` by a mean
    that treats every channel alike (see the module docstring); returns ``ov_model``, changed in
    place.

    The replacement's last op takes over the tensor names and friendly name, so tracing the
    OpenVINO ops back to ONNX nodes (and the claim's boundary) sees the same names as before.
    """
    if not outputs:
        return ov_model
    done: set[str] = set()
    failed: list[str] = []
    for op in ov_model.get_ordered_ops():
        names = set(op.output(0).get_names()) if op.get_output_size() else set()
        hit = names & outputs
        if not hit or op.get_type_name() in ("Parameter", "Result"):
            continue
        rank = op.get_input_partial_shape(0).rank
        if op.get_type_name() != "ReduceMean" or rank.is_dynamic or rank.get_length() < 3:
            failed.append(f"{sorted(hit)} is {op.get_type_name()} of an input of rank {rank}")
            continue
        new = _mean_over_spatial_axes(op.input_value(0), rank.get_length())
        op.output(0).replace(new.output(0))
        op.output(0).get_tensor().set_names(set())
        new.output(0).get_tensor().set_names(names)
        new.set_friendly_name(op.get_friendly_name())
        done |= hit
    if done != outputs:
        raise LoweringError(
            "cannot rewrite GlobalAveragePool so that every channel is averaged alike "
            f"(expected OpenVINO ReduceMean of a rank >= 3 input): {'; '.join(failed) or 'no op computes it'}",
            outputs - done,
        )
    ov_model.validate_nodes_and_infer_types()
    return ov_model


def _mean_over_spatial_axes(data: Any, rank: int) -> Any:
    """The mean of ``data`` (N, C, spatial...) over its spatial axes, keeping them as 1s, with
    every channel computed by the same code."""
    shape = data.get_partial_shape()
    spatial = [shape[i] for i in range(2, rank)]
    if all(d.is_static for d in spatial):
        window = [d.get_length() for d in spatial]
        zeros = [0] * len(window)
        return ops.avg_pool(data, [1] * len(window), zeros, zeros, window, exclude_pad=True)
    flat = ops.reshape(data, ops.constant(np.array([0, 0, -1], np.int64)), special_zero=True)
    mean = ops.reduce_mean(flat, ops.constant(np.array([2], np.int64)), keep_dims=True)
    if rank == 3:
        return mean
    return ops.unsqueeze(mean, ops.constant(np.arange(3, rank, dtype=np.int64)))


def read_model(core: Any, onnx_model: Any) -> Any:
    """OpenVINO's model of ``onnx_model`` (a claim), with the rewrites above applied."""
    ov_model = core.read_model(onnx_model.SerializeToString())
    return lower_global_average_pools(ov_model, global_average_pool_outputs(onnx_model))
