"""Helpers shared by the device providers' tests (OpenCL, CUDA): the skip reason in the factory's
own words, small models, and sessions on one provider or on the CPU provider."""

from __future__ import annotations

import importlib

import numpy as np
import onnx
from onnx import helper, numpy_helper

import tessera

F = onnx.TensorProto.FLOAT
I64 = onnx.TensorProto.INT64


def unavailable(module: str, factory: str, distribution: str) -> str:
    """Why tests of the provider whose factory is ``module.factory`` cannot run here ('' when
    they can)."""
    try:
        cls = getattr(importlib.import_module(module), factory)
    except ImportError as exc:
        return f"{distribution} is not installed ({exc})"
    instance = cls()
    return "" if instance.devices() else instance.unavailable_reason


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
