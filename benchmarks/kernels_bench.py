"""Single-node benchmarks of the CPU provider's hot non-GEMM kernels against onnxruntime.

Each case is one ONNX node at a shape taken from the benchmark models (light CNNs, BERT-base),
with constant operands stored as initializers, as the models have them. Tessera and onnxruntime
run alternately in one process (``tessera._bench.compare``); the table gives the medians and
their ratio, which is the figure to compare between two checkouts (absolute times on a shared
machine drift between runs, the ratio much less).

    python benchmarks/kernels_bench.py [-k REGEX] [--threads 2] [--budget 3] [--runs 100]
                                       [--json FILE]
    python benchmarks/kernels_bench.py --compare BEFORE.json [BEFORE.json ...] \
                                       --against AFTER.json [AFTER.json ...]

The second form compares two checkouts without timing anything: each side's per-case ratio is
the median over its JSON files (run the two checkouts alternately, one process each, e.g. with
PYTHONPATH pointing at a copy of the older kernels), and the table gives before / after.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from tessera import _bench

OPSET = 20  # Gelu is opset 20; every other op here has a schema at or below it


@dataclasses.dataclass
class Case:
    """One single-node model: op, input shape, attributes and constant extra inputs."""

    name: str
    op: str
    shape: tuple[int, ...]
    attrs: dict = dataclasses.field(default_factory=dict)
    consts: list[np.ndarray] = dataclasses.field(default_factory=list)
    second_input: bool = False  # a second runtime input of the same shape (Add, Mul)

    def model(self) -> onnx.ModelProto:
        inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, self.shape)]
        names = ["x"]
        if self.second_input:
            inputs.append(helper.make_tensor_value_info("x2", TensorProto.FLOAT, self.shape))
            names.append("x2")
        inits = []
        for i, c in enumerate(self.consts):
            inits.append(numpy_helper.from_array(c, f"c{i}"))
            names.append(f"c{i}")
        node = helper.make_node(self.op, names, ["y"], **self.attrs)
        graph = helper.make_graph(
            [node],
            self.name,
            inputs,
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
            inits,
        )
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])


def _bn_params(c: int, rng: np.random.Generator) -> list[np.ndarray]:
    scale, bias, mean = (rng.standard_normal(c).astype(np.float32) for _ in range(3))
    var = rng.uniform(0.5, 2.0, c).astype(np.float32)
    return [scale, bias, mean, var]


def cases() -> list[Case]:
    """The benchmark's hot spots, at the shapes the models run them."""
    rng = np.random.default_rng(0)
    k3s2 = {"kernel_shape": [3, 3], "strides": [2, 2]}
    return [
        Case("maxpool_k3s2_squeezenet", "MaxPool", (1, 64, 111, 111), k3s2),
        Case("maxpool_k3s2_pad_resnet", "MaxPool", (1, 64, 112, 112), {**k3s2, "pads": [1] * 4}),
        Case("maxpool_k3s1_pad_inception", "MaxPool", (1, 256, 27, 27),
             {"kernel_shape": [3, 3], "pads": [1] * 4}),
        Case("maxpool_k2s2_vgg", "MaxPool", (1, 64, 224, 224),
             {"kernel_shape": [2, 2], "strides": [2, 2]}),
        Case("avgpool_k3s1_pad_inception", "AveragePool", (1, 256, 28, 28),
             {"kernel_shape": [3, 3], "pads": [1] * 4}),
        Case("avgpool_k3s1_pad_incl_inception", "AveragePool", (1, 256, 28, 28),
             {"kernel_shape": [3, 3], "pads": [1] * 4, "count_include_pad": 1}),
        Case("avgpool_k2s2_densenet", "AveragePool", (1, 128, 56, 56),
             {"kernel_shape": [2, 2], "strides": [2, 2]}),
        Case("avgpool_k3s2_pad_shufflenet", "AveragePool", (1, 136, 28, 28),
             {**k3s2, "pads": [1] * 4}),
        Case("avgpool_k7_resnet", "AveragePool", (1, 2048, 7, 7), {"kernel_shape": [7, 7]}),
        Case("globalavgpool_densenet", "GlobalAveragePool", (1, 1024, 7, 7)),
        Case("globalmaxpool", "GlobalMaxPool", (1, 1024, 7, 7)),
        Case("softmax_bert", "Softmax", (1, 12, 128, 128)),
        Case("logsoftmax_bert", "LogSoftmax", (1, 12, 128, 128)),
        Case("layernorm_bert", "LayerNormalization", (1, 128, 768), {"axis": -1},
             [rng.standard_normal(768).astype(np.float32),
              rng.standard_normal(768).astype(np.float32)]),
        Case("gelu_erf_bert", "Gelu", (1, 128, 3072)),
        Case("gelu_tanh_bert", "Gelu", (1, 128, 3072), {"approximate": "tanh"}),
        Case("erf_bert", "Erf", (1, 128, 3072)),
        Case("pow3_gpt2", "Pow", (1, 128, 3072), {}, [np.array(3.0, dtype=np.float32)]),
        Case("pow2", "Pow", (1, 128, 3072), {}, [np.array(2.0, dtype=np.float32)]),
        Case("pow0.5", "Pow", (1, 128, 3072), {}, [np.array(0.5, dtype=np.float32)]),
        Case("batchnorm_densenet", "BatchNormalization", (1, 128, 56, 56), {},
             _bn_params(128, rng)),
        Case("batchnorm_densenet_14", "BatchNormalization", (1, 512, 14, 14), {},
             _bn_params(512, rng)),
        Case("relu_densenet", "Relu", (1, 128, 56, 56)),
        Case("add_densenet", "Add", (1, 128, 56, 56), second_input=True),
        Case("mul_densenet", "Mul", (1, 128, 56, 56), second_input=True),
        Case("mul_channel_densenet", "Mul", (1, 128, 28, 28), {},
             [rng.standard_normal((128, 1, 1)).astype(np.float32)]),
        Case("add_bias_bert", "Add", (1, 128, 3072), {},
             [rng.standard_normal(3072).astype(np.float32)]),
        Case("lrn_inception", "LRN", (1, 64, 55, 55),
             {"size": 5, "alpha": 1e-4, "beta": 0.75, "bias": 1.0}),
    ]  # fmt: skip


