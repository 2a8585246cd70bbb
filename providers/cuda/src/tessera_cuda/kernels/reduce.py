"""Reductions, ArgMax/ArgMin, Softmax/LogSoftmax, LayerNormalization and BatchNormalization."""

from __future__ import annotations

from tessera.provider import NodeInfo
from tessera_cuda.kernels._registry import (
    FLOATS,
    NUMERIC,
    check,
    host_inputs,
    norm_axis,
    registry,
)

# op -> (schema versions that take axes as an attribute, versions that take them as input 1)
_REDUCE_VERSIONS = {
    "ReduceSum": ((11,), (13,)),
    "ReduceMean": ((11, 13), (18,)),
    "ReduceMax": ((11, 12, 13), (18, 20)),
    "ReduceMin": ((11, 12, 13), (18, 20)),
    "ReduceProd": ((11, 13), (18,)),
    "ReduceL1": ((11, 13), (18,)),
    "ReduceL2": ((11, 13), (18,)),
    "ReduceSumSquare": ((11, 13), (18,)),
    "ReduceLogSumExp": ((11, 13), (18,)),
}


def _reduce_fn(op: str, xp):
    def logsumexp(x, axis, keepdims):
        m = x.max(axis=axis, keepdims=True)
        m = xp.where(xp.isfinite(m), m, 0).astype(x.dtype, copy=False)
        out = xp.log(xp.exp(x - m).sum(axis=axis, keepdims=True)) + m
        return out if keepdims else out.squeeze(axis=axis)

    return {
        "ReduceSum": lambda x, axis, k: x.sum(axis=axis, keepdims=k),
        "ReduceMean": lambda x, axis, k: x.mean(axis=axis, keepdims=k),
        "ReduceMax": lambda x, axis, k: x.max(axis=axis, keepdims=k),
        "ReduceMin": lambda x, axis, k: x.min(axis=axis, keepdims=k),
        "ReduceProd": lambda x, axis, k: x.prod(axis=axis, keepdims=k),
        "ReduceL1": lambda x, axis, k: xp.abs(x).sum(axis=axis, keepdims=k),
        "ReduceL2": lambda x, axis, k: xp.sqrt((x * x).sum(axis=axis, keepdims=k)),
        "ReduceSumSquare": lambda x, axis, k: (x * x).sum(axis=axis, keepdims=k),
        "ReduceLogSumExp": logsumexp,
    }[op]


def _reduce(node: NodeInfo, be):
    xp = be.xp
    fn = _reduce_fn(node.op_type, xp)
    keepdims = bool(node.attr("keepdims", 1))
    noop_empty = bool(node.attr("noop_with_empty_axes", 0))
    attr_axes = node.attr("axes", None)
    input_axes = node.since_version in _REDUCE_VERSIONS[node.op_type][1]
    dtype_keep = node.op_type not in ("ReduceMax", "ReduceMin")

    def compute(x, axes=None):
        if input_axes:
            axes = None if axes is None else [int(a) for a in be.host(axes).ravel()]
        else:
            axes = attr_axes
        if not axes:
            if noop_empty:
                return (xp.array(x, copy=True),)
            axes = list(range(x.ndim))
        axis = tuple(sorted(norm_axis(int(a), x.ndim) for a in axes))
        out = fn(x, axis, keepdims)
        if dtype_keep:
            out = out.astype(x.dtype, copy=False)
        return (xp.asarray(out),)

    return compute


for _op, (_attr_versions, _input_versions) in _REDUCE_VERSIONS.items():
    registry.kernel(_op, _attr_versions + _input_versions, types={"T": NUMERIC})(_reduce)
    host_inputs(_op, 1)


@check(*_REDUCE_VERSIONS)
def _reduce_types(node: NodeInfo) -> str | None:
    if (
        node.op_type in ("ReduceLogSumExp", "ReduceL2", "ReduceMean")
        and node.input_types[0] not in FLOATS
    ):
        return f"{node.op_type} on {node.input_types[0]} is not claimed (float results only)"
    return None


@registry.kernel("ArgMax", (11, 12, 13), types={"T": NUMERIC})
@registry.kernel("ArgMin", (11, 12, 13), types={"T": NUMERIC})
def arg_reduce(node: NodeInfo, be):
    xp = be.xp
    axis = int(node.attr("axis", 0))
    keepdims = bool(node.attr("keepdims", 1))
    last = bool(node.attr("select_last_index", 0))
    fn = xp.argmax if node.op_type == "ArgMax" else xp.argmin

    def compute(x):
        ax = norm_axis(axis, x.ndim)
        if last:
            flipped = xp.flip(x, axis=ax)
            out = x.shape[ax] - 1 - fn(flipped, axis=ax)
        else:
            out = fn(x, axis=ax)
        out = out.astype("int64", copy=False)
        if keepdims:
            out = xp.expand_dims(out, ax)
        return (out,)

    return compute


