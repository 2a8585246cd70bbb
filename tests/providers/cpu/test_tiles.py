"""The CPU provider's own GEMM tile kernel (``tessera_cpu._tiles``) and the loops around it.

The kernel runs on AVX-512 hosts only; elsewhere the convolutions keep NumPy's BLAS and these
tests skip (the packing layout, pure NumPy, is checked everywhere).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from tessera_cpu import _jit, _tiles
from tessera_cpu.kernels import _conv2d

MR, NR = _tiles.MR, _tiles.NR


@pytest.fixture
def loops(monkeypatch):
    if not _jit.enabled():
        pytest.skip("numba is not usable here")
    monkeypatch.delenv(_tiles.ENV, raising=False)
    if not _tiles.available(np.float32):
        pytest.skip("the tile kernel needs AVX-512")
    from tessera_cpu.kernels import _conv_loops

    return _conv_loops


@pytest.mark.parametrize("shape", [(1, 1), (12, 5), (13, 7), (30, 3)])
def test_pack_lays_panels_out_k_major_with_zero_rows(shape):
    m, k = shape
    a = np.arange(1, m * k + 1, dtype=np.float32).reshape(m, k)
    packed = _tiles.pack(a)
    panels = -(-m // MR)
    assert packed.shape == (_tiles.packed_size(m, k),) == (panels * MR * k,)
    for i in range(panels * MR):
        for kk in range(k):
            want = a[i, kk] if i < m else 0
            assert packed[(i // MR * k + kk) * MR + i % MR] == want


def test_the_environment_turns_the_kernel_off(monkeypatch):
    monkeypatch.setenv(_tiles.ENV, "0")
    assert not _tiles.available(np.float32)
    monkeypatch.delenv(_tiles.ENV)
    assert not _tiles.available(np.float64)  # float32 only


CASES = [
    # rows, cols, kc: whole tiles, edges in both directions, K in several KC blocks, one k,
    # more columns than one packed block
    (12, 32, 16),
    (13, 33, 7),
    (24, 64, 300),
    (5, 70, 1),
    (40, 1100, 9),
]


@pytest.mark.parametrize(("rows", "cols", "kc"), CASES)
@pytest.mark.parametrize("epilogue", [False, True])
def test_tile_gemm_matches_numpy(loops, rows, cols, kc, epilogue):
    """y[yo:] (rows x cols, row stride ldy) = act(a @ b[bo:] + bias + z) for a sub-matrix of
    ``b`` (row stride ldb > cols) and of ``y``, leaving the rest of ``y`` alone."""
    rng = np.random.default_rng(rows * 1000 + cols + kc)
    a = rng.standard_normal((rows, kc)).astype(np.float32)
    ldb, bo = cols + 5, 3
    b = rng.standard_normal(bo + kc * ldb).astype(np.float32)
    ldy, yo = cols + 2, 1
    y = np.full(yo + rows * ldy, np.nan, dtype=np.float32)
    bias = rng.standard_normal(rows + 2).astype(np.float32) if epilogue else np.empty(0, np.float32)
    z = rng.standard_normal(y.size).astype(np.float32) if epilogue else np.empty(0, np.float32)
    kind = loops.RELU if epilogue else loops.NO_ACTIVATION
    loops._tile_gemm_epilogue(
        _tiles.pack(a), 0, kc, b, bo, ldb, y, yo, rows, cols, ldy, bias, 2, z, kind,
        np.float32(0), np.float32(0),
    )  # fmt: skip
    bm = b[bo : bo + kc * ldb].reshape(kc, ldb)[:, :cols]
    want = a.astype(np.float64) @ bm.astype(np.float64)
    got = y[yo : yo + rows * ldy].reshape(rows, ldy)
    if epilogue:
        want = np.maximum(
            want + bias[2 : 2 + rows, None] + z[yo:][: rows * ldy].reshape(rows, ldy)[:, :cols], 0
        )
    np.testing.assert_allclose(got[:, :cols], want, rtol=1e-5, atol=1e-5 * np.sqrt(kc))
    assert np.isnan(got[:, cols:]).all() and np.isnan(y[:yo]).all()


GEOMETRIES = [
    # (C, H, W), (KH, KW), strides, dilations, begin pads, output rows (oh0, oh1)
    ((3, 9, 11), (3, 3), (1, 1), (1, 1), (1, 1), (0, 9)),
    ((2, 15, 15), (7, 7), (2, 2), (1, 1), (3, 3), (2, 6)),
    ((4, 12, 12), (3, 2), (1, 1), (2, 2), (0, 1), (1, 8)),
    ((1, 40, 40), (3, 3), (1, 1), (1, 1), (1, 1), (0, 40)),
]


@pytest.mark.parametrize(("shape", "ks", "strides", "dil", "pads", "band"), GEOMETRIES)
def test_im2col_panels_are_im2col_laid_out_as_panels(loops, shape, ks, strides, dil, pads, band):
    """Exactly im2col's columns at (p // NR) * Kc * NR + k * NR + p % NR past offset ``co``,
    zeros past the last pixel; a range of channels writes only its own rows."""
    c, _, w = shape
    (kh, kw), (sh, sw), (dh, dw), (ph, pw), (oh0, oh1) = ks, strides, dil, pads, band
    ow = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    kc, pixels = c * kh * kw, (oh1 - oh0) * ow
    geo = (kh, kw, sh, sw, dh, dw, ph, pw, ow)
    cols = np.empty((kc, pixels), np.float32)
    loops.im2col(x, cols, 0, c, oh0, oh1, *geo)
    co = 7
    panels = np.full(co + loops.panel_elements(kc, pixels), np.nan, np.float32)
    loops.im2col_panels(x, panels, co, 0, c, oh0, oh1, *geo)
    padded = np.zeros((kc, -(-pixels // NR) * NR), np.float32)
    padded[:, :pixels] = cols
    want = padded.reshape(kc, -1, NR).transpose(1, 0, 2).reshape(-1)
    np.testing.assert_array_equal(panels[co:], want)
    assert np.isnan(panels[:co]).all()
    if c > 1:  # channel 1 only: every other row keeps its old value
        part = np.full_like(panels, np.nan)
        loops.im2col_panels(x, part, co, 1, 2, oh0, oh1, *geo)
        rows = part[co:].reshape(-1, kc, NR)
        mine = slice(kh * kw, 2 * kh * kw)
        np.testing.assert_array_equal(
            rows[:, mine].reshape(-1), want.reshape(-1, kc, NR)[:, mine].reshape(-1)
        )
        assert np.isnan(np.delete(rows, np.r_[mine], axis=1)).all()


@pytest.mark.parametrize(("mg", "split"), [(64, 2), (13, 2), (12, 2), (200, 3), (5, 2)])
def test_channel_bands_fall_on_panel_bounds(mg, split):
    units = [(0, 0, mg * i // split, mg * (i + 1) // split) for i in range(split)]
    bands = _conv2d._panel_units(units, mg)
    assert bands[0][2] == 0 and bands[-1][3] == mg
    for (_, _, a, b), (_, _, a2, _) in itertools.pairwise(bands):
        assert b == a2 and a % MR == 0 and b % MR == 0 and b > a
