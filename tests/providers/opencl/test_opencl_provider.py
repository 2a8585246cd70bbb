"""The OpenCL provider's contract: cheap discovery, options, dtype honesty and device residency."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import onnx
import pytest
from _opencl_support import F, model, strict_session, unavailable, vi
from onnx import helper, numpy_helper

import tessera

_REASON = unavailable()
if _REASON:
    pytest.skip(_REASON, allow_module_level=True)

from tessera.provider import NodeInfo  # noqa: E402
from tessera_opencl._factory import OpenCLProviderFactory  # noqa: E402


def test_plugin_module_imports_without_pyopencl():
    code = "import sys, tessera_opencl.plugin; print('pyopencl' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_factory_lists_devices_under_its_alias_ahead_of_cpu():
    factory = OpenCLProviderFactory()
    assert factory.devices() and all(d.startswith("opencl:") for d in factory.devices())
    assert "OpenCLExecutionProvider" in factory.all_names()
    assert factory.default_priority > -1000


def test_unknown_option_is_rejected_naming_the_valid_ones():
    with pytest.raises(tessera.InvalidArgument, match="device_type"):
        OpenCLProviderFactory().create({"devcie_index": 0})


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"device_type": "quantum"}, "device_type"),
        ({"device_index": 99}, "device_index"),
        ({"platform": "no-such-vendor"}, "platform"),
    ],
)
def test_bad_option_values_raise_naming_the_option(options, named):
    with pytest.raises(tessera.InvalidArgument, match=named):
        OpenCLProviderFactory().create(options)


def _node(op: str, types: list[str], **attrs) -> NodeInfo:
    return NodeInfo(
        op,
        "",
        op,
        17,
        attrs,
        ["a", "b"][: len(types)],
        ["y"],
        types,
        [types[0]],
        [None] * len(types),
    )


def test_double_is_declined_on_a_device_without_fp64():
    provider = OpenCLProviderFactory().create({})
    provider.rt.fp64 = False
    reason = provider.decline_reason(_node("Add", ["tensor(double)"] * 2))
    assert "cl_khr_fp64" in reason


def test_float16_is_declined_unless_the_device_has_cl_khr_fp16():
    provider = OpenCLProviderFactory().create({})
    provider.rt.fp16 = False
    assert "cl_khr_fp16" in provider.decline_reason(_node("Add", ["tensor(float16)"] * 2))
    data = model(
        [helper.make_node("Add", ["a", "b"], ["y"])],
        [vi("a", [2], onnx.TensorProto.FLOAT16), vi("b", [2], onnx.TensorProto.FLOAT16)],
        [vi("y", [2], onnx.TensorProto.FLOAT16)],
    )
    sess = tessera.InferenceSession(data, providers=["opencl", "cpu"])
    if not OpenCLProviderFactory().create({}).rt.fp16:  # the device decides
        assert set(sess.assignments.values()) == {"CPUExecutionProvider"}


def test_declined_nodes_fall_back_to_cpu_with_a_reason():
    data = model(
        [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Det", ["r"], ["y"])],
        [vi("x", [2, 2])],
        [vi("y", [])],
    )
    sess = tessera.InferenceSession(data, providers=["opencl", "cpu"])
    assert list(sess.assignments.values()) == ["OpenCLExecutionProvider", "CPUExecutionProvider"]
    x = np.array([[1.0, -2.0], [3.0, 4.0]], np.float32)
    np.testing.assert_allclose(sess.run(None, {"x": x})[0], np.linalg.det(np.maximum(x, 0)), 1e-5)
    assert "Det" in sess.explain()


def test_cnn_runs_on_device_with_transfers_only_at_the_boundary():
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "w")
    fc = numpy_helper.from_array(rng.standard_normal((4 * 4 * 4, 5)).astype(np.float32), "fc")
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Flatten", ["p"], ["f"]),
        helper.make_node("MatMul", ["f", "fc"], ["m"]),
        helper.make_node("Softmax", ["m"], ["y"], axis=-1),
    ]
    data = model(nodes, [vi("x", [2, 3, 8, 8])], [vi("y", [2, 5])], [w, fc])
    sess = strict_session(data)
    assert set(sess.assignments.values()) == {"OpenCLExecutionProvider"}
    # One upload of x and one download of y; weights move once at creation, not per run.
    assert sess.explain().splitlines()[0].endswith("2 device transfer(s)")
    x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    ref = tessera.InferenceSession(data, providers=["cpu"]).run(None, {"x": x})[0]
    np.testing.assert_allclose(sess.run(None, {"x": x})[0], ref, rtol=1e-4, atol=1e-5)


def test_reshape_reinterprets_the_device_buffer_without_copying():
    provider = OpenCLProviderFactory().create({})
    node = NodeInfo(
        "Reshape",
        "",
        "r",
        17,
        {},
        ["x", "s"],
        ["y"],
        ["tensor(float)", "tensor(int64)"],
        ["tensor(float)"],
        [None, None],
    )
    compute = provider.create_kernel(node)
    x = provider.to_device(np.arange(12, dtype=np.float32).reshape(3, 4))
    (y,) = compute(x, np.array([2, -1], np.int64))
    assert y.shape == (2, 6) and y.base_data == x.base_data
    np.testing.assert_array_equal(provider.to_host(y), np.arange(12).reshape(2, 6))


def test_programs_are_built_once_and_shared_across_sessions():
    from tessera_opencl import _runtime

    data = model([helper.make_node("Tanh", ["x"], ["y"])], [vi("x", [3])], [vi("y", [3])])
    x = np.array([0.0, 1.0, -1.0], np.float32)
    strict_session(data).run(None, {"x": x})
    before = len(_runtime._PROGRAMS)
    out = strict_session(data).run(None, {"x": x})[0]
    assert len(_runtime._PROGRAMS) == before
    np.testing.assert_allclose(out, np.tanh(x), rtol=1e-6)


def test_explain_names_the_provider_and_device():
    data = model([helper.make_node("Abs", ["x"], ["y"])], [vi("x", [2], F)], [vi("y", [2], F)])
    sess = strict_session(data)
    assert "OpenCLExecutionProvider: 1 node(s)" in sess.explain()


def test_io_binding_keeps_outputs_in_device_buffers():
    import pyopencl.array as cla

    data = model(
        [helper.make_node("Add", ["x", "y"], ["s"]), helper.make_node("Relu", ["s"], ["z"])],
        [vi("x", [2, 3]), vi("y", [2, 3])],
        [vi("z", [2, 3])],
    )
    sess = strict_session(data)
    x = np.arange(-3, 3, dtype=np.float32).reshape(2, 3)
    y = np.full((2, 3), 0.5, np.float32)
    binding = sess.io_binding()
    binding.bind_cpu_input("x", x)
    binding.bind_cpu_input("y", y)
    binding.bind_output("z", "opencl")
    sess.run_with_iobinding(binding)
    (z,) = binding.get_outputs()
    assert z.device_name() == "opencl" and isinstance(z.device_value(), cla.Array)
    assert z.shape() == [2, 3] and z.data_type() == "tensor(float)"
    np.testing.assert_array_equal(z.numpy(), np.maximum(x + y, 0))
