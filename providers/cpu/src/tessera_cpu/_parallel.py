"""Intra-op parallelism for the CPU provider: large matrix products split across a thread pool.

OpenBLAS's own threads spin-wait between calls; on a machine with few cores and anything else
running, every call then stalls for a scheduler quantum (a 121-conv DenseNet took 1.3 s with two
BLAS threads against 72 ms with one). So during a run BLAS is pinned to one thread, and large
products are split into row blocks that run on ordinary Python threads, which block instead of
spinning: NumPy releases the GIL inside ``matmul``.
"""

from __future__ import annotations

import itertools
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

_MIN_FLOPS = 100_000_000  # waking a pool thread costs ~100 us here: split only long products
_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None
_threads = 1
_active_runs = 0
_saved_blas: list[tuple[object, int]] = []


def default_threads() -> int:
    """Threads used when ``intra_op_num_threads`` is 0: the CPUs this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def configure(threads: int) -> None:
    """Set the pool size for this process (the last session created with a count sets it)."""
    global _pool, _threads
    threads = max(1, int(threads) or default_threads())
    with _lock:
        if threads == _threads and (_pool is not None or threads == 1):
            return
        # The caller computes one block itself, so the pool needs one thread fewer.
        old, _pool = (
            _pool,
            (ThreadPoolExecutor(threads - 1, "tessera-cpu") if threads > 1 else None),
        )
        _threads = threads
    if old is not None:
        old.shutdown(wait=False)


def _blas_controllers() -> list:
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return []
    return [c for c in ThreadpoolController().lib_controllers if c.user_api == "blas"]


_BLAS = None


def run_started() -> None:
    """Pin BLAS to one thread while any run is in progress (reference-counted)."""
    global _active_runs, _BLAS
    with _lock:
        _active_runs += 1
        if _active_runs > 1:
            return
        if _BLAS is None:
            _BLAS = _blas_controllers()
        _saved_blas[:] = [(c, c.num_threads) for c in _BLAS]
        for c, n in _saved_blas:
            if n != 1:
                c.set_num_threads(1)


def run_ended() -> None:
    """Restore BLAS's thread count when the last concurrent run ends."""
    global _active_runs
    with _lock:
        _active_runs -= 1
        if _active_runs > 0:
            return
        for c, n in _saved_blas:
            if n != 1:
                c.set_num_threads(n)
        _saved_blas.clear()


def matmul(a: np.ndarray, b: np.ndarray, epilogue=None) -> np.ndarray:
    """``np.matmul(a, b)``, split into row blocks of ``a`` (or column blocks of ``b``) across the
    pool when it is large. ``epilogue(block, index)``, when given, is called on each block of the
    result (``index`` is the block's index into the result) by the thread that computed it, while
    the block is still in cache."""
    pool, threads = _pool, _threads
    if pool is None or a.ndim < 2 or b.ndim < 2:
        return _whole(a, b, epilogue)
    m, k = a.shape[-2:]
    n = b.shape[-1]
    batch = max(
        int(np.prod(a.shape[:-2], dtype=np.int64)), int(np.prod(b.shape[:-2], dtype=np.int64))
    )
    if 2 * m * n * k * batch < _MIN_FLOPS:
        return _whole(a, b, epilogue)
    # Each thread packs the whole of the operand that is not split, so split the larger one:
    # a transformer's (128 x 768) @ (768 x 3072) splits B's columns, not A's 128 rows.
    if n >= 2 * threads and (k * n >= m * k or m < 2 * threads):
        axis_len, split_a = n, False
    elif m >= 2 * threads:
        axis_len, split_a = m, True
    else:
        return _whole(a, b, epilogue)
    out = np.empty((*np.broadcast_shapes(a.shape[:-2], b.shape[:-2]), m, n), np.result_type(a, b))
    bounds = np.linspace(0, axis_len, threads + 1).astype(int)

    def block(s: int, e: int) -> None:
        if split_a:
            index = (Ellipsis, slice(s, e), slice(None))
            np.matmul(a[..., s:e, :], b, out[index])
        else:
            index = (Ellipsis, slice(s, e))
            np.matmul(a, b[..., s:e], out[index])
        if epilogue is not None:
            epilogue(out[index], index)

    futures = [pool.submit(block, s, e) for s, e in itertools.pairwise(bounds[1:])]
    try:
        block(bounds[0], bounds[1])  # the calling thread takes the first block
    finally:
        for f in futures:
            f.result()
    return out


def _whole(a: np.ndarray, b: np.ndarray, epilogue) -> np.ndarray:
    out = np.matmul(a, b)
    if epilogue is not None and isinstance(out, np.ndarray) and out.ndim >= 1:
        epilogue(out, (Ellipsis,))
    return out


def threads() -> int:
    """The number of threads a kernel may split its work into (the pool plus the caller)."""
    return _threads if _pool is not None else 1


def run_chunks(count: int, fn, *, parallel: bool = True) -> None:
    """Call ``fn(start, stop)`` over contiguous chunks of ``range(count)``, one chunk per thread;
    the calling thread takes the first. Kernels use it for work whose chunks release the GIL
    (BLAS calls, large NumPy loops) and that is long enough to pay for waking the pool."""
    pool, n = _pool, _threads
    if pool is None or not parallel or count < 2 or n < 2:
        fn(0, count)
        return
    n = min(n, count)
    bounds = [count * i // n for i in range(n + 1)]
    futures = [pool.submit(fn, bounds[i], bounds[i + 1]) for i in range(1, n)]
    try:
        fn(bounds[0], bounds[1])
    finally:
        for f in futures:
            f.result()
