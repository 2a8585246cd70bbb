"""Attention kernels: Attention, FlexAttention, RotaryEmbedding and LinearAttention."""

from __future__ import annotations

import math
import threading

import numpy as np

from tessera.provider import FLOAT_TYPES, NodeInfo, np_dtype
from tessera_cpu.kernels._registry import registry

_F32 = np.dtype(np.float32)
_F64 = np.dtype(np.float64)
_NEG_INF = -np.inf


def _compute_dtype(dtype: np.dtype) -> np.dtype:
    """float16/bfloat16 are computed in float32 (BLAS, float32 accumulation); float64 stays."""
    return _F64 if dtype == _F64 else _F32


def _as(x: np.ndarray, dtype: np.dtype) -> np.ndarray:
    return x if x.dtype == dtype else x.astype(dtype)


_tls = threading.local()
_SCRATCH_MAX_BYTES = 64 << 20


def _scratch(slot: str, shape: tuple, dtype: np.dtype) -> np.ndarray:
    """A per-thread reusable buffer for intermediates that never escape a compute call.

    Fresh multi-megabyte arrays cost page faults on every call; reusing one buffer per thread
    (shared by all attention nodes, which a thread runs one at a time) avoids them.
    """
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes > _SCRATCH_MAX_BYTES:
        return np.empty(shape, dtype)
    bufs = getattr(_tls, "bufs", None)
    if bufs is None:
        bufs = _tls.bufs = {}
    buf = bufs.get(slot)
    if buf is None or buf.nbytes < nbytes:
        buf = bufs[slot] = np.empty(max(nbytes, 1), dtype=np.uint8)
    return buf[:nbytes].view(dtype).reshape(shape)


def _softmax_precision(node: NodeInfo) -> np.dtype | None:
    """The dtype named by the softmax_precision attribute (FLOAT, FLOAT16, DOUBLE, BFLOAT16)."""
    sp = node.attr("softmax_precision", None)
    if sp is None:
        return None
    if int(sp) not in (1, 10, 11, 16):
        raise ValueError(
            f"{node.describe()}: softmax_precision must be 1 (float), 10 (float16), 11 (double) "
            f"or 16 (bfloat16), got {sp}"
        )
    return np_dtype(int(sp))


def _softmax_inplace(s: np.ndarray) -> np.ndarray:
    """Softmax over the last axis, overwriting ``s``; an all -inf row becomes all zeros."""
    m = s.max(axis=-1, keepdims=True)
    m[np.isneginf(m)] = 0  # all -inf rows: exp(-inf - 0) = 0 instead of NaN
    s -= m
    np.exp(s, out=s)
    total = s.sum(axis=-1, keepdims=True)
    total[total == 0] = 1
    s /= total
    return s


# --------------------------------------------------------------------------- Attention


