"""Recurrent layers (RNN, GRU, LSTM): one batched input projection, then a per-step recurrence."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from tessera.provider import FLOAT_TYPES, NodeInfo
from tessera_cpu.kernels._registry import registry

_TYPES = {"T": FLOAT_TYPES, "T1": ("tensor(int32)",)}

# Activation functions of the RNN family. Each may overwrite its argument (always a fresh
# buffer or a view of one), which saves an allocation per gate per step.
Act = Callable[[np.ndarray], np.ndarray]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    # tanh form: no overflow warnings for large |x| and no temporaries.
    x *= 0.5
    np.tanh(x, out=x)
    x += 1.0
    x *= 0.5
    return x


def _tanh(x: np.ndarray) -> np.ndarray:
    return np.tanh(x, out=x)


def _relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0, out=x)


def _softsign(x: np.ndarray) -> np.ndarray:
    return x / (np.abs(x) + 1.0)


def _softplus(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(x, 0, out=x)


def _affine(a: float, b: float) -> Act:
    return lambda x: x * a + b


def _leaky_relu(a: float) -> Act:
    return lambda x: np.where(x >= 0, x, x * a)


def _thresholded_relu(a: float) -> Act:
    return lambda x: np.where(x > a, x, 0).astype(x.dtype, copy=False)


def _scaled_tanh(a: float, b: float) -> Act:
    return lambda x: np.tanh(x * b) * a


def _hard_sigmoid(a: float, b: float) -> Act:
    return lambda x: np.clip(x * a + b, 0, 1)


def _elu(a: float) -> Act:
    return lambda x: np.where(x >= 0, x, np.expm1(np.minimum(x, 0)) * a)


# name -> (builder, default alpha, default beta); None marks a parameter the function lacks.
_ACTIVATIONS: dict[str, tuple[Callable, float | None, float | None]] = {
    "sigmoid": (lambda: _sigmoid, None, None),
    "tanh": (lambda: _tanh, None, None),
    "relu": (lambda: _relu, None, None),
    "softsign": (lambda: _softsign, None, None),
    "softplus": (lambda: _softplus, None, None),
    "affine": (_affine, 1.0, 0.0),
    "leakyrelu": (_leaky_relu, 0.01, None),
    "thresholdedrelu": (_thresholded_relu, 1.0, None),
    "scaledtanh": (_scaled_tanh, 1.0, 1.0),
    "hardsigmoid": (_hard_sigmoid, 0.2, 0.5),
    "elu": (_elu, 1.0, None),
}


def _activations(node: NodeInfo, defaults: list[str], num_dirs: int) -> list[list[Act]]:
    """Activation callables per direction. Alphas and betas are consumed in order by the
    functions that take them (as onnxruntime does); missing ones fall back to the defaults."""
    names = node.attr("activations", None)
    per = len(defaults)
    if names is None:
        names = defaults * num_dirs
    elif len(names) == per and num_dirs == 2:
        names = list(names) * 2
    elif len(names) != per * num_dirs:
        raise ValueError(
            f"{node.describe()}: 'activations' lists {len(names)} functions, expected "
            f"{per * num_dirs} ({per} per direction)"
        )
    alphas = list(node.attr("activation_alpha", []))
    betas = list(node.attr("activation_beta", []))
    acts: list[Act] = []
    for name in names:
        key = name.lower()
        if key not in _ACTIVATIONS:
            raise ValueError(f"{node.describe()}: unsupported activation {name!r}")
        build, da, db = _ACTIVATIONS[key]
        args = []
        if da is not None:
            args.append(float(alphas.pop(0)) if alphas else da)
        if db is not None:
            args.append(float(betas.pop(0)) if betas else db)
        acts.append(build(*args))
    return [acts[d * per : (d + 1) * per] for d in range(num_dirs)]


def _compute_dtype(dt: np.dtype) -> np.dtype:
    # Half-precision recurrences accumulate error quickly; run them in float32.
    return np.dtype(np.float64) if dt == np.float64 else np.dtype(np.float32)


class _Params:
    """Weights rearranged for the kernel: W^T for all directions at once, R^T per direction."""

    def __init__(self, kind: str, W, R, B, P, hidden: int, lbr: bool, dtype: np.dtype) -> None:
        nd, gh, isz = W.shape
        self.dtype = dtype
        self.w_all = np.ascontiguousarray(W.astype(dtype, copy=False).reshape(nd * gh, isz).T)
        self.r_t = [np.ascontiguousarray(R[d].astype(dtype, copy=False).T) for d in range(nd)]
        bias = np.zeros((nd, gh), dtype)
        self.rb_h = None
        if B is not None:
            B = B.astype(dtype, copy=False)
            wb, rb = B[:, :gh], B[:, gh:]
            bias += wb
            if kind == "GRU" and lbr:
                # The hidden gate's recurrence bias sits inside the reset product.
                bias[:, : 2 * hidden] += rb[:, : 2 * hidden]
                self.rb_h = [rb[d, 2 * hidden :].copy() for d in range(nd)]
            else:
                bias += rb
        if kind == "GRU" and lbr and self.rb_h is None:
            self.rb_h = [np.zeros(hidden, dtype) for _ in range(nd)]
        self.bias = bias.reshape(nd * gh)
        self.peep = None
        if P is not None:
            P = P.astype(dtype, copy=False)
            self.peep = [
                (P[d, :hidden], P[d, hidden : 2 * hidden], P[d, 2 * hidden :]) for d in range(nd)
            ]


def _rnn_step(r_t, acts, clip):
    f = acts[0]

    def step(xt, state):
        (h,) = state
        g = h @ r_t
        g += xt
        if clip is not None:
            np.clip(g, -clip, clip, out=g)
        return (f(g),)

    return step


def _gru_step(r_t, acts, clip, hidden, lbr, rb_h):
    f, g_act = acts
    H = hidden
    r_zr, r_h = np.ascontiguousarray(r_t[:, : 2 * H]), np.ascontiguousarray(r_t[:, 2 * H :])

    def gates(zr):
        if clip is not None:
            np.clip(zr, -clip, clip, out=zr)
        return f(zr[:, :H]), f(zr[:, H:])

    if lbr:

        def step(xt, state):
            (h,) = state
            a = h @ r_t
            zr = a[:, : 2 * H]
            zr += xt[:, : 2 * H]
            z, r = gates(zr)
            hh = a[:, 2 * H :]
            hh += rb_h
            hh *= r
            hh += xt[:, 2 * H :]
            if clip is not None:
                np.clip(hh, -clip, clip, out=hh)
            hh = g_act(hh)
            return (hh + z * (h - hh),)

    else:

        def step(xt, state):
            (h,) = state
            zr = h @ r_zr
            zr += xt[:, : 2 * H]
            z, r = gates(zr)
            hh = (r * h) @ r_h
            hh += xt[:, 2 * H :]
            if clip is not None:
                np.clip(hh, -clip, clip, out=hh)
            hh = g_act(hh)
            return (hh + z * (h - hh),)

    return step


def _lstm_step(r_t, acts, clip, hidden, peep, input_forget):
    f, g, h_act = acts
    H = hidden

    def step(xt, state):
        h, c = state
        a = h @ r_t
        a += xt
        if peep is None:
            if clip is not None:
                np.clip(a, -clip, clip, out=a)
            # i, o and f are adjacent and share f: one activation call for all three.
            ifo = f(a[:, : 3 * H])
            i, o, fg = ifo[:, :H], ifo[:, H : 2 * H], ifo[:, 2 * H :]
        else:
            i, o, fg = a[:, :H], a[:, H : 2 * H], a[:, 2 * H : 3 * H]
            i += peep[0] * c
            fg += peep[2] * c
            if clip is not None:
                # The output gate's input is only complete after the cell update.
                for part in (i, fg, a[:, 3 * H :]):
                    np.clip(part, -clip, clip, out=part)
            i = f(i)
            fg = f(fg)
        if input_forget:
            # Coupled gates, as onnxruntime does: forget = 1 - input.
            fg = 1.0 - i
        cc = g(a[:, 3 * H :])
        c_new = fg * c
        c_new += i * cc
        if peep is not None:
            o += peep[1] * c_new
            if clip is not None:
                np.clip(o, -clip, clip, out=o)
            o = f(o)
        return (o * h_act(c_new.copy()), c_new)

    return step


def _run_direction(xp, step, state, lens, reverse, y):
    """Run one direction over xp [T, B, G*H], writing hidden states into y [T, B, H]."""
    T, batch = xp.shape[0], xp.shape[1]
    if lens is None:
        for t in range(T - 1, -1, -1) if reverse else range(T):
            state = step(xp[t], state)
            y[t] = state[0]
        return state
    # Ragged batch: step s of sequence b reads time lens[b]-1-s (reverse) or s (forward);
    # finished sequences keep their state and leave zeros in y.
    s = np.arange(T)[:, None]
    valid = s < lens[None, :]
    tix = np.where(valid, lens[None, :] - 1 - s, s) if reverse else np.broadcast_to(s, (T, batch))
    cols = np.arange(batch)
    xs = xp[tix, cols]
    for k in range(int(lens.max(initial=0))):
        new = step(xs[k], state)
        m = valid[k][:, None]
        state = tuple(np.where(m, n, o) for n, o in zip(new, state))
        v = valid[k]
        y[tix[k][v], cols[v]] = new[0][v]
    return state


def _make_recurrent(node: NodeInfo, kind: str) -> Callable[..., tuple]:
    gates = {"RNN": 1, "GRU": 3, "LSTM": 4}[kind]
    defaults = {"RNN": ["Tanh"], "GRU": ["Sigmoid", "Tanh"], "LSTM": ["Sigmoid", "Tanh", "Tanh"]}[
        kind
    ]
    direction = node.attr("direction", "forward")
    if direction not in ("forward", "reverse", "bidirectional"):
        raise ValueError(f"{node.describe()}: unknown direction {direction!r}")
    nd = 2 if direction == "bidirectional" else 1
    layout = int(node.attr("layout", 0)) if node.since_version >= 14 else 0
    if layout not in (0, 1):
        raise ValueError(f"{node.describe()}: layout must be 0 or 1, got {layout}")
    clip = node.attr("clip", None)
    clip = None if clip is None else float(clip)
    lbr = bool(node.attr("linear_before_reset", 0)) if kind == "GRU" else False
    input_forget = bool(node.attr("input_forget", 0)) if kind == "LSTM" else False
    acts = _activations(node, defaults, nd)
    hidden_attr = node.attr("hidden_size", None)
    consts = node.constant_inputs
    has_p = kind == "LSTM" and node.has_input(7)

    def prepare(W, R, B, P) -> _Params:
        if W.ndim != 3 or W.shape[0] != nd or R.ndim != 3 or R.shape[0] != nd:
            raise ValueError(
                f"{node.describe()}: W {W.shape} and R {R.shape} must be 3-D with "
                f"{nd} direction(s) for direction={direction!r}"
            )
        hidden = R.shape[2]
        if hidden_attr is not None and hidden_attr != hidden:
            raise ValueError(
                f"{node.describe()}: hidden_size={hidden_attr} but R has shape {R.shape}"
            )
        if W.shape[1] != gates * hidden or R.shape[1] != gates * hidden:
            raise ValueError(
                f"{node.describe()}: W {W.shape} / R {R.shape} must have {gates}*hidden_size rows"
            )
        if B is not None and B.shape != (nd, 2 * gates * hidden):
            raise ValueError(
                f"{node.describe()}: B has shape {B.shape}, expected {(nd, 2 * gates * hidden)}"
            )
        if P is not None and P.shape != (nd, 3 * hidden):
            raise ValueError(
                f"{node.describe()}: P has shape {P.shape}, expected {(nd, 3 * hidden)}"
            )
        return _Params(kind, W, R, B, P, hidden, lbr, _compute_dtype(W.dtype))

    fixed = None
    if (
        1 in consts
        and 2 in consts
        and (not node.has_input(3) or 3 in consts)
        and (not has_p or 7 in consts)
    ):
        fixed = prepare(consts[1], consts[2], consts.get(3), consts.get(7) if has_p else None)

    def compute(X, W, R, B=None, seq_lens=None, init_h=None, init_c=None, P=None):
        prm = fixed if fixed is not None else prepare(W, R, B, P)
        H = prm.r_t[0].shape[0]
        cd = prm.dtype
        if layout:
            X = X.transpose(1, 0, 2)
            init_h = None if init_h is None else init_h.transpose(1, 0, 2)
            init_c = None if init_c is None else init_c.transpose(1, 0, 2)
        T, batch, isz = X.shape
        lens = None
        if seq_lens is not None:
            lens = np.asarray(seq_lens).astype(np.int64)
            if lens.shape != (batch,) or (lens < 0).any() or (lens > T).any():
                raise ValueError(
                    f"{node.describe()}: sequence_lens {lens.tolist()} must hold {batch} values in [0, {T}]"
                )
            if (lens == T).all():
                lens = None
        xp = X.reshape(T * batch, isz).astype(cd, copy=False) @ prm.w_all
        xp += prm.bias
        xp = xp.reshape(T, batch, nd, gates * H)
        y = np.zeros((T, nd, batch, H), cd)
        y_h = np.empty((nd, batch, H), cd)
        y_c = np.empty((nd, batch, H), cd) if kind == "LSTM" else None
        for d in range(nd):
            h0 = np.zeros((batch, H), cd) if init_h is None else init_h[d].astype(cd)
            if kind == "RNN":
                step, state = _rnn_step(prm.r_t[d], acts[d], clip), (h0,)
            elif kind == "GRU":
                rb_h = prm.rb_h[d] if lbr else None
                step, state = _gru_step(prm.r_t[d], acts[d], clip, H, lbr, rb_h), (h0,)
            else:
                c0 = np.zeros((batch, H), cd) if init_c is None else init_c[d].astype(cd)
                peep = prm.peep[d] if prm.peep is not None else None
                step, state = _lstm_step(prm.r_t[d], acts[d], clip, H, peep, input_forget), (h0, c0)
            reverse = direction == "reverse" or d == 1
            state = _run_direction(xp[:, :, d], step, state, lens, reverse, y[:, d])
            y_h[d] = state[0]
            if y_c is not None:
                y_c[d] = state[1]
        if lens is not None and not lens.all():
            # onnxruntime reports zero final states for empty sequences, not the initial ones.
            y_h[:, lens == 0] = 0
            if y_c is not None:
                y_c[:, lens == 0] = 0
        out_dt = X.dtype
        if layout:
            y = y.transpose(2, 0, 1, 3)
            y_h = y_h.transpose(1, 0, 2)
            y_c = None if y_c is None else y_c.transpose(1, 0, 2)
        outs = [np.ascontiguousarray(y, dtype=out_dt), np.ascontiguousarray(y_h, dtype=out_dt)]
        if y_c is not None:
            outs.append(np.ascontiguousarray(y_c, dtype=out_dt))
        return tuple(outs)

    return compute


@registry.kernel("RNN", since=(1, 7, 14, 22), types=_TYPES)
def rnn(node: NodeInfo) -> Callable[..., tuple]:
    return _make_recurrent(node, "RNN")


@registry.kernel("GRU", since=(1, 3, 7, 14, 22), types=_TYPES)
def gru(node: NodeInfo) -> Callable[..., tuple]:
    return _make_recurrent(node, "GRU")


@registry.kernel("LSTM", since=(1, 7, 14, 22), types=_TYPES)
def lstm(node: NodeInfo) -> Callable[..., tuple]:
    return _make_recurrent(node, "LSTM")
