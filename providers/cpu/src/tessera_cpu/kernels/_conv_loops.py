"""Compiled loops (numba) for the parts of a 2-D convolution that are not a GEMM.

A depthwise convolution has too little arithmetic per channel for a GEMM: computed directly, each
output row is a few multiply-add passes over one input row, all in L1. The im2col columns of
the other convolutions are built here in one pass straight from the unpadded input (zeros where
a tap falls outside it) instead of a zero-padded copy followed by a strided copy. Both loops take
one image's (C, H, W) block, the taps' geometry and a range of channels or output rows, so the
engine in ``_conv2d.py`` can split them across its threads.
"""

from __future__ import annotations

import numpy as np

from tessera_cpu import _blas, _jit

_U = np.uint64  # loop indices known to be >= 0


def depthwise_scratch(ks, strides, dil, out) -> int:
    """Elements of scratch :func:`depthwise` needs: one channel's phase planes and accumulator."""
    hq, wq = _plane(ks, strides, dil, out)
    return strides[0] * strides[1] * hq * wq + out[0] * wq


def _plane(ks, strides, dil, out) -> tuple[int, int]:
    # A phase plane holds every input value the taps of one (row, column) phase read, plus one
    # row of slack: the accumulation runs over whole plane rows (see depthwise).
    hq = out[0] + ((ks[0] - 1) * dil[0]) // strides[0] + 1
    wq = out[1] + ((ks[1] - 1) * dil[1]) // strides[1]
    return hq, wq


