"""A float32 GEMM micro-kernel of our own, for products with constant weights (AVX-512 hosts).

A transformer's projections multiply activations by constant weights too large to stay in
cache between runs (BERT-base: 340 MB), and OpenBLAS packs the weights again on every call: a
128 x 768 by 768 x 3072 product took 5.1 ms cold against 3.8 warm. onnxruntime packs them once,
when the session is created. The kernels here do the same: the weights are packed once into
panels of ``NR`` columns (:func:`pack_columns`), the activations on each call into panels of
``MR`` rows (a few hundred KB), and the kernel computes one ``MR x NR`` tile of ``C = A @ B``
with ``MR * NR / 16`` AVX-512 accumulators (24 of the 32 vector registers), broadcasting one
value of ``A`` per row and loading ``NR`` columns of ``B`` per step of ``k``: 190-220 GFLOP/s
on one core of the benchmark machine with the operands in cache, and 130-140 against
OpenBLAS's 107-122 when every product reads its weights cold.

The tile is generated as LLVM IR through llvmlite (an intrinsic callable from numba loops), with
explicit ``<16 x float>`` vectors and ``llvm.fma``, so it does not depend on the
auto-vectorizer. On hosts without AVX-512 the vectors would be split over fewer, narrower
registers and spill; :func:`available` is then False and the kernels keep NumPy's BLAS.

Convolutions keep OpenBLAS: with this kernel (weights packed at creation, im2col writing
panels) a ResNet-50 run took 51 ms against 48, since packing a 1x1 convolution's input is a
whole extra pass and 3x3 ones gained nothing once their columns were built; small reductions
lost too (squeezenet's stem, K = 27: 0.87 ms against 0.63), and so did a direct form reading
the zero-padded input in place (no columns at all; 47.8 ms against 46.8 on ResNet-50).

Results differ from BLAS's in the last bits (another order of the sums over ``k``), within the
ONNX backend tests' tolerances. ``TESSERA_CPU_TILE_GEMM=0`` turns the kernel off.
"""

from __future__ import annotations

import functools
import logging
import os

import numpy as np

_log = logging.getLogger("tessera.cpu")

ENV = "TESSERA_CPU_TILE_GEMM"
MR = 12  # rows of A per tile
NR = 32  # columns of B per tile: two 16-float vectors
_LANES = 16


def _env_off() -> bool:
    return os.environ.get(ENV, "1").strip().lower() in ("0", "false", "no", "off")


@functools.cache
def _host_has_avx512() -> bool:
    try:
        from llvmlite import binding
    except ImportError:
        return False
    try:
        features = binding.get_host_cpu_features()
    except RuntimeError:  # not an x86 host, or the features cannot be read
        return False
    return bool(features.get("avx512f"))


def available(dtype) -> bool:
    """Whether a kernel built now for ``dtype`` may use the tile kernel: float32, not turned
    off, an AVX-512 host, and the kernel compiled and checked once in this process."""
    if np.dtype(dtype) != np.float32 or _env_off() or not _host_has_avx512():
        return False
    return _works()


@functools.cache
def _works() -> bool:
    """Compile the tile loops and check one small product against NumPy, once. The IR is
    written for the LLVM numba ships with now; if another llvmlite refuses it or computes
    wrong, the products keep NumPy's BLAS, with a warning, rather than fail at run time."""
    try:
        from tessera_cpu.kernels import _gemm_loops

        ok = _gemm_loops.tile_self_check()
    except Exception as exc:  # noqa: BLE001 - any failure means "keep BLAS"
        _log.warning(
            "the CPU provider's GEMM tile kernel does not compile here (%s: %s); products "
            "with constant weights use NumPy's BLAS",
            type(exc).__name__,
            exc,
        )
        return False
    if not ok:
        _log.warning(
            "the CPU provider's GEMM tile kernel gave wrong results on its self-check; products "
            "with constant weights use NumPy's BLAS"
        )
    return ok


