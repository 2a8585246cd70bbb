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

from tessera_cpu import _jit

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
