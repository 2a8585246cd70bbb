"""Latency benchmarks against onnxruntime, onnx's ReferenceEvaluator and raw OpenVINO, run in one
process with the engines alternating, so machine noise hits them all alike (``tessera bench``)."""

from __future__ import annotations

import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import onnx
import onnx.numpy_helper

ENGINES = ("tessera", "onnxruntime", "reference", "openvino")
# Tessera with an accelerator provider in front of the CPU provider: opt-in, since the suite's
# defaults compare the CPU provider (``--engines tessera,tessera-opencl,onnxruntime``).
PROVIDER_ENGINES = {"tessera-opencl": "opencl", "tessera-openvino": "openvino"}
Runner = Callable[[dict], Any]


@dataclasses.dataclass
class EngineResult:
    """One engine's figures on one model: run latencies (ms), creation time (s), or why not."""

    engine: str
    times_ms: list[float] = dataclasses.field(default_factory=list)
    create_s: float | None = None
    error: str = ""
    max_abs_diff: float | None = None  # against onnxruntime's outputs

    @property
    def median_ms(self) -> float | None:
        return statistics.median(self.times_ms) if self.times_ms else None


# -- feeds ------------------------------------------------------------------------------------------
def make_feed(model: onnx.ModelProto, batch: int = 1, seed: int = 0) -> dict[str, np.ndarray]:
    """Random inputs: the first dim of a symbolic shape is ``batch``, other symbolic dims 1;
    integer inputs (token ids) draw from [0, 100)."""
    rng = np.random.default_rng(seed)
    inits = {t.name for t in model.graph.initializer}
    feed = {}
    for vi in model.graph.input:
        if vi.name in inits:
            continue
        tt = vi.type.tensor_type
        shape = []
        for i, d in enumerate(tt.shape.dim):
            if d.HasField("dim_value"):
                shape.append(d.dim_value)
            else:
                shape.append(batch if i == 0 else 1)
        dtype = onnx.helper.tensor_dtype_to_np_dtype(tt.elem_type)
        feed[vi.name] = random_tensor(shape, dtype, rng, high=100)
    return feed


def random_tensor(shape, dtype: np.dtype, rng: np.random.Generator, high: int = 100) -> np.ndarray:
    """Random data of ``dtype``: normal floats, random bools, integers in [0, high), "a" strings."""
    dtype = np.dtype(dtype)
    if dtype.kind == "O":
        return np.full(shape, "a", dtype=object)
    if dtype.kind == "f":
        return rng.standard_normal(shape).astype(dtype)
    if dtype.kind == "b":
        return rng.integers(0, 2, shape).astype(bool)
    return rng.integers(0, high, shape).astype(dtype)


def with_free_batch(model: onnx.ModelProto, name: str = "batch") -> onnx.ModelProto:
    """A copy whose graph inputs' and outputs' first dim is symbolic, so a model exported with a
    fixed batch of 1 can be fed a larger batch (inner value_info is dropped, to be re-inferred).

    Reshape targets stored as initializers that start with 1 (the exporter's batch) start with
    0 instead, which copies the input's first dim: right for the flatten-before-classifier and
    channel-shuffle reshapes of the CNNs benchmarked here, where dim 0 is the batch.
    """
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    inits = {t.name: t for t in copy.graph.initializer}
    readers: dict[str, list[str]] = {}
    for node in copy.graph.node:
        for i, value in enumerate(node.input):
            readers.setdefault(value, []).append(node.op_type if i == 1 else "")
    for value, ops in readers.items():
        target = inits.get(value)
        if target is None or ops != ["Reshape"] * len(ops):
            continue
        array = onnx.numpy_helper.to_array(target).copy()
        if array.ndim == 1 and array.size > 1 and array[0] == 1:
            array[0] = 0
            target.CopyFrom(onnx.numpy_helper.from_array(array, value))
    for vi in [*copy.graph.input, *copy.graph.output]:
        if vi.name in inits or not vi.type.tensor_type.shape.dim:
            continue
        vi.type.tensor_type.shape.dim[0].Clear()
        vi.type.tensor_type.shape.dim[0].dim_param = name
    del copy.graph.value_info[:]
    return copy


# Pause before each timed run (seconds).
SETTLE_S = 0.005


# -- engines ----------------------------------------------------------------------------------------
def _tessera(
    model_bytes: bytes, threads: int, profile_prefix: str = "", provider: str = ""
) -> Runner:
    import tessera

    opts = tessera.SessionOptions()
    opts.intra_op_num_threads = threads
    if profile_prefix:
        opts.enable_profiling = True
        opts.profile_file_prefix = profile_prefix
    providers = [provider, "cpu"] if provider else ["cpu"]
    session = tessera.InferenceSession(model_bytes, opts, providers=providers)
    runner = lambda feed: session.run(None, feed)  # noqa: E731
    runner.session = session  # type: ignore[attr-defined]
    return runner


