"""NumPy's own GEMM, called from compiled loops without the GIL.

The native-threaded kernels (``_native``) run a whole convolution (columns, GEMM, epilogue) on
numba's worker threads, which cannot call back into Python for ``np.matmul``. They call the
CBLAS ``gemm`` of the BLAS NumPy itself loaded, through its address: the same library, the same
results, the same thread limits (threadpoolctl pins it to one thread during runs).

Only an ILP64 OpenBLAS with 64-bit-suffixed CBLAS symbols is used (NumPy's wheels ship one since
NumPy 2.0: ``scipy_cblas_sgemm64_``). The compiled callers are cached on disk with the integer
width built in, so a BLAS of another ABI is never called: :func:`address` gives 0 and the
kernels keep their Python-threaded forms.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import os

import numpy as np

_log = logging.getLogger("tessera.cpu")

# Symbol names tried in each library, for float32 and float64 (64-bit integer arguments).
_SYMBOLS = {
    np.dtype(np.float32): ("scipy_cblas_sgemm64_", "cblas_sgemm64_"),
    np.dtype(np.float64): ("scipy_cblas_dgemm64_", "cblas_dgemm64_"),
}


def _numpy_blas_paths() -> list[str]:
    """Files of the BLAS libraries shipped in NumPy's own package tree (loaded by NumPy)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []

    def numpys(path: str) -> bool:  # numpy.libs/ (Linux wheels), numpy/.dylibs/ (macOS)
        parts = os.path.abspath(path).split(os.sep)
        return any(part == "numpy" or part.startswith("numpy.") for part in parts[:-1])

    infos = threadpool_info()
    return [i["filepath"] for i in infos if i.get("user_api") == "blas" and numpys(i["filepath"])]


@functools.cache
def address(dtype) -> int:
    """The address of NumPy's CBLAS ``?gemm`` (64-bit integers) for ``dtype``; 0 if none."""
    names = _SYMBOLS.get(np.dtype(dtype))
    if names is None:
        return 0
    for path in _numpy_blas_paths():
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for name in names:
            fn = getattr(lib, name, None)
            if fn is not None:
                return ctypes.cast(fn, ctypes.c_void_p).value or 0
    _log.info("NumPy's BLAS has no 64-bit CBLAS gemm; native-threaded kernels are off")
    return 0


NO_TRANS, TRANS = 111, 112  # CBLAS_TRANSPOSE


def gemm_intrinsic():
    """``gemm(fn, ta, tb, m, n, k, a, ao, lda, b, bo, ldb, c, co, ldc)`` for compiled loops:
    ``C[co:] (m x n, row stride ldc) = op(A[ao:]) (m x k) @ op(B[bo:]) (k x n)``, row-major,
    with ``op`` the transpose where ``ta``/``tb`` is TRANS (else NO_TRANS), on arrays of one
    dtype (offsets in elements from their first element), through the CBLAS function at
    address ``fn`` (see :func:`address`)."""
    from llvmlite import ir
    from numba import types
    from numba.extending import intrinsic

    @intrinsic
    def gemm(typingctx, fn, ta, tb, m, n, k, a, ao, lda, b, bo, ldb, c, co, ldc):
        arrays = (a, b, c)
        if not all(isinstance(t, types.Array) for t in arrays):
            return None
        if not a.dtype == b.dtype == c.dtype or a.dtype not in (types.float32, types.float64):
            return None
        sig = types.void(fn, ta, tb, m, n, k, a, ao, lda, b, bo, ldb, c, co, ldc)

        def codegen(context, builder, signature, args):
            tys = signature.args
            i32, i64 = ir.IntType(32), ir.IntType(64)
            real = context.get_value_type(tys[6].dtype)
            ptr = real.as_pointer()

            def int64(i):
                return context.cast(builder, args[i], tys[i], types.int64)

            def data(i, off):
                base = context.make_array(tys[i])(context, builder, args[i]).data
                return builder.gep(base, [int64(off)])

            fnty = ir.FunctionType(
                ir.VoidType(),
                [i32, i32, i32, i64, i64, i64, real, ptr, i64, ptr, i64, real, ptr, i64],
            )
            target = builder.inttoptr(int64(0), fnty.as_pointer())
            row_major = ir.Constant(i32, 101)
            one, zero = ir.Constant(real, 1.0), ir.Constant(real, 0.0)
            trans_a, trans_b = builder.trunc(int64(1), i32), builder.trunc(int64(2), i32)
            builder.call(
                target,
                [
                    row_major, trans_a, trans_b, int64(3), int64(4), int64(5), one,
                    data(6, 7), int64(8), data(9, 10), int64(11), zero, data(12, 13), int64(14),
                ],
            )  # fmt: skip
            return context.get_dummy_value()

        return sig, codegen

    return gemm
