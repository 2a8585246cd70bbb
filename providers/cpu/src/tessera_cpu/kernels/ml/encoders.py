"""Category encoders: LabelEncoder, OneHotEncoder, CategoryMapper, DictVectorizer, ZipMap, CastMap."""

from __future__ import annotations

import numpy as np

from tessera.provider import Compute, NodeInfo
from tessera_cpu.kernels._registry import registry
from tessera_cpu.kernels.ml._common import ML

_STR = "tensor(string)"


class _Lookup:
    """A vectorized key -> value table with a default for missing keys.

    Numeric keys use a sorted search (NaN keys match NaN inputs); string keys a dict.
    """

    def __init__(
        self, keys: np.ndarray, values: np.ndarray, default, out_dtype, nan_keys: bool = True
    ) -> None:
        self.out_dtype = np.dtype(out_dtype)
        self.default = default
        self.string_keys = keys.dtype == object
        # The first occurrence of a duplicated key wins.
        if self.string_keys:
            table: dict = {}
            for k, v in zip(keys.tolist(), values.tolist()):
                table.setdefault(k, v)
            self.table = table
            return
        keys = np.asarray(keys)
        nan = np.isnan(keys) if keys.dtype.kind == "f" else np.zeros(keys.shape, dtype=bool)
        self.nan_value = values[np.flatnonzero(nan)[0]] if nan.any() and nan_keys else None
        k, first = np.unique(keys[~nan], return_index=True)
        self.keys = k
        self.values = np.asarray(values)[~nan][first].astype(self.out_dtype)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if self.string_keys:
            get, d = self.table.get, self.default
            flat = [get(v, d) for v in x.reshape(-1).tolist()]
            return np.array(flat, dtype=self.out_dtype).reshape(x.shape)
        out = np.full(x.shape, self.default, dtype=self.out_dtype)
        if self.keys.size:
            xv = (
                x.astype(self.keys.dtype, copy=False) if x.dtype.kind == self.keys.dtype.kind else x
            )
            pos = np.minimum(np.searchsorted(self.keys, xv), self.keys.size - 1)
            hit = self.keys[pos] == xv
            out[hit] = self.values[pos[hit]]
        if self.nan_value is not None and x.dtype.kind == "f":
            out[np.isnan(x)] = self.nan_value
        return out


def _as_obj(values) -> np.ndarray:
    return np.array(list(values), dtype=object)


def _tensor_attr(value) -> np.ndarray:
    """A TENSOR attribute as a flat array; string tensors (bytes) become str objects."""
    arr = np.asarray(value).reshape(-1)
    if arr.dtype.kind in "SOU":
        return _as_obj(v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in arr.tolist())
    return arr


def _label_encoder_v1(node: NodeInfo) -> Compute:
    classes = _as_obj(node.attr("classes_strings", []))
    d_int = int(node.attr("default_int64", -1))
    d_str = node.attr("default_string", "_Unused")
    enc = _Lookup(classes, np.arange(len(classes), dtype=np.int64), d_int, np.int64)

    def compute(x):
        if x.dtype == object:
            return (enc(x),)
        idx = np.asarray(x, dtype=np.int64)
        ok = (idx >= 0) & (idx < len(classes))
        out = np.full(idx.shape, d_str, dtype=object)
        out[ok] = classes[idx[ok]]
        return (out,)

    return compute


_TYPE_OF_ATTR = {"floats": np.float32, "int64s": np.int64, "strings": object}