def _softmax(node: NodeInfo, be, log: bool):
    xp = be.xp
    legacy = node.since_version < 13  # before 13: coerce to 2-D at axis (default 1)
    axis = int(node.attr("axis", 1 if legacy else -1))

    def compute(x):
        ax = norm_axis(axis, x.ndim)
        if legacy:
            shape = x.shape
            lead = 1
            for d in shape[:ax]:
                lead *= d
            v = x.reshape(lead, -1)
            red = 1
        else:
            v, red = x, ax
        m = v.max(axis=red, keepdims=True)
        e = v - m
        if log:
            out = e - xp.log(xp.exp(e).sum(axis=red, keepdims=True))
        else:
            ex = xp.exp(e)
            out = ex / ex.sum(axis=red, keepdims=True)
        out = out.astype(x.dtype, copy=False)
        return ((out.reshape(x.shape) if legacy else out),)

    return compute


@registry.kernel("Softmax", (1, 11, 13), types={"T": FLOATS})
def softmax(node: NodeInfo, be):
    return _softmax(node, be, log=False)


@registry.kernel("LogSoftmax", (1, 11, 13), types={"T": FLOATS})
def log_softmax(node: NodeInfo, be):
    return _softmax(node, be, log=True)


@registry.kernel("LayerNormalization", 17, types={"T": FLOATS, "U": FLOATS})
def layer_norm(node: NodeInfo, be):
    xp = be.xp
    axis = int(node.attr("axis", -1))
    eps = float(node.attr("epsilon", 1e-5))
    n_out = len(node.outputs)

    def compute(x, scale, bias=None):
        ax = norm_axis(axis, x.ndim)
        axes = tuple(range(ax, x.ndim))
        mean = x.mean(axis=axes, keepdims=True)
        d = x - mean
        var = (d * d).mean(axis=axes, keepdims=True)
        inv = (1 / xp.sqrt(var + x.dtype.type(eps))).astype(x.dtype, copy=False)
        y = d * inv * scale
        if bias is not None:
            y = y + bias
        return (y.astype(x.dtype, copy=False), mean, inv)[: max(n_out, 1)]

    return compute


@check("LayerNormalization")
def _ln_stash(node: NodeInfo) -> str | None:
    if int(node.attr("stash_type", 1)) != 1:
        return "LayerNormalization stash_type other than 1 (float32 statistics) is not supported"
    if node.input_types[0] != node.output_types[0] if node.output_types else False:
        return "LayerNormalization with mixed input/output types is not supported"
    return None


@registry.kernel(
    "BatchNormalization",
    (7, 9, 14, 15),
    types={"T": FLOATS, "T1": FLOATS, "T2": FLOATS, "U": FLOATS},
)
def batch_norm(node: NodeInfo, be):
    xp = be.xp
    eps = float(node.attr("epsilon", 1e-5))

    def compute(x, scale, bias, mean, var):
        shape = (1, -1) + (1,) * (x.ndim - 2)
        inv = scale / xp.sqrt(var + var.dtype.type(eps))
        y = (x - mean.reshape(shape)) * inv.reshape(shape) + bias.reshape(shape)
        return (y.astype(x.dtype, copy=False),)

    return compute


@check("BatchNormalization")
def _bn_inference(node: NodeInfo) -> str | None:
    if not node.attr("spatial", 1):
        return "BatchNormalization spatial=0 is not supported"
    if node.attr("training_mode", 0):
        return "BatchNormalization training_mode=1 is not supported (inference only)"
    if len([o for o in node.outputs if o]) > 1:
        return "BatchNormalization's running-statistics outputs are not supported"
    return None


@check(*_REDUCE_VERSIONS, "ArgMax", "ArgMin", "Softmax", "LogSoftmax")
def _no_empty_input(node: NodeInfo) -> str | None:
    shape = node.input_shapes[0] if node.input_shapes else None
    if shape is not None and any(d == 0 for d in shape):
        return f"{node.op_type} over an empty tensor (shape {list(shape)}) is not claimed"
    return None
