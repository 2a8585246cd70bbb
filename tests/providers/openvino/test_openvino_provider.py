"""The OpenVINO provider: what it claims, fallback around what it declines, options, precision,
dynamic shapes, the compiled-blob cache, concurrent runs, agreement with the CPU provider, the
GlobalAveragePool rewrite, feeds shared without a copy, and the compile config."""

from __future__ import annotations

import os
import threading

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import tessera
from tessera_openvino._factory import OpenVINOProviderFactory

_FACTORY = OpenVINOProviderFactory()
if not _FACTORY.devices():
    pytest.skip(_FACTORY.unavailable_reason, allow_module_level=True)

F = TensorProto.FLOAT


def _model(nodes, inputs, outputs, initializers=(), opset=17) -> bytes:
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    return model.SerializeToString()


def _chain_with_det() -> bytes:
    """Relu -> Sigmoid -> Det (no OpenVINO conversion) -> Neg -> Abs."""
    nodes = [
        helper.make_node("Relu", ["x"], ["a"], name="relu"),
        helper.make_node("Sigmoid", ["a"], ["b"], name="sigmoid"),
        helper.make_node("Det", ["b"], ["c"], name="det"),
        helper.make_node("Neg", ["c"], ["d"], name="neg"),
        helper.make_node("Abs", ["d"], ["y"], name="abs"),
    ]
    x = helper.make_tensor_value_info("x", F, [2, 3, 3])
    return _model(nodes, [x], [helper.make_tensor_value_info("y", F, [2])])


def _mlp(batch="N") -> bytes:
    rng = np.random.default_rng(0)
    w = helper.make_tensor("w", F, [8, 16], rng.standard_normal((8, 16)).astype(np.float32).ravel())
    b = helper.make_tensor("b", F, [16], rng.standard_normal(16).astype(np.float32))
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["h"]),
        helper.make_node("Add", ["h", "b"], ["hb"]),
        helper.make_node("Tanh", ["hb"], ["y"]),
    ]
    x = helper.make_tensor_value_info("x", F, [batch, 8])
    y = helper.make_tensor_value_info("y", F, [batch, 16])
    return _model(nodes, [x], [y], [w, b])


def _small_cnn() -> bytes:
    rng = np.random.default_rng(1)

    def init(name, shape):
        return helper.make_tensor(
            name, F, shape, rng.standard_normal(shape).astype(np.float32) * 0.2
        )

    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["p1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("GlobalAveragePool", ["r2"], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"]),
        helper.make_node("Gemm", ["f", "wf", "bf"], ["logits"], transB=1),
        helper.make_node("Softmax", ["logits"], ["y"], axis=1),
    ]
    inits = [
        init("w1", [8, 3, 3, 3]),
        init("b1", [8]),
        init("w2", [16, 8, 3, 3]),
        init("b2", [16]),
        init("wf", [10, 16]),
        init("bf", [10]),
    ]
    x = helper.make_tensor_value_info("x", F, [2, 3, 16, 16])
    return _model(nodes, [x], [helper.make_tensor_value_info("y", F, [2, 10])], inits)


def test_factory_is_registered_with_ort_alias_and_priority_above_cpu():
    assert "OpenVINOExecutionProvider" in tessera.get_available_providers()
    assert _FACTORY.default_priority > -1000
    assert "OpenVINOExecutionProvider" in _FACTORY.aliases


def test_plugin_module_does_not_import_openvino():
    import subprocess
    import sys

    code = "import sys, tessera_openvino.plugin; print('openvino' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_whole_supported_model_is_one_openvino_partition():
    session = tessera.InferenceSession(_small_cnn(), providers=["openvino"])
    assert set(session.assignments.values()) == {"OpenVINOExecutionProvider"}
    assert "compiled partitions: 1" in session.explain()


