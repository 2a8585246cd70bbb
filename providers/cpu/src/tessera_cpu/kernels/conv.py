"""Convolution kernels (Conv, ConvTranspose, ConvInteger, QLinearConv, DeformConv, CausalConvWithState, Col2Im) on BLAS GEMMs."""

from __future__ import annotations

import itertools
import math

import numpy as np
from numpy.lib.stride_tricks import as_strided

from tessera.provider import FLOAT_TYPES, NUMERIC_TYPES, NodeInfo
from tessera_cpu import _jit, _parallel
from tessera_cpu.kernels import _conv2d, _conv_loops, _fused_activation
from tessera_cpu.kernels._registry import registry

_AUTO_PADS = ("NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID")


def compute_dtype(dtype: np.dtype) -> np.dtype:
    """The dtype arithmetic runs in: float16/bfloat16 go through float32 (BLAS, and accuracy)."""
    return np.dtype(np.float64) if dtype == np.float64 else np.dtype(np.float32)


def window_attrs(node: NodeInfo) -> tuple:
    """(kernel_shape, strides, dilations, pads, auto_pad) as given; None where absent."""
    auto_pad = node.attr("auto_pad", "NOTSET") or "NOTSET"
    if auto_pad not in _AUTO_PADS:
        raise ValueError(f"{node.describe()}: auto_pad {auto_pad!r} is not one of {_AUTO_PADS}")
    ks = node.attr("kernel_shape", None)
    strides = node.attr("strides", None)
    dil = node.attr("dilations", None)
    pads = node.attr("pads", None)
    for name, v in (("strides", strides), ("dilations", dil)):
        if v is not None and any(int(s) < 1 for s in v):
            raise ValueError(f"{node.describe()}: {name} must be positive, got {list(v)}")
    if pads is not None and any(int(p) < 0 for p in pads):
        raise ValueError(f"{node.describe()}: pads must be non-negative, got {list(pads)}")
    as_list = lambda v: None if v is None else [int(i) for i in v]  # noqa: E731
    return as_list(ks), as_list(strides), as_list(dil), as_list(pads), auto_pad


def fill_window(node: NodeInfo, nd: int, ks, strides, dil, pads) -> tuple:
    """Defaults for a rank-``nd`` window, with length checks against the attributes given."""
    strides = strides or [1] * nd
    dil = dil or [1] * nd
    pads = pads or [0] * (2 * nd)
    if len(ks) != nd or len(strides) != nd or len(dil) != nd or len(pads) != 2 * nd:
        raise ValueError(
            f"{node.describe()}: kernel_shape {ks}, strides {strides}, dilations {dil} and "
            f"pads {pads} do not match {nd} spatial dimensions"
        )
    return ks, strides, dil, pads


