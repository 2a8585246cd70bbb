"""Shared helpers of the OpenCL provider tests: the skip reason, model building, strict sessions."""

from __future__ import annotations

import onnx
from onnx import helper

import tessera

F = onnx.TensorProto.FLOAT


def unavailable() -> str:
    """Why OpenCL tests cannot run here ('' when they can), in the factory's own words."""
    try:
        from tessera_opencl._factory import OpenCLProviderFactory
    except ImportError as exc:
        return f"tessera-opencl is not installed ({exc})"
    factory = OpenCLProviderFactory()
    return "" if factory.devices() else factory.unavailable_reason


def model(nodes, inputs, outputs, initializers=(), opset=17) -> bytes:
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(initializers))
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 9
    return m.SerializeToString()


def vi(name, shape, elem=F):
    return helper.make_tensor_value_info(name, elem, shape)


def strict_session(data: bytes) -> tessera.InferenceSession:
    """A session on OpenCL alone: a declined node raises instead of falling back to CPU."""
    opts = tessera.SessionOptions()
    opts.add_session_config_entry("session.disable_cpu_ep_fallback", "1")
    return tessera.InferenceSession(data, opts, providers=["opencl"])


def cpu_session(data: bytes) -> tessera.InferenceSession:
    return tessera.InferenceSession(data, providers=["cpu"])
