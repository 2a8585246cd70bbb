"""Shared fixtures: model building, and registering test-only provider plugins."""

from __future__ import annotations

import os
import tempfile

import numpy as np
import onnx
import pytest
from onnx import helper

# Sessions that name no providers use the CPU provider only, whatever else is installed (OpenVINO,
# OpenCL, the example plugin); tests of other providers name them, or clear this variable.
os.environ.setdefault("TESSERA_PROVIDERS", "cpu")
# onnx's backend runner writes generated data for the `light` models under ONNX_HOME.
os.environ.setdefault("ONNX_HOME", os.path.join(tempfile.gettempdir(), "tessera-onnx-home"))


def make_model(nodes, inputs, outputs, initializers=(), opset=17, **kwargs) -> bytes:
    graph = helper.make_graph(nodes, "test", inputs, outputs, list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], **kwargs)
    return model.SerializeToString()


def tensor(name, shape, elem=onnx.TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, elem, shape)


@pytest.fixture
def plugins():
    """Register test plugins for one test: ``plugins(Plugin(FakeDeviceFactory()), ...)``."""
    import tessera

    registered = []

    def register(*objs):
        for obj in objs:
            tessera.register_plugin(obj)
            registered.append(obj)

    yield register
    for obj in registered:
        tessera.unregister_plugin(obj)


@pytest.fixture(params=["1", "0"], ids=["jit", "numpy"])
def jit(request, monkeypatch):
    """The CPU provider's two kernel forms: its compiled loops, and TESSERA_CPU_JIT=0 (read when
    sessions are built). Test modules that must also check the loops ran define their own."""
    monkeypatch.setenv("TESSERA_CPU_JIT", request.param)
    return request.param == "1"


@pytest.fixture
def rng():
    return np.random.default_rng(0)
