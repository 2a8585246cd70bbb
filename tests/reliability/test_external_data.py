"""External data from an untrusted model: every location, offset and length is checked before any
file is read (the onnx CVE-2022-25882 and CVE-2024-27318 path-traversal family)."""

from __future__ import annotations

import os

import numpy as np
import onnx
import pytest
from conftest import tensor
from onnx import helper, numpy_helper

import tessera

WEIGHTS = np.arange(4, dtype=np.float32)


def _external(name: str, entries: dict[str, str]) -> onnx.TensorProto:
    t = numpy_helper.from_array(np.zeros(4, np.float32), name)
    t.ClearField("raw_data")
    t.data_location = onnx.TensorProto.EXTERNAL
    for key, value in entries.items():
        e = t.external_data.add()
        e.key, e.value = key, value
    return t


def _entries(location="weights.bin", offset="0", length="16", **extra) -> dict[str, str]:
    return {"location": location, "offset": offset, "length": length, **extra}


def _save(folder, graph: onnx.GraphProto, weights: bool = True):
    if weights:
        (folder / "weights.bin").write_bytes(WEIGHTS.tobytes())
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path = folder / "model.onnx"
    path.write_bytes(model.SerializeToString())
    return path


def _initializer_model(folder, **entries):
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "w"], ["y"])],
        "g",
        [tensor("x", [4])],
        [tensor("y", [4])],
        [_external("w", _entries(**entries))],
    )
    return _save(folder, graph)


def _constant_in_subgraph_model(folder, **entries):
    """The external tensor is a Constant's value inside an If branch."""
    const = helper.make_node("Constant", [], ["w"], name="inner_const")
    const.attribute.append(helper.make_attribute("value", _external("w", _entries(**entries))))
    branch = helper.make_graph(
        [const, helper.make_node("Add", ["x", "w"], ["b"])], "then", [], [tensor("b", [4])]
    )
    other = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["e"])], "else", [], [tensor("e", [4])]
    )
    node = helper.make_node("If", ["c"], ["y"], then_branch=branch, else_branch=other, name="if")
    graph = helper.make_graph(
        [node], "g", [tensor("x", [4]), tensor("c", [], onnx.TensorProto.BOOL)], [tensor("y", [4])]
    )
    return _save(folder, graph)


def test_external_constant_inside_a_subgraph_is_read(tmp_path):
    path = _constant_in_subgraph_model(tmp_path)
    sess = tessera.InferenceSession(str(path))
    (y,) = sess.run(None, {"x": np.ones(4, np.float32), "c": np.array(True)})
    np.testing.assert_array_equal(y, WEIGHTS + 1)


@pytest.mark.parametrize("build", [_initializer_model, _constant_in_subgraph_model])
@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ({"location": "sub/../../weights.bin"}, "may not contain '..'"),
        ({"location": "..\\weights.bin"}, "may not contain '..'"),
        ({"location": "/etc/passwd"}, "must be a relative path"),
        ({"location": "//server/share/w.bin"}, "must be a relative path"),
        ({"location": ""}, "empty"),
        ({"location": "weights.bin\0.txt"}, "NUL"),
        ({"location": "."}, "not a regular file"),
        ({"offset": "-4"}, "must be a non-negative decimal integer"),
        ({"offset": "1.5"}, "must be a non-negative decimal integer"),
        ({"length": "0x10"}, "must be a non-negative decimal integer"),
        ({"length": "-1"}, "must be a non-negative decimal integer"),
        ({"offset": "17", "length": "0"}, r"lies outside 'weights.bin' \(16 bytes\)"),
        ({"length": str(2**70)}, "lies outside"),
        ({"basepath_typo": "x"}, "unknown external-data keys \\['basepath_typo'\\]"),
    ],
)
def test_bad_external_data_is_refused_with_a_clear_error(tmp_path, build, entries, message):
    path = build(tmp_path, **entries)
    with pytest.raises(tessera.InvalidGraph, match=message):
        tessera.InferenceSession(str(path))


def test_symlinked_parent_directory_leading_out_is_refused(tmp_path):
    outside, inside = tmp_path / "outside", tmp_path / "model"
    outside.mkdir()
    inside.mkdir()
    (outside / "secret.bin").write_bytes(b"\1" * 16)
    os.symlink(outside, inside / "data")
    path = _initializer_model(inside, location="data/secret.bin")
    with pytest.raises(tessera.InvalidGraph, match="resolves outside the model folder"):
        tessera.InferenceSession(str(path))


