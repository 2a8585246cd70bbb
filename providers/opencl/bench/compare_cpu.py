"""Run the onnx light CNNs and a BERT-shaped encoder on OpenCL and on the CPU provider: checks that
every node ran on OpenCL, the largest difference, and median run times (after one warm-up run).

The sessions are timed in turn within each repeat (OpenCL with elementwise fusion, OpenCL with
``fuse_elementwise=False``, CPU), so machine load affects them alike; "kernels" is the number
of OpenCL launches one run makes with and without fusion.

    python providers/opencl/bench/compare_cpu.py [--repeat 3] [--models light_squeezenet,bert_encoder]
"""

from __future__ import annotations

import argparse
import glob
import os
import statistics
import time

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from onnx.backend.test.loader import DATA_DIR

import tessera


def bert_encoder(
    batch=2, seq=16, hidden=64, heads=4, layers=2, vocab=100, seed=0
) -> onnx.ModelProto:
    """A BERT-shaped encoder as exporters write it: embeddings, attention with a padding mask and
    dynamic Reshape shapes, Erf-GELU feed-forward, post-LayerNorm residuals."""
    rng = np.random.default_rng(seed)
    inits, nodes = [], []

    def w(name, *shape, scale=0.05):
        inits.append(
            numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name)
        )
        return name

    def c(name, value):
        inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def n(op, ins, outs=None, **kw):
        outs = outs or [f"{op}_{len(nodes)}"]
        nodes.append(helper.make_node(op, ins, outs, **kw))
        return outs[0]

    hd = hidden // heads
    emb = n("Gather", [w("word", vocab, hidden, scale=1.0), "input_ids"])
    x = n("Add", [emb, w("pos", seq, hidden, scale=0.1)])
    x = n("LayerNormalization", [x, w("ln0_s", hidden), w("ln0_b", hidden)], axis=-1)
    m = n("Unsqueeze", ["attention_mask", c("ax12", np.array([1, 2], np.int64))])
    m = n("Cast", [m], to=TensorProto.FLOAT)
    m = n("Mul", [n("Sub", [c("one", np.float32(1.0)), m]), c("neg", np.float32(-10000.0))])
    shape = n("Shape", [x])
    b_dim = n(
        "Unsqueeze", [n("Gather", [shape, c("i0", np.int64(0))]), c("ax0", np.array([0], np.int64))]
    )
    s_dim = n("Unsqueeze", [n("Gather", [shape, c("i1", np.int64(1))]), "ax0"])
    split_shape = n("Concat", [b_dim, s_dim, c("heads", np.array([heads, hd], np.int64))], axis=0)
    merge_shape = n("Concat", [b_dim, s_dim, c("hid", np.array([hidden], np.int64))], axis=0)
    for i in range(layers):

        def proj(tag, inp, i=i):
            return n(
                "Add",
                [n("MatMul", [inp, w(f"{tag}{i}_w", hidden, hidden)]), w(f"{tag}{i}_b", hidden)],
            )

        q = n("Transpose", [n("Reshape", [proj("q", x), split_shape])], perm=[0, 2, 1, 3])
        k = n("Transpose", [n("Reshape", [proj("k", x), split_shape])], perm=[0, 2, 3, 1])
        v = n("Transpose", [n("Reshape", [proj("v", x), split_shape])], perm=[0, 2, 1, 3])
        s = n("Div", [n("MatMul", [q, k]), c(f"sq{i}", np.float32(np.sqrt(hd)))])
        p = n("Softmax", [n("Add", [s, m])], axis=-1)
        a = n("Reshape", [n("Transpose", [n("MatMul", [p, v])], perm=[0, 2, 1, 3]), merge_shape])
        x = n(
            "LayerNormalization",
            [n("Add", [x, proj("o", a)]), w(f"ln1_{i}_s", hidden), w(f"ln1_{i}_b", hidden)],
        )
        h = n(
            "Add", [n("MatMul", [x, w(f"f1_{i}", hidden, 4 * hidden)]), w(f"f1b_{i}", 4 * hidden)]
        )
        g = n(
            "Mul",
            [
                n(
                    "Mul",
                    [
                        h,
                        n(
                            "Add",
                            [
                                n("Erf", [n("Div", [h, c(f"r2_{i}", np.float32(np.sqrt(2)))])]),
                                "one",
                            ],
                        ),
                    ],
                ),
                c(f"half{i}", np.float32(0.5)),
            ],
        )
        f = n("Add", [n("MatMul", [g, w(f"f2_{i}", 4 * hidden, hidden)]), w(f"f2b_{i}", hidden)])
        x = n(
            "LayerNormalization",
            [n("Add", [x, f]), w(f"ln2_{i}_s", hidden), w(f"ln2_{i}_b", hidden)],
        )
    nodes[-1].output[0] = "last_hidden_state"
    graph = helper.make_graph(
        nodes,
        "bert",
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, [batch, seq]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, [batch, seq]),
        ],
        [
            helper.make_tensor_value_info(
                "last_hidden_state", TensorProto.FLOAT, [batch, seq, hidden]
            )
        ],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    return model


