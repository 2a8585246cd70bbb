"""Reduction kernels: Reduce*, ArgMax/ArgMin, CumSum/CumProd, Softmax/LogSoftmax/Hardmax and TopK."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import ml_dtypes
import numpy as np

from tessera.provider import FLOAT_TYPES, INT_TYPES, Compute, NodeInfo
from tessera_cpu import _jit, _native
from tessera_cpu.kernels._registry import registry

_FLOATS = FLOAT_TYPES
_I32_64 = ("tensor(int32)", "tensor(int64)", "tensor(uint32)", "tensor(uint64)")
_ALL_INTS = INT_TYPES
# 16-bit floats are computed in float32: numpy's own half loops accumulate poorly and
# ml_dtypes' bfloat16 ones accumulate in bfloat16.
_LOWP = frozenset({np.dtype(np.float16), np.dtype(ml_dtypes.bfloat16)})


def _fail(node: NodeInfo, message: str) -> ValueError:
    return ValueError(f"{node.describe()}: {message}")


def _axis(node: NodeInfo, axis: int, rank: int) -> int:
    if not -rank <= axis < rank:
        raise _fail(node, f"axis {axis} is out of range for an input of rank {rank}")
    return axis % rank


def _axes(node: NodeInfo, axes: Sequence[int], rank: int) -> tuple[int, ...]:
    # A rank-0 input has nothing to reduce; accept axis 0/-1 as onnxruntime does.
    if rank == 0:
        if any(int(a) not in (0, -1) for a in axes):
            raise _fail(node, f"axes {list(axes)} are out of range for a rank-0 input")
        return ()
    out = tuple(_axis(node, int(a), rank) for a in axes)
    if len(set(out)) != len(out):
        raise _fail(node, f"axes {list(axes)} repeat an axis")
    return out


def _static_rank(node: NodeInfo, index: int = 0) -> int | None:
    shapes = node.input_shapes
    shape = shapes[index] if index < len(shapes) else None
    return None if shape is None else len(shape)


# --- Reduce* -------------------------------------------------------------------------------


def _identity_max(dt: np.dtype):
    if dt.kind == "b":
        return False
    return -np.inf if dt.kind == "f" or dt in _LOWP else np.iinfo(dt).min


def _identity_min(dt: np.dtype):
    if dt.kind == "b":
        return True
    return np.inf if dt.kind == "f" or dt in _LOWP else np.iinfo(dt).max


def _r_sum(x, ax, keep):
    return np.add.reduce(x, axis=ax, dtype=x.dtype, keepdims=keep)


def _r_sum_square(x, ax, keep):
    return np.add.reduce(np.square(x), axis=ax, dtype=x.dtype, keepdims=keep)


def _r_l1(x, ax, keep):
    return np.add.reduce(np.abs(x), axis=ax, dtype=x.dtype, keepdims=keep)


def _r_l2(x, ax, keep):
    s = np.asarray(np.add.reduce(np.square(x), axis=ax, dtype=x.dtype, keepdims=keep))
    return np.sqrt(s, out=s) if s.dtype.kind == "f" else np.sqrt(s)


def _r_prod(x, ax, keep):
    return np.multiply.reduce(x, axis=ax, dtype=x.dtype, keepdims=keep)


def _r_max(x, ax, keep):
    if x.size == 0:
        return np.maximum.reduce(x, axis=ax, keepdims=keep, initial=_identity_max(x.dtype))
    return np.maximum.reduce(x, axis=ax, keepdims=keep)


def _r_min(x, ax, keep):
    if x.size == 0:
        return np.minimum.reduce(x, axis=ax, keepdims=keep, initial=_identity_min(x.dtype))
    return np.minimum.reduce(x, axis=ax, keepdims=keep)


def _r_mean(x, ax, keep):
    s = np.add.reduce(x, axis=ax, dtype=x.dtype, keepdims=keep)
    n = x.size // max(s.size, 1) if x.size else 0
    s = np.asarray(s)
    if n == 0:  # undefined by the spec; onnxruntime gives 0
        return np.zeros_like(s)
    if x.dtype.kind == "f":
        return np.divide(s, s.dtype.type(n), out=s)
    # Integer mean truncates toward zero like C integer division, exactly.
    q = np.floor_divide(s, n)
    if x.dtype.kind == "i":
        q = q + ((s % n != 0) & (s < 0))
    return q


def _r_log_sum(x, ax, keep):
    s = np.add.reduce(x, axis=ax, dtype=x.dtype if x.dtype.kind == "f" else None, keepdims=keep)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log(s)


def _r_log_sum_exp(x, ax, keep):
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if x.size == 0:
            return np.log(np.add.reduce(np.exp(x), axis=ax, keepdims=keep))
        m = np.asarray(np.maximum.reduce(x, axis=ax, keepdims=True))
        # A row that is all -inf (or holds inf) must not turn into nan through inf - inf.
        m[~np.isfinite(m)] = 0
        t = np.subtract(x, m)
        np.exp(t, out=t)
        s = np.asarray(np.add.reduce(t, axis=ax, keepdims=keep))
        np.log(s, out=s)
        if not keep:
            m = m.reshape(s.shape)
        return np.add(s, m, out=s)


def _reduce_factory(kernel: Callable, upcast: bool = True) -> Callable[[NodeInfo], Compute]:
    def factory(node: NodeInfo) -> Compute:
        keep = bool(node.attr("keepdims", 1))
        noop = bool(node.attr("noop_with_empty_axes", 0))
        static = node.attr("axes", None)
        dynamic = node.has_input(1)
        if dynamic and 1 in node.constant_inputs:
            static, dynamic = (
                [int(a) for a in np.asarray(node.constant_inputs[1]).reshape(-1)],
                False,
            )

        def resolve(axes, rank: int):
            # Empty or missing axes: all axes, or none when noop_with_empty_axes is set.
            if axes is None or len(axes) == 0:
                return () if noop else None
            return _axes(node, axes, rank)

        rank = _static_rank(node)
        # Static axes on a known rank are validated and normalized once, here.
        precomputed = rank is not None and not dynamic
        fixed = resolve(static, rank) if precomputed else None

        def compute(x, axes=None):
            if dynamic:
                ax = resolve(None if axes is None else axes.reshape(-1).tolist(), x.ndim)
            elif not precomputed or rank != x.ndim:
                ax = resolve(static, x.ndim)
            else:
                ax = fixed
            dt = x.dtype
            if upcast and dt in _LOWP:
                r = kernel(x.astype(np.float32), ax, keep).astype(dt)
            else:
                r = kernel(x, ax, keep)
                if r.dtype != dt:
                    r = r.astype(dt)
            return (np.asarray(r),)

        return compute

    return factory


_NUM = _FLOATS + _I32_64
_REDUCERS = {
    "ReduceSum": (_r_sum, (1, 11, 13), _NUM, True),
    "ReduceSumSquare": (_r_sum_square, (1, 11, 13, 18), _NUM, True),
    "ReduceL1": (_r_l1, (1, 11, 13, 18), _NUM, True),
    "ReduceL2": (_r_l2, (1, 11, 13, 18), _NUM, True),
    "ReduceProd": (_r_prod, (1, 11, 13, 18), _NUM, True),
    "ReduceMean": (_r_mean, (1, 11, 13, 18), _NUM, True),
    "ReduceLogSum": (_r_log_sum, (1, 11, 13, 18, 28), _NUM, True),
    # Integer LogSumExp has no agreed meaning (the reference rejects it, opset 28 drops it).
    "ReduceLogSumExp": (_r_log_sum_exp, (1, 11, 13, 18, 28), _FLOATS, True),
    "ReduceMax": (
        _r_max,
        (1, 11, 12, 13, 18, 20),
        (*_NUM, "tensor(int8)", "tensor(uint8)", "tensor(bool)"),
        False,
    ),
    "ReduceMin": (
        _r_min,
        (1, 11, 12, 13, 18, 20),
        (*_NUM, "tensor(int8)", "tensor(uint8)", "tensor(bool)"),
        False,
    ),
}
for _op, (_kernel, _versions, _types, _upcast) in _REDUCERS.items():
    registry.kernel(_op, since=_versions, types={"T": _types})(_reduce_factory(_kernel, _upcast))


# --- ArgMax / ArgMin -----------------------------------------------------------------------


def _arg_factory(pick: Callable) -> Callable[[NodeInfo], Compute]:
    def factory(node: NodeInfo) -> Compute:
        axis = int(node.attr("axis", 0))
        keep = bool(node.attr("keepdims", 1))
        last = bool(node.attr("select_last_index", 0))
        rank = _static_rank(node)
        if rank is not None:
            _axis(node, axis, max(rank, 1))

        def compute(x):
            ax = _axis(node, axis, max(x.ndim, 1))
            if x.ndim == 0:
                x = x.reshape(1)
            n = x.shape[ax]
            if n == 0:
                raise _fail(node, f"cannot take {node.op_type} over the empty axis {axis}")
            if x.dtype == ml_dtypes.bfloat16:
                x = x.astype(np.float32)
            if last:
                r = pick(np.flip(x, ax), axis=ax, keepdims=keep)
                r = np.subtract(n - 1, r, dtype=np.int64)
            else:
                r = pick(x, axis=ax, keepdims=keep)
            return (np.asarray(r, dtype=np.int64),)

        return compute

    return factory


_ARG_TYPES = {"T": _FLOATS + _ALL_INTS}
registry.kernel("ArgMax", since=(1, 11, 12, 13), types=_ARG_TYPES)(_arg_factory(np.argmax))
registry.kernel("ArgMin", since=(1, 11, 12, 13), types=_ARG_TYPES)(_arg_factory(np.argmin))


# --- CumSum / CumProd ----------------------------------------------------------------------


def _accumulate(ufunc: np.ufunc, src: np.ndarray, dst: np.ndarray, ax: int) -> None:
    """dst = inclusive scan of src along ax (both already flipped for reverse)."""
    n = src.shape[ax]
    if n == 0:
        return
    inner = src.size // n
    if ax == src.ndim - 1 or inner < 512:
        ufunc.accumulate(src, axis=ax, dtype=dst.dtype, out=dst)
        return
    # numpy's accumulate over a non-innermost axis is slow; one vectorized step per position
    # along the axis is several times faster and adds in the same order.
    s = np.moveaxis(src, ax, 0)
    d = np.moveaxis(dst, ax, 0)
    d[0] = s[0]
    for i in range(1, n):
        ufunc(d[i - 1], s[i], out=d[i])


def _scan_factory(ufunc: np.ufunc, identity: int) -> Callable[[NodeInfo], Compute]:
    def factory(node: NodeInfo) -> Compute:
        exclusive = bool(node.attr("exclusive", 0))
        reverse = bool(node.attr("reverse", 0))

        def axis_of(a, rank: int) -> int:
            a = np.asarray(a)
            if a.size != 1:
                raise _fail(node, f"axis must be a scalar, got shape {a.shape}")
            return _axis(node, int(a.reshape(-1)[0]), rank)

        const_axis = node.constant_inputs.get(1)
        rank = _static_rank(node)
        fixed = axis_of(const_axis, rank) if const_axis is not None and rank else None

        def compute(x, axis):
            if x.ndim == 0:
                raise _fail(node, "input must have rank >= 1")
            ax = fixed if fixed is not None and rank == x.ndim else axis_of(axis, x.ndim)
            dt = x.dtype
            work = np.dtype(np.float32) if dt in _LOWP else dt
            out = np.empty(x.shape, dtype=work)
            # Reversal works on flipped views of the input and of our own output buffer.
            src = np.flip(x, ax) if reverse else x
            dst = np.flip(out, ax) if reverse else out
            if exclusive:
                n = x.shape[ax]
                first = [slice(None)] * x.ndim
                first[ax] = slice(0, 1)
                dst[tuple(first)] = identity
                lo, hi = list(first), list(first)
                lo[ax], hi[ax] = slice(0, n - 1), slice(1, n)
                _accumulate(ufunc, src[tuple(lo)], dst[tuple(hi)], ax)
            else:
                _accumulate(ufunc, src, dst, ax)
            return (out if work == dt else out.astype(dt),)

        return compute

    return factory


_SCAN_TYPES = {"T": _FLOATS + _I32_64, "T2": ("tensor(int32)", "tensor(int64)")}
registry.kernel("CumSum", since=(11, 14), types=_SCAN_TYPES)(_scan_factory(np.add, 0))
registry.kernel("CumProd", since=26, types=_SCAN_TYPES)(_scan_factory(np.multiply, 1))


# --- Softmax / LogSoftmax / Hardmax --------------------------------------------------------


def _softmax(x: np.ndarray, ax) -> np.ndarray:
    out = np.subtract(x, np.maximum.reduce(x, axis=ax, keepdims=True))
    np.exp(out, out=out)
    return np.divide(out, np.add.reduce(out, axis=ax, keepdims=True), out=out)


def _log_softmax(x: np.ndarray, ax) -> np.ndarray:
    out = np.subtract(x, np.maximum.reduce(x, axis=ax, keepdims=True))
    s = np.add.reduce(np.exp(out), axis=ax, keepdims=True)
    return np.subtract(out, np.log(s, out=s), out=out)


# Last-axis rows up to this long take the row kernels below: they sum with a matrix-vector
# product (BLAS), as np.add.reduce's per-row overhead dominates on short rows (attention's 128).
_GEMV_MAX_ROW = 4096
# Softmax shifts rows by the maximum of a group of this many rows (or a divisor of the row
# count): one reduction per row costs more than the rest of the kernel on short rows.
_SHIFT_GROUP = 16
# A row whose exp(x - shift) sums to at least exp(-_SHIFT_SLACK) has its own maximum at most
# _SHIFT_SLACK + ln(n) below the shift (the sum is at most n * exp(max - shift)). Each exp
# argument then carries at most that * 2**-25 more relative rounding than with the row's own
# maximum (5 ulp for n = 128), and only outputs below ~1e-29 can reach subnormals early.
# Rows below it get a second pass shifted by their log-sum-exp.
_SHIFT_SLACK = 15.0
# When every group's maximum is within this of the largest, one scalar shift is used for all
# rows: NumPy subtracts a scalar ~2.5x faster than a broadcast column.
_SCALAR_SHIFT_SPREAD = 4.0


def _row_sums(e: np.ndarray) -> np.ndarray:
    return e @ np.ones(e.shape[1], dtype=e.dtype)


def _softmax_rows(x2: np.ndarray) -> tuple[np.ndarray, float] | None:
    """Softmax over the last axis of a 2-D array and the fraction of rows that needed a
    second pass, or None to use the general kernel.

    Rows are shifted by their group's maximum (or by the overall maximum when the groups'
    are close), which cannot overflow; rows whose own maximum may lie too far below the shift
    (_SHIFT_SLACK) are redone. Declines (None) when any group maximum is not finite (NaN or
    inf inputs), where rows must not share a shift.
    """
    r, n = x2.shape
    g = math.gcd(r, _SHIFT_GROUP)
    groups = x2.reshape(r // g, g * n)
    shift = np.maximum.reduce(groups, axis=1, keepdims=True)
    if not np.isfinite(shift).all():
        return None
    top = shift.max()
    if shift.min() >= top - _SCALAR_SHIFT_SPREAD:
        shift[...] = top
        out = np.subtract(x2, top)
    else:
        out = np.subtract(groups, shift).reshape(r, n)
    np.exp(out, out=out)
    sums = _row_sums(out)
    far = np.flatnonzero(sums < math.exp(-_SHIFT_SLACK))
    if far.size:
        row_shift = np.repeat(shift.reshape(-1), g)[far]
        out[far] = _softmax_far_rows(x2[far], row_shift, sums[far])
        sums[far] = 1
    np.reciprocal(sums, out=sums)
    out *= sums[:, None]
    return out, far.size / r


def _softmax_far_rows(x2: np.ndarray, shift: np.ndarray, sums: np.ndarray) -> np.ndarray:
    """Softmax of rows whose first shift was too far above their maximum.

    shift + log(sum) is the row's log-sum-exp, between its maximum and ln(n) above it: a shift
    that is safe and close. Rows whose first sum underflowed to 0 (maximum ~100 below the
    shift) have no such estimate and take their own maximum.
    """
    known = sums > 0
    if not known.all():
        return _softmax_own_max_rows(x2)
    e = np.subtract(x2, (shift + np.log(sums)).astype(x2.dtype)[:, None])
    np.exp(e, out=e)
    e /= _row_sums(e)[:, None]
    return e


def _softmax_own_max_rows(x2: np.ndarray) -> np.ndarray:
    """Softmax over the last axis of a 2-D array, each row shifted by its own maximum."""
    out = np.subtract(x2, np.maximum.reduce(x2, axis=1, keepdims=True))
    np.exp(out, out=out)
    sums = _row_sums(out)
    out *= np.reciprocal(sums, out=sums)[:, None]
    return out


def _log_softmax_rows(x2: np.ndarray) -> tuple[np.ndarray, float]:
    """LogSoftmax over the last axis of a 2-D array (and 0.0: no row needs a second pass).

    Unlike softmax this keeps each row's own maximum: log(sum) cancels the shift, and with a
    shared shift the result near 0 (a peaked row's top entry) would carry the shift's rounding.
    """
    out = np.subtract(x2, np.maximum.reduce(x2, axis=1, keepdims=True))
    sums = _row_sums(np.exp(out))
    out -= np.log(sums, out=sums)[:, None]
    return out, 0.0


def _hardmax(x: np.ndarray, ax) -> np.ndarray:
    out = np.zeros_like(x)
    np.put_along_axis(out, np.argmax(x, axis=ax, keepdims=True), 1, axis=ax)
    return out


# A node whose rows mostly missed the shared shift (more than this fraction) runs the
# per-row kernel for the next _RETRY_AFTER runs: its data is unlike attention scores.
_MAX_FAR_FRACTION = 0.25
_RETRY_AFTER = 32


def _softmax_factory(
    kernel: Callable,
    rows: Callable[[np.ndarray], tuple[np.ndarray, float] | None] | None = None,
    own_max_rows: Callable[[np.ndarray], np.ndarray] | None = None,
    loop: bool = False,
) -> Callable[[NodeInfo], Compute]:
    """Kernel factory for a softmax-like op along one axis.

    ``rows`` is a faster path for the last axis of rows up to _GEMV_MAX_ROW long; it may
    decline (None). ``own_max_rows`` replaces it on a node where it needed too many second
    passes. With ``loop`` (Softmax), contiguous float32 rows take the compiled loop
    (``_math_loops.softmax_rows``), split over numba's threads, when the native threads are on.
    """

    def factory(node: NodeInfo) -> Compute:
        flatten = node.since_version < 13
        axis = int(node.attr("axis", 1 if flatten else -1))
        rank = _static_rank(node)
        # Read once, when the kernel is built: only with numba's threads does the loop win
        # (one thread: as fast as the NumPy rows; split: 2x on BERT's attention).
        loops = None
        if loop and _jit.enabled() and _native.enabled():
            from tessera_cpu.kernels import _math_loops as loops

        fixed = _axis(node, axis, rank) if rank else None
        cooldown = [0]  # runs left on own_max_rows; a benign race between concurrent runs

        def last_axis(x2: np.ndarray) -> np.ndarray | None:
            if cooldown[0] > 0 and own_max_rows is not None:
                cooldown[0] -= 1
                return own_max_rows(x2)
            got = rows(x2)
            if got is None:
                return None
            y, far = got
            if far > _MAX_FAR_FRACTION:
                cooldown[0] = _RETRY_AFTER
            return y

        def compute(x):
            if x.ndim == 0:
                raise _fail(node, "input must have rank >= 1")
            ax = fixed if fixed is not None and rank == x.ndim else _axis(node, axis, x.ndim)
            if x.size == 0:
                return (np.zeros_like(x),)
            dt = x.dtype
            xw = x.astype(np.float32) if dt in _LOWP else x
            if flatten:
                # Opset < 13 coerces the input to 2-D [prod(shape[:axis]), prod(shape[axis:])].
                xw = xw.reshape(int(np.prod(x.shape[:ax], dtype=np.int64)), -1)
                ax = 1
            with np.errstate(invalid="ignore", divide="ignore", over="ignore", under="ignore"):
                y = None
                n = xw.shape[ax]
                if (
                    loops is not None
                    and ax == xw.ndim - 1
                    and xw.dtype == np.float32
                    and xw.flags.c_contiguous
                    and xw.size >= loops._SOFTMAX_SPLIT_ELEMENTS
                ):
                    y = loops.softmax_rows(xw.reshape(-1, n), True).reshape(xw.shape)
                elif rows is not None and ax == xw.ndim - 1 and 0 < n <= _GEMV_MAX_ROW:
                    y = last_axis(xw.reshape(-1, n))
                    y = y if y is None else y.reshape(xw.shape)
                if y is None:
                    y = kernel(xw, ax)
            if flatten:
                y = y.reshape(x.shape)
            return (y if y.dtype == dt else y.astype(dt),)

        return compute

    return factory


_SM_TYPES = {"T": _FLOATS}
registry.kernel("Softmax", since=(1, 11, 13), types=_SM_TYPES)(
    _softmax_factory(_softmax, _softmax_rows, _softmax_own_max_rows, loop=True)
)
registry.kernel("LogSoftmax", since=(1, 11, 13), types=_SM_TYPES)(
    _softmax_factory(_log_softmax, _log_softmax_rows)
)
registry.kernel("Hardmax", since=(1, 11, 13), types=_SM_TYPES)(_softmax_factory(_hardmax))


# --- TopK ----------------------------------------------------------------------------------


def _topk_indices(key: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k smallest keys along the last axis, ordered by (key, index)."""
    n = key.shape[-1]
    if k == n or n <= 64 or 4 * k > n or (key.dtype.kind == "f" and np.isnan(key).any()):
        return np.argsort(key, axis=-1, kind="stable")[..., :k]
    lead = key.shape[:-1]
    key = key.reshape(-1, n)
    cand = np.argpartition(key, k - 1, axis=-1)[:, :k]
    cand_keys = np.take_along_axis(key, cand, axis=-1)
    kth = cand_keys.max(axis=-1, keepdims=True)
    # argpartition picks arbitrarily among keys equal to the k-th one; rows where such ties
    # straddle the cut are redone so the lowest indices win, as the spec requires.
    n_less = np.count_nonzero(cand_keys < kth, axis=-1)
    surplus = n_less + np.count_nonzero(key == kth, axis=-1) > k
    if surplus.any():
        rk, rkth = key[surplus], kth[surplus]
        less, equal = rk < rkth, rk == rkth
        room = k - n_less[surplus][:, None]
        chosen = less | (equal & (np.cumsum(equal, axis=-1) <= room))
        cand[surplus] = np.nonzero(chosen)[1].reshape(-1, k)
    cand.sort(axis=-1)
    order = np.argsort(np.take_along_axis(key, cand, axis=-1), axis=-1, kind="stable")
    return np.take_along_axis(cand, order, axis=-1).reshape((*lead, k))


@registry.kernel("TopK", since=(1, 10, 11, 24), types={"T": _FLOATS + _ALL_INTS})
def top_k(node: NodeInfo) -> Compute:
    axis = int(node.attr("axis", -1))
    largest = bool(node.attr("largest", 1))
    static_k = int(node.attr("k")) if node.since_version < 10 else None
    if static_k is None and 1 in node.constant_inputs:
        static_k = int(np.asarray(node.constant_inputs[1]).reshape(-1)[0])
    if static_k is not None and static_k < 0:
        raise _fail(node, f"k must be non-negative, got {static_k}")
    rank = _static_rank(node)
    if rank is not None:
        _axis(node, axis, max(rank, 1))

    def compute(x, k_in=None):
        if x.ndim == 0:
            raise _fail(node, "input must have rank >= 1")
        ax = _axis(node, axis, x.ndim)
        if static_k is not None:
            k = static_k
        else:
            kk = np.asarray(k_in).reshape(-1)
            if kk.size != 1:
                raise _fail(node, f"K must hold one value, got shape {np.shape(k_in)}")
            k = int(kk[0])
        n = x.shape[ax]
        if not 0 <= k <= n:
            raise _fail(node, f"k={k} is out of range for axis {axis} of length {n}")
        xm = np.moveaxis(x, ax, -1)
        key = xm.astype(np.float32) if xm.dtype == ml_dtypes.bfloat16 else xm
        if k == 0:
            idx = np.zeros((*xm.shape[:-1], 0), dtype=np.int64)
        elif k == 1 and not (key.dtype.kind == "f" and np.isnan(key).any()):
            # argmax/argmin return the first occurrence: the tie rule for free.
            idx = (np.argmax if largest else np.argmin)(key, axis=-1, keepdims=True)
        else:
            if largest:
                # ~v reverses integer order exactly (no overflow at the minimum, unlike -v).
                key = np.negative(key) if key.dtype.kind == "f" else np.invert(key)
            idx = _topk_indices(key, k)
        values = np.take_along_axis(xm, idx, axis=-1)
        return (np.moveaxis(values, -1, ax), np.moveaxis(idx.astype(np.int64, copy=False), -1, ax))

    return compute
