"""Tessera + OpenVINO against raw OpenVINO (f32) and onnxruntime's CPU provider, in one run.

Models: onnx's light CNNs and a BERT-base-shaped encoder built here with onnx.helper. For each
model it checks that OpenVINO claimed every node, then prints median latencies and the ratios.

    python benchmarks/openvino_bench.py                  # every model, BERT-base (12 layers)
    python benchmarks/openvino_bench.py --layers 4 --runs 20 --models resnet50,bert
    python benchmarks/openvino_bench.py --repeats 5       # 5 blocks per model, pooled ratios
    python benchmarks/openvino_bench.py --models relu --runs 3000   # per-call overhead

Ratios are medians over rounds of tessera's time over the other's, the two timed back to back
in the same round, so load that comes and goes moves both sides of a pair alike. ``--repeats``
measures each model in several blocks of ``--runs`` rounds and prints the pooled figures too.
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import time
from collections.abc import Callable

import numpy as np
import onnx
from onnx import TensorProto, helper

import tessera

LIGHT = ("squeezenet", "resnet50", "densenet121", "inception_v1", "shufflenet")
F = TensorProto.FLOAT


def light_model(name: str) -> onnx.ModelProto:
    folder = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "light")
    return onnx.load(os.path.join(folder, f"light_{name}.onnx"))


def one_relu(width: int = 64) -> onnx.ModelProto:
    """One Relu on a (1, width) tensor: its time is almost all per-call overhead."""
    x = helper.make_tensor_value_info("x", F, [1, width])
    y = helper.make_tensor_value_info("y", F, [1, width])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "one_relu", [x], [y])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def bert_encoder(layers: int = 12, hidden: int = 768, heads: int = 12, seq: int = 128):
    """A BERT-base-shaped encoder (no embeddings): attention, erf-GELU FFN, post-LayerNorm."""
    rng = np.random.default_rng(0)
    inits: list[onnx.TensorProto] = []
    nodes: list[onnx.NodeProto] = []
    head = hidden // heads

    def const(name: str, array: np.ndarray) -> str:
        inits.append(onnx.numpy_helper.from_array(array, name))
        return name

    def weight(name: str, *shape: int) -> str:
        return const(name, (rng.standard_normal(shape) * 0.02).astype(np.float32))

    def node(op: str, inputs: list[str], out: str, **attrs) -> str:
        nodes.append(helper.make_node(op, inputs, [out], **attrs))
        return out

    split = const("split_shape", np.array([1, seq, heads, head], np.int64))
    merge = const("merge_shape", np.array([1, seq, hidden], np.int64))
    scale = const("scale", np.array(1 / np.sqrt(head), np.float32))
    half, one = const("half", np.array(0.5, np.float32)), const("one", np.array(1.0, np.float32))
    rsqrt2 = const("rsqrt2", np.array(1 / np.sqrt(2), np.float32))
    x = "x"
    for i in range(layers):
        p = f"l{i}_"

        def dense(inp: str, name: str, n_in: int, n_out: int, p: str = p) -> str:
            mm = node("MatMul", [inp, weight(p + name + "_w", n_in, n_out)], p + name + "_mm")
            return node("Add", [mm, weight(p + name + "_b", n_out)], p + name)

        def heads_of(inp: str, perm: list[int], p: str = p) -> str:
            r = node("Reshape", [inp, split], inp + "_r")
            return node("Transpose", [r], inp + "_t", perm=perm)

        q = heads_of(dense(x, "q", hidden, hidden), [0, 2, 1, 3])
        k = heads_of(dense(x, "k", hidden, hidden), [0, 2, 3, 1])
        v = heads_of(dense(x, "v", hidden, hidden), [0, 2, 1, 3])
        s = node("Mul", [node("MatMul", [q, k], p + "qk"), scale], p + "scores")
        s = node("Add", [s, "mask"], p + "masked")
        ctx = node("MatMul", [node("Softmax", [s], p + "probs", axis=-1), v], p + "ctx")
        ctx = node("Transpose", [ctx], p + "ctx_t", perm=[0, 2, 1, 3])
        ctx = node("Reshape", [ctx, merge], p + "ctx_m")
        attn = node("Add", [dense(ctx, "o", hidden, hidden), x], p + "res1")
        ln1 = node(
            "LayerNormalization",
            [attn, const(p + "g1", np.ones(hidden, np.float32)), weight(p + "b1", hidden)],
            p + "ln1",
            axis=-1,
            epsilon=1e-12,
        )
        h = dense(ln1, "ff1", hidden, 4 * hidden)
        erf = node("Erf", [node("Mul", [h, rsqrt2], p + "hs")], p + "erf")
        gelu = node(
            "Mul", [node("Mul", [h, half], p + "hh"), node("Add", [erf, one], p + "e1")], p + "gelu"
        )
        out = node("Add", [dense(gelu, "ff2", 4 * hidden, hidden), ln1], p + "res2")
        x = node(
            "LayerNormalization",
            [out, const(p + "g2", np.ones(hidden, np.float32)), weight(p + "b2", hidden)],
            p + "ln2",
            axis=-1,
            epsilon=1e-12,
        )
    nodes.append(helper.make_node("Identity", [x], ["y"]))
    graph = helper.make_graph(
        nodes,
        "bert_encoder",
        [
            helper.make_tensor_value_info("x", F, [1, seq, hidden]),
            helper.make_tensor_value_info("mask", F, [1, 1, 1, seq]),
        ],
        [helper.make_tensor_value_info("y", F, [1, seq, hidden])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def feeds_for(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    init = {t.name for t in model.graph.initializer}
    feeds = {}
    for value in model.graph.input:
        if value.name in init:
            continue
        shape = [d.dim_value or 1 for d in value.type.tensor_type.shape.dim]
        feeds[value.name] = rng.standard_normal(shape).astype(np.float32)
    if "mask" in feeds:
        feeds["mask"] = np.zeros_like(feeds["mask"])
    return feeds


def timings(
    fns: dict[str, Callable[[], object]], runs: int, warmup: int = 3
) -> dict[str, list[float]]:
    """Seconds per round of each function; rounds are interleaved so that load from other
    processes hits every contender alike, and round ``r`` of each can be paired."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {label: [] for label in fns}
    # Cycle through every order, so each contender runs right after each other one equally
    # often: a rotation of three puts the same one after onnxruntime in two rounds of three, so
    # any cost of following another engine (its threads winding down) falls unevenly.
    orders = list(itertools.permutations(fns.items()))
    for r in range(runs):
        for label, fn in orders[r % len(orders)]:
            start = time.perf_counter()
            fn()
            times[label].append(time.perf_counter() - start)
    return times


