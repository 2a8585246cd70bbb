"""A float32 GEMM micro-kernel of our own, for the convolutions' products (AVX-512 hosts).

OpenBLAS reaches 115-170 GFLOP/s on one core of the benchmark machine for the shapes
convolutions make (64-256 output channels, a few hundred to a few thousand pixels), against
about 200 for onnxruntime's MLAS, and it packs both operands again on every call. The kernel
here computes one ``MR x NR`` tile of ``C = A @ B`` with ``MR * NR / 16`` AVX-512 accumulators
(24 of the 32 vector registers), broadcasting one weight per row and loading ``NR`` pixels of
``B`` per step of ``k``: 190-220 GFLOP/s on one core, in registers from start to end.

- ``A`` (the weights) is packed once, when the kernel is built, into panels of ``MR`` rows
  stored ``k``-major (:func:`pack`): each step of ``k`` reads ``MR`` consecutive floats.
- ``B`` (im2col columns, or the input itself for a 1x1 convolution) is read in place, ``NR``
  consecutive floats per row of ``k``, rows ``ldb`` apart: no packing copy.
- ``C`` is written with row stride ``ldc``; the caller applies the epilogue (bias, residual,
  activation) to each tile while it is in L1 (``_conv_loops``).

The tile is generated as LLVM IR through llvmlite (an intrinsic callable from numba loops), with
explicit ``<16 x float>`` vectors and ``llvm.fma``, so it does not depend on the
auto-vectorizer. On hosts without AVX-512 the vectors would be split over fewer, narrower
registers and spill; :func:`available` is then False and the kernels keep NumPy's BLAS.

Results differ from BLAS's in the last bits (a different order of the sums over ``k``), within
the ONNX backend tests' tolerances. ``TESSERA_CPU_TILE_GEMM=0`` turns the kernel off.
"""

from __future__ import annotations

import functools
import os

import numpy as np

ENV = "TESSERA_CPU_TILE_GEMM"
MR = 12  # rows of A (output channels) per tile
NR = 32  # columns of B (pixels) per tile: two 16-float vectors
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
    """Whether a kernel built now for ``dtype`` may use the tile kernel."""
    return np.dtype(dtype) == np.float32 and not _env_off() and _host_has_avx512()


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
        if not all(isinstance(t, types.Array) for t in (a, b, c)):
            return None
        if not a.dtype == b.dtype == c.dtype or a.dtype not in (types.float32, types.float64):
            return None
        # float64 compiles too (the loops calling this are typed for both), as NR / 8 vectors
        # per row, which spill: the kernels only take this path for float32.
        lanes = _LANES if a.dtype == types.float32 else _LANES // 2
        sig = types.void(a, ao, b, bo, ldb, c, co, ldc, kc, beta)

        def codegen(context, builder, signature, args):
            tys = signature.args
            i32, i64 = ir.IntType(32), ir.IntType(64)
            real = context.get_value_type(tys[0].dtype)
            vec = ir.VectorType(real, lanes)
            vptr = vec.as_pointer()
            nv = NR // lanes

            def int64(i):
                return context.cast(builder, args[i], tys[i], types.int64)

            def base(i, off):
                data = context.make_array(tys[i])(context, builder, args[i]).data
                return builder.gep(data, [int64(off)])

            def const(v):
                return ir.Constant(i64, v)

            module = builder.module
            name = f"llvm.fma.v{lanes}f{32 if lanes == _LANES else 64}"
            fma = module.globals.get(name)
            if fma is None:
                fma = ir.Function(module, ir.FunctionType(vec, [vec, vec, vec]), name)
            ap, bp, cp = base(0, 1), base(2, 3), base(5, 6)
            ldb_, ldc_, kc_ = int64(4), int64(7), int64(8)
            zero = ir.Constant(vec, None)
            undef = ir.Constant(vec, ir.Undefined)
            splat = ir.Constant(ir.VectorType(i32, lanes), [0] * lanes)

            def c_ptr(r, v):
                row = builder.gep(cp, [builder.mul(const(r), ldc_)])
                return builder.bitcast(builder.gep(row, [const(v * lanes)]), vptr)

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
                builder.load(builder.bitcast(builder.gep(brow, [const(v * lanes)]), vptr), align=4)
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
