"""Seed models and the mutations the fuzz tests and ``tools/fuzz.py`` apply to them.

Every mutation takes a ``random.Random``, so Hypothesis (``st.randoms()``) can drive and shrink it
and the on-demand fuzzer can replay it from a seed.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

import tessera

F = onnx.TensorProto.FLOAT
DTYPES = [1, 2, 3, 5, 6, 7, 9, 10, 11, 16, 0, 8, 99]  # includes UNDEFINED, STRING and an unknown


def _vi(name: str, shape, elem: int = F) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem, shape)


def _model(nodes, inputs, outputs, inits=(), opset: int = 17) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "seed", inputs, outputs, list(inits))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)


def seed_models() -> list[onnx.ModelProto]:
    """Small valid models covering elementwise ops, shapes, reductions and control flow."""
    w = numpy_helper.from_array(np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4), "w")
    shape = numpy_helper.from_array(np.array([4, 3], np.int64), "shape")
    mlp = _model(
        [
            helper.make_node("MatMul", ["x", "w"], ["h"], name="mm"),
            helper.make_node("Relu", ["h"], ["r"], name="relu"),
            helper.make_node("Reshape", ["r", "shape"], ["s"], name="reshape"),
            helper.make_node("ReduceSum", ["s"], ["y"], name="sum", keepdims=0),
            helper.make_node("Softmax", ["r"], ["z"], name="softmax", axis=-1),
        ],
        [_vi("x", [3, 3])],
        [_vi("y", []), _vi("z", [3, 4])],
        [w, shape],
    )
    then = helper.make_graph([helper.make_node("Neg", ["x"], ["t"])], "then", [], [_vi("t", [2])])
    other = helper.make_graph([helper.make_node("Abs", ["x"], ["e"])], "else", [], [_vi("e", [2])])
    branch = _model(
        [
            helper.make_node("ReduceMax", ["x"], ["m"], keepdims=0),
            helper.make_node("Greater", ["m", "zero"], ["c"]),
            helper.make_node("If", ["c"], ["y"], then_branch=then, else_branch=other, name="if"),
        ],
        [_vi("x", [2])],
        [_vi("y", [2])],
        [numpy_helper.from_array(np.array(0, np.float32), "zero")],
    )
    body = helper.make_graph(
        [
            helper.make_node("Identity", ["cond"], ["cond_out"]),
            helper.make_node("Add", ["acc", "x"], ["acc_out"]),
        ],
        "body",
        [
            _vi("i", [], onnx.TensorProto.INT64),
            _vi("cond", [], onnx.TensorProto.BOOL),
            _vi("acc", [2]),
        ],
        [_vi("cond_out", [], onnx.TensorProto.BOOL), _vi("acc_out", [2])],
    )
    loop = _model(
        [
            # The initial value is computed (an Identity would be optimized away): the planner cannot yet capture a value that is also an
            # explicit input of the Loop (tests/reliability/test_structure.py, the xfail test).
            helper.make_node("Neg", ["x"], ["x0"]),
            helper.make_node("Loop", ["n", "", "x0"], ["y"], body=body, name="loop"),
        ],
        [_vi("x", [2])],
        [_vi("y", [2])],
        [numpy_helper.from_array(np.array(3, np.int64), "n")],
    )
    mixed = _model(
        [
            helper.make_node("Cast", ["x"], ["i"], to=onnx.TensorProto.INT64),
            helper.make_node("Concat", ["i", "i"], ["c"], axis=0),
            helper.make_node("Transpose", ["c"], ["t"], perm=[1, 0]),
            helper.make_node("Gather", ["t", "idx"], ["y"], axis=0),
            helper.make_node("Where", ["b", "x", "x"], ["z"]),
        ],
        [_vi("x", [2, 2]), _vi("b", [2, 2], onnx.TensorProto.BOOL)],
        [_vi("y", [2, 4], onnx.TensorProto.INT64), _vi("z", [2, 2])],
        [numpy_helper.from_array(np.array([1, 0], np.int64), "idx")],
    )
    return [mlp, branch, loop, mixed]


# -- byte mutations -------------------------------------------------------------------------------
def flip_bits(data: bytes, rnd: random.Random) -> bytes:
    out = bytearray(data)
    for _ in range(rnd.randint(1, 8)):
        i = rnd.randrange(len(out))
        out[i] ^= 1 << rnd.randrange(8)
    return bytes(out)


def truncate(data: bytes, rnd: random.Random) -> bytes:
    return data[: rnd.randrange(len(data))]


def splice(data: bytes, rnd: random.Random, other: bytes) -> bytes:
    return data[: rnd.randrange(len(data))] + other[rnd.randrange(len(other)) :]


def insert_bytes(data: bytes, rnd: random.Random) -> bytes:
    i = rnd.randrange(len(data) + 1)
    return data[:i] + rnd.randbytes(rnd.randint(1, 16)) + data[i:]


# -- structure mutations (in place on a copy) -----------------------------------------------------
def _all_graphs(model: onnx.ModelProto) -> list[onnx.GraphProto]:
    graphs, found = [model.graph], []
    while graphs:
        g = graphs.pop()
        found.append(g)
        for node in g.node:
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.GRAPH:
                    graphs.append(attr.g)
                graphs.extend(attr.graphs)
    return found


def _names(graph: onnx.GraphProto) -> list[str]:
    names = [v.name for v in graph.input] + [t.name for t in graph.initializer]
    return names + [o for n in graph.node for o in n.output]


def rewire_input(model: onnx.ModelProto, rnd: random.Random) -> None:
    graph = rnd.choice(_all_graphs(model))
    nodes = [n for n in graph.node if n.input]
    if nodes:
        node = rnd.choice(nodes)
        i = rnd.randrange(len(node.input))
        node.input[i] = rnd.choice(
            [*_names(graph), "", "ghost", node.output[0] if node.output else "y"]
        )


def rewire_output(model: onnx.ModelProto, rnd: random.Random) -> None:
    graph = rnd.choice(_all_graphs(model))
    if graph.node:
        node = rnd.choice(graph.node)
        if node.output:
            node.output[rnd.randrange(len(node.output))] = rnd.choice([*_names(graph), "", "fresh"])


def drop_node(model: onnx.ModelProto, rnd: random.Random) -> None:
    graph = rnd.choice(_all_graphs(model))
    if graph.node:
        del graph.node[rnd.randrange(len(graph.node))]


def duplicate_node(model: onnx.ModelProto, rnd: random.Random) -> None:
    graph = rnd.choice(_all_graphs(model))
    if graph.node:
        graph.node.add().CopyFrom(rnd.choice(graph.node))


def change_op(model: onnx.ModelProto, rnd: random.Random) -> None:
    graph = rnd.choice(_all_graphs(model))
    if graph.node:
        node = rnd.choice(graph.node)
        node.op_type = rnd.choice(
            ["Add", "Relu", "MatMul", "If", "Loop", "Scan", "Reshape", "Gather", "Nope", "Cast"]
        )
        if rnd.random() < 0.2:
            node.domain = rnd.choice(["", "ai.onnx.ml", "com.microsoft", "unknown.domain"])


def change_attribute(model: onnx.ModelProto, rnd: random.Random) -> None:
    graph = rnd.choice(_all_graphs(model))
    nodes = [n for n in graph.node if n.attribute]
    if not nodes:
        return
    attr = rnd.choice(rnd.choice(nodes).attribute)
    choice = rnd.randrange(5)
    if choice == 0:
        attr.i = rnd.choice([-(2**62), -3, -1, 0, 1, 7, 2**31, 2**62])
    elif choice == 1:
        attr.ints[:] = [rnd.randint(-5, 5) for _ in range(rnd.randint(0, 4))]
    elif choice == 2:
        attr.type = rnd.choice(list(onnx.AttributeProto.AttributeType.values()))
    elif choice == 3:
        attr.name = rnd.choice(["axis", "perm", "to", "body", "then_branch", "bogus"])
    else:
        attr.f = rnd.choice([float("nan"), float("inf"), -1.0, 1e30])


def change_type(model: onnx.ModelProto, rnd: random.Random) -> None:
    graph = rnd.choice(_all_graphs(model))
    values = [*graph.input, *graph.output, *graph.value_info]
    if rnd.random() < 0.5 and graph.initializer:
        rnd.choice(graph.initializer).data_type = rnd.choice(DTYPES)
    elif values:
        rnd.choice(values).type.tensor_type.elem_type = rnd.choice(DTYPES)


def change_dims(model: onnx.ModelProto, rnd: random.Random) -> None:
    graph = rnd.choice(_all_graphs(model))
    values = [v for v in [*graph.input, *graph.output] if v.type.tensor_type.HasField("shape")]
    if rnd.random() < 0.4 and graph.initializer:
        t = rnd.choice(graph.initializer)
        t.dims[:] = [rnd.choice([0, 1, 2, 3, 5]) for _ in range(rnd.randint(0, 3))]
    elif values:
        dims = rnd.choice(values).type.tensor_type.shape.dim
        if dims:
            d = rnd.choice(dims)
            if rnd.random() < 0.3:
                d.dim_param = rnd.choice(["n", "batch", ""])
            else:
                d.dim_value = rnd.choice([0, 1, 2, 3, 7, -1, 2**40])
        else:
            dims.add().dim_value = rnd.choice([0, 1, 4])


def change_opset(model: onnx.ModelProto, rnd: random.Random) -> None:
    model.opset_import[0].version = rnd.choice([1, 6, 11, 13, 17, 21, 23, 999])


STRUCTURE_MUTATIONS: list[Callable[[onnx.ModelProto, random.Random], None]] = [
    rewire_input,
    rewire_output,
    drop_node,
    duplicate_node,
    change_op,
    change_attribute,
    change_type,
    change_dims,
    change_opset,
]


def mutate(seeds: list[bytes], rnd: random.Random) -> bytes:
    """One mutated model: a few structure mutations, sometimes followed by a byte mutation."""
    data = rnd.choice(seeds)
    model = onnx.ModelProto.FromString(data)
    for _ in range(rnd.randint(0, 3)):
        rnd.choice(STRUCTURE_MUTATIONS)(model, rnd)
    data = model.SerializeToString()
    if rnd.random() < 0.3:
        kind = rnd.randrange(4)
        if kind == 0:
            data = flip_bits(data, rnd)
        elif kind == 1:
            data = truncate(data, rnd)
        elif kind == 2:
            data = splice(data, rnd, rnd.choice(seeds))
        else:
            data = insert_bytes(data, rnd)
    return data


# -- running ---------------------------------------------------------------------------------------
MAX_FEED_ELEMENTS = 1 << 16


def feeds_for(session: tessera.InferenceSession) -> dict[str, Any] | None:
    """Deterministic feeds matching the session's inputs; None if a declared shape is too big."""
    feeds = {}
    for arg in session.get_inputs():
        dims = [d if isinstance(d, int) and d >= 0 else 2 for d in arg.shape]
        if int(np.prod(dims, dtype=np.float64)) > MAX_FEED_ELEMENTS:
            return None
        kind = arg.type
        if kind == "tensor(string)":
            feeds[arg.name] = np.full(dims, "a", dtype=object)
        elif kind.startswith("tensor(") and kind != "tensor(undefined)":
            name = kind[7:-1]
            dtype = {"float": "float32", "double": "float64", "bool": "bool"}.get(name, name)
            try:
                feeds[arg.name] = np.ones(dims, dtype=np.dtype(dtype))
            except TypeError:
                feeds[arg.name] = np.ones(dims, np.float32)
        else:
            feeds[arg.name] = np.ones(dims, np.float32)
    return feeds