@registry.kernel(
    "Attention",
    since=(23, 24, 25),
    types={"T1": FLOAT_TYPES, "T2": FLOAT_TYPES},
)
def attention(node: NodeInfo):
    scale_attr = node.attr("scale", None)
    is_causal = bool(node.attr("is_causal", 0))
    q_heads_attr = node.attr("q_num_heads", None)
    kv_heads_attr = node.attr("kv_num_heads", None)
    softcap = float(node.attr("softcap", 0.0))
    mode = int(node.attr("qk_matmul_output_mode", 0))
    left = int(node.attr("left_window_size", -1))
    right = int(node.attr("right_window_size", -1))
    sm_dtype = _softmax_precision(node)
    if mode not in (0, 1, 2, 3):
        raise ValueError(f"{node.describe()}: qk_matmul_output_mode must be 0..3, got {mode}")
    if left < -1 or right < -1:
        raise ValueError(
            f"{node.describe()}: window sizes must be -1 or nonnegative, got {left}, {right}"
        )
    if node.has_input(4) != node.has_input(5):
        raise ValueError(f"{node.describe()}: past_key and past_value must be given together")
    if node.has_input(6) and node.has_input(4):
        raise ValueError(
            f"{node.describe()}: nonpad_kv_seqlen cannot be combined with past_key/past_value"
        )
    want_qk = len(node.outputs) > 3 and bool(node.outputs[3])
    windowed = left >= 0 or right >= 0
    ranks = [len(s) if s is not None else None for s in node.input_shapes[:3]]
    if (
        4 in ranks
        and (q_heads_attr is not None or kv_heads_attr is not None)
        and node.since_version >= 25
    ):
        raise ValueError(
            f"{node.describe()}: q_num_heads/kv_num_heads must not be set for 4D inputs"
        )
    if 3 in ranks and (q_heads_attr is None or kv_heads_attr is None):
        raise ValueError(
            f"{node.describe()}: 3D inputs need the q_num_heads and kv_num_heads attributes"
        )

    def to_4d(x: np.ndarray, heads: int, what: str) -> np.ndarray:
        b, s, hidden = x.shape
        if hidden % heads:
            raise ValueError(
                f"{node.describe()}: {what} hidden size {hidden} is not divisible by {heads} heads"
            )
        return x.reshape(b, s, heads, hidden // heads).transpose(0, 2, 1, 3)

    def compute(q, k, v, attn_mask=None, past_key=None, past_value=None, nonpad=None):
        t1 = q.dtype
        cdt = _compute_dtype(t1)
        three_d = q.ndim == 3
        if three_d:
            if q_heads_attr is None or kv_heads_attr is None:
                raise ValueError(f"{node.describe()}: 3D inputs need q_num_heads and kv_num_heads")
            q = to_4d(q, int(q_heads_attr), "Q")
            k = to_4d(k, int(kv_heads_attr), "K")
            v = to_4d(v, int(kv_heads_attr), "V")
        elif q.ndim != 4 or k.ndim != 4 or v.ndim != 4:
            raise ValueError(
                f"{node.describe()}: Q, K, V must all be 3D or all 4D, got {q.shape}, {k.shape}, {v.shape}"
            )
        if past_key is not None:
            k = np.concatenate((past_key, k), axis=2)
            v = np.concatenate((past_value, v), axis=2)
        present_k, present_v = k, v
        b, hq, sq, dq = q.shape
        hkv, skv = k.shape[1], k.shape[2]
        if hq % hkv or v.shape[1] != hkv:
            raise ValueError(
                f"{node.describe()}: {hq} query heads cannot share {hkv} key/value heads"
            )
        group = hq // hkv
        scale = float(scale_attr) if scale_attr is not None else 1.0 / math.sqrt(dq)
        if skv == 0:  # no key at all: every query row is fully masked, so Y is zero
            y = np.zeros((b, hq, sq, v.shape[3]), dtype=t1)
            if three_d:
                y = y.transpose(0, 2, 1, 3).reshape(b, sq, hq * v.shape[3])
            return y, present_k, present_v, np.zeros((b, hq, sq, 0), dtype=t1)

        # Matmuls run in float32 (BLAS) for narrow types and are rounded back to T1; the
        # elementwise steps then run in T1 in the spec's order, so float16/bfloat16 results
        # round exactly like the function body does.
        fast = (
            cdt == t1 and v.dtype == t1 and sm_dtype in (None, t1) and not (want_qk and mode == 3)
        )
        if cdt == t1:
            qs = np.multiply(q, t1.type(scale), out=_scratch("q", q.shape, t1))
            ks = _as(k, t1)
        else:
            root = t1.type(math.sqrt(scale))
            qs, ks = (q * root).astype(cdt), (k * root).astype(cdt)
        qg = qs.reshape(b, hkv, group, sq, dq)
        # In the fast path the scores never leave this call, so they live in a reused buffer.
        out = _scratch("scores", (b, hkv, group, sq, skv), cdt) if fast else None
        scores = np.matmul(qg, ks.swapaxes(-1, -2)[:, :, None], out=out).reshape(b, hq, sq, skv)
        scores = _as(scores, t1)
        qk_out = (
            scores.copy()
            if want_qk and mode in (0, 1) and not (mode == 1 and softcap > 0)
            else None
        )
        if softcap > 0:
            scores /= t1.type(softcap)
            np.tanh(scores, out=scores)
            scores *= t1.type(softcap)
            if want_qk and mode == 1:
                qk_out = scores.copy()

        bias = build_bias(
            attn_mask, nonpad, b, sq, skv, past_key.shape[2] if past_key is not None else None, t1
        )
        masked_rows = None
        if bias is not None:
            scores += bias
            # A row whose bias is entirely -inf attends to nothing: its output is zero.
            all_masked = np.isneginf(bias.max(axis=-1, keepdims=True))
            if all_masked.any():
                masked_rows = all_masked
        if want_qk and mode == 2:
            qk_out = scores.copy()

        dv = v.shape[3]
        if fast:
            # Fast path: normalise after P @ V (Sq x Dv values instead of Sq x Skv) and get the
            # row sums from a BLAS matrix-vector product.
            m = scores.max(axis=-1, keepdims=True)
            m[np.isneginf(m)] = 0
            scores -= m
            np.exp(scores, out=scores)
            total = (scores.reshape(-1, skv) @ np.ones((skv, 1), dtype=t1)).reshape(b, hq, sq, 1)
            total[total == 0] = 1
            y = np.matmul(scores.reshape(b, hkv, group, sq, skv), v[:, :, None]).reshape(
                b, hq, sq, dv
            )
            y /= total
            if masked_rows is not None:
                y = np.where(masked_rows, t1.type(0), y)
        else:
            if sm_dtype is not None and sm_dtype != scores.dtype:
                scores = scores.astype(sm_dtype)
            probs = _softmax_inplace(scores)
            if masked_rows is not None:
                probs = np.where(masked_rows, probs.dtype.type(0), probs)
            if want_qk and mode == 3:
                qk_out = probs
            if probs.dtype != t1:
                probs = probs.astype(t1)  # the function body casts probabilities to T1 before P @ V
            pv_dtype = _F64 if _F64 in (t1, v.dtype) else _F32
            y = np.matmul(
                _as(probs, pv_dtype).reshape(b, hkv, group, sq, skv),
                _as(v, pv_dtype)[:, :, None],
            ).reshape(b, hq, sq, dv)
        if three_d:
            y = y.transpose(0, 2, 1, 3).reshape(b, sq, hq * dv)
        y = _as(y, t1)
        qk_res = _as(qk_out, t1) if qk_out is not None else None
        return y, present_k, present_v, qk_res

    def build_bias(attn_mask, nonpad, b, sq, skv, past_len, cdt):
        """Additive bias broadcastable to (B, Hq, Sq, Skv), or None when nothing is masked."""
        allowed = None  # boolean constraints, intersected
        additive = None
        if attn_mask is not None:
            pad = skv - attn_mask.shape[-1]
            if pad < 0:
                raise ValueError(
                    f"{node.describe()}: attn_mask's last dimension {attn_mask.shape[-1]} exceeds the "
                    f"key sequence length {skv}"
                )
            if attn_mask.dtype == np.bool_:
                allowed = attn_mask
                if pad:
                    allowed = np.pad(
                        allowed, [(0, 0)] * (allowed.ndim - 1) + [(0, pad)], constant_values=False
                    )
            else:
                additive = attn_mask.astype(cdt)
                if pad:
                    additive = np.pad(
                        additive,
                        [(0, 0)] * (additive.ndim - 1) + [(0, pad)],
                        constant_values=_NEG_INF,
                    )
        if is_causal or windowed:
            if past_len is not None:
                offset = np.asarray(past_len).reshape(1, 1)
            elif nonpad is not None:
                offset = nonpad.astype(np.int64).reshape(-1, 1, 1, 1) - sq
            else:
                offset = np.zeros((1, 1), dtype=np.int64)
            # diff = absolute query position - key position
            diff = (np.arange(sq).reshape(sq, 1) + offset) - np.arange(skv)
            struct = np.ones(diff.shape, dtype=bool)
            if is_causal:
                struct &= diff >= 0
            if left >= 0:
                struct &= diff <= left
            if right >= 0:
                struct &= -diff <= right
            allowed = struct if allowed is None else np.logical_and(allowed, struct)
        if nonpad is not None:
            valid = (np.arange(skv) < nonpad.astype(np.int64).reshape(-1, 1)).reshape(b, 1, 1, skv)
            allowed = valid if allowed is None else np.logical_and(allowed, valid)
        if allowed is None:
            return additive
        bias = np.where(allowed, cdt.type(0), cdt.type(_NEG_INF))
        return bias if additive is None else bias + additive

    return compute


# --------------------------------------------------------------------------- FlexAttention


@registry.kernel("FlexAttention", since=1, domain="ai.onnx.preview", types={"T1": FLOAT_TYPES})
def flex_attention(node: NodeInfo):
    scale_attr = node.attr("scale", None)
    sm_dtype = _softmax_precision(node)
    score_mod = node.subgraph("score_mod") if "score_mod" in node.attrs else None
    prob_mod = node.subgraph("prob_mod") if "prob_mod" in node.attrs else None

    def run_mod(runner, x, dtype, captured):
        outs = runner([x], captured)
        if len(outs) != 1:
            raise ValueError(
                f"{node.describe()}: a modifier subgraph must produce exactly one output"
            )
        out = np.asarray(outs[0], dtype=dtype)
        if out.shape != x.shape:
            raise ValueError(
                f"{node.describe()}: a modifier subgraph changed shape {x.shape} to {out.shape}"
            )
        return out

    def compute(q, k, v, *captured):
        if q.ndim != 4 or k.ndim != 4 or v.ndim != 4:
            raise ValueError(
                f"{node.describe()}: Q, K, V must be rank 4, got {q.shape}, {k.shape}, {v.shape}"
            )
        b, hq, sq, d = q.shape
        hkv, skv = k.shape[1], k.shape[2]
        if hq % hkv or v.shape[1] != hkv or v.shape[2] != skv or k.shape[3] != d:
            raise ValueError(
                f"{node.describe()}: incompatible Q/K/V shapes {q.shape}, {k.shape}, {v.shape}"
            )
        group = hq // hkv
        scale = float(scale_attr) if scale_attr is not None else 1.0 / math.sqrt(d)
        sdt = sm_dtype if sm_dtype is not None else (_F64 if q.dtype == _F64 else _F32)
        mdt = _compute_dtype(q.dtype)
        root = q.dtype.type(np.sqrt(np.float32(scale)))
        qs = _as(q * root, mdt).reshape(b, hkv, group, sq, d)
        ks = _as(k * root, mdt)
        scores = np.matmul(qs, ks.swapaxes(-1, -2)[:, :, None]).reshape(b, hq, sq, skv)
        # The spec computes Q @ K^T in T1; round to it before handing scores to softmax.
        scores = _as(_as(scores, q.dtype), sdt)
        if score_mod is not None:
            scores = run_mod(score_mod, scores, sdt, captured)
        # Softmax works in place: copy when the scores may be a modifier's (shared) output.
        if sdt.itemsize < 4:
            work = scores.astype(_F32)
        else:
            work = scores.copy() if score_mod is not None else scores
        probs = _softmax_inplace(work)
        probs = _as(probs, sdt)
        if prob_mod is not None:
            probs = run_mod(prob_mod, probs, sdt, captured)
        pdt = _compute_dtype(sdt)
        y = np.matmul(_as(probs, pdt).reshape(b, hkv, group, sq, skv), _as(v, pdt)[:, :, None])
        return (_as(y.reshape(b, hq, sq, v.shape[3]), v.dtype),)

    return compute


# --------------------------------------------------------------------------- RotaryEmbedding


@registry.kernel(
    "RotaryEmbedding",
    since=23,
    types={"T": ("tensor(float)", "tensor(float16)", "tensor(bfloat16)")},
)
def rotary_embedding(node: NodeInfo):
    interleaved = bool(node.attr("interleaved", 0))
    rot_attr = int(node.attr("rotary_embedding_dim", 0))
    num_heads = int(node.attr("num_heads", 0))

    def compute(x, cos_cache, sin_cache, position_ids=None):
        if x.ndim == 4:
            b, _h, s, d = x.shape
            xv = x
        elif x.ndim == 3:
            if num_heads <= 0:
                raise ValueError(f"{node.describe()}: a 3D input needs the num_heads attribute")
            b, s, hidden = x.shape
            if hidden % num_heads:
                raise ValueError(
                    f"{node.describe()}: hidden size {hidden} is not divisible by {num_heads} heads"
                )
            d = hidden // num_heads
            xv = x.reshape(b, s, num_heads, d)
        else:
            raise ValueError(f"{node.describe()}: input must be 3D or 4D, got shape {x.shape}")
        rd = rot_attr or d
        half = rd // 2
        if rd > d or rd % 2:
            raise ValueError(
                f"{node.describe()}: rotary_embedding_dim {rd} must be even and <= head size {d}"
            )
        if position_ids is not None:
            cos, sin = cos_cache[position_ids], sin_cache[position_ids]
        else:
            cos, sin = cos_cache, sin_cache
        if cos.shape[-1] != half or sin.shape[-1] != half:
            raise ValueError(
                f"{node.describe()}: cos/sin caches' last dimension must be rotary_embedding_dim/2 = {half}, "
                f"got {cos.shape[-1]} and {sin.shape[-1]}"
            )
        cdt = _compute_dtype(x.dtype)
        try:
            cos = np.broadcast_to(_as(cos, cdt), (b, s, half))
            sin = np.broadcast_to(_as(sin, cdt), (b, s, half))
        except ValueError:
            raise ValueError(
                f"{node.describe()}: cos/sin caches of shapes {cos.shape}, {sin.shape} do not give "
                f"({b}, {s}, {half}) values for the input's batch and sequence"
            ) from None
        # Full-width cos/sin let the two big products run over whole contiguous rows; only
        # the two cross terms work on half-width (or interleaved) views.
        if interleaved:
            cos, sin = np.repeat(cos, 2, axis=-1), np.repeat(sin, 2, axis=-1)
        else:
            cos, sin = np.concatenate((cos, cos), axis=-1), np.concatenate((sin, sin), axis=-1)
        # Broadcast (B, S, rd) over the heads axis of the input's layout.
        if x.ndim == 4:
            cos, sin = cos[:, None], sin[:, None]
        else:
            cos, sin = cos[:, :, None], sin[:, :, None]
        xc = _as(xv, cdt)
        if rd == d:
            out = np.multiply(xc, cos)
            tmp = np.multiply(xc, sin)
        else:
            out = xc.copy()
            out[..., :rd] *= cos
            tmp = np.multiply(xc[..., :rd], sin)
        if interleaved:
            out[..., 0:rd:2] -= tmp[..., 1:rd:2]
            out[..., 1:rd:2] += tmp[..., 0:rd:2]
        else:
            out[..., :half] -= tmp[..., half:rd]
            out[..., half:rd] += tmp[..., :half]
        return (_as(out, x.dtype).reshape(x.shape),)

    return compute


# --------------------------------------------------------------------------- LinearAttention

_UPDATE_RULES = ("linear", "gated", "delta", "gated_delta")
_LINEAR_CHUNK = 256  # tokens per parallel chunk of the "linear" rule (bounds the T x T scores)


@registry.kernel(
    "LinearAttention",
    since=27,
    types={
        "T": ("tensor(float)", "tensor(float16)", "tensor(bfloat16)"),
        "S": ("tensor(float)", "tensor(float16)", "tensor(bfloat16)"),
    },
)
def linear_attention(node: NodeInfo):
    rule = node.attr("update_rule", "gated_delta")
    hq = int(node.attr("q_num_heads"))
    hkv = int(node.attr("kv_num_heads"))
    scale_attr = float(node.attr("scale", 0.0))
    if rule not in _UPDATE_RULES:
        raise ValueError(
            f"{node.describe()}: update_rule must be one of {_UPDATE_RULES}, got {rule!r}"
        )
    if hq <= 0 or hkv <= 0 or hq % hkv:
        raise ValueError(
            f"{node.describe()}: q_num_heads {hq} must be a positive multiple of kv_num_heads {hkv}"
        )
    gating = rule in ("gated", "gated_delta")
    delta = rule in ("delta", "gated_delta")
    if gating != node.has_input(4):
        raise ValueError(
            f"{node.describe()}: update_rule {rule!r} {'requires' if gating else 'forbids'} the decay input"
        )
    if delta != node.has_input(5):
        raise ValueError(
            f"{node.describe()}: update_rule {rule!r} {'requires' if delta else 'forbids'} the beta input"
        )
    group = hq // hkv
    state_dtype = node.output_dtype(1)

    def heads(x: np.ndarray, n: int) -> np.ndarray:
        b, t, hd = x.shape
        if hd % n:
            raise ValueError(
                f"{node.describe()}: last dimension {hd} is not divisible by {n} heads"
            )
        return x.reshape(b, t, n, hd // n).transpose(0, 2, 1, 3).astype(_F32)

    def compute(query, key, value, past_state=None, decay=None, beta=None):
        for name, arr in (("query", query), ("key", key), ("value", value)):
            if arr.ndim != 3:
                raise ValueError(
                    f"{node.describe()}: {name} must be rank 3 (B, T, H*D), got {arr.shape}"
                )
        b, t, _ = query.shape
        q = heads(query, hq).reshape(b, hkv, group, t, -1)  # (B, Hkv, G, T, dk)
        k = heads(key, hkv)  # (B, Hkv, T, dk)
        v = heads(value, hkv)  # (B, Hkv, T, dv)
        dk, dv = k.shape[-1], v.shape[-1]
        if q.shape[-1] != dk:
            raise ValueError(
                f"{node.describe()}: query and key head sizes differ ({q.shape[-1]} vs {dk})"
            )
        scale = scale_attr if scale_attr != 0.0 else 1.0 / math.sqrt(dk)
        if past_state is not None:
            if past_state.shape != (b, hkv, dk, dv):
                raise ValueError(
                    f"{node.describe()}: past_state shape {past_state.shape} != {(b, hkv, dk, dv)}"
                )
            state = past_state.astype(_F32)
        else:
            state = np.zeros((b, hkv, dk, dv), dtype=_F32)
        out_state_dtype = (
            past_state.dtype if past_state is not None else (state_dtype or query.dtype)
        )
        g = None
        if gating:
            if decay.ndim != 3 or decay.shape[-1] not in (hkv, hkv * dk):
                raise ValueError(
                    f"{node.describe()}: decay must be (B, T, {hkv}) or (B, T, {hkv * dk}), got {decay.shape}"
                )
            per_dim = decay.shape[-1] // hkv
            g = np.exp(
                decay.astype(_F32).reshape(b, t, hkv, per_dim).transpose(0, 2, 1, 3)
            )  # (B,Hkv,T,1|dk)
        bt = None
        if delta:
            if beta.ndim != 3 or beta.shape[-1] not in (hkv, 1):
                raise ValueError(
                    f"{node.describe()}: beta must be (B, T, {hkv}) or (B, T, 1), got {beta.shape}"
                )
            bt = (
                beta.astype(_F32).reshape(b, t, beta.shape[-1], 1).transpose(0, 2, 1, 3)
            )  # (B,Hkv|1,T,1)

        if rule == "linear":
            # No decay or correction, so each chunk of tokens is parallel: causal (Q K^T) V within
            # the chunk plus the state carried in from earlier chunks.
            out = np.empty((b, hkv, group, t, dv), dtype=_F32)
            for c0 in range(0, t, _LINEAR_CHUNK):
                c1 = min(t, c0 + _LINEAR_CHUNK)
                qc, kc, vc = q[:, :, :, c0:c1], k[:, :, c0:c1], v[:, :, c0:c1]
                scores = np.matmul(qc, kc.swapaxes(-1, -2)[:, :, None])  # (B,Hkv,G,c,c)
                scores *= np.tri(c1 - c0, dtype=bool)
                out[:, :, :, c0:c1] = np.matmul(scores, vc[:, :, None]) + np.matmul(
                    qc, state[:, :, None]
                )
                state = state + np.matmul(kc.swapaxes(-1, -2), vc)
        else:
            # Gated and delta rules are inherently sequential over time: step the recurrence.
            out = np.empty((b, hkv, group, t, dv), dtype=_F32)
            for i in range(t):
                if gating:
                    state = state * g[:, :, i, :, None]
                k_t = k[:, :, i]  # (B,Hkv,dk)
                v_t = v[:, :, i]
                if delta:
                    retrieved = np.matmul(k_t[:, :, None, :], state)[:, :, 0]  # (B,Hkv,dv)
                    v_t = bt[:, :, i] * (v_t - retrieved)
                state = state + k_t[..., :, None] * v_t[..., None, :]
                out[:, :, :, i] = np.matmul(q[:, :, :, i], state)
        out *= np.float32(scale)
        y = out.reshape(b, hq, t, dv).transpose(0, 2, 1, 3).reshape(b, t, hq * dv)
        return _as(y, query.dtype), _as(state, np.dtype(out_state_dtype))

    return compute