def test_unsupported_op_in_the_middle_splits_into_three_partitions_and_runs_correctly():
    session = tessera.InferenceSession(_chain_with_det(), providers=["openvino", "cpu"])
    ov = "OpenVINOExecutionProvider"
    assert session.assignments == {
        "relu": ov,
        "sigmoid": ov,
        "det": "CPUExecutionProvider",
        "neg": ov,
        "abs": ov,
    }
    explained = session.explain()
    assert "compiled partitions: 2" in explained
    assert "det (Det): OpenVINOExecutionProvider: OpenVINO's ONNX frontend has no conversion" in (
        explained
    )
    x = np.random.default_rng(0).random((2, 3, 3), dtype=np.float32)
    (y,) = session.run(None, {"x": x})
    expected = np.abs(np.linalg.det(1 / (1 + np.exp(-x))))
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-6)


def test_strict_mode_names_the_op_openvino_declines():
    opts = tessera.SessionOptions()
    opts.add_session_config_entry("session.disable_cpu_ep_fallback", "1")
    with pytest.raises(tessera.NoKernelError, match="Det"):
        tessera.InferenceSession(_chain_with_det(), opts, providers=["openvino"])


def test_precision_defaults_to_f32_and_bf16_is_opt_in():
    # OpenVINO's own CPU default is bf16 on AVX512_BF16 machines; the provider must not inherit it.
    provider = _FACTORY.create({})
    assert provider.precision == "fp32"
    compiled = provider._compile_model(provider.core.read_model(_mlp()))
    import openvino

    assert compiled.get_property("INFERENCE_PRECISION_HINT") == openvino.Type.f32
    bf16 = _FACTORY.create({"precision": "bf16"})
    assert bf16.precision == "bf16"
    assert bf16.config["INFERENCE_PRECISION_HINT"] == "bf16"


def test_default_precision_matches_float64_numpy_closely():
    session = tessera.InferenceSession(_mlp(), providers=["openvino"])
    x = np.random.default_rng(2).standard_normal((4, 8)).astype(np.float32)
    model = onnx.load_from_string(_mlp())
    w, b = (onnx.numpy_helper.to_array(t).astype(np.float64) for t in model.graph.initializer)
    (y,) = session.run(None, {"x": x})
    # bf16 would be off in the third digit.
    np.testing.assert_allclose(y, np.tanh(x.astype(np.float64) @ w + b), rtol=1e-5, atol=1e-6)


def test_unknown_option_lists_the_valid_ones():
    with pytest.raises(tessera.InvalidArgument, match="valid options: cache_dir, device_type"):
        _FACTORY.create({"num_thread": 2})


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"device_type": "TPU"}, "must be one of CPU, GPU, NPU, AUTO"),
        ({"precision": "int4"}, "must be one of f32"),
        ({"num_streams": -1}, "must be >= 0"),
        ({"enable_dynamic_shapes": "maybe"}, "must be a boolean"),
    ],
)
def test_bad_option_values_are_rejected_with_the_fix(options, message):
    with pytest.raises(tessera.InvalidArgument, match=message):
        _FACTORY.create(options)


def test_string_options_are_converted_like_ort_provider_options():
    provider = _FACTORY.create({"num_of_threads": "1", "enable_dynamic_shapes": "false"})
    assert provider.config["INFERENCE_NUM_THREADS"] == 1
    assert provider.options["enable_dynamic_shapes"] is False


@pytest.mark.parametrize("dynamic", [True, False])
def test_symbolic_batch_dimension_runs_with_several_batch_sizes(dynamic):
    session = tessera.InferenceSession(
        _mlp(),
        providers=["openvino"],
        provider_options=[{"enable_dynamic_shapes": dynamic}],
    )
    reference = tessera.InferenceSession(_mlp(), providers=["cpu"])
    rng = np.random.default_rng(3)
    for batch in (1, 5, 2, 5):
        x = rng.standard_normal((batch, 8)).astype(np.float32)
        (y,) = session.run(None, {"x": x})
        assert y.shape == (batch, 16)
        np.testing.assert_allclose(y, reference.run(None, {"x": x})[0], rtol=1e-5, atol=1e-6)


