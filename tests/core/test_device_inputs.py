"""Device-resident inputs in the core: a bound device OrtValue is adopted by a provider on its
device, copied through the host when that provider cannot adopt it, and given to host nodes
as NumPy."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import make_model, tensor
from onnx import helper
from support import fake_providers as fp

import tessera


class AdoptingProvider(fp.FakeDeviceProvider):
    def adopt(self, value):
        return value if isinstance(value, fp.DeviceArray) else None


class AdoptingFactory(fp.FakeDeviceFactory):
    api_version = "1.2"

    def create(self, options):
        return AdoptingProvider(self.validate_options(options))


def _sessions(factory):
    """(first, second): first computes z = x + x on the fake device; second adds y to z."""
    first = make_model(
        [helper.make_node("Add", ["x", "x"], ["z"], name="double")],
        [tensor("x", [2, 3])],
        [tensor("z", [2, 3])],
    )
    second = make_model(
        [
            helper.make_node("Add", ["z", "y"], ["w"], name="add"),
            helper.make_node("Mul", ["z", "z"], ["sq"], name="square"),  # a CPU node reads z
        ],
        [tensor("z", [2, 3]), tensor("y", [2, 3])],
        [tensor("w", [2, 3]), tensor("sq", [2, 3])],
    )
    return (
        tessera.InferenceSession(first, providers=["FakeDeviceExecutionProvider"]),
        tessera.InferenceSession(second, providers=["FakeDeviceExecutionProvider", "cpu"]),
    )


def _z_on_device(first, x):
    binding = first.io_binding()
    binding.bind_cpu_input("x", x)
    binding.bind_output("z", "fake")
    first.run_with_iobinding(binding)
    (z,) = binding.get_outputs()
    assert isinstance(z.device_value(), fp.DeviceArray)
    return z


@pytest.mark.parametrize("factory", [AdoptingFactory, fp.FakeDeviceFactory])
def test_a_bound_device_input_reaches_device_and_host_nodes(plugins, factory):
    plugins(fp.Plugin(factory()))
    first, second = _sessions(factory)
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    y = np.ones((2, 3), np.float32)
    z = _z_on_device(first, x)
    binding = second.io_binding()
    binding.bind_ortvalue_input("z", z)
    binding.bind_cpu_input("y", y)
    fp.transfer_log.clear()
    second.run_with_iobinding(binding)
    w, sq = binding.copy_outputs_to_cpu()
    np.testing.assert_allclose(w, 2 * x + y)
    np.testing.assert_allclose(sq, (2 * x) ** 2)
    # z goes to the host once for the CPU Mul; y is uploaded; w comes back. A provider that
    # adopts z reads it in place; one that cannot gets it re-uploaded from the host.
    adopted = factory is AdoptingFactory
    assert fp.transfer_log.count("to_device") == (1 if adopted else 2)
    assert fp.transfer_log.count("to_host") == 2


def test_a_device_input_only_device_nodes_read_never_visits_the_host(plugins):
    plugins(fp.Plugin(AdoptingFactory()))
    first, _ = _sessions(AdoptingFactory)
    z = _z_on_device(first, np.ones((2, 3), np.float32))
    fp.transfer_log.clear()
    again = first.io_binding()
    again.bind_ortvalue_input("x", z)
    again.bind_output("z", "fake")
    first.run_with_iobinding(again)
    assert fp.transfer_log == []
    np.testing.assert_allclose(again.get_outputs()[0].numpy(), np.full((2, 3), 4.0))


def test_a_host_ortvalue_binds_like_a_numpy_array():
    data = make_model(
        [helper.make_node("Neg", ["x"], ["y"])], [tensor("x", [3])], [tensor("y", [3])]
    )
    session = tessera.InferenceSession(data, providers=["cpu"])
    binding = session.io_binding()
    binding.bind_ortvalue_input("x", tessera.OrtValue.ortvalue_from_numpy(np.ones(3, np.float32)))
    session.run_with_iobinding(binding)
    np.testing.assert_array_equal(binding.copy_outputs_to_cpu()[0], -np.ones(3))
