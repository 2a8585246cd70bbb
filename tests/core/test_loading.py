"""Loading from path, bytes and ModelProto, and the external-data safety checks."""

from __future__ import annotations

import os

import numpy as np
import onnx
import pytest
from conftest import tensor
from onnx import helper, numpy_helper

import tessera


def _model_with_external_weight(folder, location="weights.bin", offset=0, length=None):
    data = np.arange(4, dtype=np.float32)
    (folder / "weights.bin").write_bytes(data.tobytes())
    init = numpy_helper.from_array(np.zeros(4, np.float32), "w")
    init.ClearField("raw_data")
    init.data_location = onnx.TensorProto.EXTERNAL
    entries = {
        "location": location,
        "offset": str(offset),
        "length": str(length if length is not None else 16),
    }
    for k, v in entries.items():
        e = init.external_data.add()
        e.key, e.value = k, v
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "w"], ["y"])],
        "g",
        [tensor("x", [4])],
        [tensor("y", [4])],
        [init],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path = folder / "model.onnx"
    path.write_bytes(model.SerializeToString())
    return path, data


def test_model_loads_from_path_bytes_and_modelproto(tmp_path):
    graph = helper.make_graph(
        [helper.make_node("Neg", ["x"], ["y"])], "g", [tensor("x", [2])], [tensor("y", [2])]
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    x = np.array([1, -2], np.float32)
    for source in (str(path), path, model.SerializeToString(), model):
        (y,) = tessera.InferenceSession(source).run(None, {"x": x})
        np.testing.assert_array_equal(y, -x)


def test_external_data_inside_the_model_folder_is_read(tmp_path):
    path, data = _model_with_external_weight(tmp_path)
    (y,) = tessera.InferenceSession(str(path)).run(None, {"x": np.ones(4, np.float32)})
    np.testing.assert_array_equal(y, data + 1)


@pytest.mark.parametrize(
    ("location", "message"),
    [
        ("../weights.bin", "may not contain '..'"),
        ("/etc/passwd", "must be a relative path"),
        ("missing.bin", "cannot be opened"),
    ],
)
def test_external_data_outside_the_folder_is_refused(tmp_path, location, message):
    path, _ = _model_with_external_weight(tmp_path, location=location)
    with pytest.raises(tessera.InvalidGraph, match=message):
        tessera.InferenceSession(str(path))


def test_external_data_symlink_leading_out_is_refused(tmp_path):
    outside = tmp_path / "outside"
    inside = tmp_path / "model"
    outside.mkdir()
    inside.mkdir()
    (outside / "secret.bin").write_bytes(b"\0" * 16)
    os.symlink(outside / "secret.bin", inside / "link.bin")
    path, _ = _model_with_external_weight(inside, location="link.bin")
    with pytest.raises(tessera.InvalidGraph, match="resolves outside the model folder"):
        tessera.InferenceSession(str(path))


def test_external_data_range_past_end_of_file_is_refused(tmp_path):
    path, _ = _model_with_external_weight(tmp_path, offset=8, length=16)
    with pytest.raises(tessera.InvalidGraph, match=r"lies outside 'weights.bin' \(16 bytes\)"):
        tessera.InferenceSession(str(path))


def test_garbage_bytes_give_a_clear_error():
    with pytest.raises(tessera.InvalidGraph, match="not a valid ONNX ModelProto"):
        tessera.InferenceSession(b"\x08\x07garbage\xff\xff\xff")


def test_missing_model_file_gives_a_clear_error(tmp_path):
    with pytest.raises(tessera.InvalidGraph, match="does not exist"):
        tessera.InferenceSession(str(tmp_path / "nope.onnx"))


def test_undefined_input_is_named():
    graph = helper.make_graph(
        [helper.make_node("Neg", ["ghost"], ["y"], name="neg")],
        "g",
        [tensor("x", [2])],
        [tensor("y", [2])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(tessera.InvalidGraph, match=r"'neg' .* reads 'ghost'"):
        tessera.InferenceSession(model.SerializeToString())


def test_cycle_is_reported():
    nodes = [
        helper.make_node("Neg", ["b"], ["a"], name="n1"),
        helper.make_node("Neg", ["a"], ["b"], name="n2"),
    ]
    graph = helper.make_graph(nodes, "g", [tensor("x", [2])], [tensor("b", [2])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(tessera.InvalidGraph, match="cycle"):
        tessera.InferenceSession(model.SerializeToString())


@pytest.mark.parametrize("dtype", [np.float32, np.int64, np.float16])
def test_large_weights_load_exactly_and_the_callers_modelproto_is_left_as_given(dtype):
    # Over 1 MiB: loading takes these payloads aside and builds arrays over them.
    w = (np.arange(1024 * 600) % 251).astype(dtype).reshape(1024, 600)
    graph = helper.make_graph(
        [helper.make_node("Identity", ["w"], ["y"])],
        "g",
        [],
        [helper.make_tensor_value_info("y", helper.np_dtype_to_tensor_dtype(w.dtype), None)],
        [numpy_helper.from_array(w, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    before = model.SerializeToString()
    for source in (model, before):
        sess = tessera.InferenceSession(source, providers=["cpu"])
        np.testing.assert_array_equal(sess.run(None, {})[0], w)
    assert model.SerializeToString() == before