def test_cache_dir_writes_blobs_that_a_second_session_reuses(tmp_path):
    options = [{"cache_dir": str(tmp_path)}]
    first = tessera.InferenceSession(_small_cnn(), providers=["openvino"], provider_options=options)
    blobs = sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".blob")
    assert blobs, "OpenVINO wrote no compiled blob into cache_dir"
    stamps = {name: os.stat(tmp_path / name).st_mtime_ns for name in blobs}
    second = tessera.InferenceSession(
        _small_cnn(), providers=["openvino"], provider_options=options
    )
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".blob") == blobs
    assert {name: os.stat(tmp_path / name).st_mtime_ns for name in blobs} == stamps
    x = np.random.default_rng(4).standard_normal((2, 3, 16, 16)).astype(np.float32)
    np.testing.assert_array_equal(first.run(None, {"x": x})[0], second.run(None, {"x": x})[0])


def test_concurrent_runs_from_threads_give_each_caller_its_own_result():
    session = tessera.InferenceSession(_mlp(), providers=["openvino"])
    reference = tessera.InferenceSession(_mlp(), providers=["cpu"])
    rng = np.random.default_rng(5)
    inputs = [rng.standard_normal((3, 8)).astype(np.float32) for _ in range(8)]
    expected = [reference.run(None, {"x": x})[0] for x in inputs]
    errors: list[str] = []

    def worker(i: int) -> None:
        for _ in range(25):
            (y,) = session.run(None, {"x": inputs[i]})
            if not np.allclose(y, expected[i], rtol=1e-5, atol=1e-6):
                errors.append(f"thread {i} got another input's result")

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert session.get_providers()[0] == "OpenVINOExecutionProvider"
    assert errors == []


def test_small_cnn_matches_the_cpu_provider():
    x = np.random.default_rng(6).standard_normal((2, 3, 16, 16)).astype(np.float32)
    ov = tessera.InferenceSession(_small_cnn(), providers=["openvino"])
    cpu = tessera.InferenceSession(_small_cnn(), providers=["cpu"])
    (y_ov,) = ov.run(None, {"x": x})
    (y_cpu,) = cpu.run(None, {"x": x})
    assert y_ov.dtype == np.float32 and y_ov.shape == (2, 10)
    np.testing.assert_allclose(y_ov, y_cpu, rtol=1e-4, atol=1e-6)


def test_int64_outputs_keep_the_dtype_onnx_declares():
    nodes = [helper.make_node("Shape", ["x"], ["s"]), helper.make_node("Neg", ["s"], ["y"])]
    x = helper.make_tensor_value_info("x", F, [2, 7])
    y = helper.make_tensor_value_info("y", TensorProto.INT64, [2])
    session = tessera.InferenceSession(_model(nodes, [x], [y]), providers=["openvino"])
    (out,) = session.run(None, {"x": np.zeros((2, 7), np.float32)})
    assert out.dtype == np.int64
    np.testing.assert_array_equal(out, [-2, -7])


