"""CUDA provider vs the CPU provider (and PyTorch eager on the GPU, if installed), one process,
engines alternated per repeat; prints medians and ratios. Run by gpu_check.sh on a GPU machine.

    python providers/cuda/bench/compare.py --repeat 20 --json $OUT/bench.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
from onnx import TensorProto, helper, numpy_helper

import tessera


def mlp_encoder(batch: int, seq: int = 128, hidden: int = 768, layers: int = 4):
    """A BERT-base-shaped feed-forward stack: MatMul+Add+Gelu+MatMul+Add+LayerNorm per layer."""
    rng = np.random.default_rng(0)
    nodes, inits, cur = [], [], "x"
    weights = []
    for i in range(layers):
        w1 = (rng.standard_normal((hidden, 4 * hidden)) * 0.02).astype(np.float32)
        w2 = (rng.standard_normal((4 * hidden, hidden)) * 0.02).astype(np.float32)
        b1, b2 = np.zeros(4 * hidden, np.float32), np.zeros(hidden, np.float32)
        g, beta = np.ones(hidden, np.float32), np.zeros(hidden, np.float32)
        weights.append((w1, b1, w2, b2, g, beta))
        for name, arr in (("w1", w1), ("b1", b1), ("w2", w2), ("b2", b2), ("g", g), ("beta", beta)):
            inits.append(numpy_helper.from_array(arr, f"{name}_{i}"))
        nodes += [
            helper.make_node("MatMul", [cur, f"w1_{i}"], [f"h{i}"]),
            helper.make_node("Add", [f"h{i}", f"b1_{i}"], [f"hb{i}"]),
            helper.make_node("Gelu", [f"hb{i}"], [f"a{i}"]),
            helper.make_node("MatMul", [f"a{i}", f"w2_{i}"], [f"o{i}"]),
            helper.make_node("Add", [f"o{i}", f"b2_{i}"], [f"ob{i}"]),
            helper.make_node("Add", [f"ob{i}", cur], [f"r{i}"]),
            helper.make_node(
                "LayerNormalization", [f"r{i}", f"g_{i}", f"beta_{i}"], [f"y{i}"], axis=-1
            ),
        ]
        cur = f"y{i}"
    graph = helper.make_graph(
        nodes,
        "encoder",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, seq, hidden])],
        [helper.make_tensor_value_info(cur, TensorProto.FLOAT, None)],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])
    feed = {"x": rng.standard_normal((batch, seq, hidden)).astype(np.float32)}
    return model.SerializeToString(), feed, weights


def torch_engine(weights, feed):
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    torch.backends.cuda.matmul.allow_tf32 = False
    dev = [tuple(torch.from_numpy(w).cuda() for w in layer) for layer in weights]
    x0 = torch.from_numpy(feed["x"])

    def run():
        with torch.no_grad():
            x = x0.cuda()
            for w1, b1, w2, b2, g, beta in dev:
                h = torch.nn.functional.gelu(x @ w1 + b1)
                x = torch.nn.functional.layer_norm(h @ w2 + b2 + x, (x.shape[-1],), g, beta)
            return x.cpu().numpy()

    return run


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--json")
    args = parser.parse_args()
    rows = []
    for batch in (1, 8):
        data, feed, weights = mlp_encoder(batch)
        engines = {
            "tessera-cuda": tessera.InferenceSession(data, providers=["cuda", "cpu"]).run,
            "tessera-cpu": tessera.InferenceSession(data, providers=["cpu"]).run,
        }
        torch_run = torch_engine(weights, feed)
        if torch_run is not None:
            engines["torch-eager-cuda"] = lambda _n, f, _r=torch_run: [_r()]
        outs = {name: fn(None, feed)[0] for name, fn in engines.items()}  # warm-up
        times: dict[str, list[float]] = {name: [] for name in engines}
        for _ in range(args.repeat):
            for name, fn in engines.items():
                start = time.perf_counter()
                fn(None, feed)
                times[name].append((time.perf_counter() - start) * 1000)
        med = {name: statistics.median(t) for name, t in times.items()}
        diff = float(np.max(np.abs(outs["tessera-cuda"] - outs["tessera-cpu"])))
        row = {
            "model": f"encoder4x768 batch {batch}",
            "median_ms": med,
            "max_abs_diff_vs_cpu": diff,
        }
        rows.append(row)
        ratios = "  ".join(
            f"cuda/{k}={med['tessera-cuda'] / v:.2f}x"
            for k, v in med.items()
            if k != "tessera-cuda"
        )
        print(
            f"{row['model']}: "
            + "  ".join(f"{k} {v:.2f} ms" for k, v in med.items())
            + f"  {ratios}  max|diff| {diff:.2e}"
        )
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(rows, fh, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
