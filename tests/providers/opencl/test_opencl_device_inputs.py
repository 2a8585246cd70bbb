"""Device-resident inputs: an OrtValue on the OpenCL device, bound with bind_ortvalue_input,
is read in place by OpenCL nodes (ExecutionProvider.adopt) and copied to the host only for
nodes that run there."""

from __future__ import annotations

import numpy as np
import pytest
from _opencl_support import model, strict_session, unavailable, vi
from onnx import TensorProto, helper

import tessera

_REASON = unavailable()
if _REASON:
    pytest.skip(_REASON, allow_module_level=True)

import pyopencl.array as cla  # noqa: E402

from tessera_opencl._runtime import Runtime  # noqa: E402


@pytest.fixture
def copies(monkeypatch):
    """Counts of host->device and device->host copies made by any OpenCL runtime."""
    counts = {"upload": 0, "download": 0}
    for name in counts:
        real = getattr(Runtime, name)

        def counted(self, value, _real=real, _name=name):
            counts[_name] += 1
            return _real(self, value)

        monkeypatch.setattr(Runtime, name, counted)
    return counts


def _relu_then_tanh():
    first = model([helper.make_node("Relu", ["x"], ["z"])], [vi("x", [2, 3])], [vi("z", [2, 3])])
    second = model([helper.make_node("Tanh", ["z"], ["w"])], [vi("z", [2, 3])], [vi("w", [2, 3])])
    return strict_session(first), strict_session(second)


def test_an_output_kept_on_the_device_feeds_the_next_session_without_copies(copies):
    first, second = _relu_then_tanh()
    x = np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3)
    b1 = first.io_binding()
    b1.bind_cpu_input("x", x)
    b1.bind_output("z", "opencl")
    first.run_with_iobinding(b1)
    (z,) = b1.get_outputs()
    before = dict(copies)
    b2 = second.io_binding()
    b2.bind_ortvalue_input("z", z)
    b2.bind_output("w", "opencl")
    second.run_with_iobinding(b2)
    assert copies == before  # neither the input nor the output crossed to the host
    (w,) = b2.get_outputs()
    assert isinstance(w.device_value(), cla.Array)
    np.testing.assert_allclose(w.numpy(), np.tanh(np.maximum(x, 0)), rtol=1e-6)


def test_ortvalue_from_numpy_makes_a_device_value_the_session_reads_in_place(copies):
    _, second = _relu_then_tanh()
    z = np.arange(6, dtype=np.float32).reshape(2, 3) / 6
    value = tessera.OrtValue.ortvalue_from_numpy(z, "opencl", 0)
    assert value.device_name() == "opencl" and isinstance(value.device_value(), cla.Array)
    assert value.shape() == [2, 3] and value.data_type() == "tensor(float)"
    uploads = copies["upload"]
    binding = second.io_binding()
    binding.bind_ortvalue_input("z", value)
    second.run_with_iobinding(binding)
    assert copies["upload"] == uploads
    np.testing.assert_allclose(binding.copy_outputs_to_cpu()[0], np.tanh(z), rtol=1e-6)


def test_a_device_input_also_read_on_the_host_is_copied_there():
    # Abs runs on OpenCL; NonZero has no OpenCL kernel, so the CPU provider reads x on the host.
    data = model(
        [helper.make_node("Abs", ["x"], ["a"]), helper.make_node("NonZero", ["x"], ["s"])],
        [vi("x", [2, 3])],
        [vi("a", [2, 3]), vi("s", None, TensorProto.INT64)],
    )
    session = tessera.InferenceSession(data, providers=["opencl", "cpu"])
    x = -np.arange(6, dtype=np.float32).reshape(2, 3)
    binding = session.io_binding()
    binding.bind_ortvalue_input("x", tessera.OrtValue.ortvalue_from_numpy(x, "opencl"))
    session.run_with_iobinding(binding)
    assert set(session.assignments.values()) == {"OpenCLExecutionProvider", "CPUExecutionProvider"}
    a, s = binding.copy_outputs_to_cpu()
    np.testing.assert_array_equal(a, np.abs(x))
    np.testing.assert_array_equal(s, np.array(np.nonzero(x)))


def test_a_device_input_of_the_wrong_dtype_is_refused_naming_it():
    _, second = _relu_then_tanh()
    value = tessera.OrtValue.ortvalue_from_numpy(np.zeros((2, 3), np.int32), "opencl")
    binding = second.io_binding()
    binding.bind_ortvalue_input("z", value)
    with pytest.raises(tessera.InvalidArgument, match=r"'z'.*int32"):
        second.run_with_iobinding(binding)


def test_a_device_input_of_the_wrong_shape_is_refused_naming_it():
    _, second = _relu_then_tanh()
    value = tessera.OrtValue.ortvalue_from_numpy(np.zeros((3, 2), np.float32), "opencl")
    binding = second.io_binding()
    binding.bind_ortvalue_input("z", value)
    with pytest.raises(tessera.InvalidArgument, match="'z' has shape"):
        second.run_with_iobinding(binding)


def test_ortvalue_on_a_device_no_provider_serves_lists_the_installed_ones():
    # The same error as a session naming an unknown provider.
    with pytest.raises(tessera.ProviderError, match=r"unknown provider 'tpu'.*OpenCL"):
        tessera.OrtValue.ortvalue_from_numpy(np.zeros(2, np.float32), "tpu")