def bert_feeds(batch=2, seq=16, vocab=100) -> dict:
    rng = np.random.default_rng(1)
    mask = np.ones((batch, seq), np.int64)
    mask[1, seq // 2 :] = 0
    return {
        "input_ids": rng.integers(0, vocab, (batch, seq)).astype(np.int64),
        "attention_mask": mask,
    }


def light_models() -> dict[str, tuple[onnx.ModelProto, dict]]:
    out = {}
    for path in sorted(glob.glob(os.path.join(DATA_DIR, "light", "*.onnx"))):
        model = onnx.load(path)
        rng = np.random.default_rng(0)
        feeds = {}
        inits = {i.name for i in model.graph.initializer}
        for inp in model.graph.input:
            if inp.name in inits:
                continue
            dims = [d.dim_value or 1 for d in inp.type.tensor_type.shape.dim]
            feeds[inp.name] = rng.standard_normal(dims).astype(np.float32)
        out[os.path.basename(path)[:-5]] = (model, feeds)
    return out


def _launches(sess, feeds) -> int:
    """OpenCL kernels one run of ``sess`` launches."""
    rt = next(p.rt for p in sess._providers if hasattr(p, "rt"))
    before = rt.launches
    sess.run(None, feeds)
    return rt.launches - before


def _median_times(sessions: list, feeds, repeat: int) -> list[float]:
    """Median run time of each session, the sessions taking turns within every repeat."""
    for sess in sessions:
        sess.run(None, feeds)  # warm-up: first-run allocations and (for OpenCL) program builds
    times: list[list[float]] = [[] for _ in sessions]
    for _ in range(repeat):
        for sess, acc in zip(sessions, times):
            t0 = time.perf_counter()
            sess.run(None, feeds)
            acc.append(time.perf_counter() - t0)
    return [statistics.median(t) for t in times]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--models", default="")
    args = ap.parse_args()
    cases = light_models()
    cases["bert_encoder"] = (bert_encoder(), bert_feeds())
    wanted = set(filter(None, args.models.split(",")))
    print(
        f"{'model':24} {'nodes':>5} {'on OpenCL':>9} {'max |diff|':>10} {'kernels':>9} "
        f"{'fused ms':>9} {'unfused ms':>10} {'CPU ms':>8} {'fused/CPU':>9} {'unfused/fused':>13}"
    )
    for name, (model, feeds) in cases.items():
        if wanted and name not in wanted:
            continue
        data = model.SerializeToString()
        t0 = time.perf_counter()
        ocl = tessera.InferenceSession(data, providers=["opencl", "cpu"])
        create = time.perf_counter() - t0
        unfused = tessera.InferenceSession(
            data, providers=[("opencl", {"fuse_elementwise": False}), "cpu"]
        )
        cpu = tessera.InferenceSession(data, providers=["cpu"])
        on = sum(p == "OpenCLExecutionProvider" for p in ocl.assignments.values())
        diff = max(
            float(np.max(np.abs(a - b))) if a.size else 0.0
            for a, b in zip(ocl.run(None, feeds), cpu.run(None, feeds))
        )
        kernels = f"{_launches(ocl, feeds)}/{_launches(unfused, feeds)}"
        t_ocl, t_unf, t_cpu = _median_times([ocl, unfused, cpu], feeds, args.repeat)
        print(
            f"{name:24} {len(ocl.assignments):5} {on:9} {diff:10.2e} {kernels:>9} "
            f"{t_ocl * 1e3:9.1f} {t_unf * 1e3:10.1f} {t_cpu * 1e3:8.1f} {t_ocl / t_cpu:9.1f} "
            f"{t_unf / t_ocl:13.2f}  (session creation {create:.1f} s)",
            flush=True,
        )


if __name__ == "__main__":
    main()
