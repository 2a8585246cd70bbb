"""The optimizer inside InferenceSession: levels, the saved optimized model, config errors."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from optimizer_support import build

import tessera


def _vi(name, shape, elem=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, elem, shape)


def _model():
    c = numpy_helper.from_array(np.arange(3, dtype=np.float32), "c")
    nodes = [
        helper.make_node("Identity", ["x"], ["xi"]),
        helper.make_node("Neg", ["c"], ["nc"]),
        helper.make_node("Add", ["xi", "nc"], ["y"]),
    ]
    return build(nodes, [_vi("x", [3])], [_vi("y", [3])], [c])


def _session(level, **config):
    opts = tessera.SessionOptions()
    opts.graph_optimization_level = level
    for k, v in config.items():
        opts.add_session_config_entry(k, v)
    return opts


def test_optimized_model_file_is_a_valid_smaller_onnx_model(tmp_path):
    opts = _session(tessera.GraphOptimizationLevel.ORT_ENABLE_ALL)
    opts.optimized_model_filepath = str(tmp_path / "opt.onnx")
    session = tessera.InferenceSession(_model().SerializeToString(), opts, providers=["cpu"])
    saved = onnx.load(opts.optimized_model_filepath)
    onnx.checker.check_model(saved, full_check=True)
    assert [n.op_type for n in saved.graph.node] == ["Add"]
    assert [o.name for o in saved.graph.output] == ["y"]
    x = np.ones(3, np.float32)
    reloaded = tessera.InferenceSession(saved.SerializeToString(), providers=["cpu"])
    np.testing.assert_array_equal(reloaded.run(None, {"x": x})[0], session.run(None, {"x": x})[0])


def test_disable_all_leaves_the_graph_as_loaded(tmp_path):
    opts = _session(tessera.GraphOptimizationLevel.ORT_DISABLE_ALL)
    opts.optimized_model_filepath = str(tmp_path / "same.onnx")
    tessera.InferenceSession(_model().SerializeToString(), opts, providers=["cpu"])
    saved = onnx.load(opts.optimized_model_filepath)
    assert [n.op_type for n in saved.graph.node] == ["Identity", "Neg", "Add"]


def test_bad_fold_limit_config_names_the_entry():
    opts = _session(99, **{"tessera.optimizer.max_fold_elements": "lots"})
    with pytest.raises(tessera.InvalidArgument, match="max_fold_elements"):
        tessera.InferenceSession(_model().SerializeToString(), opts, providers=["cpu"])


def test_negative_level_is_rejected_with_the_valid_levels():
    with pytest.raises(tessera.InvalidArgument, match="GraphOptimizationLevel"):
        tessera.InferenceSession(_model().SerializeToString(), _session(-1), providers=["cpu"])
