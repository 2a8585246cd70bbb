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


@functools.cache
def _numba():
    try:
        import numba
    except Exception as exc:  # noqa: BLE001 - any import failure means "use the NumPy forms"
        _log.warning(
            "numba is not usable (%s: %s); the CPU provider uses its NumPy kernels, which are "
            "slower on pools, normalizations and depthwise convolutions",
            type(exc).__name__,
            exc,
        )
        return None
    return numba


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

    def __call__(self, *args):
        compiled = self._compiled
        if compiled is None:
            numba = _numba()
            if numba is None:
                raise RuntimeError(
                    f"{self._fn.__name__} needs numba; the kernel should have checked "
                    "tessera_cpu._jit.enabled() when it was built"
                )
            compiled = self._compiled = numba.njit(**self._options)(self._fn)
            first = compiled(*args)
            _parallel.rescan_blas()  # compiling may have loaded another BLAS (SciPy's)
            return first
        return compiled(*args)


def inline(fn):
    """``fn`` compiled to be inlined into the loops that call it (only once :func:`enabled`)."""
    return _numba().njit(inline="always")(fn)


def loop(fn=None, *, fastmath: bool | set[str] = False):
    """Decorate a loop to be compiled with numba (``nogil``, cached on disk) on first call.
    ``fastmath`` takes numba's flags: True for all, or a set such as ``{"reassoc"}``."""
    options = {"nogil": True, "cache": True, "fastmath": fastmath, "error_model": "numpy"}
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