def _onnxruntime(model_bytes: bytes, threads: int, profile_prefix: str = "") -> Runner:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    # Idle ORT workers spin-wait by default; on a small machine that steals the cores from the
    # engine timed next, since the engines alternate run by run.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if profile_prefix:
        opts.enable_profiling = True
        opts.profile_file_prefix = profile_prefix
    session = ort.InferenceSession(model_bytes, opts, providers=["CPUExecutionProvider"])
    runner = lambda feed: session.run(None, feed)  # noqa: E731
    runner.session = session  # type: ignore[attr-defined]
    return runner


def _reference(model_bytes: bytes, threads: int, profile_prefix: str = "") -> Runner:
    from onnx.reference import ReferenceEvaluator

    evaluator = ReferenceEvaluator(onnx.load_from_string(model_bytes))
    return lambda feed: evaluator.run(None, feed)


def _openvino(model_bytes: bytes, threads: int, profile_prefix: str = "") -> Runner:
    import openvino as ov

    core = ov.Core()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.onnx")
        with open(path, "wb") as fh:
            fh.write(model_bytes)
        # f32 pinned: on CPUs with AVX512_BF16 OpenVINO's default precision is bf16, which
        # would compare a lower-precision engine against f32 ones.
        compiled = core.compile_model(
            core.read_model(path),
            "CPU",
            {
                "INFERENCE_NUM_THREADS": threads,
                "INFERENCE_PRECISION_HINT": "f32",
                "PERFORMANCE_HINT": "LATENCY",
            },
        )
    request = compiled.create_infer_request()
    return lambda feed: list(request.infer(feed).values())


_FACTORIES: dict[str, Callable[..., Runner]] = {
    "tessera": _tessera,
    "onnxruntime": _onnxruntime,
    "reference": _reference,
    "openvino": _openvino,
    **{
        engine: (lambda data, threads, prefix="", _p=provider: _tessera(data, threads, prefix, _p))
        for engine, provider in PROVIDER_ENGINES.items()
    },
}


def available_engines(requested: Sequence[str] = ENGINES) -> list[str]:
    """The requested engines whose library is importable (OpenVINO is optional)."""

    module = {"onnxruntime": "onnxruntime", "openvino": "openvino", "reference": "onnx"}
    known = [*ENGINES, *PROVIDER_ENGINES]
    unknown = sorted(set(requested) - set(known))
    if unknown:
        raise ValueError(f"unknown engine(s) {unknown}; choose from {known}")
    return [e for e in requested if _importable(e, module)]


def _importable(engine: str, module: dict[str, str]) -> bool:
    import importlib.metadata
    import importlib.util

    if engine == "tessera":
        return True
    if engine in PROVIDER_ENGINES:
        try:
            importlib.metadata.distribution(f"tessera-{PROVIDER_ENGINES[engine]}")
        except importlib.metadata.PackageNotFoundError:
            return False
        return True
    return importlib.util.find_spec(module[engine]) is not None


