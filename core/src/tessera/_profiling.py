"""Profiling: per-step timings recorded during runs, written as Chrome-trace JSON."""

from __future__ import annotations

import json
import os
import threading
import time
from typing import Any

from tessera._types import value_type_string


def _type_shape(values: Any) -> list[dict]:
    out = []
    for v in values or ():
        shape = list(getattr(v, "shape", ()) or ())
        out.append({value_type_string(v) if v is not None else "none": shape})
    return out


class Profiler:
    """Collects one Chrome-trace "X" event per executed step (thread-safe)."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix or "tessera_profile"
        self.origin = time.perf_counter()
        self.events: list[dict] = []
        self._lock = threading.Lock()

    def record(self, plan, values: list[Any], keep: frozenset[int] = frozenset()) -> list[Any]:
        steps: list = []
        start = time.perf_counter()
        results = plan.run_profiled(values, (), steps, keep)
        total = time.perf_counter() - start
        tid = threading.get_ident() % 100000
        events = [
            {
                "cat": "Node",
                "pid": os.getpid(),
                "tid": tid,
                "ph": "X",
                "name": info.label,
                "ts": round((t0 - self.origin) * 1e6, 3),
                "dur": round(dur * 1e6, 3),
                "args": {
                    "op_name": info.op_type,
                    "provider": info.provider,
                    "kind": info.kind,
                    "input_type_shape": _type_shape(args),
                    "output_type_shape": _type_shape(outs),
                },
            }
            for info, t0, dur, args, outs in steps
        ]
        events.append(
            {
                "cat": "Session",
                "pid": os.getpid(),
                "tid": tid,
                "ph": "X",
                "name": "model_run",
                "ts": round((start - self.origin) * 1e6, 3),
                "dur": round(total * 1e6, 3),
                "args": {},
            }
        )
        with self._lock:
            self.events.extend(events)
        return results

    def write(self) -> str:
        stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
        path = f"{self.prefix}_{stamp}_{os.getpid()}.json"
        with self._lock:
            events = list(self.events)
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(events, fh)
        return path
