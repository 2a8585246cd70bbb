"""Render benchmarks/results/latest.json as the Markdown tables of docs/performance.md.

python benchmarks/report_markdown.py [benchmarks/results/latest.json]
"""

from __future__ import annotations

import json
import os
import sys


def _ms(value: float | None) -> str:
    return "-" if value is None else (f"{value:.0f}" if value >= 100 else f"{value:.1f}")


def _ratio(a: float | None, b: float | None) -> str:
    return "-" if not a or not b else f"{a / b:.2f}"


def latency_table(report: dict) -> str:
    lines = [
        "| model | nodes | batch | Tessera ms (min) | ORT ms (min) | Tessera/ORT | Reference ms | Reference/Tessera | OpenVINO ms | OpenVINO/ORT |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, entry in report["models"].items():
        for batch, results in entry["batches"].items():
            t, o = results.get("tessera", {}), results.get("onnxruntime", {})
            r, v = results.get("reference", {}), results.get("openvino", {})
            lines.append(
                f"| {name} | {entry['nodes']} | {batch} "
                f"| {_ms(t.get('median_ms'))} ({_ms(t.get('min_ms'))}) "
                f"| {_ms(o.get('median_ms'))} ({_ms(o.get('min_ms'))}) "
                f"| **{_ratio(t.get('median_ms'), o.get('median_ms'))}** "
                f"| {_ms(r.get('median_ms'))} | {_ratio(r.get('median_ms'), t.get('median_ms'))} "
                f"| {_ms(v.get('median_ms'))} | {_ratio(v.get('median_ms'), o.get('median_ms'))} |"
            )
    return "\n".join(lines)


def creation_memory_table(report: dict) -> str:
    lines = [
        "| model | Tessera create s | ORT create s | Tessera peak RSS MiB | ORT peak RSS MiB | ratio |",
        "|---|---|---|---|---|---|",
    ]
    for name, entry in report["models"].items():
        b1 = entry["batches"].get("1", {})
        mem = entry.get("peak_rss_mib", {})
        t, o = mem.get("tessera"), mem.get("onnxruntime")
        lines.append(
            f"| {name} | {b1.get('tessera', {}).get('create_s') or 0:.2f} "
            f"| {b1.get('onnxruntime', {}).get('create_s') or 0:.2f} "
            f"| {_ms(t)} | {_ms(o)} | {_ratio(t, o)} |"
        )
    return "\n".join(lines)


def hot_spot_table(report: dict) -> str:
    lines = [
        "| model | op (Tessera ms / ORT ms per run, batch 1) |",
        "|---|---|",
    ]
    for name, entry in report["models"].items():
        ops = entry.get("top_ops_ms", [])
        cells = ", ".join(
            f"{o['op']} {o['tessera_ms']:.1f} / {_ms(o['onnxruntime_ms'])}" for o in ops[:5]
        )
        lines.append(f"| {name} | {cells} |")
    return "\n".join(lines)


def main() -> int:
    path = (
        sys.argv[1]
        if len(sys.argv) > 1
        else os.path.join(os.path.dirname(__file__), "results", "latest.json")
    )
    with open(path, encoding="utf-8") as fh:
        report = json.load(fh)
    print(latency_table(report))
    print()
    print(creation_memory_table(report))
    print()
    print(hot_spot_table(report))
    print()
    print("per-node overhead:", json.dumps(report.get("per_node_overhead")))
    print("summary:", json.dumps(report.get("summary"), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