def _thread_limit(threads: int):
    """Caps BLAS/OpenMP pools (NumPy's matmul in Tessera and the ReferenceEvaluator)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl is optional
        import contextlib

        return contextlib.nullcontext()
    return threadpool_limits(limits=threads)


def _max_abs_diff(a: Sequence[Any], b: Sequence[Any]) -> float | None:
    try:
        return max(
            float(np.max(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64))))
            for x, y in zip(a, b)
        )
    except (TypeError, ValueError):
        return None


def compare(
    model: onnx.ModelProto | bytes,
    engines: Sequence[str] = ENGINES,
    *,
    threads: int = 2,
    batch: int = 1,
    budget_s: float = 20.0,
    max_runs: int = 30,
    min_runs: int = 5,
    slow_runs: int = 2,
    warmup: int = 2,
) -> dict[str, EngineResult]:
    """Time ``engines`` on ``model``, alternating one run of each per round until ``budget_s``
    or ``max_runs``. The ReferenceEvaluator gets at most ``slow_runs`` timed runs and no warm-up:
    it is orders of magnitude slower and is only a floor to compare against."""
    proto = model if isinstance(model, onnx.ModelProto) else onnx.load_from_string(model)
    data = proto.SerializeToString()
    feed = make_feed(proto, batch)
    results: dict[str, EngineResult] = {}
    runners: dict[str, Runner] = {}
    with _thread_limit(threads):
        for name in available_engines(engines):
            result = results[name] = EngineResult(name)
            try:
                start = time.perf_counter()
                runners[name] = _FACTORIES[name](data, threads)
                result.create_s = time.perf_counter() - start
                for _ in range(0 if name == "reference" else warmup):
                    runners[name](feed)
            except Exception as exc:  # noqa: BLE001 - one engine failing is a result, not a crash
                result.error = f"{type(exc).__name__}: {str(exc)[:300]}"
                runners.pop(name, None)
        outputs: dict[str, Any] = {}

        def timed(name: str) -> None:
            # Idle worker threads of the engine timed before (OpenMP's spin for a moment after
            # their last task) must not hold a core while this one runs.
            time.sleep(SETTLE_S)
            start = time.perf_counter()
            try:
                out = runners[name](feed)
            except Exception as exc:  # noqa: BLE001
                results[name].error = f"{type(exc).__name__}: {str(exc)[:300]}"
                runners.pop(name)
                return
            results[name].times_ms.append((time.perf_counter() - start) * 1e3)
            outputs.setdefault(name, out)

        # The ReferenceEvaluator runs after the others' rounds: its multi-second runs inside the
        # rounds used up the budget (leaving the others 5 runs) and disturbed the runs after them.
        fast = [name for name in runners if name != "reference"]
        deadline = time.perf_counter() + budget_s
        for round_ in range(max_runs):
            for name in [n for n in fast if n in runners]:
                timed(name)
            if round_ + 1 >= min_runs and time.perf_counter() > deadline:
                break
        for _ in range(slow_runs if "reference" in runners else 0):
            if "reference" in runners:
                timed("reference")
    if "onnxruntime" in outputs:
        for name, out in outputs.items():
            results[name].max_abs_diff = _max_abs_diff(out, outputs["onnxruntime"])
    return results


# -- memory -----------------------------------------------------------------------------------------
_PROBE = """
import json, sys
sys.path[:0] = {path!r}
from tessera import _bench
import onnx, tessera, onnxruntime
data = open({model!r}, "rb").read()
feed = _bench.make_feed(onnx.load_from_string(data), {batch})
print(json.dumps({{"peak_delta_mib": _bench._measure_peak({engine!r}, data, feed, {threads})}}))
"""


def _status_kib(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise OSError(f"{field} not in /proc/self/status")


def _measure_peak(engine: str, data: bytes, feed: dict, threads: int) -> float:
    """Peak RSS growth (MiB) of creating ``engine``'s session and running it once. Writing 5
    to /proc/self/clear_refs resets the kernel's high-water mark (VmHWM), so import-time
    peaks do not hide the session's."""
    with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
        fh.write("5")
    base = _status_kib("VmRSS")
    with _thread_limit(threads):
        run = _FACTORIES[engine](data, threads)
        run(feed)
    return (_status_kib("VmHWM") - base) / 1024


def peak_memory_mib(
    model: onnx.ModelProto | bytes, engine: str, threads: int = 2, batch: int = 1
) -> float | None:
    """Peak RSS growth (MiB) of creating a session and running it once, measured in a fresh
    process so engines do not share a high-water mark. The model bytes themselves are loaded
    before the baseline, as an application would already hold them."""
    data = model.SerializeToString() if isinstance(model, onnx.ModelProto) else model
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.onnx")
        with open(path, "wb") as fh:
            fh.write(data)
        code = _PROBE.format(path=sys.path, model=path, batch=batch, engine=engine, threads=threads)
        proc = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=600
        )
    if proc.returncode != 0:
        return None
    return float(json.loads(proc.stdout.strip().splitlines()[-1])["peak_delta_mib"])


# -- per-op profile ---------------------------------------------------------------------------------
def op_profile(
    model: onnx.ModelProto | bytes, threads: int = 2, batch: int = 1, runs: int = 3
) -> dict[str, dict[str, float]]:
    """Mean milliseconds per run spent in each op type, for Tessera and onnxruntime, from each
    engine's own profiler. onnxruntime's names are after its fusions (FusedConv, ...)."""
    data = model.SerializeToString() if isinstance(model, onnx.ModelProto) else model
    feed = make_feed(onnx.load_from_string(data), batch)
    out: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp, _thread_limit(threads):
        for name, factory in (("tessera", _tessera), ("onnxruntime", _onnxruntime)):
            runner = factory(data, threads, profile_prefix=os.path.join(tmp, name))
            runner(feed)  # warm-up, also profiled; dropped below
            for _ in range(runs):
                runner(feed)
            path = runner.session.end_profiling()  # type: ignore[attr-defined]
            with open(path, encoding="utf-8") as fh:
                events = json.load(fh)
            # Skip the warm-up run: the first model_run starts before it, the second after.
            starts = sorted(float(ev["ts"]) for ev in events if ev.get("name") == "model_run")
            first_timed = starts[1] if len(starts) > 1 else 0.0
            totals: dict[str, list[float]] = {}
            for ev in events:
                if ev.get("cat") != "Node" or float(ev.get("ts", 0)) < first_timed:
                    continue
                if name == "onnxruntime" and not ev["name"].endswith("_kernel_time"):
                    continue  # its fence_before/fence_after events are bookkeeping
                op = ev.get("args", {}).get("op_name", "?")
                totals.setdefault(op, []).append(float(ev["dur"]))
            out[name] = {op: sum(d) / 1e3 / runs for op, d in sorted(totals.items())}
    return out


