"""Providers used by the core tests: a second "device", a compiling provider, and misbehaving ones."""

from __future__ import annotations

import numpy as np

from tessera.provider import (
    Claim,
    ExecutionProvider,
    KernelRegistry,
    OptionSpec,
    ProviderFactory,
)
from tessera_registry import hookimpl


class DeviceArray:
    """A host array wrapped so that any kernel reading it without a transfer fails loudly."""

    def __init__(self, array: np.ndarray) -> None:
        self.array = array

    @property
    def dtype(self) -> np.dtype:  # metadata, as a device array has (no data access)
        return self.array.dtype

    @property
    def shape(self) -> tuple[int, ...]:
        return self.array.shape


fake_registry = KernelRegistry("FakeDeviceExecutionProvider")
transfer_log: list[str] = []


@fake_registry.kernel("Add", since=(7, 13, 14), types={"T": ["tensor(float)"]})
def _add(node):
    def compute(a, b):
        assert isinstance(a, DeviceArray) and isinstance(b, DeviceArray), (
            "host value reached the device"
        )
        return (DeviceArray(a.array + b.array),)

    return compute


class FakeDeviceProvider(ExecutionProvider):
    device = "fake:0"
    registry = fake_registry

    def to_device(self, value):
        transfer_log.append("to_device")
        return DeviceArray(np.asarray(value))

    def to_host(self, value):
        transfer_log.append("to_host")
        return value.array


class FakeDeviceFactory(ProviderFactory):
    api_version = "1.0"
    name = "fakedevice"
    aliases = ("FakeDeviceExecutionProvider",)
    default_priority = 10
    options = {"scale": OptionSpec(float, 1.0, "unused; tests option validation")}

    def create(self, options):
        return FakeDeviceProvider(self.validate_options(options))


class FusingProvider(ExecutionProvider):
    """Claims every Relu and Neg as one compiled group and runs it on the host."""

    device = "cpu"
    fusable = ("Relu", "Neg")

    def get_capability(self, view):
        keys = tuple(k for k, n in view if n.op_type in self.fusable)
        return [Claim(keys, kind="compiled")] if keys else []

    def compile(self, subgraph):
        order = list(subgraph.nodes)
        inputs, outputs = subgraph.inputs, subgraph.outputs

        def run(*args):
            env = dict(zip(inputs, args))
            for node in order:
                x = env[node.inputs[0]]
                env[node.outputs[0]] = np.maximum(x, 0) if node.op_type == "Relu" else -x
            return [env[o] for o in outputs]

        return run


class FusingFactory(ProviderFactory):
    api_version = "1.0"
    name = "fusing"
    aliases = ("FusingExecutionProvider",)
    default_priority = 5

    def create(self, options):
        return FusingProvider(options)


class RaisingCapabilityProvider(ExecutionProvider):
    def get_capability(self, view):
        raise RuntimeError("capability query exploded")


class RaisingCapabilityFactory(ProviderFactory):
    api_version = "1.0"
    name = "raising"
    default_priority = 20

    def create(self, options):
        return RaisingCapabilityProvider(options)


class MalformedClaimsProvider(ExecutionProvider):
    device = "cpu"
    registry = fake_registry

    def get_capability(self, view):
        keys = [k for k, _ in view]
        return [
            Claim((10_000,)),
            Claim((keys[0], keys[0])),
            "not a claim",
            Claim(tuple(keys[:1]), kind="weird"),
        ]


class MalformedFactory(ProviderFactory):
    api_version = "1.0"
    name = "malformed"
    default_priority = 20

    def create(self, options):
        return MalformedClaimsProvider(options)


class NoDeviceFactory(ProviderFactory):
    api_version = "1.0"
    name = "nodevice"
    default_priority = 30
    unavailable_reason = "no accelerator found (test)"

    def devices(self):
        return []

    def create(self, options):
        raise AssertionError("never created without a device")


class WrongApiFactory(ProviderFactory):
    name = "wrongapi"
    api_version = "99.0"


class Plugin:
    """A plugin object exposing chosen factories through the hook."""

    def __init__(self, *factories) -> None:
        self.factories = factories

    @hookimpl
    def tessera_provider_factories(self):
        return list(self.factories)


liar_registry = KernelRegistry("LiarExecutionProvider")


@liar_registry.kernel("Relu", since=(6, 13, 14))
def _wrong_relu(node):
    return lambda x: (np.abs(x),)  # claims Relu, computes something else


class LiarProvider(ExecutionProvider):
    registry = liar_registry


class LiarFactory(ProviderFactory):
    api_version = "1.0"
    name = "liar"
    aliases = ("LiarExecutionProvider",)

    def create(self, options):
        return LiarProvider(options)