def test_groups_around_a_declined_node_are_split_convex_so_the_core_rejects_none():
    # Relu feeds both Det (declined) and ReduceSum; Add joins them. {Relu, ReduceSum, Add} would
    # make a cycle through Det, so the provider must offer {Relu, ReduceSum} and {Add}.
    nodes = [
        helper.make_node("Relu", ["x"], ["a"], name="relu"),
        helper.make_node("Det", ["a"], ["d"], name="det"),
        helper.make_node("ReduceSum", ["a", "axes"], ["s"], name="sum", keepdims=0),
        helper.make_node("Add", ["s", "d"], ["y"], name="add"),
    ]
    axes = helper.make_tensor("axes", TensorProto.INT64, [2], [1, 2])
    x = helper.make_tensor_value_info("x", F, [2, 3, 3])
    model = _model(nodes, [x], [helper.make_tensor_value_info("y", F, [2])], [axes])
    session = tessera.InferenceSession(model, providers=["openvino", "cpu"])
    explained = session.explain()
    assert "cycle" not in explained
    assert "compiled partitions: 2" in explained
    assert session.assignments["add"] == "OpenVINOExecutionProvider"
    x_val = np.random.default_rng(7).standard_normal((2, 3, 3)).astype(np.float32)
    (y,) = session.run(None, {"x": x_val})
    relu = np.maximum(x_val, 0)
    np.testing.assert_allclose(y, relu.sum((1, 2)) + np.linalg.det(relu), rtol=1e-4, atol=1e-5)


def test_nodes_openvino_would_run_differently_are_declined_with_the_reason():
    nodes = [helper.make_node("ReduceMax", ["x"], ["y"], keepdims=0, axes=[1])]
    x = helper.make_tensor_value_info("x", F, [2, 3])
    model = _model(nodes, [x], [helper.make_tensor_value_info("y", F, [2])], opset=13)
    session = tessera.InferenceSession(model, providers=["openvino", "cpu"])
    assert set(session.assignments.values()) == {"CPUExecutionProvider"}
    assert "all -inf rows give -3.4e38" in session.explain()
    (y,) = session.run(None, {"x": np.array([[-np.inf] * 3, [1, 5, 2]], np.float32)})
    np.testing.assert_array_equal(y, [-np.inf, 5])


def test_missing_openvino_gives_no_devices_and_a_reason_that_says_how_to_install(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "openvino", None)  # makes `import openvino` fail
    factory = OpenVINOProviderFactory()
    assert factory.devices() == []
    assert "pip install openvino" in factory.unavailable_reason
    with pytest.raises(tessera.InvalidArgument, match="unavailable: openvino is not installed"):
        factory.create({})


def _conv_then_global_average_pool(
    channels: int, spatial: tuple[int, ...], symbolic_spatial: bool = False
) -> bytes:
    """Conv with ``channels`` identical filters -> Relu -> GlobalAveragePool, batch symbolic."""
    rng = np.random.default_rng(channels)
    kernel = (1,) * len(spatial)
    w = np.repeat(rng.standard_normal((1, 4, *kernel)).astype(np.float32), channels, axis=0)
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("GlobalAveragePool", ["r"], ["y"], name="gap"),
    ]
    dims = [f"d{i}" for i in range(len(spatial))] if symbolic_spatial else list(spatial)
    x = helper.make_tensor_value_info("x", F, ["N", 4, *dims])
    y = helper.make_tensor_value_info("y", F, ["N", channels, *(1,) * len(spatial)])
    return _model(nodes, [x], [y], [onnx.numpy_helper.from_array(w, "w")], opset=13)


@pytest.mark.parametrize(
    "channels, spatial, symbolic",
    [
        (1000, (13, 13), False),  # rewritten as AvgPool over the whole window
        (1000, (13, 13), True),  # rewritten as a ReduceMean over one flattened axis
        (17, (4, 4, 4), False),
        (100, (64,), True),
    ],
)
def test_global_average_pool_gives_identical_channels_identical_means(channels, spatial, symbolic):
    # OpenVINO's own GlobalAveragePool sums the channels past a multiple of 16 in another order
    # (1000 channels: 8 of them differ by an ulp); the provider claims it rewritten.
    model = _conv_then_global_average_pool(channels, spatial, symbolic)
    session = tessera.InferenceSession(model, providers=["openvino"])
    assert session.assignments["gap"] == "OpenVINOExecutionProvider"
    x = np.random.default_rng(8).standard_normal((3, 4, *spatial)).astype(np.float32) * 50
    (y,) = session.run(None, {"x": x})
    assert y.shape == (3, channels, *(1,) * len(spatial))
    for row in y.reshape(3, channels):
        assert np.unique(row).size == 1
    (y_cpu,) = tessera.InferenceSession(model, providers=["cpu"]).run(None, {"x": x})
    np.testing.assert_allclose(y, y_cpu, rtol=1e-5, atol=1e-6)


