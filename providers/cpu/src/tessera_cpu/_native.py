"""Kernels split over numba's threads instead of the provider's Python workers.

Handing a block to a Python worker thread and joining it costs 30-75 us on this provider's
benchmark machine (the worker's vCPU wakes from idle, then needs the GIL), so only work of
about 0.4 ms or more was split. A compiled loop with ``prange`` (``_jit.loop(parallel=True)``)
runs on numba's threading layer instead; with OpenMP, whose workers spin for a moment after each
parallel region, a region over two threads starts and joins in about 2.5 us. A convolution then
runs whole on those threads: columns, GEMM (NumPy's own BLAS, see ``_blas``) and epilogue, with
no Python in between.

:func:`region` hands out the threads: one caller at a time gets them (the concurrent branches
of a parallel run get one thread each, so OpenMP teams never oversubscribe the cores).

The native path is off, and kernels use their Python-threaded forms, when the compiled loops
are off (``TESSERA_CPU_JIT=0``), when ``TESSERA_CPU_NATIVE_THREADS=0``, when NumPy's BLAS has no
usable CBLAS ``gemm`` (``_blas``), when numba could load neither its OpenMP nor its TBB
layer (its workqueue layer is slower than a Python worker and not thread-safe), and in a process
forked from one that used OpenMP (GNU OpenMP cannot run in such a child).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading

import numpy as np

from tessera_cpu import _blas, _jit, _parallel

_log = logging.getLogger("tessera.cpu")
ENV = "TESSERA_CPU_NATIVE_THREADS"
_GOOD_LAYERS = ("omp", "tbb")

_lock = threading.Lock()  # held by the caller whose region is running
_check_lock = threading.Lock()
_state: dict = {"checked": False, "ok": False, "layer": None}
_local = threading.local()


prange = _jit.prange


@_jit.loop(parallel=True)
def _probe(out):
    for i in prange(out.shape[0]):
        out[i] = i


def _env_off() -> bool:
    return os.environ.get(ENV, "1").strip().lower() in ("0", "false", "no", "off")


def _check() -> bool:
    """Whether native-threaded kernels may run in this process (decided once)."""
    if _state["checked"]:
        return _state["ok"]
    with _check_lock:
        if _state["checked"]:
            return _state["ok"]
        ok = False
        if _jit.enabled() and _blas.address(np.float32):
            import numba

            try:
                _probe(np.zeros(2, np.int64))
                layer = numba.threading_layer()
            except Exception as exc:  # noqa: BLE001 - any failure means "use the Python threads"
                _log.warning(
                    "numba's parallel loops do not run here (%s: %s); the CPU provider splits "
                    "work over Python threads instead",
                    type(exc).__name__,
                    exc,
                )
                layer = None
            _state["layer"] = layer
            ok = layer in _GOOD_LAYERS
            if not ok and layer is not None:
                _log.info(
                    "numba's threading layer is %r; the CPU provider splits work over Python "
                    "threads instead (install tbb, or a libgomp, for its native threads)",
                    layer,
                )
        _state["ok"], _state["checked"] = ok, True
    return ok


def _after_fork_in_child() -> None:
    # GNU OpenMP cannot start a parallel region in a child forked after the parent used one
    # (numba terminates the child). TBB can, but one rule for both keeps it simple.
    if _state["ok"]:
        _state["ok"] = False
        _state["forked"] = True


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def enabled() -> bool:
    """Whether kernels built now may split work over numba's threads (checked once)."""
    return not _env_off() and _check()


def available(dtype) -> bool:
    """Whether a kernel built now for ``dtype`` may take the native path with NumPy's GEMM."""
    if _env_off() or not _blas.address(dtype):
        return False
    return _check()


def acquire(parts: int) -> int:
    """How many threads the caller's native region may use: ``parts`` (at most the pool's
    size) if it is the only caller in one now and a run has pinned BLAS to one thread, else 1
    (run the serial form). A result above 1 holds the threads: call :func:`release` after."""
    parts = min(parts, _parallel.threads())
    # Outside a run BLAS may have its own threads, which each part's GEMM would start.
    if parts < 2 or not _state["ok"] or not _parallel.blas_pinned():
        return 1
    if not _lock.acquire(blocking=False):
        return 1
    if getattr(_local, "threads", None) != parts:
        try:
            import numba

            numba.set_num_threads(min(parts, numba.config.NUMBA_NUM_THREADS))
        except BaseException:
            _lock.release()
            raise
        _local.threads = parts
    return parts


def release() -> None:
    """Give back the threads :func:`acquire` handed out (it returned more than 1)."""
    _lock.release()


def split(count: int, serial, parallel, *, native: bool, python: bool = False) -> None:
    """Work over ``count`` items (rows, planes): with ``native``, ``parallel(parts)`` on numba's
    threads when at least two are free and there are as many items, else ``serial(0, count)``
    on this thread; without, ``serial(start, stop)`` over chunks on the provider's Python
    threads when ``python``, else over the whole range."""
    if not native:
        _parallel.run_chunks(count, serial, parallel=python)
        return
    parts = acquire(_parallel.threads())
    if parts > 1:
        try:
            if count >= 2:
                parallel(min(parts, count))
                return
        finally:
            release()
    serial(0, count)


@contextlib.contextmanager
def region(parts: int):
    """:func:`acquire` and :func:`release` around a block: yields the thread count."""
    got = acquire(parts)
    try:
        yield got
    finally:
        if got > 1:
            release()
