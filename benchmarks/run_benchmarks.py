"""The benchmark suite behind docs/performance.md: every model at batch 1 and 8 on Tessera,
onnxruntime, the ReferenceEvaluator and (when installed) raw OpenVINO, plus memory, creation
time, per-node overhead and per-op hot spots; writes JSON and a PNG chart.

    python benchmarks/run_benchmarks.py --threads 2 --out benchmarks/results
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time

import onnx

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import models

from tessera import _bench


def _load(name: str) -> onnx.ModelProto:
    if name in models.LIGHT_CNNS:
        return models.light_model(name)
    return models.transformer(name)


def _geomean(values: list[float]) -> float | None:
    values = [v for v in values if v and v > 0]
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else None


def _per_node_overhead(threads: int, length: int = 2000) -> dict:
    """Median run time of an Add chain divided by its length, and session creation time of the
    same 2,000-node model with the optimizer on and off."""
    chain = models.add_chain(length)
    results = _bench.compare(
        chain, ["tessera", "onnxruntime"], threads=threads, budget_s=10, max_runs=50
    )
    out = {
        e: {"us_per_node": r.median_ms * 1e3 / length, "create_s": r.create_s}
        for e, r in results.items()
        if r.median_ms is not None
    }
    import tessera

    for level in (0, 99):
        opts = tessera.SessionOptions()
        opts.graph_optimization_level = level
        start = time.perf_counter()
        tessera.InferenceSession(chain.SerializeToString(), opts, providers=["cpu"])
        out[f"tessera_create_s_level_{level}"] = time.perf_counter() - start
    return out


def _top_ops(profile: dict[str, dict[str, float]], top: int = 6) -> list[dict]:
    ours = profile.get("tessera", {})
    theirs = profile.get("onnxruntime", {})
    rows = sorted(ours.items(), key=lambda kv: -kv[1])[:top]
    return [{"op": op, "tessera_ms": ms, "onnxruntime_ms": theirs.get(op)} for op, ms in rows]


def run(args: argparse.Namespace) -> dict:
    engines = _bench.available_engines(args.engines.split(","))
    report: dict = {
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
        },
        "command": " ".join([os.path.basename(sys.executable), *sys.argv]),
        "threads": args.threads,
        "engines": engines,
        "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "models": {},
    }
    for name in args.models.split(","):
        proto = _load(name)
        entry: dict = {"nodes": len(proto.graph.node), "batches": {}}
        for batch in args.batches:
            model = proto if batch == 1 else _bench.with_free_batch(proto)
            print(f"[{time.strftime('%H:%M:%S')}] {name} batch {batch}", flush=True)
            # The ReferenceEvaluator takes minutes per batch-8 run of the big models; its
            # ratio is reported at batch 1 only unless asked.
            slow = args.reference_batch8 or batch == 1
            results = _bench.compare(
                model,
                [e for e in engines if slow or e != "reference"],
                threads=args.threads,
                batch=batch,
                budget_s=args.budget,
                max_runs=args.max_runs,
                slow_runs=args.reference_runs if batch == 1 else 1,
            )
            print(_bench.format_table(results), flush=True)
            entry["batches"][str(batch)] = {e: _bench._as_dict(r) for e, r in results.items()}
        if not args.skip_memory:
            entry["peak_rss_mib"] = {
                e: _bench.peak_memory_mib(proto, e, args.threads)
                for e in ("tessera", "onnxruntime")
            }
            print(f"  peak RSS growth (MiB): {entry['peak_rss_mib']}", flush=True)
        if not args.skip_profile:
            profile = _bench.op_profile(proto, args.threads, runs=args.profile_runs)
            entry["top_ops_ms"] = _top_ops(profile)
            print(f"  top ops: {entry['top_ops_ms']}", flush=True)
        report["models"][name] = entry
    report["per_node_overhead"] = _per_node_overhead(args.threads)
    print(f"  per-node overhead: {report['per_node_overhead']}", flush=True)
    report["summary"] = summarize(report)
    return report


def reprofile(args: argparse.Namespace) -> int:
    """Re-measure the per-op hot spots of an existing latest.json (the slowest part to redo)."""
    path = os.path.join(args.out, "latest.json")
    with open(path, encoding="utf-8") as fh:
        report = json.load(fh)
    for name in args.models.split(","):
        if name in report["models"]:
            print(f"[{time.strftime('%H:%M:%S')}] profiling {name}", flush=True)
            profile = _bench.op_profile(_load(name), args.threads, runs=args.profile_runs)
            report["models"][name]["top_ops_ms"] = _top_ops(profile)
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(report, fh, indent=1)
    return 0


def summarize(report: dict) -> dict:
    ratios, ref_speedups, worst = [], [], ("", 0.0)
    for name, entry in report["models"].items():
        b1 = entry["batches"].get("1", {})
        ours, ort, ref = (
            b1.get(e, {}).get("median_ms") for e in ("tessera", "onnxruntime", "reference")
        )
        if ours and ort:
            ratios.append(ours / ort)
            if ours / ort > worst[1]:
                worst = (name, ours / ort)
        if ours and ref:
            ref_speedups.append(ref / ours)
    bert = report["models"].get("bert_base", {}).get("peak_rss_mib", {})
    return {
        "geomean_tessera_over_ort_batch1": _geomean(ratios),
        "worst_model_batch1": {"model": worst[0], "ratio": worst[1]},
        "geomean_speedup_over_reference_batch1": _geomean(ref_speedups),
        "bert_peak_rss_ratio": (
            bert["tessera"] / bert["onnxruntime"]
            if bert.get("tessera") and bert.get("onnxruntime")
            else None
        ),
        "us_per_node_tessera": report["per_node_overhead"].get("tessera", {}).get("us_per_node"),
    }


def chart(report: dict, path: str) -> bool:
    """Bar chart of each engine's latency relative to onnxruntime, batch 1 and 8 (log scale)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no chart (pip install matplotlib)", file=sys.stderr)
        return False
    names = list(report["models"])
    engines = [e for e in report["engines"] if e != "onnxruntime"]
    fig, axes = plt.subplots(1, 2, figsize=(14, 5), sharey=True)
    for ax, batch in zip(axes, ("1", "8")):
        width = 0.8 / max(len(engines), 1)
        for i, engine in enumerate(engines):
            values = []
            for name in names:
                b = report["models"][name]["batches"].get(batch, {})
                ours, ort = (
                    b.get(engine, {}).get("median_ms"),
                    b.get("onnxruntime", {}).get("median_ms"),
                )
                values.append(ours / ort if ours and ort else 0)
            ax.bar([x + i * width for x in range(len(names))], values, width, label=engine)
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.axhline(1.5, color="red", linestyle="--", linewidth=0.8, label="target 1.5x")
        ax.set_yscale("log")
        ax.set_xticks([x + width * (len(engines) - 1) / 2 for x in range(len(names))])
        ax.set_xticklabels(names, rotation=30, ha="right")
        ax.set_title(f"batch {batch}, {report['threads']} threads: latency / onnxruntime")
    axes[0].set_ylabel("time relative to onnxruntime CPU (lower is better)")
    axes[1].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument(
        "--models", default=",".join([*models.LIGHT_CNNS, "bert_base", "gpt2_small"])
    )
    parser.add_argument("--engines", default=",".join(_bench.ENGINES))
    parser.add_argument("--budget", type=float, default=15.0, help="timing seconds per model/batch")
    parser.add_argument("--max-runs", type=int, default=20)
    parser.add_argument("--reference-runs", type=int, default=2)
    parser.add_argument("--reference-batch8", action="store_true", help="also time it at batch 8")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument(
        "--profile-only", action="store_true", help="redo only the per-op profiles in latest.json"
    )
    parser.add_argument("--skip-profile", action="store_true")
    parser.add_argument("--profile-runs", type=int, default=3)
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results"))
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    if args.profile_only:
        return reprofile(args)
    report = run(args)
    with open(os.path.join(args.out, "latest.json"), "w", encoding="utf-8") as fh:
        json.dump(report, fh, indent=1)
    chart(report, os.path.join(args.out, "latest.png"))
    print(json.dumps(report["summary"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