def test_suite_squeezenet_is_one_openvino_partition_with_the_suite_answer():
    # Its 1,000 channels are identical and the softmax logits are 6.7e9: one ulp between
    # channels makes the answer one-hot instead of uniform.
    from onnx.backend.test.runner import Runner

    folder = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "light")
    model = onnx.load(os.path.join(folder, "light_squeezenet.onnx"))
    expected = onnx.numpy_helper.to_array(
        onnx.load_tensor(os.path.join(folder, "light_squeezenet_output_0.pb"))
    )
    inits = {t.name for t in model.graph.initializer}
    data = next(v for v in model.graph.input if v.name not in inits)
    x = Runner.generate_dummy_data(data, seed=0, name="squeezenet", random=False)
    session = tessera.InferenceSession(model.SerializeToString(), providers=["openvino"])
    assert set(session.assignments.values()) == {"OpenVINOExecutionProvider"}
    assert "compiled partitions: 1" in session.explain()
    (y,) = session.run(None, {data.name: x})
    np.testing.assert_allclose(y, expected, rtol=1e-3, atol=1e-7)


def test_global_average_pool_of_unknown_rank_is_declined_with_the_reason():
    nodes = [helper.make_node("GlobalAveragePool", ["x"], ["y"], name="gap")]
    x = helper.make_tensor_value_info("x", F, None)
    model = _model(nodes, [x], [helper.make_tensor_value_info("y", F, None)], opset=13)
    session = tessera.InferenceSession(model, providers=["openvino", "cpu"])
    assert session.assignments["gap"] == "CPUExecutionProvider"
    assert "known rank >= 3" in session.explain()


def test_feeds_reach_openvino_without_a_copy_and_are_left_unchanged(monkeypatch):
    # The core passes feeds on as read-only views, which OpenVINO would silently copy (600 KB
    # per squeezenet call, 4% of its run time here).
    import tessera_openvino._provider as provider_module

    made = []

    class Recorded(provider_module.CompiledPartition):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(provider_module, "CompiledPartition", Recorded)
    nodes = [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Add", ["r", "x"], ["y"])]
    x_info = helper.make_tensor_value_info("x", F, [4, 8])
    model = _model(nodes, [x_info], [helper.make_tensor_value_info("y", F, [4, 8])])
    session = tessera.InferenceSession(model, providers=["openvino"])
    x = np.random.default_rng(9).standard_normal((4, 8)).astype(np.float32)
    before = x.copy()
    (y,) = session.run(None, {"x": x})
    np.testing.assert_array_equal(x, before)
    np.testing.assert_allclose(y, np.maximum(before, 0) + before)
    (partition,) = made
    request = partition._pool.get_nowait()
    assert np.shares_memory(request.get_input_tensor(0).data, x)
    assert not np.shares_memory(y, request.get_output_tensor(0).data)


def test_compile_config_is_one_latency_stream_in_f32():
    import openvino

    provider = _FACTORY.create({})
    compiled = provider._compile_model(provider.core.read_model(_mlp()))
    assert str(compiled.get_property("PERFORMANCE_HINT")) in ("LATENCY", "PerformanceMode.LATENCY")
    assert compiled.get_property("NUM_STREAMS") == 1
    assert compiled.get_property("INFERENCE_PRECISION_HINT") == openvino.Type.f32
    capped = _FACTORY.create({"num_of_threads": 1})
    compiled = capped._compile_model(capped.core.read_model(_mlp()))
    assert compiled.get_property("INFERENCE_NUM_THREADS") == 1
