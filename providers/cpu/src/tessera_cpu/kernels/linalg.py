"""Linear-algebra kernels: MatMul, Gemm, MatMulInteger, QLinearMatMul, Einsum and Det."""

from __future__ import annotations

import ml_dtypes
import numpy as np

from tessera.provider import FLOAT_TYPES, INT_TYPES, Compute, NodeInfo
from tessera_cpu import _jit, _native, _parallel
from tessera_cpu.kernels import _fused_activation, _gemm_loops
from tessera_cpu.kernels._registry import registry

_FLOATS = FLOAT_TYPES
_I32_64 = ("tensor(int32)", "tensor(int64)", "tensor(uint32)", "tensor(uint64)")
_ALL_INTS = INT_TYPES
_Q8 = ("tensor(int8)", "tensor(uint8)")
# 16-bit floats run through float32 BLAS: numpy has no half-precision BLAS and its own half
# loops are both slow and less accurate.
_LOWP = frozenset({np.dtype(np.float16), np.dtype(ml_dtypes.bfloat16)})


def _fail(node: NodeInfo, message: str) -> ValueError:
    return ValueError(f"{node.describe()}: {message}")


def _work(a: np.ndarray) -> np.ndarray:
    return a.astype(np.float32) if a.dtype in _LOWP else a


# --- MatMul --------------------------------------------------------------------------------


@registry.kernel("MatMul", since=(1, 9, 13), types={"T": _FLOATS + _I32_64})
def matmul(node: NodeInfo) -> Compute:
    const_b = node.constant_inputs.get(1)
    if const_b is not None:
        if np.ndim(const_b) == 0:
            raise _fail(node, "B must have rank >= 1")
        const_b = _work(np.ascontiguousarray(const_b))
    native = _jit.enabled() and _native.enabled()  # read once, when the kernel is built
    # float16 B was widened to float32 above, but its A stays float16 and never takes the
    # tile form: packing its weights would only hold a second copy of them.
    a_float32 = node.input_types[0] in ("tensor(float)", None)
    packed = _gemm_loops.pack_weights(const_b) if native and a_float32 else None

    def compute(a, b):
        if a.ndim == 0 or b.ndim == 0:
            raise _fail(
                node, f"MatMul needs inputs of rank >= 1, got shapes {a.shape} and {b.shape}"
            )
        dt = a.dtype
        bw = const_b if const_b is not None else _work(b)
        y = None
        if native:
            if bw.ndim == 2:
                y = _gemm_loops.matmul(a, bw, None, None, packed)
            else:
                y = _gemm_loops.batched(a, bw)
        if y is None:
            y = np.asarray(_parallel.matmul(_work(a), bw))
        return (y if y.dtype == dt else y.astype(dt),)

    return compute


def _add_c(node: NodeInfo, y: np.ndarray, c: np.ndarray) -> np.ndarray:
    try:
        return np.add(y, c, out=y)
    except ValueError:
        raise _fail(node, f"C of shape {c.shape} does not broadcast to {y.shape}") from None


FUSED_DOMAIN = "ai.tessera.cpu"


@registry.kernel(
    "FusedMatMul", domain=FUSED_DOMAIN, since=1, types={0: ("tensor(float)", "tensor(double)")}
)
def fused_matmul(node: NodeInfo) -> Compute:
    """``activation(MatMul(A, B) + bias + Z)``: the CPU provider's fusion of a MatMul with the
    bias Add, residual Add and elementwise activation after it (inputs A, B, optional bias of
    shape (N,) and Z; the activation as in :mod:`tessera_cpu.kernels._fused_activation`). Each
    thread applies them to the block of the product it computed."""
    activation = _fused_activation.build(node)
    const_b = node.constant_inputs.get(1)
    if const_b is not None:
        const_b = np.ascontiguousarray(const_b)
    native = _jit.enabled() and _native.enabled()  # read once, when the kernel is built
    packed = _gemm_loops.pack_weights(const_b) if native else None

    def compute(a, b, bias=None, z=None):
        bw = const_b if const_b is not None else b
        if a.ndim < 2 or bw.ndim < 2:
            raise _fail(node, f"A and B must have rank >= 2, got shapes {a.shape} and {bw.shape}")
        if a.shape[-1] != bw.shape[-2]:
            raise _fail(node, f"inner dimensions differ: A is {a.shape}, B is {bw.shape}")
        if bias is not None and bias.shape != (bw.shape[-1],):
            raise _fail(node, f"bias of shape {bias.shape} is not ({bw.shape[-1]},)")
        shape = (*np.broadcast_shapes(a.shape[:-2], bw.shape[:-2]), a.shape[-2], bw.shape[-1])
        blockwise = z is None or z.shape == shape
        if native and blockwise:
            # On numba's threads: product, bias and Z per column band; then the activation.
            y = _gemm_loops.matmul(a, bw, bias, z, packed)
            if y is not None:
                if activation is not None:
                    activation(y)
                return (y,)

        def epilogue(block: np.ndarray, index: tuple) -> None:
            if bias is not None:
                block += bias[index[-1]]
            if z is not None and blockwise:
                block += z[index]
            if activation is not None and blockwise:
                activation(block)

        y = _parallel.matmul(a, bw, epilogue)
        if not blockwise:  # a Z that broadcasts: add it, then the activation, on the whole
            try:
                y = np.add(y, z)
            except ValueError:
                raise _fail(node, f"Z of shape {z.shape} does not broadcast to {shape}") from None
            if activation is not None:
                activation(y)
        return (y,)

    return compute


