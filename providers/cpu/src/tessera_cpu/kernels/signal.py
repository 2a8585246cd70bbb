"""Signal-processing kernels: DFT, STFT, the Hann/Hamming/Blackman windows and MelWeightMatrix."""

from __future__ import annotations

import math

import ml_dtypes
import numpy as np

from tessera.provider import FLOAT_TYPES, NUMERIC_TYPES, NodeInfo, np_dtype
from tessera_cpu.kernels._registry import registry

_INDEX_TYPES = ("tensor(int32)", "tensor(int64)")
_NATIVE_COMPLEX = {np.dtype(np.float32): np.complex64, np.dtype(np.float64): np.complex128}


def _work_dtype(dt: np.dtype) -> np.dtype:
    # numpy's FFT runs natively in float32/float64; the half-width floats go through float32.
    return dt if dt in _NATIVE_COMPLEX else np.dtype(np.float32)


def _to_complex(x: np.ndarray) -> np.ndarray:
    """A [..., 1] real or [..., 2] (re, im) tensor as a complex array of rank one less."""
    work = _work_dtype(x.dtype)
    x = x.astype(work, copy=False)
    if x.shape[-1] == 1:
        return x[..., 0]
    x = np.ascontiguousarray(x)
    # (re, im) pairs are exactly the complex memory layout: a view costs nothing.
    return x.view(_NATIVE_COMPLEX[work])[..., 0]


def _from_complex(y: np.ndarray, dtype: np.dtype) -> np.ndarray:
    y = np.ascontiguousarray(y)
    out = y.view(y.real.dtype).reshape((*y.shape, 2))
    return out if out.dtype == dtype else out.astype(dtype)


def _scalar(v, node: NodeInfo, what: str) -> int:
    a = np.asarray(v)
    if a.size != 1:
        raise ValueError(f"{node.describe()}: {what} must be a scalar, got shape {a.shape}")
    return int(a.reshape(()))