@registry.kernel("LabelEncoder", since=(1, 2, 4), domain=ML)
def label_encoder(node: NodeInfo) -> Compute:
    d = node.describe()
    if node.since_version == 1:
        return _label_encoder_v1(node)
    keys = values = None
    for suffix, dt in _TYPE_OF_ATTR.items():
        k, v = node.attrs.get(f"keys_{suffix}"), node.attrs.get(f"values_{suffix}")
        if k is not None and len(k):
            if keys is not None:
                raise ValueError(f"{d}: more than one keys_* attribute is set")
            keys = _as_obj(k) if dt is object else np.asarray(k, dtype=dt)
        if v is not None and len(v):
            if values is not None:
                raise ValueError(f"{d}: more than one values_* attribute is set")
            values = _as_obj(v) if dt is object else np.asarray(v, dtype=dt)
    if node.since_version >= 4:
        kt, vt = node.attrs.get("keys_tensor"), node.attrs.get("values_tensor")
        if kt is not None:
            if keys is not None:
                raise ValueError(f"{d}: more than one keys_* attribute is set")
            keys = _tensor_attr(kt)
        if vt is not None:
            if values is not None:
                raise ValueError(f"{d}: more than one values_* attribute is set")
            values = _tensor_attr(vt)
    if keys is None or values is None:
        raise ValueError(f"{d}: a keys_* and a values_* attribute are required")
    if len(keys) != len(values):
        raise ValueError(f"{d}: {len(keys)} keys but {len(values)} values")
    out_dtype = values.dtype
    default_t = node.attrs.get("default_tensor") if node.since_version >= 4 else None
    if default_t is not None:
        default = _tensor_attr(default_t)[0]
    elif out_dtype.kind == "O":
        default = node.attr("default_string", "_Unused")
    elif out_dtype.kind == "f":
        default = node.attr("default_float", -0.0)
    else:
        default = node.attr("default_int64", -1)
    if keys.dtype == object:
        keys = _as_obj(str(k) if not isinstance(k, str) else k for k in keys)
    if values.dtype == object:
        values = _as_obj(str(v) if not isinstance(v, str) else v for v in values)
        default = default if isinstance(default, str) else str(default)
    got = node.input_types[0] if node.input_types else None
    if got is not None and (got == _STR) != (keys.dtype == object):
        raise ValueError(
            f"{d}: the input is {got} but the keys are {'strings' if keys.dtype == object else keys.dtype}"
        )
    # Only version 4 lets a NaN key match NaN inputs (ORT's older kernels never match NaN).
    enc = _Lookup(keys, values, default, out_dtype, nan_keys=node.since_version >= 4)

    def compute(x):
        if (x.dtype == object) != (keys.dtype == object):
            raise ValueError(
                f"{d}: the input type {x.dtype} does not match the keys ({keys.dtype})"
            )
        return (enc(x),)

    return compute


@registry.kernel(
    "OneHotEncoder",
    since=1,
    domain=ML,
    types={"T": (_STR, "tensor(int64)", "tensor(int32)", "tensor(float)", "tensor(double)")},
)
def one_hot_encoder(node: NodeInfo) -> Compute:
    d = node.describe()
    cs, ci = node.attrs.get("cats_strings"), node.attrs.get("cats_int64s")
    if bool(cs) == bool(ci):
        raise ValueError(f"{d}: exactly one of cats_strings, cats_int64s is required")
    cats = _as_obj(cs) if cs else np.asarray(ci, dtype=np.int64)
    zeros = bool(node.attr("zeros", 1))
    enc = _Lookup(cats, np.arange(len(cats), dtype=np.int64), -1, np.int64)

    def compute(x):
        if (x.dtype == object) != bool(cs):
            raise ValueError(f"{d}: the input type {x.dtype} does not match the categories")
        xv = x if x.dtype == object else x.astype(np.int64)  # float inputs are truncated to ints
        idx = enc(xv)
        if not zeros and (idx < 0).any():
            raise ValueError(f"{d}: an input value is not among the categories and zeros=0")
        out = np.zeros((*x.shape, len(cats)), dtype=np.float32)
        hit = idx >= 0
        out.reshape(-1, len(cats))[
            np.flatnonzero(hit.reshape(-1)), idx.reshape(-1)[hit.reshape(-1)]
        ] = 1
        return (out,)

    return compute


@registry.kernel("CategoryMapper", since=1, domain=ML, types={"T1": (_STR, "tensor(int64)")})
def category_mapper(node: NodeInfo) -> Compute:
    d = node.describe()
    cs = _as_obj(node.attr("cats_strings", []))
    ci = np.asarray(node.attr("cats_int64s", []), dtype=np.int64)
    if len(cs) != len(ci):
        raise ValueError(f"{d}: cats_strings and cats_int64s must have the same length")
    to_int = _Lookup(cs, ci, int(node.attr("default_int64", -1)), np.int64)
    to_str = _Lookup(ci, cs, node.attr("default_string", "_Unused"), object)

    def compute(x):
        return (to_int(x) if x.dtype == object else to_str(x.astype(np.int64, copy=False)),)

    return compute


