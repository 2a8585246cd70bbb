"""Sequential against ExecutionMode.ORT_PARALLEL, for Tessera and onnxruntime, in one process.

Each round runs every engine once (alternating), and the table gives medians over the rounds:

    python benchmarks/parallel_bench.py [--models inception_v2,inception_v1,squeezenet] [--runs 20]

Sequential engines use 2 intra-op threads; parallel ones 1 intra-op thread and 2 inter-op
threads, so every engine uses 2 threads. onnxruntime's threads do not spin (as in the main
harness, tessera/_bench.py).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))

import models

from tessera import _bench

# (label, parallel, intra-op threads, inter-op threads)
_MODES = (
    ("sequential, intra 2", False, 2, 1),
    ("parallel, intra 1 x inter 2", True, 1, 2),
)


def _engines(data: bytes, feed: dict) -> dict:
    import onnxruntime as ort

    import tessera

    runners = {}
    for label, parallel, intra, inter in _MODES:
        o = ort.SessionOptions()
        o.intra_op_num_threads, o.inter_op_num_threads = intra, inter
        o.execution_mode = (
            ort.ExecutionMode.ORT_PARALLEL if parallel else ort.ExecutionMode.ORT_SEQUENTIAL
        )
        o.log_severity_level = 3
        o.add_session_config_entry("session.intra_op.allow_spinning", "0")
        o.add_session_config_entry("session.inter_op.allow_spinning", "0")
        s = ort.InferenceSession(data, o, providers=["CPUExecutionProvider"])
        runners[f"onnxruntime {label}"] = lambda s=s: s.run(None, feed)
        so = tessera.SessionOptions()
        so.intra_op_num_threads, so.inter_op_num_threads = intra, inter
        so.execution_mode = (
            tessera.ExecutionMode.ORT_PARALLEL if parallel else tessera.ExecutionMode.ORT_SEQUENTIAL
        )
        t = tessera.InferenceSession(data, so, providers=["cpu"])
        runners[f"tessera {label}"] = lambda t=t: t.run(None, feed)
    return runners


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="inception_v2,inception_v1,squeezenet")
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args(argv)
    for name in args.models.split(","):
        model = models.light_model(name)
        feed = _bench.make_feed(model, 1)
        runners = _engines(model.SerializeToString(), feed)
        for run in runners.values():
            for _ in range(3):
                run()
        times: dict[str, list[float]] = {k: [] for k in runners}
        for _ in range(args.runs):
            for label, run in runners.items():
                start = time.perf_counter()
                run()
                times[label].append(time.perf_counter() - start)
        print(name)
        for label, ts in times.items():
            print(f"  {label:42} {np.median(ts) * 1e3:8.2f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