@functools.cache
def l2_bytes() -> int:
    """One core's L2 cache (Linux sysfs), or 1 MiB where it cannot be read."""
    base = "/sys/devices/system/cpu/cpu0/cache"
    try:
        for entry in sorted(os.listdir(base)):
            with open(os.path.join(base, entry, "level"), encoding="ascii") as fh:
                if fh.read().strip() != "2":
                    continue
            with open(os.path.join(base, entry, "size"), encoding="ascii") as fh:
                size = fh.read().strip().upper()
            scale = {"K": 1 << 10, "M": 1 << 20}.get(size[-1:], 1)
            return int(size.rstrip("KM")) * scale
    except (OSError, ValueError):
        pass
    return 1 << 20


def pack_columns(b: np.ndarray) -> np.ndarray:
    """The ``(K, N)`` matrix ``b`` as flat float32 panels of ``NR`` columns, each ``k``-major
    (element ``(k, q * NR + j)`` at ``(q * K + k) * NR + j``), zero columns padding the last."""
    k, n = b.shape
    panels = -(-n // NR)
    out = np.zeros((k, panels * NR), dtype=np.float32)
    out[:, :n] = b
    return np.ascontiguousarray(out.reshape(k, panels, NR).transpose(1, 0, 2)).reshape(-1)


def packed_size(m: int, k: int) -> int:
    """Elements of :func:`pack`'s result for an ``m x k`` matrix."""
    return -(-m // MR) * MR * k


def pack(a: np.ndarray) -> np.ndarray:
    """The ``(M, K)`` matrix ``a`` as flat float32 panels of ``MR`` rows, each ``k``-major
    (element ``(i * MR + r, k)`` at ``(i * K + k) * MR + r``), zero rows padding the last.
    Row ``m0`` of a panel boundary starts at offset ``m0 * K``, as in ``a`` itself."""
    m, k = a.shape
    panels = -(-m // MR)
    out = np.zeros((panels * MR, k), dtype=np.float32)
    out[:m] = a
    return np.ascontiguousarray(out.reshape(panels, MR, k).transpose(0, 2, 1)).reshape(-1)


def prefetch_intrinsic():
    """``prefetch(a, ao)`` for compiled loops: ask the CPU to bring the cache line holding
    ``a[ao]`` into all its caches (``llvm.prefetch``, read, high locality); no effect on the
    results, and no fault past the array's end."""
    from llvmlite import ir
    from numba import types
    from numba.extending import intrinsic

    @intrinsic
    def prefetch(typingctx, a, ao):
        if not isinstance(a, types.Array):
            return None
        sig = types.void(a, ao)

        def codegen(context, builder, signature, args):
            tys = signature.args
            data = context.make_array(tys[0])(context, builder, args[0]).data
            at = builder.gep(data, [context.cast(builder, args[1], tys[1], types.int64)])
            i8p, i32 = ir.IntType(8).as_pointer(), ir.IntType(32)
            name = "llvm.prefetch.p0i8"
            fn = builder.module.globals.get(name)
            if fn is None:
                fn = ir.Function(
                    builder.module, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]), name
                )
            read, locality, data_cache = (ir.Constant(i32, v) for v in (0, 3, 1))
            builder.call(fn, [builder.bitcast(at, i8p), read, locality, data_cache])
            return context.get_dummy_value()

        return sig, codegen

    return prefetch


def micro_intrinsic():
    """``micro(a, ao, b, bo, ldb, c, co, ldc, kc, beta)`` for compiled loops (float32
    arrays): ``c[co + r * ldc + j] = (c[...] if beta else 0) + sum over k < kc of
    a[ao + k * MR + r] * b[bo + k * ldb + j]`` for ``r < MR``, ``j < NR``: one tile, ``a``
    packed as :func:`pack` makes it (``beta`` nonzero accumulates onto ``c``)."""
    from llvmlite import ir
    from numba import types
    from numba.extending import intrinsic

    @intrinsic
    def micro(typingctx, a, ao, b, bo, ldb, c, co, ldc, kc, beta):
        if not all(isinstance(t, types.Array) and t.dtype == types.float32 for t in (a, b, c)):
            return None
        sig = types.void(a, ao, b, bo, ldb, c, co, ldc, kc, beta)

        def codegen(context, builder, signature, args):
            tys = signature.args
            i32, i64 = ir.IntType(32), ir.IntType(64)
            vec = ir.VectorType(ir.FloatType(), _LANES)
            vptr = vec.as_pointer()
            nv = NR // _LANES

            def int64(i):
                return context.cast(builder, args[i], tys[i], types.int64)

            def base(i, off):
                data = context.make_array(tys[i])(context, builder, args[i]).data
                return builder.gep(data, [int64(off)])

            def const(v):
                return ir.Constant(i64, v)

            module = builder.module
            name = f"llvm.fma.v{_LANES}f32"
            fma = module.globals.get(name)
            if fma is None:
                fma = ir.Function(module, ir.FunctionType(vec, [vec, vec, vec]), name)
            ap, bp, cp = base(0, 1), base(2, 3), base(5, 6)
            ldb_, ldc_, kc_ = int64(4), int64(7), int64(8)
            zero = ir.Constant(vec, None)
            undef = ir.Constant(vec, ir.Undefined)
            splat = ir.Constant(ir.VectorType(i32, _LANES), [0] * _LANES)

            def c_ptr(r, v):
                row = builder.gep(cp, [builder.mul(const(r), ldc_)])
                return builder.bitcast(builder.gep(row, [const(v * _LANES)]), vptr)

            # The starting sums: zero, or C itself with ``beta`` (a select, no branch).
            keep = builder.icmp_signed("!=", int64(9), const(0))
            start = [
                [builder.select(keep, builder.load(c_ptr(r, v), align=4), zero) for v in range(nv)]
                for r in range(MR)
            ]
            entry = builder.block
            loop = builder.append_basic_block("tile.loop")
            done = builder.append_basic_block("tile.done")
            builder.cbranch(builder.icmp_signed(">", kc_, const(0)), loop, done)

            builder.position_at_end(loop)
            k = builder.phi(i64)
            acc = [[builder.phi(vec) for _ in range(nv)] for _ in range(MR)]
            brow = builder.gep(bp, [builder.mul(k, ldb_)])
            bv = [
                builder.load(builder.bitcast(builder.gep(brow, [const(v * _LANES)]), vptr), align=4)
                for v in range(nv)
            ]
            arow = builder.gep(ap, [builder.mul(k, const(MR))])
            step = []
            for r in range(MR):
                s = builder.load(builder.gep(arow, [const(r)]), align=4)
                sv = builder.shuffle_vector(
                    builder.insert_element(undef, s, ir.Constant(i32, 0)), undef, splat
                )
                step.append([builder.call(fma, [sv, bv[v], acc[r][v]]) for v in range(nv)])
            k1 = builder.add(k, const(1))
            tail = builder.block
            k.add_incoming(const(0), entry)
            k.add_incoming(k1, tail)
            for r in range(MR):
                for v in range(nv):
                    acc[r][v].add_incoming(start[r][v], entry)
                    acc[r][v].add_incoming(step[r][v], tail)
            builder.cbranch(builder.icmp_signed("<", k1, kc_), loop, done)

            builder.position_at_end(done)
            final = []
            for r in range(MR):
                for v in range(nv):
                    phi = builder.phi(vec)
                    phi.add_incoming(start[r][v], entry)
                    phi.add_incoming(step[r][v], tail)
                    final.append((r, v, phi))
            for r, v, value in final:
                builder.store(value, c_ptr(r, v), align=4)
            return context.get_dummy_value()

        return sig, codegen

    return micro