def _dft(x, length, axis, inverse, onesided, node: NodeInfo):
    rank = x.ndim
    if x.shape[-1] not in (1, 2):
        raise ValueError(
            f"{node.describe()}: the last dimension must be 1 (real) or 2 (complex), got {x.shape}"
        )
    if not (-rank <= axis <= rank - 2) or axis == -1:
        raise ValueError(f"{node.describe()}: axis {axis} is invalid for input rank {rank}")
    ax = axis % rank
    n = x.shape[ax]
    if length is None:
        length = 2 * (n - 1) if (inverse and onesided) else n
    if length <= 0:
        raise ValueError(f"{node.describe()}: dft_length must be positive, got {length}")
    real = x.shape[-1] == 1
    if inverse:
        if onesided:
            if real:
                raise ValueError(f"{node.describe()}: an inverse one-sided DFT needs complex input")
            y = np.fft.irfft(_to_complex(x), n=length, axis=ax)
            return y[..., None].astype(x.dtype, copy=False)
        return _from_complex(np.fft.ifft(_to_complex(x), n=length, axis=ax), x.dtype)
    if onesided and real:
        return _from_complex(np.fft.rfft(_to_complex(x), n=length, axis=ax), x.dtype)
    y = np.fft.fft(_to_complex(x), n=length, axis=ax)
    if onesided:
        y = y[(slice(None),) * ax + (slice(0, length // 2 + 1),)]
    return _from_complex(y, x.dtype)


@registry.kernel("DFT", since=(17, 20), types={"T1": FLOAT_TYPES, "T2": _INDEX_TYPES})
def dft(node: NodeInfo):
    inverse = bool(node.attr("inverse", 0))
    onesided = bool(node.attr("onesided", 0))
    attr_axis = node.attr("axis", 1) if node.since_version < 20 else None

    def compute(x, dft_length=None, axis=None):
        length = None if dft_length is None else _scalar(dft_length, node, "dft_length")
        if attr_axis is not None:
            ax = attr_axis
        else:
            ax = -2 if axis is None else _scalar(axis, node, "axis")
        return (_dft(x, length, ax, inverse, onesided, node),)

    return compute


@registry.kernel("STFT", since=17, types={"T1": FLOAT_TYPES, "T2": _INDEX_TYPES})
def stft(node: NodeInfo):
    onesided = bool(node.attr("onesided", 1))

    def compute(signal, frame_step, window=None, frame_length=None):
        if signal.ndim != 3 or signal.shape[-1] not in (1, 2):
            raise ValueError(
                f"{node.describe()}: signal must be [batch, length, 1 or 2], got {signal.shape}"
            )
        step = _scalar(frame_step, node, "frame_step")
        if step <= 0:
            raise ValueError(f"{node.describe()}: frame_step must be positive, got {step}")
        if window is not None and window.ndim != 1:
            raise ValueError(f"{node.describe()}: window must be 1-D, got shape {window.shape}")
        if frame_length is not None:
            flen = _scalar(frame_length, node, "frame_length")
            if window is not None and window.shape[0] != flen:
                raise ValueError(
                    f"{node.describe()}: window length {window.shape[0]} differs from frame_length {flen}"
                )
        elif window is not None:
            flen = window.shape[0]
        else:
            flen = signal.shape[1]
        if not 0 < flen <= signal.shape[1]:
            raise ValueError(
                f"{node.describe()}: frame length {flen} must be in [1, signal length {signal.shape[1]}]"
            )
        sig = _to_complex(signal)  # [batch, length]
        frames = np.lib.stride_tricks.sliding_window_view(sig, flen, axis=1)[:, ::step]
        if window is not None:
            frames = frames * window.astype(frames.real.dtype, copy=False)
        real = signal.shape[-1] == 1
        if onesided and real:
            y = np.fft.rfft(frames, axis=-1)
        else:
            y = np.fft.fft(frames, axis=-1)
            if onesided:
                y = y[..., : flen // 2 + 1]
        return (_from_complex(y, signal.dtype),)

    return compute


def _window(node: NodeInfo, terms: tuple[float, ...]):
    """A generalized cosine window sum_k (-1)^k a_k cos(2 pi k n / N)."""
    periodic = bool(node.attr("periodic", 1))
    out_dt = np_dtype(node.attr("output_datatype", 1))

    def compute(size):
        n = _scalar(size, node, "size")
        if n < 0:
            raise ValueError(f"{node.describe()}: size must be non-negative, got {n}")
        denom = n if periodic else n - 1
        if denom <= 0:
            return (np.ones(n, dtype=out_dt),)
        phase = np.arange(n, dtype=np.float64) * (2.0 * math.pi / denom)
        w = np.full(n, terms[0])
        for k, a in enumerate(terms[1:], start=1):
            w += (-1) ** k * a * np.cos(k * phase)
        return (w.astype(out_dt),)

    return compute


_WINDOW_TYPES = {"T1": _INDEX_TYPES, "T2": NUMERIC_TYPES}


@registry.kernel("HannWindow", since=17, types=_WINDOW_TYPES)
def hann_window(node: NodeInfo):
    return _window(node, (0.5, 0.5))


@registry.kernel("HammingWindow", since=17, types=_WINDOW_TYPES)
def hamming_window(node: NodeInfo):
    return _window(node, (25.0 / 46.0, 21.0 / 46.0))


@registry.kernel("BlackmanWindow", since=17, types=_WINDOW_TYPES)
def blackman_window(node: NodeInfo):
    return _window(node, (0.42, 0.5, 0.08))


@registry.kernel(
    "MelWeightMatrix",
    since=17,
    types={"T1": _INDEX_TYPES, "T2": FLOAT_TYPES, "T3": NUMERIC_TYPES},
)
def mel_weight_matrix(node: NodeInfo):
    out_dt = np_dtype(node.attr("output_datatype", 1))

    def compute(num_mel_bins, dft_length, sample_rate, lower_edge_hertz, upper_edge_hertz):
        bins = _scalar(num_mel_bins, node, "num_mel_bins")
        length = _scalar(dft_length, node, "dft_length")
        rate = _scalar(sample_rate, node, "sample_rate")
        if bins <= 0 or length <= 0 or rate <= 0:
            raise ValueError(
                f"{node.describe()}: num_mel_bins, dft_length and sample_rate must be positive"
            )
        fdt = lower_edge_hertz.dtype
        if fdt == np.dtype(ml_dtypes.bfloat16) or fdt == np.float16:
            fdt = np.dtype(np.float32)
        lo = np.asarray(lower_edge_hertz, dtype=fdt).reshape(())
        hi = np.asarray(upper_edge_hertz, dtype=fdt).reshape(())
        if not 0 <= lo < hi:
            raise ValueError(
                f"{node.describe()}: need 0 <= lower_edge_hertz < upper_edge_hertz, got {lo}, {hi}"
            )
        # The mel edges are computed in the input's float type, the bin centres in float64,
        # matching the published reference so that the floor below lands on the same bins.
        ln10 = fdt.type(np.log(10))
        lo_mel = fdt.type(2595) * np.log1p(lo / fdt.type(700)) / ln10
        hi_mel = fdt.type(2595) * np.log1p(hi / fdt.type(700)) / ln10
        count = bins + 2
        step = (hi_mel - lo_mel) / count
        mel = np.arange(count, dtype=np.float64) * np.float64(step) + np.float64(lo_mel)
        hz = 700.0 * np.expm1(mel / 2595.0 * np.log(10))
        edges = (((length + 1) * hz) // rate).astype(np.int64)
        left, centre, right = edges[:-2], edges[1:-1], edges[2:]
        j = np.arange(length // 2 + 1, dtype=np.float64)[:, None]
        with np.errstate(divide="ignore", invalid="ignore"):
            rise = (j - left) / (centre - left)
            fall = (right - j) / (right - centre)
        out = np.zeros((j.shape[0], bins))
        in_rise = (j >= left) & (j <= centre)
        out = np.where(in_rise, rise, out)
        out = np.where((j >= centre) & (j < right), fall, out)
        out = np.where(j == centre, 1.0, out)
        return (out.astype(out_dt),)

    return compute
