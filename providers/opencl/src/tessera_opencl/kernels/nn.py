"""Convolution and pooling (direct kernels, 1-3 spatial dims), and the normalizations:
BatchNormalization, InstanceNormalization, LayerNormalization, RMSNormalization."""

from __future__ import annotations

import numpy as np
import pyopencl as cl

from tessera.provider import NodeInfo
from tessera_opencl._runtime import Runtime, ctype, view_of
from tessera_opencl.kernels._registry import FLOATS, check, flit, registry
from tessera_opencl.kernels.im2col import conv_im2col

_F32 = ("tensor(float)", "tensor(double)")


def _geometry(node: NodeInfo, in_sp, kernel, ceil_mode: bool = False):
    """(output spatial dims, begin pads, strides, dilations) padded to 3 spatial dims."""
    nd = len(in_sp)
    strides = list(node.attr("strides", None) or [1] * nd)
    dil = list(node.attr("dilations", None) or [1] * nd)
    pads = list(node.attr("pads", None) or [0] * (2 * nd))
    auto = node.attr("auto_pad", "NOTSET")
    out, begin = [], []
    for i in range(nd):
        eff = (kernel[i] - 1) * dil[i] + 1
        if auto in ("SAME_UPPER", "SAME_LOWER"):
            o = -(-in_sp[i] // strides[i])
            total = max((o - 1) * strides[i] + eff - in_sp[i], 0)
            b = total // 2 if auto == "SAME_UPPER" else total - total // 2
        elif auto == "VALID":
            b = 0
            span = in_sp[i] - eff
            o = (-(-span // strides[i]) if ceil_mode else span // strides[i]) + 1
        else:
            b = pads[i]
            span = in_sp[i] + pads[i] + pads[i + nd] - eff
            o = (-(-span // strides[i]) if ceil_mode else span // strides[i]) + 1
            if ceil_mode and (o - 1) * strides[i] >= in_sp[i] + pads[i]:
                o -= 1
        out.append(max(o, 0))
        begin.append(b)
    fill = 3 - nd
    pad3 = lambda v, f: [f] * fill + list(v)  # noqa: E731
    return pad3(out, 1), pad3(begin, 0), pad3(strides, 1), pad3(dil, 1)


_CONV = """
// Window bounds per output position are computed once, so the inner loops carry no branches.
inline void span(long o, long s, long p, long d, long k, long n, long* lo, long* hi) {
  const long base = o * s - p;
  long a = base < 0 ? (-base + d - 1) / d : 0;
  long b = (n - base + d - 1) / d;
  *lo = a; *hi = b < k ? b : k;
}
__kernel void k(__global T* out, __global const T* x, __global const T* w, __global const T* bias,
                __global const long* m) {
  const long C = m[0], D = m[1], H = m[2], W = m[3], OC = m[4], OD = m[5], OH = m[6], OW = m[7];
  const long KD = m[8], KH = m[9], KW = m[10], G = m[20];
  long g = get_global_id(0);
  const long ow = g % OW; g /= OW; const long oh = g % OH; g /= OH;
  const long od = g % OD; g /= OD; const long oc = g % OC; const long n = g / OC;
  const long cpg = C / G, grp = oc / (OC / G);
  long d0, d1, h0, h1, w0, w1;
  span(od, m[11], m[17], m[14], KD, D, &d0, &d1);
  span(oh, m[12], m[18], m[15], KH, H, &h0, &h1);
  span(ow, m[13], m[19], m[16], KW, W, &w0, &w1);
  const long bd = od * m[11] - m[17], bh = oh * m[12] - m[18], bw = ow * m[13] - m[19];
  T acc = HAS_B ? bias[oc] : (T)0;
  for (long ic = 0; ic < cpg; ++ic) {
    __global const T* xc = x + (n * C + grp * cpg + ic) * D * H * W;
    __global const T* wc = w + (oc * cpg + ic) * KD * KH * KW;
    for (long kd = d0; kd < d1; ++kd) {
      const long id = bd + kd * m[14];
      for (long kh = h0; kh < h1; ++kh) {
        __global const T* xr = xc + (id * H + bh + kh * m[15]) * W + bw;
        __global const T* wr = wc + (kd * KH + kh) * KW;
        for (long kw = w0; kw < w1; ++kw) acc += xr[kw * m[16]] * wr[kw];
      }
    }
  }
  out[get_global_id(0)] = acc;
}
"""


def _pad3(shape) -> list[int]:
    return [1] * (3 - len(shape)) + list(shape)


@registry.kernel("Conv", since=(1, 11, 22), types={"T": _F32})
def conv(node: NodeInfo, rt: Runtime):
    group = int(node.attr("group", 1))

    def compute(x, w, b=None):
        x, w = rt.as_device(x), rt.as_device(w)
        sp = x.shape[2:]
        ks = node.attr("kernel_shape", None) or w.shape[2:]
        out_sp, begin, strides, dil = _geometry(node, sp, ks)
        n, c = x.shape[:2]
        oc = w.shape[0]
        shape = (n, oc, *tuple(out_sp[3 - len(sp) :]))
        out = rt.empty(shape, x.dtype)
        meta = [c, *_pad3(sp), oc, *out_sp, *_pad3(ks), *strides, *dil, *begin, group]
        # On CPU devices im2col + GEMM wins unless each group has only a few channels.
        if c // group >= 4 and rt.device.type & cl.device_type.CPU and out.size:
            conv_im2col(rt, x, w, rt.as_device(b) if b is not None else None, out, meta, group)
            return (out,)
        src = f"#define T {ctype(x.dtype)}\n#define HAS_B {int(b is not None)}\n" + _CONV
        bias = rt.as_device(b) if b is not None else w
        rt.launch(rt.kernel(src), (out.size,), out.data, x.data, w.data, bias.data, rt.meta(meta))
        return (out,)

    return compute


@check("Conv", "MaxPool", "AveragePool", "ConvTranspose")
def _spatial_rank(node: NodeInfo) -> str | None:
    shape = node.input_shapes[0] if node.input_shapes else None
    if shape is not None and not 3 <= len(shape) <= 5:
        return f"{len(shape) - 2} spatial dims; the OpenCL kernels do 1 to 3"
    return None


_CONVT = """
__kernel void k(__global T* out, __global const T* x, __global const T* w, __global const T* bias,
                __global const long* m) {
  const long C = m[0], D = m[1], H = m[2], W = m[3], OC = m[4], OD = m[5], OH = m[6], OW = m[7];
  const long KD = m[8], KH = m[9], KW = m[10], G = m[20];
  long g = get_global_id(0);
  const long ow = g % OW; g /= OW; const long oh = g % OH; g /= OH;
  const long od = g % OD; g /= OD; const long oc = g % OC; const long n = g / OC;
  const long ocpg = OC / G, cpg = C / G, grp = oc / ocpg, ocl = oc % ocpg;
  T acc = HAS_B ? bias[oc] : (T)0;
  for (long ic = 0; ic < cpg; ++ic) {
    const long c = grp * cpg + ic;
    __global const T* xc = x + (n * C + c) * D * H * W;
    __global const T* wc = w + (c * ocpg + ocl) * KD * KH * KW;
    for (long kd = 0; kd < KD; ++kd) {
      const long td = od + m[17] - kd * m[14];
      if (td < 0 || td % m[11]) continue;
      const long id = td / m[11]; if (id >= D) continue;
      for (long kh = 0; kh < KH; ++kh) {
        const long th = oh + m[18] - kh * m[15];
        if (th < 0 || th % m[12]) continue;
        const long ih = th / m[12]; if (ih >= H) continue;
        for (long kw = 0; kw < KW; ++kw) {
          const long tw = ow + m[19] - kw * m[16];
          if (tw < 0 || tw % m[13]) continue;
          const long iw = tw / m[13]; if (iw >= W) continue;
          acc += xc[(id * H + ih) * W + iw] * wc[(kd * KH + kh) * KW + kw];
        }
      }
    }
  }
  out[get_global_id(0)] = acc;
}
"""


@registry.kernel("ConvTranspose", since=(1, 11, 22), types={"T": _F32})
def conv_transpose(node: NodeInfo, rt: Runtime):
    group = int(node.attr("group", 1))

    def compute(x, w, b=None):
        x, w = rt.as_device(x), rt.as_device(w)
        sp = list(x.shape[2:])
        nd = len(sp)
        ks = list(node.attr("kernel_shape", None) or w.shape[2:])
        st = list(node.attr("strides", None) or [1] * nd)
        dil = list(node.attr("dilations", None) or [1] * nd)
        opad = list(node.attr("output_padding", None) or [0] * nd)
        pads = list(node.attr("pads", None) or [0] * (2 * nd))
        auto = node.attr("auto_pad", "NOTSET")
        out_shape = node.attr("output_shape", None)
        out_sp, begin = [], []
        for i in range(nd):
            full = st[i] * (sp[i] - 1) + opad[i] + (ks[i] - 1) * dil[i] + 1
            if out_shape is not None or auto in ("SAME_UPPER", "SAME_LOWER"):
                o = list(out_shape)[-nd + i] if out_shape is not None else sp[i] * st[i]
                total = max(full - o, 0)
                lo = total - total // 2 if auto == "SAME_UPPER" else total // 2
                if auto == "NOTSET":
                    lo = total // 2
                out_sp.append(o)
                begin.append(total - lo if auto == "SAME_UPPER" else lo)
            else:
                out_sp.append(full - pads[i] - pads[i + nd])
                begin.append(pads[i])
        n, c = x.shape[:2]
        oc = w.shape[1] * group
        out = rt.empty((n, oc, *out_sp), x.dtype)
        meta = [
            c,
            *_pad3(sp),
            oc,
            *_pad3(out_sp),
            *_pad3(ks),
            *([1] * (3 - nd) + st),
            *([1] * (3 - nd) + dil),
            *([0] * (3 - nd) + begin),
            group,
        ]
        src = f"#define T {ctype(x.dtype)}\n#define HAS_B {int(b is not None)}\n" + _CONVT
        bias = rt.as_device(b) if b is not None else w
        rt.launch(rt.kernel(src), (out.size,), out.data, x.data, w.data, bias.data, rt.meta(meta))
        return (out,)

    return compute


_POOL = """
__kernel void k(__global T* out, __global const T* x, __global long* idx, __global const long* m) {
  const long D = m[1], H = m[2], W = m[3], OD = m[5], OH = m[6], OW = m[7];
  const long KD = m[8], KH = m[9], KW = m[10];
  long g = get_global_id(0);
  const long ow = g % OW; g /= OW; const long oh = g % OH; g /= OH;
  const long od = g % OD; const long nc = g / OD;
  __global const T* xc = x + nc * D * H * W;
  T acc = IS_MAX ? LOWEST : (T)0; long cnt = 0, best = 0, best_cm = 0;
  for (long kd = 0; kd < KD; ++kd) {
    const long id = od * m[11] - m[17] + kd * m[14];
    for (long kh = 0; kh < KH; ++kh) {
      const long ih = oh * m[12] - m[18] + kh * m[15];
      for (long kw = 0; kw < KW; ++kw) {
        const long iw = ow * m[13] - m[19] + kw * m[16];
        const int inside = id >= 0 && id < D && ih >= 0 && ih < H && iw >= 0 && iw < W;
        if (!inside) {
          if (id >= -m[17] && id < D + m[21] && ih >= -m[18] && ih < H + m[22] &&
              iw >= -m[19] && iw < W + m[23]) cnt += COUNT_PAD;
          continue;
        }
        const long off = (id * H + ih) * W + iw;
        const T v = xc[off];
        if (IS_MAX) { if (v > acc) { acc = v; best = off; best_cm = iw * H + ih; } }
        else { acc += v; cnt += 1; }
      }
    }
  }
  const long o = get_global_id(0);
  if (IS_MAX) { out[o] = acc; if (WITH_IDX) idx[o] = nc * D * H * W + (COL_MAJOR ? best_cm : best); }
  else out[o] = cnt ? acc / (T)cnt : (T)0;
}
"""


def _pool_factory(is_max: bool):
    def factory(node: NodeInfo, rt: Runtime):
        ceil_mode = bool(node.attr("ceil_mode", 0))
        count_pad = int(node.attr("count_include_pad", 0))
        ks = list(node.attr("kernel_shape"))
        with_idx = node.num_outputs > 1 and bool(node.outputs[1])
        col_major = int(node.attr("storage_order", 0))

        def compute(x):
            x = rt.as_device(x)
            sp = list(x.shape[2:])
            nd = len(sp)
            out_sp, begin, strides, dil = _geometry(node, sp, ks, ceil_mode)
            pads = list(node.attr("pads", None) or [0] * (2 * nd))
            end = [0] * (3 - nd) + (
                pads[nd:] if node.attr("auto_pad", "NOTSET") == "NOTSET" else begin[3 - nd :]
            )
            shape = tuple(x.shape[:2]) + tuple(out_sp[3 - nd :])
            out = rt.empty(shape, x.dtype)
            idx = rt.empty(shape, np.int64) if with_idx else out
            meta = [0, *_pad3(sp), 0, *out_sp, *_pad3(ks), *strides, *dil, *begin, 0, *end]
            src = (
                f"#define T {ctype(x.dtype)}\n#define IS_MAX {int(is_max)}\n"
                f"#define COUNT_PAD {count_pad}\n#define WITH_IDX {int(with_idx)}\n"
                f"#define COL_MAJOR {col_major}\n#define LOWEST {_LOWEST[ctype(x.dtype)]}\n" + _POOL
            )
            rt.launch(rt.kernel(src), (out.size,), out.data, x.data, idx.data, rt.meta(meta))
            return (out, idx) if with_idx else (out,)

        return compute

    return factory


_LOWEST = {"float": "-INFINITY", "double": "-INFINITY", "char": "CHAR_MIN", "uchar": "0"}
registry.kernel(
    "MaxPool", since=(1, 8, 10, 11, 12, 22), types={"T": (*_F32, "tensor(int8)", "tensor(uint8)")}
)(_pool_factory(True))
registry.kernel("AveragePool", since=(1, 7, 10, 11, 19, 22), types={"T": _F32})(
    _pool_factory(False)
)


@check("MaxPool")
def _row_major_indices(node: NodeInfo) -> str | None:
    shape = node.input_shapes[0] if node.input_shapes else None
    if node.attr("storage_order", 0) and (shape is None or len(shape) != 4):
        return "MaxPool storage_order=1 indices are implemented for 2-D pooling only"
    return None


_ROWS = """
__kernel void k(__global T* out, __global const T* x, __global const T* s, __global const T* b,
                __global T* mean_out, __global T* inv_out, long L, long C) {
  const long r = get_global_id(0);
  __global const T* p = x + r * L;
  __global T* q = out + r * L;
  T mean = 0;
  if (CENTER) { for (long j = 0; j < L; ++j) mean += p[j]; mean /= (T)L; }
  T var = 0;
  for (long j = 0; j < L; ++j) { T d = p[j] - mean; var += d * d; }
  const T inv = (T)1 / sqrt(var / (T)L + EPS);
  for (long j = 0; j < L; ++j) q[j] = (p[j] - mean) * inv * s[SIDX] + (HAS_B ? b[SIDX] : (T)0);
  if (STATS) { mean_out[r] = mean; inv_out[r] = inv; }
}
"""


def _rows(
    rt: Runtime,
    x,
    s,
    b,
    rows: int,
    length: int,
    eps: float,
    center: bool,
    per_row_scale: bool,
    channels: int = 1,
    stats: bool = False,
):
    out = rt.empty(x.shape, x.dtype)
    mean = rt.empty((rows,), x.dtype) if stats else out
    inv = rt.empty((rows,), x.dtype) if stats else out
    sidx = "(r % C)" if per_row_scale else "j"
    src = (
        f"#define T {ctype(x.dtype)}\n#define CENTER {int(center)}\n#define EPS {flit(eps, 'T')}\n"
        f"#define HAS_B {int(b is not None)}\n#define SIDX {sidx}\n#define STATS {int(stats)}\n"
        + _ROWS
    )
    bias = b if b is not None else s
    rt.launch(
        rt.kernel(src),
        (rows,),
        out.data,
        x.data,
        s.data,
        bias.data,
        mean.data,
        inv.data,
        np.int64(length),
        np.int64(channels),
    )
    return out, mean, inv


def _full(rt: Runtime, v, shape):
    v = rt.as_device(v)
    if tuple(v.shape) == tuple(shape):
        return v
    return rt.strided("a", v.dtype, shape, [view_of(v, shape)])


@registry.kernel("LayerNormalization", since=17, types={"T": FLOATS})
def layer_norm(node: NodeInfo, rt: Runtime):
    axis, eps = int(node.attr("axis", -1)), float(node.attr("epsilon", 1e-5))

    def compute(x, scale, bias=None):
        x = rt.as_device(x)
        a = axis % x.ndim
        rows = int(np.prod(x.shape[:a], dtype=np.int64))
        length = int(np.prod(x.shape[a:], dtype=np.int64))
        s = _full(rt, scale, x.shape[a:])
        b = _full(rt, bias, x.shape[a:]) if bias is not None else None
        out, mean, inv = _rows(rt, x, s, b, rows, length, eps, True, False, stats=True)
        stat_shape = tuple(x.shape[:a]) + (1,) * (x.ndim - a)
        return (out, mean.reshape(stat_shape), inv.reshape(stat_shape))[: node.num_outputs]

    return compute


@registry.kernel("RMSNormalization", since=23, types={"T": FLOATS})
def rms_norm(node: NodeInfo, rt: Runtime):
    axis, eps = int(node.attr("axis", -1)), float(node.attr("epsilon", 1e-5))

    def compute(x, scale):
        x = rt.as_device(x)
        a = axis % x.ndim
        rows = int(np.prod(x.shape[:a], dtype=np.int64))
        length = int(np.prod(x.shape[a:], dtype=np.int64))
        s = _full(rt, scale, x.shape[a:])
        return (_rows(rt, x, s, None, rows, length, eps, False, False)[0],)

    return compute


@check("LayerNormalization", "RMSNormalization")
def _stash_float(node: NodeInfo) -> str | None:
    if node.attr("stash_type", 1) != 1:
        return "only stash_type=1 (float32 statistics) is implemented on OpenCL"
    return None


@registry.kernel("InstanceNormalization", since=(6, 22), types={"T": FLOATS})
def instance_norm(node: NodeInfo, rt: Runtime):
    eps = float(node.attr("epsilon", 1e-5))

    def compute(x, scale, bias):
        x = rt.as_device(x)
        n, c = x.shape[:2]
        length = int(np.prod(x.shape[2:], dtype=np.int64))
        s, b = rt.as_device(scale), rt.as_device(bias)
        return (_rows(rt, x, s, b, n * c, length, eps, True, True, channels=c)[0],)

    return compute


@registry.kernel("BatchNormalization", since=(7, 9, 14, 15), types={"T": FLOATS})
def batch_norm(node: NodeInfo, rt: Runtime):
    eps = flit(node.attr("epsilon", 1e-5), "TO")
    expr = f"(a - d) / sqrt(e + {eps}) * b + c"

    def compute(x, scale, bias, mean, var):
        x = rt.as_device(x)
        cshape = (x.shape[1],) + (1,) * (x.ndim - 2)
        params = [rt.as_device(v).reshape(cshape) for v in (scale, bias, mean, var)]
        views = [view_of(x)] + [view_of(p, x.shape) for p in params]
        return (rt.strided(expr, x.dtype, x.shape, views),)

    return compute


@check("BatchNormalization")
def _inference_bn(node: NodeInfo) -> str | None:
    if node.attr("training_mode", 0) or node.num_outputs > 1:
        return "training-mode BatchNormalization is not implemented on OpenCL"
    if not node.attr("spatial", 1):
        return "BatchNormalization spatial=0 (opset 7) is not implemented on OpenCL"
    return None


def _global_pool(is_max: bool):
    def factory(node: NodeInfo, rt: Runtime):
        def compute(x):
            x = rt.as_device(x)
            rows = x.shape[0] * x.shape[1]
            length = int(np.prod(x.shape[2:], dtype=np.int64))
            src = (
                f"#define T {ctype(x.dtype)}\n__kernel void k(__global T* out, __global const T* x, long L) {{\n"
                "  long r = get_global_id(0); __global const T* p = x + r * L;\n"
                f"  T acc = {'-INFINITY' if is_max else '(T)0'};\n"
                f"  for (long j = 0; j < L; ++j) acc = {'fmax(acc, p[j])' if is_max else 'acc + p[j]'};\n"
                f"  out[r] = {'acc' if is_max else 'acc / (T)L'};\n}}\n"
            )
            out = rt.empty(tuple(x.shape[:2]) + (1,) * (x.ndim - 2), x.dtype)
            rt.launch(rt.kernel(src), (rows,), out.data, x.data, np.int64(length))
            return (out,)

        return compute

    return factory


registry.kernel("GlobalAveragePool", since=(1, 22), types={"T": FLOATS})(_global_pool(False))
registry.kernel("GlobalMaxPool", since=(1, 22), types={"T": FLOATS})(_global_pool(True))


_LRN = """
__kernel void k(__global T* out, __global const T* x, long C, long inner) {
  const long g = get_global_id(0), i = g % inner, c = (g / inner) % C, n = g / (inner * C);
  T acc = 0;
  for (long j = max(0L, c - LO); j <= min(C - 1, c + HI); ++j) {
    const T v = x[(n * C + j) * inner + i]; acc += v * v;
  }
  out[g] = x[g] / pow(BIAS + ALPHA / (T)SIZE * acc, BETA);
}
"""


@registry.kernel("LRN", since=(1, 13), types={"T": FLOATS})
def lrn(node: NodeInfo, rt: Runtime):
    size = int(node.attr("size"))
    consts = (
        f"#define SIZE {size}\n#define LO {(size - 1) // 2}\n#define HI {size // 2}\n"
        f"#define ALPHA {flit(node.attr('alpha', 1e-4), 'T')}\n"
        f"#define BETA {flit(node.attr('beta', 0.75), 'T')}\n#define BIAS {flit(node.attr('bias', 1.0), 'T')}\n"
    )

    def compute(x):
        x = rt.as_device(x)
        inner = int(np.prod(x.shape[2:], dtype=np.int64))
        out = rt.empty(x.shape, x.dtype)
        src = f"#define T {ctype(x.dtype)}\n" + consts + _LRN
        rt.launch(
            rt.kernel(src), (x.size,), out.data, x.data, np.int64(x.shape[1]), np.int64(inner)
        )
        return (out,)

    return compute
