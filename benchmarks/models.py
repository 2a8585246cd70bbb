"""Benchmark models: onnx's light CNNs, and BERT-base / GPT-2-small shaped transformers and a long
Add chain built with onnx.helper (random weights; the shapes, not the numbers, matter here)."""

from __future__ import annotations

import math
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

LIGHT_CNNS = (
    "resnet50",
    "densenet121",
    "inception_v1",
    "inception_v2",
    "squeezenet",
    "shufflenet",
    "vgg19",
)
OPSET = 20  # Gelu (20) and LayerNormalization (17) exist, so the optimizer can recognise both


def light_model(name: str) -> onnx.ModelProto:
    """One of the small-weight CNNs shipped in onnx's backend test data (input 1x3x224x224)."""
    path = os.path.join(
        os.path.dirname(onnx.__file__), "backend", "test", "data", "light", f"light_{name}.onnx"
    )
    return onnx.load(path)


class _Builder:
    """Accumulates nodes and random initializers for one transformer graph."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.count = 0

    def name(self, stem: str) -> str:
        self.count += 1
        return f"{stem}_{self.count}"

    def const(self, stem: str, array: np.ndarray) -> str:
        name = self.name(stem)
        self.inits.append(numpy_helper.from_array(array, name))
        return name

    def weight(self, stem: str, shape: tuple[int, ...], scale: float = 0.02) -> str:
        return self.const(stem, (self.rng.standard_normal(shape) * scale).astype(np.float32))

    def op(self, op_type: str, inputs: list[str], **attrs) -> str:
        out = self.name(op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=out, **attrs))
        return out

    def linear(self, x: str, n_in: int, n_out: int) -> str:
        h = self.op("MatMul", [x, self.weight("w", (n_in, n_out))])
        return self.op("Add", [h, self.weight("b", (n_out,))])

    def layer_norm(self, x: str, hidden: int) -> str:
        """Decomposed, as exporters emit it (the optimizer turns it into LayerNormalization)."""
        axes = self.const("axes", np.array([-1], np.int64))
        mean = self.op("ReduceMean", [x, axes])
        d = self.op("Sub", [x, mean])
        var = self.op("ReduceMean", [self.op("Pow", [d, self.const("two", np.float32(2.0))]), axes])
        sd = self.op("Sqrt", [self.op("Add", [var, self.const("eps", np.float32(1e-5))])])
        n = self.op("Div", [d, sd])
        n = self.op("Mul", [n, self.const("gamma", np.ones(hidden, np.float32))])
        return self.op("Add", [n, self.const("beta", np.zeros(hidden, np.float32))])

    def gelu_erf(self, x: str) -> str:
        s = self.op("Div", [x, self.const("sqrt2", np.float32(math.sqrt(2.0)))])
        a = self.op("Add", [self.op("Erf", [s]), self.const("one", np.float32(1.0))])
        return self.op("Mul", [self.op("Mul", [x, a]), self.const("half", np.float32(0.5))])

    def gelu_tanh(self, x: str) -> str:
        """GPT-2's tanh approximation (the optimizer makes it Gelu(approximate="tanh"))."""
        cube = self.op("Pow", [x, self.const("three", np.float32(3.0))])
        inner = self.op("Add", [x, self.op("Mul", [cube, self.const("c", np.float32(0.044715))])])
        inner = self.op("Mul", [inner, self.const("k", np.float32(math.sqrt(2 / math.pi)))])
        a = self.op("Add", [self.op("Tanh", [inner]), self.const("one", np.float32(1.0))])
        return self.op("Mul", [self.op("Mul", [x, a]), self.const("half", np.float32(0.5))])

    def attention(self, x: str, hidden: int, heads: int, mask: str | None) -> str:
        head = hidden // heads
        split = self.const("shape", np.array([0, 0, heads, head], np.int64))
        q = self.op(
            "Transpose",
            [self.op("Reshape", [self.linear(x, hidden, hidden), split])],
            perm=[0, 2, 1, 3],
        )
        k = self.op(
            "Transpose",
            [self.op("Reshape", [self.linear(x, hidden, hidden), split])],
            perm=[0, 2, 3, 1],
        )
        v = self.op(
            "Transpose",
            [self.op("Reshape", [self.linear(x, hidden, hidden), split])],
            perm=[0, 2, 1, 3],
        )
        scores = self.op(
            "Div", [self.op("MatMul", [q, k]), self.const("scale", np.float32(math.sqrt(head)))]
        )
        if mask is not None:
            scores = self.op("Add", [scores, mask])
        ctx = self.op("MatMul", [self.op("Softmax", [scores], axis=-1), v])
        merged = self.op(
            "Reshape",
            [
                self.op("Transpose", [ctx], perm=[0, 2, 1, 3]),
                self.const("shape", np.array([0, 0, hidden], np.int64)),
            ],
        )
        return self.linear(merged, hidden, hidden)

    def model(self, name: str, inputs, outputs) -> onnx.ModelProto:
        graph = helper.make_graph(self.nodes, name, inputs, outputs, self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
        model.ir_version = 10
        return model


def _embed(b: _Builder, ids: str, vocab: int, seq: int, hidden: int) -> str:
    tokens = b.op("Gather", [b.weight("wte", (vocab, hidden)), ids], axis=0)
    return b.op("Add", [tokens, b.weight("wpe", (seq, hidden))])


def bert_base(
    layers: int = 12, hidden: int = 768, heads: int = 12, seq: int = 128, vocab: int = 30522
) -> onnx.ModelProto:
    """A BERT-base shaped encoder (post-LN, erf Gelu), input_ids [batch, seq] -> hidden states."""
    b = _Builder(0)
    x = b.layer_norm(_embed(b, "input_ids", vocab, seq, hidden), hidden)
    for _ in range(layers):
        x = b.layer_norm(b.op("Add", [x, b.attention(x, hidden, heads, None)]), hidden)
        ffn = b.linear(b.gelu_erf(b.linear(x, hidden, 4 * hidden)), 4 * hidden, hidden)
        x = b.layer_norm(b.op("Add", [x, ffn]), hidden)
    b.nodes.append(helper.make_node("Identity", [x], ["last_hidden_state"]))
    return b.model(
        "bert_base",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", seq])],
        [
            helper.make_tensor_value_info(
                "last_hidden_state", TensorProto.FLOAT, ["batch", seq, hidden]
            )
        ],
    )


def gpt2_small(
    layers: int = 12, hidden: int = 768, heads: int = 12, seq: int = 128, vocab: int = 50257
) -> onnx.ModelProto:
    """A GPT-2-small shaped decoder (pre-LN, causal mask, tanh Gelu), no LM head."""
    b = _Builder(1)
    mask = np.triu(np.full((seq, seq), -1e4, np.float32), k=1).reshape(1, 1, seq, seq)
    causal = b.const("causal_mask", mask)
    x = _embed(b, "input_ids", vocab, seq, hidden)
    for _ in range(layers):
        x = b.op("Add", [x, b.attention(b.layer_norm(x, hidden), hidden, heads, causal)])
        ffn = b.linear(
            b.gelu_tanh(b.linear(b.layer_norm(x, hidden), hidden, 4 * hidden)), 4 * hidden, hidden
        )
        x = b.op("Add", [x, ffn])
    b.nodes.append(helper.make_node("Identity", [b.layer_norm(x, hidden)], ["hidden_states"]))
    return b.model(
        "gpt2_small",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", seq])],
        [helper.make_tensor_value_info("hidden_states", TensorProto.FLOAT, ["batch", seq, hidden])],
    )


def add_chain(length: int = 2000) -> onnx.ModelProto:
    """``length`` Adds of a 1-element tensor in a chain: measures per-node dispatch overhead."""
    nodes = []
    prev = "x"
    for i in range(length):
        out = "y" if i == length - 1 else f"t{i}"
        nodes.append(helper.make_node("Add", [prev, "x"], [out], name=f"add{i}"))
        prev = out
    graph = helper.make_graph(
        nodes,
        "add_chain",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def transformer(name: str) -> onnx.ModelProto:
    return {"bert_base": bert_base, "gpt2_small": gpt2_small}[name]()
