"""The ``tessera`` command: run, explain, providers and demo."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

import numpy as np


def _providers_arg(value: str | None) -> list[str] | None:
    return [p.strip() for p in value.split(",") if p.strip()] if value else None


def _random_feed(session, seed: int = 0) -> dict:
    from tessera._bench import random_tensor
    from tessera._types import dtype_of_type_string

    rng = np.random.default_rng(seed)
    feed = {}
    for arg in session.get_inputs():
        if not arg.type.startswith("tensor("):
            raise SystemExit(
                f"input {arg.name!r} is {arg.type}; pass it with --input {arg.name}=FILE.npy"
            )
        shape = [d if isinstance(d, int) else 1 for d in arg.shape]
        feed[arg.name] = random_tensor(shape, dtype_of_type_string(arg.type), rng, high=4)
    return feed


def _load_inputs(specs: Sequence[str]) -> dict:
    feed = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep:
            raise SystemExit(f"--input takes NAME=FILE.npy, got {spec!r}")
        try:
            feed[name] = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise SystemExit(f"cannot read {path!r} for input {name!r}: {exc}") from None
    return feed


def _median_ms(session, feed, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        session.run(None, feed)
        times.append(time.perf_counter() - t0)
    return float(np.median(times) * 1e3)


def _summarize(name: str, value) -> str:
    if isinstance(value, np.ndarray):
        head = np.array2string(value.ravel()[:6], precision=4, separator=", ")
        return (
            f"  {name}: {value.dtype}{list(value.shape)} {head}{' ...' if value.size > 6 else ''}"
        )
    return f"  {name}: {type(value).__name__} {value!r:.80}"


def cmd_run(args) -> int:
    import tessera

    session = tessera.InferenceSession(args.model, providers=_providers_arg(args.providers))
    feed = _load_inputs(args.input) if args.input else _random_feed(session)
    outputs = session.run(None, feed)
    for arg, value in zip(session.get_outputs(), outputs):
        print(_summarize(arg.name, value))
        if args.output_dir:
            import pathlib

            pathlib.Path(args.output_dir).mkdir(parents=True, exist_ok=True)
            np.save(pathlib.Path(args.output_dir) / f"{arg.name.replace('/', '_')}.npy", value)
    if args.repeat > 1:
        print(
            f"median latency over {args.repeat} runs: {_median_ms(session, feed, args.repeat):.3f} ms"
        )
    return 0


def cmd_explain(args) -> int:
    import tessera

    session = tessera.InferenceSession(args.model, providers=_providers_arg(args.providers))
    print(session.explain())
    if args.verbose:
        for node, provider in session.assignments.items():
            print(f"  {node} -> {provider}")
    return 0


def cmd_providers(args) -> int:
    from tessera._providers import discovery, public_name
    from tessera_registry import CATALOG

    found = discovery()
    print("installed:")
    for factory in sorted(found.unique_factories(), key=lambda f: (-f.default_priority, f.name)):
        try:
            devices = factory.devices()
            status = (
                f"available on {', '.join(devices)}"
                if devices
                else f"unavailable: {factory.unavailable_reason or 'no device'}"
            )
        except Exception as exc:  # noqa: BLE001 - a broken probe is reported, not raised
            status = f"probe failed: {type(exc).__name__}: {exc}"
        print(
            f"  {public_name(factory):28} {factory.name:10} v{factory.version:8} priority {factory.default_priority:6}  {status}"
        )
        if args.all:
            print(f"      from {found.sources.get(factory.name, '?')}")
    if found.broken:
        print("broken:")
        for b in found.broken:
            print(f"  {b.entry_point} ({b.value}, from {b.distribution}): {b.reason}")
            if args.all and b.traceback:
                print("      " + b.traceback.rstrip().replace("\n", "\n      "))
    if found.blocked:
        print("blocked by TESSERA_PROVIDERS_BLOCK: " + ", ".join(found.blocked))
    if args.all:
        installed = {f.distribution for f in found.unique_factories()} | {
            b.distribution.split()[0] for b in found.broken
        }
        entries = {e["name"]: e for e in [*CATALOG, *found.catalog]}
        missing = [e for e in entries.values() if e["distribution"] not in installed]
        if missing:
            print("available to install:")
            for e in missing:
                print(f"  {e['name']:10} {e['hardware']:40} {e['install']}")
    return 0


def cmd_demo(args) -> int:
    from tessera._demo import run_demo

    return run_demo(repeat=args.repeat)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tessera", description="Run ONNX models through pluggable execution providers."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="run a model (random inputs unless --input is given)")
    p.add_argument("model")
    p.add_argument("--providers", help="comma-separated provider names in claim order")
    p.add_argument("--input", action="append", default=[], metavar="NAME=FILE.npy")
    p.add_argument("--output-dir", help="save each output as NAME.npy here")
    p.add_argument("--repeat", type=int, default=1, help="time this many runs and print the median")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("explain", help="show which provider runs which node, and why")
    p.add_argument("model")
    p.add_argument("--providers")
    p.add_argument("-v", "--verbose", action="store_true", help="list every node's assignment")
    p.set_defaults(func=cmd_explain)

    p = sub.add_parser("providers", help="list installed (and broken) providers")
    p.add_argument(
        "--all",
        action="store_true",
        help="also tracebacks, sources, and packages available to install",
    )
    p.set_defaults(func=cmd_providers)

    p = sub.add_parser("demo", help="build a small CNN and run it on the CPU provider")
    p.add_argument("--repeat", type=int, default=50)
    p.set_defaults(func=cmd_demo)

    from tessera import _doctor, _scaffold  # both import nothing heavy until run

    _scaffold.add_parser(sub)
    _doctor.add_parser(sub)

    from tessera._bench import add_parser as add_bench_parser

    add_bench_parser(sub)

    try:  # the conformance subcommands come with the tessera-conformance distribution
        from tessera_conformance.cli import add_parser
    except ImportError:
        pass
    else:
        add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from tessera._errors import TesseraError

    try:
        return args.func(args)
    except TesseraError as exc:
        print(f"tessera: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