def _output_dtype(node: NodeInfo, default):
    dt = node.output_dtype(0)
    return dt if dt is not None else default


@registry.kernel("DictVectorizer", since=1, domain=ML)
def dict_vectorizer(node: NodeInfo) -> Compute:
    d = node.describe()
    sv, iv = node.attrs.get("string_vocabulary"), node.attrs.get("int64_vocabulary")
    if bool(sv) == bool(iv):
        raise ValueError(f"{d}: exactly one of string_vocabulary, int64_vocabulary is required")
    vocab = list(sv) if sv else [int(v) for v in iv]
    where = {k: i for i, k in enumerate(vocab)}
    declared = node.output_dtype(0)

    def compute(x):
        rows = [x] if isinstance(x, dict) else list(x)
        values = [v for r in rows for v in r.values()]
        if declared is not None:
            dt = declared
        elif values and isinstance(values[0], str):
            dt = np.dtype(object)
        else:
            dt = np.asarray(values).dtype if values else np.dtype(np.float32)
        out = np.zeros((len(rows), len(vocab)), dtype=dt)
        if dt.kind == "O":
            out[:] = ""
        for i, r in enumerate(rows):
            cols = [(where[k], v) for k, v in r.items() if k in where]
            if cols:
                c, v = zip(*cols)
                out[i, list(c)] = v
        return (out,)

    return compute


@registry.kernel("ZipMap", since=1, domain=ML, types={0: ("tensor(float)",)})
def zip_map(node: NodeInfo) -> Compute:
    d = node.describe()
    ls, li = node.attrs.get("classlabels_strings"), node.attrs.get("classlabels_int64s")
    if bool(ls) == bool(li):
        raise ValueError(f"{d}: exactly one of classlabels_strings, classlabels_int64s is required")
    labels = list(ls) if ls else [int(v) for v in li]

    def compute(x):
        if x.ndim > 2:
            raise ValueError(f"{d}: the input must be 1-D or 2-D, got shape {x.shape}")
        x2 = x.reshape(1, -1) if x.ndim == 1 else x
        if x2.shape[1] != len(labels):
            raise ValueError(f"{d}: {x2.shape[1]} scores per row but {len(labels)} class labels")
        return ([dict(zip(labels, row)) for row in x2.tolist()],)

    return compute


@registry.kernel("CastMap", since=1, domain=ML)
def cast_map(node: NodeInfo) -> Compute:
    d = node.describe()
    cast_to = node.attr("cast_to", "TO_FLOAT")
    form = node.attr("map_form", "DENSE")
    max_map = int(node.attr("max_map", 1))
    dtypes = {"TO_FLOAT": np.float32, "TO_STRING": object, "TO_INT64": np.int64}
    if cast_to not in dtypes:
        raise ValueError(f"{d}: cast_to must be TO_FLOAT, TO_STRING or TO_INT64, got {cast_to!r}")
    if form not in ("DENSE", "SPARSE"):
        raise ValueError(f"{d}: map_form must be DENSE or SPARSE, got {form!r}")
    dt = dtypes[cast_to]

    def convert(values: list) -> np.ndarray:
        if dt is object:
            return np.array(
                [v if isinstance(v, str) else _float_str(v) for v in values], dtype=object
            )
        if values and isinstance(values[0], str):
            return np.array([float(v) for v in values], dtype=np.float64).astype(dt)
        return np.asarray(values, dtype=np.float64).astype(dt)

    def compute(x):
        keys = sorted(x)
        vals = convert([x[k] for k in keys])
        if form == "DENSE":
            return (vals.reshape(1, -1),)
        # ORT fills absent string slots with the literal "0.f".
        out = np.full((1, max_map), "0.f" if dt is object else 0, dtype=dt)
        k = np.asarray(keys, dtype=np.int64)
        ok = (k >= 0) & (k < max_map)
        out[0, k[ok]] = vals[ok]
        return (out,)

    return compute


def _float_str(v) -> str:
    # std::to_string formatting, as ORT writes floats as strings.
    return f"{float(v):f}"