# -- CLI --------------------------------------------------------------------------------------------
def format_table(results: dict[str, EngineResult]) -> str:
    ort = results.get("onnxruntime")
    base = ort.median_ms if ort is not None else None
    lines = [
        f"{'engine':16} {'median ms':>10} {'min ms':>9} {'runs':>5} {'create s':>9} {'vs ORT':>8}  note"
    ]
    for r in results.values():
        med = r.median_ms
        ratio = f"{med / base:8.2f}" if med is not None and base else f"{'-':>8}"
        lines.append(
            f"{r.engine:16} {med if med is not None else float('nan'):10.2f} "
            f"{min(r.times_ms) if r.times_ms else float('nan'):9.2f} {len(r.times_ms):5d} "
            f"{r.create_s if r.create_s is not None else float('nan'):9.2f} {ratio}  "
            + (r.error or (f"max|diff| {r.max_abs_diff:.2e}" if r.max_abs_diff is not None else ""))
        )
    return "\n".join(lines)


def cmd_bench(args: Any) -> int:
    """``tessera bench MODEL``: one model, every available engine, printed as a table."""
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    try:
        engines = available_engines(engines)
    except ValueError as exc:
        raise SystemExit(f"tessera bench: {exc}") from None
    if not os.path.isfile(args.model):
        raise SystemExit(f"tessera bench: model file {args.model!r} does not exist")
    proto = onnx.load(args.model)
    for batch in args.batch:
        model = proto
        if batch != 1:
            model = with_free_batch(proto)
        results = compare(
            model,
            engines,
            threads=args.threads,
            batch=batch,
            budget_s=args.budget,
            max_runs=args.repeat,
            slow_runs=args.reference_runs,
        )
        print(f"{args.model}  batch {batch}  threads {args.threads}")
        print(format_table(results))
        if args.memory:
            for engine in ("tessera", "onnxruntime"):
                if engine in engines:
                    mib = peak_memory_mib(model, engine, args.threads, batch)
                    print(f"  peak RSS growth {engine}: {mib if mib is not None else '?'} MiB")
        if args.json:
            with open(args.json, "a", encoding="utf-8") as fh:
                for r in results.values():
                    fh.write(
                        json.dumps({"model": args.model, "batch": batch, **_as_dict(r)}) + "\n"
                    )
    return 0


def _as_dict(r: EngineResult) -> dict:
    return {
        "engine": r.engine,
        "median_ms": r.median_ms,
        "min_ms": min(r.times_ms) if r.times_ms else None,
        "runs": len(r.times_ms),
        "create_s": r.create_s,
        "error": r.error,
        "max_abs_diff": r.max_abs_diff,
    }


def add_parser(sub: Any) -> None:
    """Register ``tessera bench`` on the CLI's subparsers."""
    p = sub.add_parser(
        "bench", help="time a model on Tessera vs onnxruntime / ReferenceEvaluator / OpenVINO"
    )
    p.add_argument("model")
    p.add_argument("--threads", type=int, default=2, help="intra-op threads for every engine")
    p.add_argument("--batch", type=int, nargs="+", default=[1], help="batch sizes, e.g. 1 8")
    p.add_argument("--engines", default=",".join(ENGINES), help="comma-separated engines")
    p.add_argument("--repeat", type=int, default=30, help="most timed runs per engine")
    p.add_argument("--budget", type=float, default=20.0, help="seconds of timing per batch")
    p.add_argument(
        "--reference-runs", type=int, default=2, help="timed runs of the slow ReferenceEvaluator"
    )
    p.add_argument("--memory", action="store_true", help="also measure peak RSS growth")
    p.add_argument("--json", help="append one JSON line per engine to this file")
    p.set_defaults(func=cmd_bench)
