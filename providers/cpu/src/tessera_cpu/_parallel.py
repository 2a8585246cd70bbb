"""Intra-op parallelism for the CPU provider: large matrix products split across a thread pool.

OpenBLAS's own threads spin-wait between calls; on a machine with few cores and anything else
running, every call then stalls for a scheduler quantum (a 121-conv DenseNet took 1.3 s with two
BLAS threads against 72 ms with one). So during a run BLAS is pinned to one thread, and large
products are split into blocks that run on the provider's own worker threads: NumPy releases
the GIL inside ``matmul``.

The workers are not a ``ThreadPoolExecutor``: handing a block to one through its queue and
future cost more than a medium product gained from the split (0.58 ms against 0.54 ms on one
thread for 96x576 @ 576x784); a worker with one task slot took 0.45 ms. Handing over and joining
still cost 30-40 us each way on this machine, so only products of about 0.5 ms and more split
(convolutions from about 0.3 ms, their split also spreads the column copies)
(``_MIN_FLOPS``, and ``_PARALLEL_MACS`` in kernels/_conv2d.py, tuned on the benchmark models).
Polling for the next task before blocking (spinning) gained nothing measurable on whole models
and would burn a core, so workers block.
"""

from __future__ import annotations

import itertools
import os
import threading

import numpy as np

_MIN_FLOPS = 80_000_000  # below this (about 0.5 ms) a product runs on the calling thread
_lock = threading.Lock()
_threads = 1
_active_runs = 0
_saved_blas: list[tuple[object, int]] = []


class _Worker:
    """A thread with one task slot: ``start_task`` hands it ``fn(*args)``, ``finish`` waits."""

    _EXIT = object()

    def __init__(self, name: str, cpu: int | None = None) -> None:
        self._cpu = cpu
        self._task: tuple | object | None = None
        self._error: BaseException | None = None
        self._ready = threading.Condition()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        if self._cpu is not None:
            try:
                os.sched_setaffinity(0, {self._cpu})  # this thread only (Linux)
            except OSError:
                pass
        while True:
            with self._ready:
                while self._task is None:
                    self._ready.wait()
            task = self._task
            if task is _Worker._EXIT:
                return
            fn, args = task
            try:
                fn(*args)
            except BaseException as exc:  # noqa: BLE001 - re-raised in the caller by finish()
                self._error = exc
            finally:
                self._task = None
                self._done.set()

    def start_task(self, fn, *args) -> None:
        self._error = None
        self._done.clear()
        with self._ready:
            self._task = (fn, args)
            self._ready.notify()

    def finish(self) -> None:
        self._done.wait()
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def stop(self) -> None:
        with self._ready:
            self._task = _Worker._EXIT
            self._ready.notify()


class _Pool:
    """Workers used by one caller at a time; a concurrent caller runs its blocks inline."""

    def __init__(self, size: int) -> None:
        cpus = _cpus()
        # Worker i keeps to CPU i+1 when there are enough: left to the scheduler, a woken worker
        # often landed on the caller's CPU and the two halves of a product ran one after the
        # other (128x576x196 on two threads: 213 us, against 168 us on one).
        pinned = len(cpus) > size
        self.workers = [
            _Worker(f"tessera-cpu-{i}", cpus[i + 1] if pinned else None) for i in range(size)
        ]
        self.busy = threading.Lock()
        self.closed = False

    def run(self, tasks: list[tuple]) -> None:
        """Run ``tasks`` (``(fn, *args)``): the first on this thread, the rest on workers."""
        if len(tasks) > 1 and self.busy.acquire(blocking=False):
            try:
                if self.closed:  # replaced by configure() since the caller looked it up
                    for fn, *args in tasks:
                        fn(*args)
                    return
                started = []
                for worker, (fn, *args) in zip(self.workers, tasks[1:]):
                    worker.start_task(fn, *args)
                    started.append(worker)
                extra = tasks[1 + len(started) :]
                try:
                    fn, *args = tasks[0]
                    fn(*args)
                    for fn, *args in extra:
                        fn(*args)
                finally:
                    errors = []
                    for worker in started:
                        try:
                            worker.finish()
                        except BaseException as exc:  # noqa: BLE001
                            errors.append(exc)
                if errors:
                    raise errors[0]
            finally:
                self.busy.release()
            return
        for fn, *args in tasks:
            fn(*args)

    def stop(self) -> None:
        """Stop the workers once no caller is using them (a run in flight finishes first)."""
        with self.busy:
            self.closed = True
            for worker in self.workers:
                worker.stop()


_pool: _Pool | None = None


def _cpus() -> list[int]:
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux: no pinning
        return []


def default_threads() -> int:
    """Threads used when ``intra_op_num_threads`` is 0: the CPUs this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def configure(threads: int) -> None:
    """Set the pool size for this process. The CPU provider calls it when a session is created
    and at the start of each run, so the pool has the running session's thread count (when
    sessions with different counts run at once, the last one to start sets it)."""
    global _pool, _threads
    threads = max(1, int(threads) or default_threads())
    with _lock:
        if threads == _threads and (_pool is not None or threads == 1):
            return
        # The caller computes one block itself, so the pool needs one thread fewer.
        old, _pool = _pool, (_Pool(threads - 1) if threads > 1 else None)
        _threads = threads
    if old is not None:
        old.stop()


def _blas_controllers() -> list:
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return []
    return [c for c in ThreadpoolController().lib_controllers if c.user_api == "blas"]


_BLAS = None


def rescan_blas() -> None:
    """Find the BLAS libraries again at the next run: numba's first compilation loads SciPy's
    own OpenBLAS, whose threads would otherwise stay unpinned."""
    global _BLAS
    with _lock:
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


def blas_pinned() -> bool:
    """Whether a run is in progress, with BLAS pinned to one thread."""
    return _active_runs > 0


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

    pool.run([(block, s, e) for s, e in itertools.pairwise(bounds)])
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
    pool.run([(fn, bounds[i], bounds[i + 1]) for i in range(n)])