# --- Gemm ----------------------------------------------------------------------------------


@registry.kernel("Gemm", since=(1, 6, 7, 9, 11, 13), types={"T": _FLOATS + _I32_64})
def gemm(node: NodeInfo) -> Compute:
    alpha = float(node.attr("alpha", 1.0))
    beta = float(node.attr("beta", 1.0))
    trans_a = bool(node.attr("transA", 0))
    trans_b = bool(node.attr("transB", 0))
    has_c = node.has_input(2) and beta != 0.0

    const_b = node.constant_inputs.get(1)
    b_scaled = False
    if const_b is not None:
        if np.ndim(const_b) != 2:
            raise _fail(node, f"B must be 2-D, got shape {np.shape(const_b)}")
        # Transpose once and, for floats, fold alpha into B so each run is one BLAS call.
        const_b = _work(const_b.T if trans_b else const_b)
        if const_b.dtype.kind == "f" and alpha != 1.0:
            const_b = const_b * const_b.dtype.type(alpha)
            b_scaled = True
        const_b = np.ascontiguousarray(const_b)

    const_c = node.constant_inputs.get(2) if has_c else None
    c_scaled = False
    if const_c is not None:
        const_c = _work(np.asarray(const_c))
        if const_c.dtype.kind == "f" and beta != 1.0:
            const_c = const_c * const_c.dtype.type(beta)
            c_scaled = True

    def compute(a, b, c=None):
        bw = const_b if const_b is not None else (_work(b).T if trans_b else _work(b))
        if a.ndim != 2 or bw.ndim != 2:
            raise _fail(node, f"A and B must be 2-D, got shapes {a.shape} and {bw.shape}")
        dt = a.dtype
        aw = _work(a)
        aw = aw.T if trans_a else aw
        if aw.shape[1] != bw.shape[0]:
            raise _fail(node, f"inner dimensions differ: A' is {aw.shape}, B' is {bw.shape}")
        y = _parallel.matmul(aw, bw)
        cw = None
        if has_c:
            cw = const_c if const_c is not None else (None if c is None else _work(c))
        if dt.kind != "f" and dt not in _LOWP:
            # Integer Gemm scales in float64 and casts back, as the reference does.
            if alpha != 1.0 or (cw is not None and beta != 1.0):
                y = y * alpha
                if cw is not None:
                    y = y + beta * cw
                return (y.astype(dt),)
            if cw is not None:
                y = _add_c(node, y, cw)
            return (y,)
        if alpha != 1.0 and not b_scaled:
            y *= y.dtype.type(alpha)
        if cw is not None:
            if beta != 1.0 and not c_scaled:
                cw = cw * cw.dtype.type(beta)
            y = _add_c(node, y, cw)
        return (y if y.dtype == dt else y.astype(dt),)

    return compute


# --- MatMulInteger / QLinearMatMul ---------------------------------------------------------


def _zero_point_rows(zp: np.ndarray, a_ndim: int) -> np.ndarray:
    """A 1-D per-row zero point/scale of A becomes a column so it lines up with A's rows."""
    zp = np.asarray(zp)
    if zp.ndim == 1 and zp.size > 1 and a_ndim >= 2:
        return zp.reshape(-1, 1)
    return zp


# (u)int8 differences are at most 255 in magnitude, so float32 sums of up to 256 products
# (< 2**24) are exact: wider K is split into such chunks and summed in int32.
_K_CHUNK = 256