@_jit.loop
def depthwise(x, w, y, c0, c1, kh, kw, sh, sw, dh, dw, ph, pw, ow_n, buf):
    """``y[c] = sum over taps of w[c, tap] * padded x[c, shifted]`` for channels ``c0..c1``.

    ``x`` is one image's (C, H, W), ``w`` (C, KH * KW), ``y`` (C, OH * OW), ``buf`` a scratch
    vector of :func:`depthwise_scratch` elements. Per channel, the zero-padded input is split
    into ``sh * sw`` phase planes (plane (pr, pc) holds padded rows pr, pr + sh, ... and columns
    pc, pc + sw, ...), so that every tap reads one plane at a constant offset: each tap is then
    one contiguous multiply-add pass over the whole output (computed over plane-wide rows, the
    extra columns dropped), which LLVM vectorizes, instead of one short pass per output row.
    Indices are unsigned so numba emits no negative-index wraparound in the inner loops.
    """
    h = x.shape[1]
    wd = x.shape[2]
    oh_n = y.shape[1] // ow_n
    hq = oh_n + ((kh - 1) * dh) // sh + 1
    wq = ow_n + ((kw - 1) * dw) // sw
    psz = hq * wq
    n = oh_n * wq
    acc = sh * sw * psz
    for c in range(c0, c1):
        xc = x[c]
        for pr in range(sh):
            for pc in range(sw):
                base = (pr * sw + pc) * psz
                off = pc - pw
                # Plane columns b whose input column b * sw + off lies inside the row.
                lo = min(wq, 0 if off >= 0 else (-off + sw - 1) // sw)
                hi = max(lo, min(wq, (wd - 1 - off) // sw + 1))
                for a in range(hq):
                    ih = a * sh + pr - ph
                    rb = base + a * wq
                    if ih < 0 or ih >= h:
                        for b in range(wq):
                            buf[_U(rb + b)] = 0
                        continue
                    xr = xc[ih]
                    for b in range(lo):
                        buf[_U(rb + b)] = 0
                    for b in range(lo, hi):
                        buf[_U(rb + b)] = xr[_U(b * sw + off)]
                    for b in range(hi, wq):
                        buf[_U(rb + b)] = 0
        for q in range(n):
            buf[_U(acc + q)] = 0
        wc = w[c]
        for ki in range(kh):
            for kj in range(kw):
                wv = wc[ki * kw + kj]
                r = ki * dh
                s = kj * dw
                src = ((r % sh) * sw + s % sw) * psz + (r // sh) * wq + s // sw
                for q in range(n):
                    buf[_U(acc + q)] += wv * buf[_U(src + q)]
        yc = y[c]
        for oh in range(oh_n):
            for ow in range(ow_n):
                yc[_U(oh * ow_n + ow)] = buf[_U(acc + oh * wq + ow)]


@_jit.loop
def im2col(x, cols, c0, c1, oh0, oh1, kh, kw, sh, sw, dh, dw, ph, pw, ow_n):
    """Columns of channels ``c0..c1`` and output rows ``oh0..oh1`` of one image (or group).

    ``x`` is (Cg, H, W); ``cols`` is (Cg * KH * KW, (oh1 - oh0) * OW), row ``(c * KH + ki) * KW
    + kj`` holding tap (ki, kj) of channel c for every output pixel, zero where the tap falls in
    the padding: the same matrix as the strided view of the zero-padded input, reshaped.
    """
    h = x.shape[1]
    wd = x.shape[2]
    for c in range(c0, c1):
        xc = x[c]
        for ki in range(kh):
            for kj in range(kw):
                dst = cols[(c * kh + ki) * kw + kj]
                off = kj * dw - pw
                # Output columns whose tap lands inside the row: 0 <= ow * sw + off < wd.
                lo = min(ow_n, 0 if off >= 0 else (-off + sw - 1) // sw)
                hi = max(lo, min(ow_n, (wd - 1 - off) // sw + 1))
                for oh in range(oh0, oh1):
                    ih = oh * sh - ph + ki * dh
                    base = (oh - oh0) * ow_n
                    if ih < 0 or ih >= h:
                        for ow in range(ow_n):
                            dst[_U(base + ow)] = 0
                        continue
                    xr = xc[ih]
                    for ow in range(lo):
                        dst[_U(base + ow)] = 0
                    if sw == 1:
                        for ow in range(lo, hi):
                            dst[_U(base + ow)] = xr[_U(ow + off)]
                    else:
                        for ow in range(lo, hi):
                            dst[_U(base + ow)] = xr[_U(ow * sw + off)]
                    for ow in range(hi, ow_n):
                        dst[_U(base + ow)] = 0


# Epilogue activations (FusedConv's): codes for :func:`epilogue`.
NO_ACTIVATION, RELU, LEAKY_RELU, CLIP = 0, 1, 2, 3


@_jit.loop
def epilogue(y, rows, cols, stride, bias, b0, z, zstride, kind, p0, p1):
    """``y = act(y + bias[b0 + row] + z)`` in place over ``rows`` runs of ``cols`` (a block of
    channels by pixels, rows ``stride`` apart in the flat ``y``): the Epilogue's NumPy passes
    in one, with the same operations in the same order, so the same bits. An empty ``bias`` or
    ``z`` is absent. ``kind``: NO_ACTIVATION, RELU, LEAKY_RELU (alpha p0), CLIP (p0, p1).
    NaN propagates as through np.maximum/np.minimum."""
    has_bias = bias.size > 0
    has_z = z.size > 0
    zero = y.dtype.type(0)
    for r in range(rows):
        yr = y[r * stride :]
        zr = z[r * zstride :] if has_z else z
        bv = bias[b0 + r] if has_bias else zero
        for i in range(cols):
            v = yr[i]
            if has_bias:
                v = v + bv
            if has_z:
                v = v + zr[i]
            if kind == RELU:
                v = v if (v > zero or v != v) else zero
            elif kind == LEAKY_RELU:
                t = v * p0
                if p0 <= 1:
                    v = v if (v > t or v != v) else t
                else:
                    v = v if (v < t or v != v) else t
            elif kind == CLIP:
                v = v if (v > p0 or v != v) else y.dtype.type(p0)
                v = v if (v < p1 or v != v) else y.dtype.type(p1)
            yr[i] = v


# -- whole convolutions on numba's threads (``tessera_cpu._native``) --------------------------
#
# ``x``, ``y``, ``z`` (the fused residual, or empty) are flat C-contiguous (N, G, Cg, H, W) and
# (N, M, P) arrays, ``w`` the flat (G, Mg, Kc) weights, ``geo`` the int64 geometry below, and
# ``units`` an (U, 4) int64 array of work items (image, group, begin, end). Part ``t`` of
# ``parts`` takes units ``U * t // parts`` to ``U * (t + 1) // parts``, so the serial form is
# part 0 of 1 and the parallel form runs every part on its own thread.

prange = _jit.prange
gemm = _jit.deferred(_blas.gemm_intrinsic)

# Indices into ``geo``.
G_CG, G_H, G_W, G_KH, G_KW, G_SH, G_SW, G_DH, G_DW, G_PH, G_PW, G_OW, G_M, G_MG, G_P, G_G = range(
    16
)


def geometry(cg, h, w, ks, strides, dil, pb, ow, m, mg, p, g) -> np.ndarray:
    return np.array(
        [
            cg,
            h,
            w,
            ks[0],
            ks[1],
            strides[0],
            strides[1],
            dil[0],
            dil[1],
            pb[0],
            pb[1],
            ow,
            m,
            mg,
            p,
            g,
        ],
        dtype=np.int64,
    )


@_jit.loop
def _gemm_epilogue(fn, w, wo, kc, b, bo, ldb, y, yo, rows, cols, ldy, bias, b0, z, kind, p0, p1):
    """``y[yo:]`` (rows x cols, row stride ldy) = act(w[wo:] @ b[bo:] + bias + z)."""
    gemm(fn, _blas.NO_TRANS, _blas.NO_TRANS, rows, cols, kc, w, wo, kc, b, bo, ldb, y, yo, ldy)
    if bias.size > 0 or z.size > 0 or kind != NO_ACTIVATION:
        epilogue(y[yo:], rows, cols, ldy, bias, b0, z[yo:], ldy, kind, p0, p1)


@_jit.loop
def _dims(geo):
    """(Cg, H, W, OW, KH, KW, M, Mg, P, G) from ``geo``."""
    return (geo[G_CG], geo[G_H], geo[G_W], geo[G_OW], geo[G_KH], geo[G_KW], geo[G_M],
            geo[G_MG], geo[G_P], geo[G_G])  # fmt: skip


@_jit.loop
def _part(n, t, parts):
    return n * t // parts, n * (t + 1) // parts


@_jit.loop
def conv_rows_part(fn, x, w, y, z, bias, scratch, units, geo, pointwise, t, parts, kind, p0, p1):
    """Units of output rows [begin, end): each builds its columns in ``scratch[t]`` (unless
    ``pointwise``: the GEMM reads the input), multiplies and applies the epilogue."""
    cg, h, wd, ow, kh, kw, m, mg, p, g_n = _dims(geo)
    kc = cg * kh * kw
    plane = h * wd
    u0, u1 = _part(units.shape[0], t, parts)
    buf = scratch[t]
    for u in range(u0, u1):
        i, g, a, b = units[u, 0], units[u, 1], units[u, 2], units[u, 3]
        xo = (i * g_n + g) * cg * plane
        yo = (i * m + g * mg) * p + a * ow
        width = (b - a) * ow
        if pointwise:
            _gemm_epilogue(fn, w, g * mg * kc, kc, x, xo + a * ow, p,
                           y, yo, mg, width, p, bias, g * mg, z, kind, p0, p1)  # fmt: skip
            continue
        cols = buf[: kc * width].reshape((kc, width))
        xs = x[xo : xo + cg * plane].reshape((cg, h, wd))
        im2col(xs, cols, 0, cg, a, b, kh, kw, geo[G_SH], geo[G_SW], geo[G_DH], geo[G_DW],
               geo[G_PH], geo[G_PW], ow)  # fmt: skip
        _gemm_epilogue(fn, w, g * mg * kc, kc, buf, 0, width,
                       y, yo, mg, width, p, bias, g * mg, z, kind, p0, p1)  # fmt: skip


@_jit.loop(parallel=True)
def conv_rows(fn, x, w, y, z, bias, scratch, units, geo, pointwise, parts, kind, p0, p1):
    for t in prange(parts):
        conv_rows_part(fn, x, w, y, z, bias, scratch, units, geo, pointwise, t, parts, kind, p0, p1)


@_jit.loop
def conv_channels_part(fn, x, w, y, z, bias, cols, units, geo, phase, pointwise, t, parts, kind,
                       p0, p1):  # fmt: skip
    """Phase 0: units of input channels [begin, end) build the flat (N, G, Kc, P) ``cols``.
    Phase 1: units of output channels [begin, end) of a group multiply and apply the epilogue
    (reading the input itself for a ``pointwise`` convolution, which has no phase 0)."""
    cg, h, wd, ow, kh, kw, m, mg, p, g_n = _dims(geo)
    kc = cg * kh * kw
    plane = h * wd
    u0, u1 = _part(units.shape[0], t, parts)
    for u in range(u0, u1):
        i, g, a, b = units[u, 0], units[u, 1], units[u, 2], units[u, 3]
        co = (i * g_n + g) * kc * p
        if phase == 0:
            xo = (i * g_n + g) * cg * plane
            xs = x[xo : xo + cg * plane].reshape((cg, h, wd))
            im2col(xs, cols[co : co + kc * p].reshape((kc, p)), a, b, 0, p // ow, kh, kw,
                   geo[G_SH], geo[G_SW], geo[G_DH], geo[G_DW], geo[G_PH], geo[G_PW], ow)  # fmt: skip
        elif pointwise:  # the columns are the input itself
            m0 = g * mg + a
            _gemm_epilogue(fn, w, m0 * kc, kc, x, (i * g_n + g) * cg * plane, p,
                           y, (i * m + m0) * p, b - a, p, p, bias, m0, z, kind, p0, p1)  # fmt: skip
        else:
            m0 = g * mg + a
            _gemm_epilogue(fn, w, m0 * kc, kc, cols, co, p,
                           y, (i * m + m0) * p, b - a, p, p, bias, m0, z, kind, p0, p1)  # fmt: skip


@_jit.loop(parallel=True)
def conv_channels(fn, x, w, y, z, bias, cols, units0, units1, geo, pointwise, parts, kind, p0,
                  p1):  # fmt: skip
    if not pointwise:
        for t in prange(parts):
            conv_channels_part(fn, x, w, y, z, bias, cols, units0, geo, 0, False, t, parts, kind,
                               p0, p1)  # fmt: skip
    for t in prange(parts):
        conv_channels_part(fn, x, w, y, z, bias, cols, units1, geo, 1, pointwise, t, parts, kind,
                           p0, p1)  # fmt: skip


@_jit.loop
def depthwise_part(x, w, y, z, bias, scratch, units, geo, t, parts, kind, p0, p1):
    """Units of channels [begin, end) of an image: the direct loop, then the epilogue."""
    c, h, wd, ow, p = geo[G_M], geo[G_H], geo[G_W], geo[G_OW], geo[G_P]
    u0, u1 = _part(units.shape[0], t, parts)
    for u in range(u0, u1):
        i, a, b = units[u, 0], units[u, 2], units[u, 3]
        xs = x[i * c * h * wd : (i + 1) * c * h * wd].reshape((c, h, wd))
        ys = y[i * c * p : (i + 1) * c * p].reshape((c, p))
        depthwise(xs, w, ys, a, b, geo[G_KH], geo[G_KW], geo[G_SH], geo[G_SW], geo[G_DH],
                  geo[G_DW], geo[G_PH], geo[G_PW], ow, scratch[t])  # fmt: skip
        if bias.size > 0 or z.size > 0 or kind != NO_ACTIVATION:
            yo = (i * c + a) * p
            epilogue(y[yo:], b - a, p, p, bias, a, z[yo:], p, kind, p0, p1)


@_jit.loop(parallel=True)
def depthwise_all(x, w, y, z, bias, scratch, units, geo, parts, kind, p0, p1):
    for t in prange(parts):
        depthwise_part(x, w, y, z, bias, scratch, units, geo, t, parts, kind, p0, p1)
