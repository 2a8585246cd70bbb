"""One-node models for kernel tests: arrays in, the model and its feeds out, run on any engine."""

from __future__ import annotations

from types import ModuleType

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def single_node_model(
    op, inputs, attrs=None, *, opset=21, n_out=1, consts=()
) -> tuple[onnx.ModelProto, dict]:
    """A one-node model; ``inputs`` are arrays (None for an omitted input) and ``consts`` the
    indices of inputs stored as initializers. Output types come from onnx's shape inference.
    Returns the model and its feeds."""
    names, graph_inputs, inits, feeds = [], [], [], {}
    for i, x in enumerate(inputs):
        if x is None:
            names.append("")
            continue
        name = f"in{i}"
        names.append(name)
        if i in consts:
            inits.append(numpy_helper.from_array(x, name))
        else:
            elem = (
                TensorProto.STRING
                if x.dtype == object
                else helper.np_dtype_to_tensor_dtype(x.dtype)
            )
            graph_inputs.append(helper.make_tensor_value_info(name, elem, x.shape))
            feeds[name] = x
    outs = [f"out{j}" for j in range(n_out)]
    node = helper.make_node(op, names, outs, **(attrs or {}))
    graph = helper.make_graph(
        [node], "g", graph_inputs, [onnx.ValueInfoProto(name=o) for o in outs], inits
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 10
    inferred = onnx.shape_inference.infer_shapes(model)
    known = {v.name: v for v in list(inferred.graph.value_info) + list(inferred.graph.output)}
    for o in model.graph.output:
        if o.name in known:
            o.type.CopyFrom(known[o.name].type)
    return model, feeds


def run_single_node(engine: ModuleType, op, inputs, attrs=None, **kw) -> list:
    """Run the one-node model on ``engine`` (the tessera or onnxruntime module), CPU provider."""
    model, feeds = single_node_model(op, inputs, attrs, **kw)
    sess = engine.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def add_parameters(params: dict, elem: int, as_inputs: bool, inputs: list, feeds: dict) -> list:
    """Each of ``params`` as a graph input (appended to ``inputs``, its value to ``feeds``) or,
    by default, as an initializer; returns the initializers."""
    inits = []
    for name, value in params.items():
        if as_inputs:
            inputs.append(helper.make_tensor_value_info(name, elem, np.shape(value)))
            feeds[name] = value
        else:
            inits.append(numpy_helper.from_array(value, name))
    return inits