def _centered(x: np.ndarray, zp, rows: bool) -> np.ndarray:
    xw = x.astype(np.float32)
    if zp is None:
        return xw
    zp = _zero_point_rows(zp, x.ndim) if rows else np.asarray(zp)
    if np.any(zp):
        xw -= zp.astype(np.float32)
    return xw


def _integer_product(node: NodeInfo, a, a_zp, b, b_zp, b_centered=None) -> np.ndarray:
    """(a - a_zp) @ (b - b_zp) in int32, exactly, using float32 BLAS."""
    if a.ndim == 0 or b.ndim == 0:
        raise _fail(node, f"inputs must have rank >= 1, got shapes {a.shape} and {b.shape}")
    k = a.shape[-1]
    if k != b.shape[0 if b.ndim == 1 else -2]:
        raise _fail(node, f"inner dimensions differ: A is {a.shape}, B is {b.shape}")
    aw = _centered(a, a_zp, True)
    bw = b_centered if b_centered is not None else _centered(b, b_zp, False)
    if k <= _K_CHUNK:
        return np.asarray(np.matmul(aw, bw)).astype(np.int32)
    acc = None
    for s in range(0, k, _K_CHUNK):
        e = s + _K_CHUNK
        part = np.asarray(np.matmul(aw[..., s:e], bw[s:e] if bw.ndim == 1 else bw[..., s:e, :]))
        part = part.astype(np.int32)
        acc = part if acc is None else np.add(acc, part, out=acc)
    return acc


@registry.kernel("MatMulInteger", since=10, types={"T1": _Q8, "T2": _Q8})
def matmul_integer(node: NodeInfo) -> Compute:
    const_b = node.constant_inputs.get(1)
    b_pre = None
    if const_b is not None and (not node.has_input(3) or 3 in node.constant_inputs):
        b_pre = _centered(const_b, node.constant_inputs.get(3), False)

    def compute(a, b, a_zero_point=None, b_zero_point=None):
        return (_integer_product(node, a, a_zero_point, b, b_zero_point, b_pre),)

    return compute


@registry.kernel(
    "QLinearMatMul",
    since=(10, 21),
    types={
        "T1": _Q8,
        "T2": _Q8,
        "T3": _Q8,
        "TS": ("tensor(float)", "tensor(float16)", "tensor(bfloat16)"),
    },
)
def qlinear_matmul(node: NodeInfo) -> Compute:
    out_dtype = node.output_dtype(0)

    def compute(a, a_scale, a_zero_point, b, b_scale, b_zero_point, y_scale, y_zero_point):
        c = _integer_product(node, a, a_zero_point, b, b_zero_point)
        # Scales are combined in float32 (16-bit scales widened first, as onnxruntime does) and
        # applied in float64 so the rounding to integers sees the exact products.
        sa = _zero_point_rows(a_scale, a.ndim).astype(np.float32)
        sb = np.asarray(b_scale).astype(np.float32)
        factor = (sa * sb / np.asarray(y_scale).astype(np.float32)).astype(np.float64)
        d = np.asarray(np.multiply(c, factor, dtype=np.float64))
        if y_zero_point is not None:
            d += np.asarray(y_zero_point).astype(np.float64)
        dt = y_zero_point.dtype if y_zero_point is not None else (out_dtype or a.dtype)
        info = np.iinfo(dt)
        np.rint(d, out=d)
        np.clip(d, info.min, info.max, out=d)
        return (d.astype(dt),)

    return compute


# --- Einsum --------------------------------------------------------------------------------


def _einsum_terms(equation: str, ranks: tuple[int, ...]) -> tuple[list[list], list] | None:
    """Per-operand and output label lists with every "..." spelled out as numbered labels."""
    lhs, arrow, rhs = equation.partition("->")
    terms = lhs.split(",")
    ell_rank = max([r - (len(t) - 3) for t, r in zip(terms, ranks) if "..." in t], default=0)
    out_terms = []
    for term, rank in zip(terms, ranks):
        if "..." in term:
            n = rank - (len(term) - 3)
            if n < 0:
                return None
            head, _, tail = term.partition("...")
            # Ellipsis dims are right-aligned across operands, like broadcasting.
            out_terms.append(list(head) + list(range(ell_rank - n, ell_rank)) + list(tail))
        elif len(term) != rank:
            return None
        else:
            out_terms.append(list(term))
    ell = list(range(ell_rank))
    if arrow:
        head, dots, tail = rhs.partition("...")
        out = list(head) + (ell if dots else []) + list(tail)
    else:
        letters = [c for t in terms for c in t.replace("...", "")]
        out = ell + sorted(c for c in set(letters) if letters.count(c) == 1)
    return out_terms, out