def test_symlink_that_stays_inside_the_folder_is_allowed(tmp_path):
    path = _initializer_model(tmp_path, location="alias.bin")
    os.symlink(tmp_path / "weights.bin", tmp_path / "alias.bin")
    (y,) = tessera.InferenceSession(str(path)).run(None, {"x": np.zeros(4, np.float32)})
    np.testing.assert_array_equal(y, WEIGHTS)


def test_no_file_is_opened_when_a_later_tensor_is_refused(tmp_path, monkeypatch):
    good = _external("w", _entries())
    bad = _external("v", _entries(location="../etc/passwd"))
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "w"], ["s"]), helper.make_node("Add", ["s", "v"], ["y"])],
        "g",
        [tensor("x", [4])],
        [tensor("y", [4])],
        [good, bad],
    )
    path = _save(tmp_path, graph)
    opened: list[str] = []
    real_open = open
    monkeypatch.setattr(
        "builtins.open", lambda f, *a, **k: opened.append(str(f)) or real_open(f, *a, **k)
    )
    with pytest.raises(tessera.InvalidGraph, match=r"'v'.*may not contain '..'"):
        tessera.InferenceSession(str(path))
    assert not [f for f in opened if f.endswith("weights.bin")]


def test_external_sparse_initializer_location_is_checked(tmp_path):
    values = _external("sp_values", _entries(location="/etc/hostname", length="8"))
    indices = numpy_helper.from_array(np.array([0, 2], np.int64), "sp_indices")
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "sp"], ["y"])], "g", [tensor("x", [4])], [tensor("y", [4])]
    )
    graph.sparse_initializer.append(helper.make_sparse_tensor(values, indices, [4]))
    path = _save(tmp_path, graph)
    with pytest.raises(tessera.InvalidGraph, match=r"'sp_values'.*must be a relative path"):
        tessera.InferenceSession(str(path))


def test_external_tensor_in_a_model_local_function_is_checked(tmp_path):
    const = helper.make_node("Constant", [], ["w"])
    const.attribute.append(
        helper.make_attribute("value", _external("fw", _entries(location="../weights.bin")))
    )
    fn = helper.make_function(
        "local",
        "AddW",
        ["a"],
        ["b"],
        [const, helper.make_node("Add", ["a", "w"], ["b"])],
        [helper.make_opsetid("", 17)],
    )
    graph = helper.make_graph(
        [helper.make_node("AddW", ["x"], ["y"], domain="local")],
        "g",
        [tensor("x", [4])],
        [tensor("y", [4])],
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("local", 1)],
        functions=[fn],
    )
    path = tmp_path / "model.onnx"
    path.write_bytes(model.SerializeToString())
    with pytest.raises(tessera.InvalidGraph, match=r"'fw'.*may not contain '..'"):
        tessera.InferenceSession(str(path))


def test_external_data_in_a_modelproto_without_a_path_is_refused_untouched(tmp_path):
    path = _initializer_model(tmp_path)
    proto = onnx.load(str(path), load_external_data=False)
    before = proto.SerializeToString()
    with pytest.raises(tessera.InvalidGraph, match="needs a model path"):
        tessera.InferenceSession(proto)
    assert proto.SerializeToString() == before


def test_external_data_entries_on_a_tensor_not_marked_external_are_refused(tmp_path):
    t = numpy_helper.from_array(np.zeros(4, np.float32), "w")
    e = t.external_data.add()
    e.key, e.value = "location", "/etc/passwd"
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "w"], ["y"])],
        "g",
        [tensor("x", [4])],
        [tensor("y", [4])],
        [t],
    )
    path = _save(tmp_path, graph, weights=False)
    with pytest.raises(tessera.InvalidGraph, match="not marked data_location=EXTERNAL"):
        tessera.InferenceSession(str(path))


def test_duplicated_external_data_key_is_refused(tmp_path):
    t = _external("w", _entries())
    e = t.external_data.add()
    e.key, e.value = "location", "../../etc/passwd"
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "w"], ["y"])],
        "g",
        [tensor("x", [4])],
        [tensor("y", [4])],
        [t],
    )
    path = _save(tmp_path, graph)
    with pytest.raises(tessera.InvalidGraph, match="'location' is given twice"):
        tessera.InferenceSession(str(path))
