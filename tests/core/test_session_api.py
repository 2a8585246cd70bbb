"""The ORT-compatible surface: the same code runs under `import tessera as ort`."""

from __future__ import annotations

import json
import threading

import numpy as np
import onnx
import pytest
from conftest import make_model, tensor
from onnx import helper, numpy_helper

import tessera


def _affine_model() -> bytes:
    w = numpy_helper.from_array(np.arange(12, dtype=np.float32).reshape(3, 4) / 10, "w")
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["h"], name="matmul"),
        helper.make_node("Add", ["h", "b"], ["y"], name="add"),
        helper.make_node("Mul", ["y", "y"], ["y2"], name="square"),
    ]
    return make_model(
        nodes,
        [tensor("x", ["batch", 3]), tensor("b", [4])],
        [tensor("y", ["batch", 4]), tensor("y2", ["batch", 4])],
        [w],
        producer_name="tessera-tests",
        doc_string="affine test model",
        model_version=7,
    )


def ort_style_program(ort, model: bytes) -> list[np.ndarray]:
    """Code written for onnxruntime; the test runs it under both modules."""
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(model, sess_options=opts, providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == ["x", "b"]
    assert sess.get_inputs()[0].type == "tensor(float)"
    assert sess.get_inputs()[0].shape == ["batch", 3]
    assert sess.get_outputs()[1].name == "y2"
    assert "CPUExecutionProvider" in ort.get_available_providers()
    assert sess.get_providers() == ["CPUExecutionProvider"]
    meta = sess.get_modelmeta()
    assert meta.producer_name == "tessera-tests" and meta.version == 7
    x = np.ones((2, 3), np.float32)
    b = np.full(4, 0.5, np.float32)
    y, y2 = sess.run(None, {"x": x, "b": b})
    (only,) = sess.run(["y2"], {"x": x, "b": b}, ort.RunOptions())
    np.testing.assert_allclose(only, y2)
    binding = sess.io_binding()
    binding.bind_cpu_input("x", x)
    binding.bind_cpu_input("b", b)
    binding.bind_output("y")
    sess.run_with_iobinding(binding)
    (bound,) = binding.copy_outputs_to_cpu()
    np.testing.assert_allclose(bound, y)
    return [y, y2]


def test_ort_program_runs_unchanged_and_matches_onnxruntime():
    ort = pytest.importorskip("onnxruntime")
    model = _affine_model()
    ours = ort_style_program(tessera, model)
    theirs = ort_style_program(ort, model)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, rtol=1e-6)


@pytest.mark.parametrize(
    ("feed", "message"),
    [
        ({"x": np.ones((2, 3)), "b": np.ones(4, np.float32)}, "input 'x' has dtype float64"),
        (
            {"x": np.ones((2, 3, 1), np.float32), "b": np.ones(4, np.float32)},
            "input 'x' has rank 3",
        ),
        ({"x": np.ones((2, 5), np.float32), "b": np.ones(4, np.float32)}, "dimension 1 must be 3"),
        ({"x": np.ones((2, 3), np.float32)}, "missing input 'b'"),
        (
            {"x": np.ones((2, 3), np.float32), "b": np.ones(4, np.float32), "c": 1},
            "unknown input name",
        ),
        ({"x": "text", "b": np.ones(4, np.float32)}, "must be a numpy.ndarray"),
    ],
)
def test_bad_feeds_get_errors_naming_the_input(feed, message):
    sess = tessera.InferenceSession(_affine_model())
    with pytest.raises(tessera.InvalidArgument, match=message):
        sess.run(None, feed)


def test_unknown_output_name_is_rejected():
    sess = tessera.InferenceSession(_affine_model())
    with pytest.raises(tessera.InvalidArgument, match="unknown output name 'nope'"):
        sess.run(["nope"], {"x": np.ones((1, 3), np.float32), "b": np.ones(4, np.float32)})


def test_run_from_eight_threads_gives_identical_results(rng):
    sess = tessera.InferenceSession(_affine_model())
    feeds = [
        {
            "x": rng.standard_normal((16, 3)).astype(np.float32),
            "b": rng.standard_normal(4).astype(np.float32),
        }
        for _ in range(8)
    ]
    expected = [sess.run(None, f) for f in feeds]
    results: dict[int, list] = {}
    barrier = threading.Barrier(8)

    def work(i: int) -> None:
        barrier.wait()
        results[i] = [sess.run(None, feeds[i]) for _ in range(50)]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(8):
        for got in results[i]:
            for a, b in zip(got, expected[i]):
                np.testing.assert_array_equal(a, b)


def test_assignments_name_unnamed_nodes_by_op_and_index():
    nodes = [helper.make_node("Add", ["x", "x"], ["y"]), helper.make_node("Mul", ["y", "y"], ["z"])]
    sess = tessera.InferenceSession(make_model(nodes, [tensor("x", [2])], [tensor("z", [2])]))
    assert sess.assignments == {"Add_0": "CPUExecutionProvider", "Mul_1": "CPUExecutionProvider"}