MAX_TRIPS = 100


def loops_are_bounded(data: bytes) -> bool:
    """True if every Loop has a constant trip count of at most MAX_TRIPS. A Loop without one may
    legitimately run forever (ONNX allows it, onnxruntime would spin too), so the fuzzers only
    create such sessions and do not run them."""
    try:
        model = onnx.ModelProto.FromString(data)
    except Exception:  # noqa: BLE001 - undecodable bytes never get as far as running
        return True
    trips = {}
    for t in model.graph.initializer:
        try:
            value = numpy_helper.to_array(t)
        except Exception:  # noqa: BLE001 - a corrupt initializer is the loader's to report
            continue
        if value.size == 1 and value.dtype.kind in "iu":
            trips[t.name] = int(value.reshape(-1)[0])
    for graph in _all_graphs(model):
        for node in graph.node:
            if node.op_type == "Loop" or any(a.name == "body" for a in node.attribute):
                m = node.input[0] if node.input else ""
                if trips.get(m, MAX_TRIPS + 1) > MAX_TRIPS:
                    return False
    return True


def exercise(data: bytes) -> str:
    """Create a session and run it once. Returns "ok" or the TesseraError's class name; any
    other exception escapes (that is the bug the fuzzers look for)."""
    try:
        session = tessera.InferenceSession(data, providers=["cpu"])
        feeds = feeds_for(session)
        if feeds is not None and loops_are_bounded(data):
            session.run(None, feeds)
    except tessera.TesseraError as exc:
        return type(exc).__name__
    return "ok"
