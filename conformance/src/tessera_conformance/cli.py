"""`tessera conformance`: prove a provider against the ONNX backend test suite.

tessera conformance --provider cpu [--strict] [-k REGEX] [--json FILE] [--markdown FILE]
tessera conformance-matrix REPORT.json [REPORT.json ...] --output docs/providers.md
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from tessera_conformance._cases import MODEL_KINDS, load_cases
from tessera_conformance._report import (
    build_report,
    provider_matrix,
    summary_line,
    to_markdown,
    write_json,
)
from tessera_conformance._runner import run_case


class Progress:
    """A one-line progress bar on a terminal; a line every 10% elsewhere (CI logs)."""

    def __init__(self, total: int, stream=sys.stderr) -> None:
        self.total, self.stream, self.start = max(total, 1), stream, time.perf_counter()
        self.tty = hasattr(stream, "isatty") and stream.isatty()
        self.last_decile = -1

    def update(self, done: int, label: str) -> None:
        frac = done / self.total
        if self.tty:
            bar = "#" * int(frac * 30)
            self.stream.write(f"\r[{bar:<30}] {done}/{self.total} {label[:40]:<40}")
            self.stream.flush()
        elif int(frac * 10) > self.last_decile:
            self.last_decile = int(frac * 10)
            self.stream.write(
                f"{done}/{self.total} cases ({time.perf_counter() - self.start:.0f} s)\n"
            )

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")


def _provider_version(name: str) -> str:
    from tessera._providers import discovery
    from tessera_registry import canonical

    factory = discovery([name]).factories.get(canonical(name))
    return getattr(factory, "version", "?") if factory else "?"


def run(args: argparse.Namespace) -> int:
    kinds = ("node", *MODEL_KINDS) if args.kind == "all" else (args.kind,)
    cases = load_cases(kinds, args.k)
    if not cases:
        print(f"no cases match -k {args.k!r}", file=sys.stderr)
        return 2
    progress = Progress(len(cases))
    results = []
    for i, case in enumerate(cases, 1):
        results.append((case, run_case(case, args.provider, strict=args.strict)))
        progress.update(i, case.name)
    progress.close()
    report = build_report(args.provider, _provider_version(args.provider), args.strict, results)
    if args.json:
        write_json(report, args.json)
    if args.markdown:
        with open(args.markdown, "w", encoding="utf-8") as fh:
            fh.write(to_markdown(report))
    failing = [(c.name, r) for c, r in results if r.status in ("failed", "error")]
    for name, result in failing[: args.show]:
        print(f"{result.status.upper():7} {name}: {result.reason}")
    if len(failing) > args.show:
        print(f"... and {len(failing) - args.show} more (see --json or --markdown)")
    print(summary_table(report))
    print(f"{report['provider']} ({report['mode']}): {summary_line(report)}")
    return 1 if report["summary"]["failed"] else 0


def matrix(args: argparse.Namespace) -> int:
    reports = []
    for path in args.reports:
        with open(path, encoding="utf-8") as fh:
            reports.append(json.load(fh))
    text = provider_matrix(reports, args.reports)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as fh:
            fh.write(text)
    else:
        print(text)
    return 0


def summary_table(report: dict) -> str:
    """Cases per status and per kind (node tests, model tests) as a small text table."""
    kinds = sorted({d["kind"] for d in report["details"].values()}, key=lambda k: (k != "node", k))
    rows = [("status", *kinds, "total")]
    for status in ("passed", "failed", "unsupported", "error", "random"):
        counts = [
            sum(1 for d in report["details"].values() if d["kind"] == k and d["status"] == status)
            for k in kinds
        ]
        rows.append((status, *map(str, counts), str(sum(counts))))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths)))
        for r in rows
    )


def add_parser(sub) -> None:
    """Add the ``conformance`` subcommand to the ``tessera`` CLI."""
    p = sub.add_parser("conformance", help="run the ONNX backend test suite against a provider")
    p.add_argument("--provider", default="cpu", help="provider name (ORT-style or short)")
    p.add_argument("--strict", action="store_true", help="run the provider alone (no CPU fallback)")
    p.add_argument("-k", default=None, metavar="REGEX", help="only cases whose name matches")
    p.add_argument("--kind", default="all", choices=["all", "node", *MODEL_KINDS])
    p.add_argument("--json", metavar="FILE")
    p.add_argument("--markdown", metavar="FILE")
    p.add_argument("--show", type=int, default=50, help="print at most this many failing cases")
    p.set_defaults(func=run)
    m = sub.add_parser(
        "conformance-matrix", help="build the provider matrix (docs/providers.md) from JSON reports"
    )
    m.add_argument("reports", nargs="+")
    m.add_argument("--output", "-o")
    m.set_defaults(func=matrix)