def test_provider_options_are_reported_and_aliases_accepted():
    sess = tessera.InferenceSession(
        _affine_model(), providers=[("cpu", {"intra_op_num_threads": 1})]
    )
    assert sess.get_providers() == ["CPUExecutionProvider"]
    assert sess.get_provider_options()["CPUExecutionProvider"]["intra_op_num_threads"] == "1"


def test_profiling_writes_chrome_trace_with_provider_and_shapes(tmp_path):
    opts = tessera.SessionOptions()
    opts.enable_profiling = True
    opts.profile_file_prefix = str(tmp_path / "prof")
    # Below ORT_ENABLE_EXTENDED nothing is fused, so every node has its own event.
    opts.graph_optimization_level = tessera.GraphOptimizationLevel.ORT_ENABLE_BASIC
    sess = tessera.InferenceSession(_affine_model(), opts)
    sess.run(None, {"x": np.ones((2, 3), np.float32), "b": np.ones(4, np.float32)})
    path = sess.end_profiling()
    events = json.loads(open(path).read())
    nodes = [e for e in events if e["cat"] == "Node"]
    assert {e["name"] for e in nodes} == {"matmul", "add", "square"}
    matmul = next(e for e in nodes if e["name"] == "matmul")
    assert matmul["ph"] == "X" and matmul["dur"] >= 0
    assert matmul["args"]["provider"] == "CPUExecutionProvider"
    assert matmul["args"]["input_type_shape"][0] == {"tensor(float)": [2, 3]}


def test_optimized_model_filepath_writes_a_valid_model(tmp_path):
    opts = tessera.SessionOptions()
    opts.optimized_model_filepath = str(tmp_path / "out.onnx")
    tessera.InferenceSession(_affine_model(), opts)
    onnx.checker.check_model(onnx.load(opts.optimized_model_filepath))


def test_session_options_reject_unknown_attributes():
    opts = tessera.SessionOptions()
    with pytest.raises(AttributeError, match="no option 'graph_optimisation_level'"):
        opts.graph_optimisation_level = 1


def test_outputs_free_intermediates_after_last_use():
    sess = tessera.InferenceSession(_affine_model())
    freed = [s for _, _, _, frees in sess._plan.steps for s in frees]
    assert freed, "the intermediate 'h' should be released after its last reader"


def test_outputs_that_alias_constants_are_copies_the_caller_owns():
    w = numpy_helper.from_array(np.arange(4, dtype=np.float32), "w")
    nodes = [helper.make_node("Identity", ["w"], ["y"]), helper.make_node("Add", ["x", "w"], ["z"])]
    model = make_model(nodes, [tensor("x", [4])], [tensor("y", [4]), tensor("z", [4])], [w])
    sess = tessera.InferenceSession(model)
    y, _ = sess.run(None, {"x": np.zeros(4, np.float32)})
    assert y.flags.writeable
    y[:] = 100  # must not corrupt the model's weight
    _, z = sess.run(None, {"x": np.zeros(4, np.float32)})
    np.testing.assert_array_equal(z, np.arange(4, dtype=np.float32))


def test_nan_producing_ops_do_not_warn(recwarn):
    sess = tessera.InferenceSession(
        make_model([helper.make_node("Sqrt", ["x"], ["y"])], [tensor("x", [2])], [tensor("y", [2])])
    )
    (y,) = sess.run(None, {"x": np.array([-1.0, 4.0], np.float32)})
    assert np.isnan(y[0]) and y[1] == 2
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]


def test_map_typed_inputs_and_outputs_load_and_report_ort_type_strings():
    from onnx import TensorProto

    map_type = helper.make_map_type_proto(
        TensorProto.STRING, helper.make_tensor_type_proto(TensorProto.FLOAT, None)
    )
    graph = helper.make_graph(
        [
            helper.make_node(
                "DictVectorizer",
                ["d"],
                ["v"],
                domain="ai.onnx.ml",
                string_vocabulary=["a", "b", "c"],
            ),
            helper.make_node(
                "ZipMap", ["v"], ["z"], domain="ai.onnx.ml", classlabels_strings=["a", "b", "c"]
            ),
        ],
        "g",
        [helper.make_value_info("d", map_type)],
        [helper.make_value_info("z", helper.make_sequence_type_proto(map_type))],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 3)]
    )
    sess = tessera.InferenceSession(model.SerializeToString())
    assert sess.get_inputs()[0].type == "map(string,tensor(float))"
    assert sess.get_outputs()[0].type == "seq(map(string,tensor(float)))"
    ((row,),) = sess.run(None, {"d": {"a": 1.0, "c": 3.0}})
    assert row == {"a": 1.0, "b": 0.0, "c": 3.0}
