"""On-demand fuzzer: mutated models run in a watched worker process for N minutes.

    python tools/fuzz.py --minutes 10 [--seed 1] [--timeout 20] [--memory-gb 4] [--out fuzz-findings]

Each model is created and run once in a worker process with an address-space limit. A finding is
an exception that is not a ``tessera.TesseraError``, a worker that crashes (segfault, killed for
memory) or one that takes longer than ``--timeout`` seconds. Findings are saved as ``.onnx`` files
with a text file holding the traceback; replay one with ``python tools/fuzz.py --replay FILE``.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import random
import sys
import time
import traceback
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "reliability"))


def _worker(conn, memory_bytes: int) -> None:
    """Receive model bytes, reply with ("ok"|error class name|"escape", detail)."""
    import resource
    import warnings

    if memory_bytes:
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    os.environ.setdefault("TESSERA_PROVIDERS", "cpu")
    warnings.simplefilter("ignore")
    import logging

    logging.disable(logging.CRITICAL)
    from model_mutations import exercise

    while True:
        data = conn.recv()
        if data is None:
            return
        try:
            conn.send((exercise(data), ""))
        except BaseException as exc:  # noqa: BLE001 - reporting everything is the point
            conn.send(("escape", f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"))


class Worker:
    def __init__(self, memory_bytes: int) -> None:
        self.memory_bytes = memory_bytes
        self.start()

    def start(self) -> None:
        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker, args=(child, self.memory_bytes), daemon=True)
        self.proc.start()

    def run(self, data: bytes, timeout: float) -> tuple[str, str]:
        self.conn.send(data)
        if not self.conn.poll(timeout):
            self.proc.kill()
            self.proc.join()
            self.start()
            return "hang", f"no answer within {timeout} s"
        try:
            return self.conn.recv()
        except EOFError:
            self.proc.join()
            code = self.proc.exitcode
            self.start()
            return "crash", f"worker died with exit code {code}"

    def close(self) -> None:
        try:
            self.conn.send(None)
        except OSError:
            pass
        self.proc.join(5)
        if self.proc.is_alive():
            self.proc.kill()


def _save(out: Path, index: int, data: bytes, verdict: str, detail: str) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"finding-{index:05d}-{verdict}.onnx"
    path.write_bytes(data)
    path.with_suffix(".txt").write_text(detail)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: time)")
    parser.add_argument("--timeout", type=float, default=20.0, help="seconds per model")
    parser.add_argument("--memory-gb", type=float, default=4.0, help="worker address-space limit")
    parser.add_argument("--out", type=Path, default=Path("fuzz-findings"))
    parser.add_argument("--replay", type=Path, help="run one saved model and print the outcome")
    args = parser.parse_args(argv)
    worker = Worker(int(args.memory_gb * 2**30))
    try:
        if args.replay:
            verdict, detail = worker.run(args.replay.read_bytes(), args.timeout)
            print(verdict, detail)
            return 0 if verdict not in ("escape", "hang", "crash") else 1
        from model_mutations import mutate, seed_models

        seed = args.seed if args.seed is not None else int(time.time())
        rnd = random.Random(seed)
        seeds = [m.SerializeToString() for m in seed_models()]
        deadline = time.monotonic() + args.minutes * 60
        counts: Counter[str] = Counter()
        findings = 0
        print(f"fuzzing for {args.minutes} min, seed {seed}")
        while time.monotonic() < deadline:
            data = mutate(seeds, rnd)
            verdict, detail = worker.run(data, args.timeout)
            counts[verdict] += 1
            if verdict in ("escape", "hang", "crash"):
                findings += 1
                path = _save(args.out, sum(counts.values()), data, verdict, detail)
                print(f"{verdict}: {detail.splitlines()[0] if detail else ''} -> {path}")
        total = sum(counts.values())
        print(f"{total} models, {findings} finding(s); outcomes: {dict(counts.most_common())}")
        return 1 if findings else 0
    finally:
        worker.close()


if __name__ == "__main__":
    sys.exit(main())