def medians_ms(
    fns: dict[str, Callable[[], object]], runs: int, warmup: int = 3
) -> dict[str, float]:
    """Median latency of each function in ms, over interleaved rounds (see :func:`timings`)."""
    return {label: statistics.median(ts) * 1e3 for label, ts in timings(fns, runs, warmup).items()}


def paired_ratio(ours: list[float], theirs: list[float]) -> float:
    """Median over rounds of ours/theirs, each pair timed back to back: load that comes and goes
    during a block moves both sides of a pair alike, where it moves two medians apart."""
    return statistics.median(a / b for a, b in zip(ours, theirs))


def bench(
    name: str, model: onnx.ModelProto, runs: int, repeats: int = 1
) -> list[dict[str, list[float]]]:
    import onnxruntime as ort
    import openvino

    data = model.SerializeToString()
    feeds = feeds_for(model)
    t0 = time.perf_counter()
    session = tessera.InferenceSession(data, providers=["openvino"])
    create_s = time.perf_counter() - t0
    nodes = len(session.assignments)
    on_ov = sum(p == "OpenVINOExecutionProvider" for p in session.assignments.values())
    explained = session.explain()
    parts = next(
        (ln.split(":")[1].strip() for ln in explained.splitlines() if "compiled partitions" in ln),
        "0",
    )

    core = openvino.Core()
    raw = core.compile_model(
        core.read_model(data),
        "CPU",
        {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"},
    )
    request = raw.create_infer_request()
    # A tuple: OpenVINO's dispatcher is slowest on a list (it builds every input tensor first).
    raw_feeds = tuple(feeds[p.get_any_name()] for p in raw.inputs)
    ort_options = ort.SessionOptions()
    # ORT's idle threads spin after each run and would slow whoever runs next in this process.
    ort_options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    ort_session = ort.InferenceSession(data, ort_options, providers=["CPUExecutionProvider"])

    ours, theirs = session.run(None, feeds)[0], ort_session.run(None, feeds)[0]
    err = float(np.max(np.abs(ours - theirs)) / (np.max(np.abs(theirs)) + 1e-12))
    claimed = "all" if on_ov == nodes else f"ONLY {on_ov}/{nodes}"
    print(
        f"{name:<14} {nodes} nodes, {claimed} on OpenVINO in {parts} partition(s), "
        f"session {create_s:.2f}s, max |diff| vs ORT {err:.1e} (relative to max |output|)"
    )
    contenders = {
        "tessera+openvino": lambda: session.run(None, feeds),
        "openvino (raw, f32)": lambda: request.infer(raw_feeds),
        "onnxruntime CPU": lambda: ort_session.run(None, feeds),
    }
    ours = "tessera+openvino"
    blocks = []
    for block in range(repeats):
        times = timings(contenders, runs)
        blocks.append(times)
        if repeats > 1:
            print(f"  block {block + 1}/{repeats}")
        for label, ts in times.items():
            print(
                f"    {label:<22} {statistics.median(ts) * 1e3:9.3f} ms   "
                f"tessera/this = {paired_ratio(times[ours], ts):5.3f} (median of paired rounds)"
            )
    if repeats > 1:
        pooled = {label: [t for b in blocks for t in b[label]] for label in contenders}
        print(
            f"  all {repeats * runs} rounds: "
            + ", ".join(f"{k} {statistics.median(v) * 1e3:.3f} ms" for k, v in pooled.items())
            + "; tessera/raw OV "
            + f"{paired_ratio(pooled[ours], pooled['openvino (raw, f32)']):.3f}, tessera/ORT "
            + f"{paired_ratio(pooled[ours], pooled['onnxruntime CPU']):.3f}"
        )
    return blocks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30, help="interleaved rounds per block")
    parser.add_argument(
        "--repeats", type=int, default=1, help="blocks per model; prints median ratios"
    )
    parser.add_argument("--layers", type=int, default=12, help="BERT encoder layers")
    parser.add_argument(
        "--models",
        default=",".join((*LIGHT, "bert")),
        help=f"comma-separated: {', '.join(LIGHT)}, bert, relu (one op: per-call overhead)",
    )
    args = parser.parse_args()
    import openvino

    print(
        f"openvino {openvino.__version__}, {os.cpu_count()} CPU(s), median of {args.runs} runs"
        + (f" per block, {args.repeats} blocks" if args.repeats > 1 else "")
    )
    for name in args.models.split(","):
        if name == "bert":
            model = bert_encoder(args.layers)
        elif name == "relu":
            model = one_relu()
        else:
            model = light_model(name)
        label = f"bert-{args.layers}L" if name == "bert" else name
        bench(label, model, args.runs, args.repeats)


if __name__ == "__main__":
    main()