def _median_ratios(paths: list[str]) -> dict[str, tuple[float, float, float]]:
    """case -> median (tessera ms, onnxruntime ms, ratio) over several --json files."""
    runs: dict[str, list[tuple[float, float, float]]] = {}
    for path in paths:
        with open(path, encoding="utf-8") as fh:
            for row in json.load(fh)["cases"]:
                if "ratio" in row:
                    runs.setdefault(row["case"], []).append(
                        (row["tessera_ms"], row["onnxruntime_ms"], row["ratio"])
                    )
    return {
        case: tuple(float(np.median([v[i] for v in vals])) for i in range(3))
        for case, vals in runs.items()
    }


def compare(before: list[str], after: list[str]) -> None:
    """Print before/after medians and ratios to onnxruntime for the cases both sides have."""
    old, new = _median_ratios(before), _median_ratios(after)
    print(f"{'case':34} {'before ms':>9} {'ratio':>6} {'after ms':>9} {'ratio':>6} {'gain':>5}")
    for case, (t_new, _o_new, r_new) in new.items():
        if case in old:
            t_old, _o_old, r_old = old[case]
            print(
                f"{case:34} {t_old:9.3f} {r_old:6.2f} {t_new:9.3f} {r_new:6.2f} "
                f"{r_old / r_new:5.2f}"
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-k", default="", help="only cases whose name matches this regex")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--budget", type=float, default=3.0, help="seconds per case")
    parser.add_argument("--runs", type=int, default=100, help="most timed runs per engine")
    parser.add_argument("--json", default="", help="write the figures to this file")
    parser.add_argument("--compare", nargs="+", default=[], help="--json files of the baseline")
    parser.add_argument("--against", nargs="+", default=[], help="--json files to compare")
    args = parser.parse_args(argv)
    if args.compare or args.against:
        if not (args.compare and args.against):
            parser.error("--compare and --against go together")
        compare(args.compare, args.against)
        return 0
    rows = []
    print(f"{'case':34} {'tessera ms':>10} {'ORT ms':>8} {'ratio':>6} {'max|diff|':>9}")
    for case in cases():
        if args.k and not re.search(args.k, case.name):
            continue
        res = _bench.compare(
            case.model(),
            ["tessera", "onnxruntime"],
            threads=args.threads,
            budget_s=args.budget,
            max_runs=args.runs,
        )
        t, o = res["tessera"], res["onnxruntime"]
        if t.error or o.error:
            print(f"{case.name:34} error: {t.error or o.error}")
            rows.append({"case": case.name, "error": t.error or o.error})
            continue
        ratio = t.median_ms / o.median_ms
        diff = t.max_abs_diff if t.max_abs_diff is not None else float("nan")
        print(f"{case.name:34} {t.median_ms:10.3f} {o.median_ms:8.3f} {ratio:6.2f} {diff:9.2e}")
        rows.append(
            {
                "case": case.name,
                "tessera_ms": t.median_ms,
                "onnxruntime_ms": o.median_ms,
                "ratio": ratio,
                "max_abs_diff": t.max_abs_diff,
                "runs": len(t.times_ms),
            }
        )
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({"threads": args.threads, "cases": rows}, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