def _einsum_pair(a: np.ndarray, la: list, b: np.ndarray, lb: list, out: list) -> np.ndarray | None:
    """A two-operand einsum as one batched matmul, or None when it needs the general path."""
    if len(set(la)) != len(la) or len(set(lb)) != len(lb) or len(set(out)) != len(out):
        return None
    size: dict = {}
    for x, labels in ((a, la), (b, lb)):
        for lab, d in zip(labels, x.shape):
            if size.setdefault(lab, d) != d:
                return None  # broadcast (size-1) label: leave it to numpy
    keep = set(out)
    # Labels private to one operand and absent from the output are summed away first.
    only_a = [i for i, lab in enumerate(la) if lab not in lb and lab not in keep]
    only_b = [i for i, lab in enumerate(lb) if lab not in la and lab not in keep]
    if only_a:
        a = a.sum(axis=tuple(only_a))
        la = [lab for i, lab in enumerate(la) if i not in only_a]
    if only_b:
        b = b.sum(axis=tuple(only_b))
        lb = [lab for i, lab in enumerate(lb) if i not in only_b]
    batch = [lab for lab in out if lab in la and lab in lb]
    free_a = [lab for lab in out if lab in la and lab not in lb]
    free_b = [lab for lab in out if lab in lb and lab not in la]
    contract = [lab for lab in la if lab in lb and lab not in keep]
    if len(batch) + len(free_a) + len(free_b) != len(out):
        return None
    bshape = tuple(size[lab] for lab in batch)
    m = int(np.prod([size[lab] for lab in free_a], dtype=np.int64))
    n = int(np.prod([size[lab] for lab in free_b], dtype=np.int64))
    k = int(np.prod([size[lab] for lab in contract], dtype=np.int64))
    at = a.transpose([la.index(lab) for lab in batch + free_a + contract]).reshape((*bshape, m, k))
    bt = b.transpose([lb.index(lab) for lab in batch + contract + free_b]).reshape((*bshape, k, n))
    y = np.matmul(at, bt).reshape(bshape + tuple(size[lab] for lab in free_a + free_b))
    order = batch + free_a + free_b
    return y.transpose([order.index(lab) for lab in out])


@registry.kernel("Einsum", since=(12, 28), types={"T": _FLOATS + _ALL_INTS})
def einsum(node: NodeInfo) -> Compute:
    equation = str(node.attr("equation")).replace(" ", "")
    if not equation:
        raise _fail(node, "equation is empty")
    lhs = equation.split("->")[0]
    n_terms = len(lhs.split(","))
    if n_terms != node.num_inputs:
        raise _fail(
            node,
            f"equation {equation!r} has {n_terms} operands but the node has {node.num_inputs} inputs",
        )
    # Contraction paths depend only on shapes; remember them so each run skips the search.
    paths: dict[tuple, list] = {}

    def compute(*inputs):
        dt = inputs[0].dtype
        ops = [_work(x) for x in inputs]
        y = None
        if len(ops) == 2:
            terms = _einsum_terms(equation, (ops[0].ndim, ops[1].ndim))
            if terms is not None:
                (la, lb), out = terms
                y = _einsum_pair(ops[0], la, ops[1], lb, out)
        if y is None and len(ops) == 1:
            y = np.einsum(equation, ops[0])
        elif y is None:
            key = tuple(x.shape for x in ops)
            path = paths.get(key)
            if path is None:
                path = np.einsum_path(equation, *ops, optimize="greedy")[0]
                if len(paths) < 64:
                    paths[key] = path
            y = np.einsum(equation, *ops, optimize=path)
        y = np.asarray(y)
        return (y if y.dtype == dt else y.astype(dt),)

    return compute


# --- Det -----------------------------------------------------------------------------------


@registry.kernel("Det", since=(11, 22), types={"T": _FLOATS})
def det(node: NodeInfo) -> Compute:
    def compute(x):
        if x.ndim < 2 or x.shape[-1] != x.shape[-2]:
            raise _fail(node, f"input must be [..., M, M], got shape {x.shape}")
        dt = x.dtype
        y = np.asarray(np.linalg.det(_work(x)))
        return (y if y.dtype == dt else y.astype(dt),)

    return compute
