"""Shared helpers of the CUDA provider tests: the skip reason, model building, sessions."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

import tessera

F = onnx.TensorProto.FLOAT
I64 = onnx.TensorProto.INT64


def unavailable() -> str:
    """Why GPU tests cannot run here ('' when they can), in the factory's own words."""
    try:
        from tessera_cuda._factory import CUDAProviderFactory
    except ImportError as exc:
        return f"tessera-cuda is not installed ({exc})"
    factory = CUDAProviderFactory()
    return "" if factory.devices() else factory.unavailable_reason


def model(nodes, inputs, outputs, initializers=(), opset=17) -> bytes:
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(initializers))
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 9
    return m.SerializeToString()


def vi(name, shape, elem=F):
    return helper.make_tensor_value_info(name, elem, shape)


def single_node_case(node, feeds, consts=None, opset=17, out_elem=F, n_out=1):
    """(model bytes, feeds) for one node: graph inputs from ``feeds``, initializers from ``consts``."""
    consts = consts or {}
    inputs = [
        vi(k, list(v.shape), helper.np_dtype_to_tensor_dtype(v.dtype)) for k, v in feeds.items()
    ]
    inits = [numpy_helper.from_array(np.asarray(v), k) for k, v in consts.items()]
    outs = [vi(o, None, out_elem) for o in node.output[:n_out]]
    return model([node], inputs, outs, inits, opset=opset), feeds


def strict_session(data: bytes, provider: str) -> tessera.InferenceSession:
    """A session on ``provider`` alone: a declined node raises instead of falling back to CPU."""
    opts = tessera.SessionOptions()
    opts.add_session_config_entry("session.disable_cpu_ep_fallback", "1")
    return tessera.InferenceSession(data, opts, providers=[provider])


def cpu_session(data: bytes) -> tessera.InferenceSession:
    return tessera.InferenceSession(data, providers=["cpu"])