def same_pads(in_sp, ks, strides, dil, auto_pad, pads) -> tuple[list, list, list]:
    """(pads_begin, pads_end, out_shape) of a floor-mode sliding window (Conv semantics)."""
    nd = len(in_sp)
    pb, pe, out = [], [], []
    for i in range(nd):
        keff = (ks[i] - 1) * dil[i] + 1
        if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            o = -(-in_sp[i] // strides[i])
            total = max(0, (o - 1) * strides[i] + keff - in_sp[i])
            small = total // 2
            b = small if auto_pad == "SAME_UPPER" else total - small
            pb.append(b)
            pe.append(total - b)
        elif auto_pad == "VALID":
            pb.append(0)
            pe.append(0)
            o = (in_sp[i] - keff) // strides[i] + 1
        else:
            pb.append(pads[i])
            pe.append(pads[i + nd])
            o = (in_sp[i] + pads[i] + pads[i + nd] - keff) // strides[i] + 1
        out.append(o)
    return pb, pe, out


def pad_input(x: np.ndarray, pb, pe, value=0) -> np.ndarray:
    """``x`` with its spatial axes (2..) padded by a constant; ``x`` itself when no padding."""
    if not any(pb) and not any(pe):
        return x
    shape = x.shape[:2] + tuple(s + b + e for s, b, e in zip(x.shape[2:], pb, pe))
    xp = np.full(shape, value, dtype=x.dtype)
    xp[(slice(None), slice(None), *tuple(slice(b, b + s) for b, s in zip(pb, x.shape[2:])))] = x
    return xp


def window_view(xp: np.ndarray, ks, strides, dil, out) -> np.ndarray:
    """Strided view (N, C, *kernel, *out) of the padded input: no copy."""
    xp = np.ascontiguousarray(xp)
    sp = xp.strides[2:]
    shape = xp.shape[:2] + tuple(ks) + tuple(out)
    st = (
        xp.strides[:2]
        + tuple(s * d for s, d in zip(sp, dil))
        + tuple(s * t for s, t in zip(sp, strides))
    )
    return as_strided(xp, shape, st, writeable=False)


def _conv_forward(x, w2, group, ks, strides, dil, pb, pe, out) -> np.ndarray:
    """Y (N, G*Mg, prod(out)) of a grouped convolution; ``w2`` is (G, Mg, Cg*prod(K))."""
    n, c = x.shape[:2]
    g = group
    cg = c // g
    kprod = math.prod(ks)
    oprod = math.prod(out)
    m = w2.shape[0] * w2.shape[1]
    if kprod == 1 and not any(pb) and not any(pe) and all(s == 1 for s in strides):
        cols = x.reshape(n, g, cg, oprod)
        return _parallel.matmul(w2, cols).reshape(n, m, oprod)
    xp = pad_input(x, pb, pe)
    view = window_view(xp, ks, strides, dil, out)
    cols = view.reshape(n, g, cg * kprod, oprod)
    return _parallel.matmul(w2, cols).reshape(n, m, oprod)


def _shift_weight(w: np.ndarray, group: int, dt) -> np.ndarray:
    """(G, K*Mg, Cg) weights: one (Mg, Cg) block per kernel tap, for :func:`_conv_shifted`."""
    m, cg = w.shape[:2]
    kprod = math.prod(w.shape[2:])
    taps = w.reshape(group, m // group, cg, kprod).transpose(0, 3, 1, 2)
    return np.ascontiguousarray(
        taps.reshape(group, kprod * (m // group), cg).astype(dt, copy=False)
    )


def _conv_shifted(x, wall, group, ks, dil, pb, pe, out) -> np.ndarray:
    """Stride-1 convolution without im2col: Y (N, G*Mg, prod(out)).

    One GEMM multiplies every tap's weights with the flat padded input; with stride 1 the
    contribution of tap k to all outputs is then one contiguous slice of that product, shifted
    by the tap's flat offset, so the output is a sum of K shifted slices. It moves K*M values
    per pixel where im2col moves K*C, so it wins whenever M <= C.
    """
    n, c = x.shape[:2]
    cg = c // group
    kprod = math.prod(ks)
    mg = wall.shape[1] // kprod
    xp = np.ascontiguousarray(pad_input(x, pb, pe))
    sp = xp.shape[2:]
    pstride = [math.prod(sp[a + 1 :]) for a in range(len(sp))]
    length = sum((o - 1) * st for o, st in zip(out, pstride)) + 1
    z = _parallel.matmul(wall, xp.reshape(n, group, cg, math.prod(sp)))  # (N, G, K*Mg, prod(P))
    y = np.empty((n, group, mg, out[0] * pstride[0]), dtype=z.dtype)
    for t, kk in enumerate(itertools.product(*(range(k) for k in ks))):
        off = sum(k * d * st for k, d, st in zip(kk, dil, pstride))
        src = z[:, :, t * mg : (t + 1) * mg, off : off + length]
        if t == 0:
            y[..., :length] = src
        else:
            y[..., :length] += src
    # Positions past each row's last output (and past `length`) are scratch: crop them.
    y = y.reshape(n, group * mg, out[0], *sp[1:])
    y = y[(Ellipsis, *(slice(0, o) for o in out[1:]))]
    return np.ascontiguousarray(y).reshape(n, group * mg, math.prod(out))


class _ConvPlan:
    """Shape-dependent conv geometry, cached per input shape."""

    def __init__(self, node: NodeInfo, w_shape, attrs, group: int) -> None:
        self.node = node
        self.w_shape = tuple(w_shape)
        self.attrs = attrs
        self.group = group
        self._cache: dict[tuple, tuple] = {}

    def __call__(self, x_shape: tuple) -> tuple:
        plan = self._cache.get(x_shape)
        if plan is None:
            plan = self._cache[x_shape] = self._make(x_shape)
        return plan

    def _make(self, x_shape):
        node = self.node
        nd = len(x_shape) - 2
        ks, strides, dil, pads, auto_pad = self.attrs
        ks = ks or list(self.w_shape[2:])
        if nd < 1 or len(self.w_shape) != nd + 2:
            raise ValueError(
                f"{node.describe()}: input shape {x_shape} and weight shape {self.w_shape} disagree in rank"
            )
        ks, strides, dil, pads = fill_window(node, nd, ks, strides, dil, pads)
        if list(ks) != list(self.w_shape[2:]):
            raise ValueError(
                f"{node.describe()}: kernel_shape {ks} disagrees with weight shape {self.w_shape}"
            )
        if x_shape[1] != self.w_shape[1] * self.group or self.w_shape[0] % self.group:
            raise ValueError(
                f"{node.describe()}: input channels {x_shape[1]}, weight shape {self.w_shape} and "
                f"group {self.group} are inconsistent"
            )
        pb, pe, out = same_pads(x_shape[2:], ks, strides, dil, auto_pad, pads)
        if any(o < 0 for o in out):
            raise ValueError(
                f"{node.describe()}: input {x_shape} is smaller than the kernel window"
            )
        return ks, strides, dil, pb, pe, out


class WeightCache:
    """The prepared form of the last read-only weight array seen.

    Initializers reach kernels as the same read-only array on every run, so their reshaped,
    converted weights are built once; writeable (fed) arrays are prepared on every call.
    """

    def __init__(self, prepare) -> None:
        self._prepare = prepare
        self._state: tuple = (None, None)

    def get(self, w: np.ndarray):
        seen, prepared = self._state
        if seen is w:
            return prepared
        prepared = self._prepare(w)
        if not w.flags.writeable:
            self._state = (w, prepared)
        return prepared


def _prepare_weight(w: np.ndarray, group: int, dt) -> np.ndarray:
    """(G, M/G, Cg*prod(K)) weights in the compute dtype."""
    return np.ascontiguousarray(w.reshape(group, w.shape[0] // group, -1).astype(dt, copy=False))


def _conv_kernel(node: NodeInfo, activation=None, loop_activation=(0, 0.0, 0.0)):
    """Conv, and FusedConv's ``act(Conv(X, W, B) + Z)``: 2-D inputs go through
    :class:`~tessera_cpu.kernels._conv2d.Conv2D`, other ranks through batched GEMMs.
    ``loop_activation`` is the activation as a ``_conv_loops`` code and parameters, for the
    compiled one-pass epilogue (None: it has no such form)."""
    attrs = window_attrs(node)
    jit = _jit.enabled()  # read once, when the kernel is built, for the engines too
    use_loop = jit and loop_activation is not None
    loop_bias_only = (_conv_loops.NO_ACTIVATION, 0.0, 0.0) if jit else None
    group = int(node.attr("group", 1))
    unit_strides = all(int(s) == 1 for s in (attrs[1] or [1]))

    def shifted(w: np.ndarray) -> bool:
        # The shifted-GEMM form pays when M <= C per group and the GEMMs are not degenerate.
        cg, mg = w.shape[1], w.shape[0] // group
        return unit_strides and math.prod(w.shape[2:]) > 1 and mg <= cg and cg >= 8

    def prepare(w: np.ndarray) -> np.ndarray:
        dt = compute_dtype(w.dtype)
        return _shift_weight(w, group, dt) if shifted(w) else _prepare_weight(w, group, dt)

    weights = WeightCache(prepare)
    biases = WeightCache(lambda b: b.astype(compute_dtype(b.dtype)).reshape(-1))
    plans: dict = {}
    engines: dict = {}  # (x shape, w shape) -> Conv2D, for read-only (initializer) weights
    engine_weight: list = [None]
    epilogues: list = [None, None]  # the last Epilogue made, without and with a late Z

    def engine(x_shape, w, geometry) -> _conv2d.Conv2D:
        if w.flags.writeable or engine_weight[0] is not w:
            engines.clear()
            engine_weight[0] = None if w.flags.writeable else w
        key = (x_shape, w.shape)
        eng = engines.get(key)
        if eng is None:
            ks, strides, dil, pb, pe, out = geometry
            wc = w.astype(compute_dtype(w.dtype), copy=False)
            eng = _conv2d.Conv2D(wc, group, x_shape, ks, strides, dil, pb, pe, out, jit=jit)
            if not w.flags.writeable:
                engines[key] = eng
        return eng

    def compute(x, w, b=None, z=None):
        dt = compute_dtype(x.dtype)
        plan = plans.get(w.shape)
        if plan is None:
            plan = plans[w.shape] = _ConvPlan(node, w.shape, attrs, group)
        geometry = plan(x.shape)
        ks, strides, dil, pb, pe, out = geometry
        m = w.shape[0]
        bias = biases.get(b) if b is not None else None
        if bias is not None and bias.shape != (m,):
            raise ValueError(
                f"{node.describe()}: bias of shape {b.shape} does not match {m} output channels"
            )
        y_shape = (x.shape[0], m, *out)
        zc = None
        if z is not None and z.shape == y_shape:
            zc = z.astype(dt, copy=False)
        late = z is not None and zc is None  # a broadcasting Z is added after the whole output
        epi = epilogues[late]
        if epi is None or epi.bias is not bias:  # an initializer bias is the same array each run
            if late:
                epi = _conv2d.Epilogue(bias, None, loop_bias_only)
            else:
                epi = _conv2d.Epilogue(bias, activation, loop_activation if use_loop else None)
            epilogues[late] = epi
        xc = x.astype(dt, copy=False)
        if x.ndim == 4 and math.prod(out) > 0:
            y = engine(x.shape, w, geometry)(xc, epi, zc)
        else:
            w2 = weights.get(w)
            if shifted(w) and math.prod(out) > 0:
                y = _conv_shifted(xc, w2, group, ks, dil, pb, pe, out)
            else:
                # Depthwise and grouped convs take the same path: one batched GEMM over (N, G).
                y = _conv_forward(xc, w2, group, ks, strides, dil, pb, pe, out)
            y = y.reshape(y_shape)
            for i in range(y.shape[0]):
                epi.apply(y[i].reshape(m, -1), 0, m, None if zc is None else zc[i].reshape(m, -1))
        if late:
            try:
                y = np.add(y, z.astype(dt, copy=False))
            except ValueError:
                raise ValueError(
                    f"{node.describe()}: Z of shape {z.shape} does not broadcast to the "
                    f"convolution's output {y_shape}"
                ) from None
            if activation is not None:
                activation(y)
        return (y.reshape(y.shape if late else y_shape).astype(x.dtype, copy=False),)

    return compute


@registry.kernel("Conv", since=(1, 11, 22), types={"T": FLOAT_TYPES})
def conv(node: NodeInfo):
    return _conv_kernel(node)


FUSED_DOMAIN = "ai.tessera.cpu"
# FusedConv's activations: name -> (parameter count, in-place function factory, the code of
# the compiled epilogue's form in _conv_loops).
ACTIVATIONS = {
    "": (0, lambda: None, _conv_loops.NO_ACTIVATION),
    "Relu": (0, lambda: _fused_activation.relu, _conv_loops.RELU),
    "LeakyRelu": (1, _fused_activation.leaky_relu, _conv_loops.LEAKY_RELU),
    "Clip": (2, _fused_activation.clip, _conv_loops.CLIP),  # -inf / inf where the Clip had none
}


@registry.kernel(
    "FusedConv", domain=FUSED_DOMAIN, since=1, types={0: ("tensor(float)", "tensor(double)")}
)
def fused_conv(node: NodeInfo):
    """``activation(Conv(X, W, B) + Z)``: the CPU provider's fusion of a Conv with the Add and
    the activation after it (inputs X, W, optional B and Z; Conv's attributes plus
    ``activation`` and ``activation_params``, as onnxruntime's com.microsoft FusedConv)."""
    name = node.attr("activation", "") or ""
    params = [float(p) for p in (node.attr("activation_params", None) or [])]
    if name not in ACTIVATIONS:
        raise ValueError(
            f"{node.describe()}: activation {name!r} is not one of {sorted(ACTIVATIONS)}"
        )
    count, make, code = ACTIVATIONS[name]
    if len(params) != count:
        raise ValueError(
            f"{node.describe()}: activation {name or 'none'} takes {count} activation_params, "
            f"got {params}"
        )
    p0, p1 = (*params, 0.0, 0.0)[:2]
    return _conv_kernel(node, make(*params), (code, p0, p1))


def col2im_add(cols: np.ndarray, ks, strides, dil, pb, out_sp) -> np.ndarray:
    """Scatter-add (N, C, *K, *B) columns into an (N, C, *out_sp) image; pb may be negative."""
    nd = len(ks)
    n, c = cols.shape[:2]
    blocks = cols.shape[2 + nd :]
    full = [(b - 1) * s + (k - 1) * d + 1 for b, s, k, d in zip(blocks, strides, ks, dil)]
    off = [max(0, -p) for p in pb]
    length = [max(f, p + o) + of for f, p, o, of in zip(full, pb, out_sp, off)]
    buf = np.zeros((n, c, *length), dtype=cols.dtype)
    for kk in itertools.product(*(range(k) for k in ks)):
        dst = tuple(
            slice(of + k * d, of + k * d + (b - 1) * s + 1, s)
            for of, k, d, b, s in zip(off, kk, dil, blocks, strides)
        )
        buf[(slice(None), slice(None), *dst)] += cols[(slice(None), slice(None), *kk)]
    crop = tuple(slice(p + of, p + of + o) for p, of, o in zip(pb, off, out_sp))
    if all(s.start == 0 and s.stop == ln for s, ln in zip(crop, length)):
        return buf
    return np.ascontiguousarray(buf[(slice(None), slice(None), *crop)])


@registry.kernel("ConvTranspose", since=(1, 11, 22), types={"T": FLOAT_TYPES})
def conv_transpose(node: NodeInfo):
    ks_attr, strides_a, dil_a, pads_a, auto_pad = window_attrs(node)
    group = int(node.attr("group", 1))
    out_pad_a = node.attr("output_padding", None)
    out_shape_a = node.attr("output_shape", None)

    def prep_w(w):
        dt = compute_dtype(w.dtype)
        c, mg = w.shape[:2]
        kprod = math.prod(w.shape[2:])
        return np.ascontiguousarray(
            w.reshape(group, c // group, mg * kprod).transpose(0, 2, 1).astype(dt, copy=False)
        )

    weights = WeightCache(prep_w)

    def geometry(x_shape, w_shape):
        nd = len(x_shape) - 2
        if nd < 1 or len(w_shape) != nd + 2 or x_shape[1] != w_shape[0] or w_shape[0] % group:
            raise ValueError(
                f"{node.describe()}: input shape {x_shape}, weight shape {w_shape} and group {group} are inconsistent"
            )
        ks, strides, dil, pads = fill_window(
            node, nd, ks_attr or list(w_shape[2:]), strides_a, dil_a, pads_a
        )
        opad = [int(v) for v in out_pad_a] if out_pad_a is not None else [0] * nd
        if len(opad) == 2 * nd:  # some exporters write begin/end pairs
            opad = opad[:nd]
        in_sp = x_shape[2:]
        keff = [(k - 1) * d + 1 for k, d in zip(ks, dil)]
        if out_shape_a is not None or auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            if out_shape_a is not None:
                target = [int(v) for v in out_shape_a][-nd:]
            else:
                target = [i * s for i, s in zip(in_sp, strides)]
            pb = []
            for i in range(nd):
                # A target larger than the full output is zero-filled at the end (as onnxruntime).
                total = max(0, strides[i] * (in_sp[i] - 1) + opad[i] + keff[i] - target[i])
                pb.append(total // 2 if auto_pad == "SAME_UPPER" else total - total // 2)
            return ks, strides, dil, pb, target
        if auto_pad == "VALID":
            pads = [0] * (2 * nd)
        out = [
            strides[i] * (in_sp[i] - 1) + opad[i] + keff[i] - pads[i] - pads[i + nd]
            for i in range(nd)
        ]
        return ks, strides, dil, pads[:nd], out

    cache: dict = {}

    def compute(x, w, b=None):
        key = (x.shape, w.shape)
        geo = cache.get(key)
        if geo is None:
            geo = cache[key] = geometry(x.shape, w.shape)
        ks, strides, dil, pb, out = geo
        dt = compute_dtype(x.dtype)
        wt = weights.get(w)
        n, c = x.shape[:2]
        xs = x.astype(dt, copy=False).reshape(n, group, c // group, math.prod(x.shape[2:]))
        cols = _parallel.matmul(wt, xs)  # (N, G, Mg*K, S)
        m = w.shape[1] * group
        cols = cols.reshape(n, m, *ks, *x.shape[2:])
        y = col2im_add(cols, ks, strides, dil, pb, out)
        if b is not None:
            y += b.astype(dt, copy=False).reshape((1, -1) + (1,) * len(out))
        return (y.astype(x.dtype, copy=False),)

    return compute


@registry.kernel("Col2Im", since=18, types={"T": NUMERIC_TYPES})
def col2im(node: NodeInfo):
    dil_a = node.attr("dilations", None)
    pads_a = node.attr("pads", None)
    strides_a = node.attr("strides", None)

    def compute(x, image_shape, block_shape):
        img = [int(v) for v in image_shape]
        ks = [int(v) for v in block_shape]
        nd = len(img)
        strides = [int(v) for v in strides_a] if strides_a else [1] * nd
        dil = [int(v) for v in dil_a] if dil_a else [1] * nd
        pads = [int(v) for v in pads_a] if pads_a else [0] * (2 * nd)
        if len(ks) != nd or len(strides) != nd or len(dil) != nd or len(pads) != 2 * nd:
            raise ValueError(
                f"{node.describe()}: image_shape, block_shape, strides, dilations and pads disagree in rank"
            )
        kprod = math.prod(ks)
        blocks = [
            (img[i] + pads[i] + pads[i + nd] - (ks[i] - 1) * dil[i] - 1) // strides[i] + 1
            for i in range(nd)
        ]
        if x.ndim != 3 or x.shape[1] % kprod or x.shape[2] != math.prod(blocks):
            raise ValueError(
                f"{node.describe()}: input shape {x.shape} does not hold (C*{kprod}, {math.prod(blocks)}) "
                f"blocks for image {img}"
            )
        cols = x.reshape(x.shape[0], x.shape[1] // kprod, *ks, *blocks)
        if (x.dtype.kind in "fc" and x.dtype.itemsize >= 4) or x.dtype.kind in "iu":
            y = col2im_add(cols, ks, strides, dil, pads[:nd], img)
        else:
            y = col2im_add(cols.astype(np.float32), ks, strides, dil, pads[:nd], img).astype(
                x.dtype
            )
        return (y,)

    return compute


def _int_conv_core(node: NodeInfo, attrs, group: int):
    """Integer convolution via exact float64 BLAS: returns f(xc, wc) -> int64-valued float64 Y."""
    plans: dict = {}

    def run(xc: np.ndarray, wc: np.ndarray, x_zp_fill) -> np.ndarray:
        plan = plans.get(wc.shape)
        if plan is None:
            plan = plans[wc.shape] = _ConvPlan(node, wc.shape, attrs, group)
        ks, strides, dil, pb, pe, out = plan(xc.shape)
        w2 = wc.reshape(group, wc.shape[0] // group, -1)
        # Padding must hold the zero point so that it contributes (x - x_zp) = 0.
        if x_zp_fill != 0 and (any(pb) or any(pe)):
            xc = pad_input(xc, pb, pe, x_zp_fill) - x_zp_fill
            pb = pe = [0] * len(pb)
        elif x_zp_fill != 0:
            xc = xc - x_zp_fill
        y = _conv_forward(xc, w2, group, ks, strides, dil, pb, pe, out)
        return y.reshape(xc.shape[0], wc.shape[0], *out)

    return run


def _zero_point_w(w_zp, m: int, nd: int):
    if w_zp is None:
        return 0.0
    w_zp = np.asarray(w_zp, dtype=np.float64)
    if w_zp.size > 1:
        return w_zp.reshape((m,) + (1,) * (nd + 1))
    return float(w_zp.reshape(()))


@registry.kernel("ConvInteger", since=10)
def conv_integer(node: NodeInfo):
    attrs = window_attrs(node)
    group = int(node.attr("group", 1))
    core = _int_conv_core(node, attrs, group)

    def compute(x, w, x_zero_point=None, w_zero_point=None):
        xzp = 0.0 if x_zero_point is None else float(np.asarray(x_zero_point).reshape(-1)[0])
        wzp = _zero_point_w(w_zero_point, w.shape[0], w.ndim - 2)
        wc = w.astype(np.float64) - wzp
        y = core(x.astype(np.float64), wc, xzp)
        return (y.astype(np.int32),)

    return compute


@registry.kernel("QLinearConv", since=10)
def qlinear_conv(node: NodeInfo):
    attrs = window_attrs(node)
    group = int(node.attr("group", 1))
    core = _int_conv_core(node, attrs, group)

    def compute(x, x_scale, x_zero_point, w, w_scale, w_zero_point, y_scale, y_zero_point, b=None):
        xzp = float(np.asarray(x_zero_point).reshape(-1)[0]) if x_zero_point is not None else 0.0
        wzp = _zero_point_w(w_zero_point, w.shape[0], w.ndim - 2)
        y = core(x.astype(np.float64), w.astype(np.float64) - wzp, xzp)
        nd = w.ndim - 2
        if b is not None:
            y += b.astype(np.float64).reshape((1, -1) + (1,) * nd)
        y = np.trunc(y)  # the accumulator is int32
        ws = np.asarray(w_scale, dtype=np.float32)
        if ws.size > 1:
            ws = ws.reshape((-1,) + (1,) * nd)
        mult = (
            np.float32(np.asarray(x_scale).reshape(-1)[0])
            * ws
            / np.float32(np.asarray(y_scale).reshape(-1)[0])
        )
        r = y * np.asarray(mult, dtype=np.float64)
        out_dt = y_zero_point.dtype if y_zero_point is not None else x.dtype
        if y_zero_point is not None:
            r += float(np.asarray(y_zero_point).reshape(-1)[0])
        info = np.iinfo(out_dt)
        r = np.clip(np.rint(r), info.min, info.max)
        return (r.astype(out_dt),)

    return compute


def _bilinear_gather(x: np.ndarray, pos: np.ndarray, og: int) -> np.ndarray:
    """Multilinear samples of x (N, C, *S) at pos (N, OG, P, nd) with zero outside: (N, C, P)."""
    n, c = x.shape[:2]
    sp = x.shape[2:]
    nd = len(sp)
    cog = c // og
    # Channels-last so that each gathered sample is one contiguous vector: (N, OG, S, Cog).
    xf = np.ascontiguousarray(x.reshape(n, og, cog, math.prod(sp)).transpose(0, 1, 3, 2))
    base = np.floor(pos)
    frac = pos - base
    base = base.astype(np.int64)
    strides = [math.prod(sp[i + 1 :]) for i in range(nd)]
    ni = np.arange(n)[:, None, None]
    gi = np.arange(og)[None, :, None]
    acc = np.zeros((n, og, pos.shape[2], cog), dtype=x.dtype)
    for corner in itertools.product((0, 1), repeat=nd):
        flat = np.zeros(base.shape[:3], dtype=np.int64)
        wgt = np.ones(base.shape[:3], dtype=x.dtype)
        valid = np.ones(base.shape[:3], dtype=bool)
        for a in range(nd):
            idx = base[..., a] + corner[a]
            valid &= (idx >= 0) & (idx < sp[a])
            flat += np.clip(idx, 0, sp[a] - 1) * strides[a]
            wgt *= frac[..., a] if corner[a] else 1 - frac[..., a]
        wgt = np.where(valid, wgt, 0).astype(x.dtype, copy=False)
        acc += xf[ni, gi, flat] * wgt[..., None]
    return acc.transpose(0, 1, 3, 2).reshape(n, c, pos.shape[2])


@registry.kernel("DeformConv", since=(19, 22), types={"T": FLOAT_TYPES})
def deform_conv(node: NodeInfo):
    ks_a, strides_a, dil_a, pads_a, _ = window_attrs(node)
    group = int(node.attr("group", 1))
    og = int(node.attr("offset_group", 1))

    def compute(x, w, offset, b=None, mask=None):
        dt = compute_dtype(x.dtype)
        nd = x.ndim - 2
        ks, strides, dil, pads = fill_window(
            node, nd, ks_a or list(w.shape[2:]), strides_a, dil_a, pads_a
        )
        n, c = x.shape[:2]
        m = w.shape[0]
        kprod = math.prod(ks)
        out = list(offset.shape[2:])
        if c != w.shape[1] * group or m % group or c % og or offset.shape[1] != og * kprod * nd:
            raise ValueError(
                f"{node.describe()}: X {x.shape}, W {w.shape}, offset {offset.shape}, group {group} "
                f"and offset_group {og} are inconsistent"
            )
        oprod = math.prod(out)
        # Sampling positions: window origin + dilated tap + learned offset, per (offset group, tap).
        grids = np.meshgrid(
            *(np.arange(o) * s - p for o, s, p in zip(out, strides, pads[:nd])), indexing="ij"
        )
        taps = np.meshgrid(*(np.arange(k) * d for k, d in zip(ks, dil)), indexing="ij")
        origin = np.stack([g.reshape(-1) for g in grids], -1)  # (O, nd)
        tap = np.stack([t.reshape(-1) for t in taps], -1)  # (K, nd)
        off = (
            offset.astype(dt, copy=False).reshape(n, og, kprod, nd, oprod).transpose(0, 1, 2, 4, 3)
        )
        pos = (tap[:, None, :] + origin[None, :, :])[None, None] + off  # (N, OG, K, O, nd)
        samples = _bilinear_gather(
            x.astype(dt, copy=False), pos.reshape(n, og, kprod * oprod, nd), og
        )
        samples = samples.reshape(n, og, c // og, kprod, oprod)
        if mask is not None:
            samples = samples * mask.astype(dt, copy=False).reshape(n, og, 1, kprod, oprod)
        cols = samples.reshape(n, group, (c // group) * kprod, oprod)
        w2 = w.astype(dt, copy=False).reshape(group, m // group, -1)
        y = np.matmul(w2, cols).reshape(n, m, oprod)
        if b is not None:
            y += b.astype(dt, copy=False).reshape(1, -1, 1)
        return (y.reshape(n, m, *out).astype(x.dtype, copy=False),)

    return compute


@registry.kernel(
    "CausalConvWithState",
    since=27,
    types={"T": ("tensor(float)", "tensor(float16)", "tensor(bfloat16)")},
)
def causal_conv_with_state(node: NodeInfo):
    activation = node.attr("activation", "none") or "none"
    if activation not in ("none", "silu", "swish"):
        raise ValueError(
            f"{node.describe()}: activation {activation!r} is not one of 'none', 'silu', 'swish'"
        )

    def compute(x, w, b=None, past_state=None):
        if x.ndim != 3 or w.ndim != 3 or w.shape[0] != x.shape[1] or w.shape[1] != 1:
            raise ValueError(
                f"{node.describe()}: input {x.shape} and weight {w.shape} are not (B, C, L) and (C, 1, k)"
            )
        bsz, c, length = x.shape
        k = w.shape[2]
        dt = compute_dtype(x.dtype)
        padded = np.empty((bsz, c, k - 1 + length), dtype=dt)
        if past_state is None:
            padded[:, :, : k - 1] = 0
        else:
            padded[:, :, : k - 1] = past_state
        padded[:, :, k - 1 :] = x
        wc = w.astype(dt, copy=False)
        y = np.zeros((bsz, c, length), dtype=dt)
        if b is not None:
            y += b.astype(dt, copy=False)[:, None]
        for j in range(k):
            y += wc[None, :, 0, j, None] * padded[:, :, j : j + length]
        if activation != "none":
            y = y / (1 + np.exp(-y))
        present = np.ascontiguousarray(padded[:, :, length:]).astype(x.dtype)
        return (y.astype(x.dtype, copy=False), present)

    return compute
