"""Compiled loops (numba) for the kernels NumPy can only run as several passes over memory.

A max pool, a batch normalization followed by Relu or a depthwise convolution is one pass over
its data when written as a loop, but several passes (and temporaries) as NumPy operations. On
this provider's benchmark models those kernels ran 3-7x slower than onnxruntime's. The loops
here are compiled once per signature by numba (cached on disk next to this package), release
the GIL (so the provider's threads can split them), and are used only by kernels that keep their
NumPy form as the general path: a kernel asks :func:`enabled` when it is built, and falls back
for layouts and dtypes its loop does not cover.

``TESSERA_CPU_JIT=0`` in the environment turns the loops off, leaving the NumPy forms (the tests
run both); so does numba being absent or failing to import.
"""

from __future__ import annotations

import functools
import logging
import os

import numpy as np

from tessera_cpu import _parallel

_log = logging.getLogger("tessera.cpu")
ENV = "TESSERA_CPU_JIT"
GOMP_SPINCOUNT = 30000


@functools.cache
def _numba():
    try:
        import numba
        from numba.extending import typeof_impl
    except Exception as exc:  # noqa: BLE001 - any import failure means "use the NumPy forms"
        _log.warning(
            "numba is not usable (%s: %s); the CPU provider uses its NumPy kernels, which are "
            "slower on pools, normalizations and depthwise convolutions",
            type(exc).__name__,
            exc,
        )
        return None
    # A loop called from another loop types as its dispatcher.
    typeof_impl.register(_Lazy)(lambda val, c: numba.typeof(val.dispatcher(), c))
    _prefer_openmp(numba)
    return numba


def _prefer_openmp(numba) -> None:
    """Ask numba for its OpenMP threading layer first, unless the user chose one.

    OpenMP's workers spin for a moment after a parallel region, so the next region starts in
    about 2 us; TBB's took about 15 us here and numba's own workqueue over 90 us (a Python
    worker thread: about 74 us). ``_native`` checks which layer was loaded."""
    if "NUMBA_THREADING_LAYER" in os.environ or "NUMBA_THREADING_LAYER_PRIORITY" in os.environ:
        return
    if numba.config.THREADING_LAYER != "default":
        return
    numba.config.THREADING_LAYER_PRIORITY = ["omp", "tbb", "workqueue"]
    # GNU OpenMP's idle workers spin about 6 ms by default before they sleep; 30000 spins
    # (about 0.5 ms here) still cover the gaps between one run's convolutions and give the core
    # back soon after a run. Read when libgomp loads, so only if nothing loaded it yet.
    if "OMP_WAIT_POLICY" not in os.environ:
        os.environ.setdefault("GOMP_SPINCOUNT", str(GOMP_SPINCOUNT))


def enabled() -> bool:
    """Whether kernels built now may use compiled loops (read when a kernel is built)."""
    if os.environ.get(ENV, "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    return _numba() is not None


class _Lazy:
    """A loop compiled on its first call, so importing the kernels never starts numba."""

    def __init__(self, fn, options: dict) -> None:
        self._fn = fn
        self._options = options
        self._compiled = None
        functools.update_wrapper(self, fn)

    def dispatcher(self):
        """The numba dispatcher (compiled per signature on first call)."""
        if self._compiled is None:
            numba = _numba()
            if numba is None:
                raise RuntimeError(
                    f"{self._fn.__name__} needs numba; the kernel should have checked "
                    "tessera_cpu._jit.enabled() when it was built"
                )
            # Deferred names the loop uses become what they stand for, in the module itself.
            scope = self._fn.__globals__
            for name in self._fn.__code__.co_names:
                if isinstance(scope.get(name), _Deferred):
                    scope[name] = scope[name].resolve()
            self._compiled = numba.njit(**self._options)(self._fn)
        return self._compiled

    def __call__(self, *args):
        compiled = self._compiled
        if compiled is None:
            first = self.dispatcher()(*args)
            _parallel.rescan_blas()  # compiling may have loaded another BLAS (SciPy's)
            return first
        return compiled(*args)


class _Deferred:
    """A numba object (an intrinsic, say) made on first use by ``factory``, so that modules
    of loops can name it without importing numba."""

    def __init__(self, factory) -> None:
        self._factory = factory
        self._value = None

    def resolve(self):
        if self._value is None:
            if _numba() is None:
                raise RuntimeError(f"{self._factory.__name__} needs numba")
            self._value = self._factory()
        return self._value


def deferred(factory) -> _Deferred:
    """``factory()``'s result, made when a loop using it is first compiled: compiling a loop
    rebinds the module-level names it uses that hold a deferred object to the result."""
    return _Deferred(factory)


def _numba_prange():
    return _numba().prange


# ``prange`` for parallel loops (``loop(parallel=True)``): modules bind ``prange = _jit.prange``.
prange = deferred(_numba_prange)


def inline(fn):
    """``fn`` compiled to be inlined into the loops that call it (only once :func:`enabled`)."""
    return _numba().njit(inline="always")(fn)


def loop(fn=None, *, fastmath: bool | set[str] = False, parallel: bool = False):
    """Decorate a loop to be compiled with numba (``nogil``, cached on disk) on first call.
    ``fastmath`` takes numba's flags: True for all, or a set such as ``{"reassoc"}``.
    ``parallel``: its ``prange`` loops run on numba's threads (see ``_native``). A loop may
    call other loops and :func:`deferred` objects of its own module."""
    options = {"nogil": True, "cache": True, "fastmath": fastmath, "error_model": "numpy"}
    if parallel:
        options["parallel"] = True
    if fn is None:
        return lambda f: _Lazy(f, options)
    return _Lazy(fn, options)


def runs(a: np.ndarray, by_row: bool = False) -> tuple[np.ndarray, int, int, int] | None:
    """(flat, rows, cols, stride) covering ``a`` as rows of contiguous runs, without a copy:
    flat starts at a's first element and ends at its last; a row is ``a``'s last axis (a
    contiguous ``a`` is one run unless ``by_row``). None if ``a`` is not laid out so.

    numba compiles loops over such a flat C-contiguous array and offsets into it to vector
    code; over a strided 2-D array it did not."""
    if a.size == 0:
        return None
    if a.flags.c_contiguous and not by_row:
        return a.reshape(-1), 1, a.size, a.size
    rows2d = a.view()
    try:
        rows2d.shape = (-1, a.shape[-1])  # raises instead of copying
    except AttributeError:
        return None
    item = a.itemsize
    if rows2d.strides[1] != item or rows2d.strides[0] % item or rows2d.strides[0] < 0:
        return None
    rows, cols = rows2d.shape
    stride = rows2d.strides[0] // item
    span = (rows - 1) * stride + cols
    flat = np.lib.stride_tricks.as_strided(a, shape=(span,), strides=(item,))
    return flat, rows, cols, stride
