"""String kernels: StringNormalizer, RegexFullMatch, StringConcat, StringSplit and TfIdfVectorizer."""

from __future__ import annotations

import re

import numpy as np

from tessera.provider import NodeInfo
from tessera_cpu.kernels._registry import registry

_STR = ("tensor(string)",)
_DENSE_LIMIT = 1 << 21  # largest direct lookup table (entries) TfIdfVectorizer builds


def _strings(values) -> np.ndarray:
    """An object array of python str from any iterable/shape-preserving source."""
    out = np.empty(np.shape(values), dtype=object)
    out[...] = values
    return out


def _simple_case(fn):
    """Per-character case mapping: Python's full mapping turns 'ß' into 'SS', C++ towupper does not."""

    def convert(s: str) -> str:
        out = fn(s)
        if len(out) == len(s):
            return out
        return "".join(c2 if len(c2 := fn(c)) == 1 else c for c in s)

    return convert


@registry.kernel("StringNormalizer", since=10, types={0: _STR})
def string_normalizer(node: NodeInfo):
    action = node.attr("case_change_action", "NONE")
    if action not in ("NONE", "LOWER", "UPPER"):
        raise ValueError(
            f"{node.describe()}: case_change_action must be NONE, LOWER or UPPER, got {action!r}"
        )
    sensitive = bool(node.attr("is_case_sensitive", 0))
    locale = node.attr("locale", "")
    if locale and not (locale.upper() in ("C", "C.UTF-8", "POSIX") or locale.startswith("en")):
        # Python's str.lower/upper are locale independent; only English-like rules are honest.
        raise ValueError(f"{node.describe()}: locale {locale!r} is not supported (only en_US)")
    stops = node.attr("stopwords", [])
    # Case-insensitive stop words compare lowercased forms.
    stopset = frozenset(stops if sensitive else (w.lower() for w in stops))
    change = {"LOWER": _simple_case(str.lower), "UPPER": _simple_case(str.upper)}.get(action)

    def compute(x):
        if x.ndim == 1:
            row = x
        elif x.ndim == 2 and x.shape[0] == 1:
            row = x[0]
        else:
            raise ValueError(f"{node.describe()}: input must be [C] or [1, C], got shape {x.shape}")
        words = row.tolist()
        if stopset:
            if sensitive:
                words = [w for w in words if w not in stopset]
            else:
                words = [w for w in words if w.lower() not in stopset]
        if change is not None:
            words = [change(w) for w in words]
        if not words:
            words = [""]
        out = _strings(words)
        return (out if x.ndim == 1 else out.reshape(1, -1),)

    return compute


# RE2 spellings that Python's re lacks, rewritten to their Python equivalents.
_POSIX = {
    "alnum": "0-9A-Za-z", "alpha": "A-Za-z", "ascii": "\\x00-\\x7f", "blank": " \\t",
    "cntrl": "\\x00-\\x1f\\x7f", "digit": "0-9", "graph": "!-~", "lower": "a-z",
    "print": " -~", "punct": "!-/:-@\\[-`{-~", "space": "\\t\\n\\v\\f\\r ",
    "upper": "A-Z", "word": "0-9A-Za-z_", "xdigit": "0-9A-Fa-f",
}  # fmt: skip
_RE2_ONLY = re.compile(r"\\Q(.*?)(?:\\E|$)|\\z|\[:(\^?)([a-z]+):\]", re.S)
_NOT_RE2 = re.compile(r"\(\?<?[=!]|\\[1-9]")


def _re2_to_python(pattern: str, node: NodeInfo) -> re.Pattern:
    if _NOT_RE2.search(pattern):
        raise ValueError(
            f"{node.describe()}: pattern {pattern!r} uses lookaround or backreferences, "
            "which RE2 does not support"
        )

    def rewrite(m: re.Match) -> str:
        if m.group(0).startswith("\\Q"):
            return re.escape(m.group(1))
        if m.group(0) == "\\z":
            return "\\Z"
        cls = _POSIX.get(m.group(3))
        if cls is None or m.group(2):
            raise ValueError(f"{node.describe()}: unsupported character class {m.group(0)!r}")
        return cls

    try:
        # RE2's \d, \w, \s and \b are ASCII-only; Python's are Unicode unless told otherwise.
        return re.compile(_RE2_ONLY.sub(rewrite, pattern), re.ASCII)
    except re.error as exc:
        raise ValueError(
            f"{node.describe()}: invalid or unsupported regex {pattern!r}: {exc}"
        ) from None


@registry.kernel("RegexFullMatch", since=20, types={"T1": _STR})
def regex_full_match(node: NodeInfo):
    matcher = _re2_to_python(node.attr("pattern"), node).fullmatch

    def compute(x):
        flat = [matcher(s) is not None for s in x.ravel().tolist()]
        return (np.array(flat, dtype=bool).reshape(x.shape),)

    return compute


@registry.kernel("StringConcat", since=20, types={"T": _STR})
def string_concat(node: NodeInfo):
    def compute(x, y):
        # Object-dtype add is python str concatenation with NumPy broadcasting.
        out = np.add(x, y, dtype=object)
        return (np.asarray(out, dtype=object),)

    return compute


@registry.kernel("StringSplit", since=20, types={"T1": _STR})
def string_split(node: NodeInfo):
    delimiter = node.attr("delimiter", "") or None  # None: split on runs of whitespace
    maxsplit = node.attr("maxsplit", -1)
    if maxsplit is None or maxsplit < 0:
        maxsplit = -1

    def compute(x):
        # Like onnxruntime: an empty string yields no substrings, and whitespace splitting
        # also trims the unsplit remainder.
        if delimiter is None:
            parts = [s.strip().split(None, maxsplit) for s in x.ravel().tolist()]
        else:
            parts = [s.split(delimiter, maxsplit) if s else [] for s in x.ravel().tolist()]
        counts = np.array([len(p) for p in parts], dtype=np.int64).reshape(x.shape)
        width = int(counts.max()) if counts.size else 0
        out = np.full((len(parts), width), "", dtype=object)
        for i, p in enumerate(parts):
            out[i, : len(p)] = p
        return (out.reshape((*x.shape, width)), counts)

    return compute


class _NgramTable:
    """Pool n-grams of each length, looked up with vectorized mixed-radix integer keys."""

    def __init__(self, node: NodeInfo):
        ints = node.attr("pool_int64s", None)
        strs = node.attr("pool_strings", None)
        if (ints is None) == (strs is None):
            raise ValueError(
                f"{node.describe()}: exactly one of pool_int64s and pool_strings is needed"
            )
        pool = list(ints if ints is not None else strs)
        self.strings = strs is not None
        counts = list(node.attr("ngram_counts"))
        indexes = list(node.attr("ngram_indexes"))
        self.min_n = node.attr("min_gram_length")
        self.max_n = node.attr("max_gram_length")
        self.max_skip = node.attr("max_skip_count")
        if not 0 < self.min_n <= self.max_n or self.max_skip < 0:
            raise ValueError(
                f"{node.describe()}: need 0 < min_gram_length <= max_gram_length and max_skip_count >= 0"
            )
        if any(i < 0 for i in indexes):
            raise ValueError(f"{node.describe()}: ngram_indexes must be non-negative")
        self.indexes = np.array(indexes, dtype=np.int64)
        self.size = max(indexes) + 1 if indexes else 0
        vocab = sorted(set(pool))
        # Token codes start at 1; code 0 marks a token outside the pool, which matches nothing.
        self.code = {tok: i + 1 for i, tok in enumerate(vocab)}
        self.vocab = np.array(vocab, dtype=object if self.strings else np.int64)
        self.radix = len(vocab) + 1
        self.grams: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        gram_id = 0
        for i, start in enumerate(counts):
            n = i + 1
            end = counts[i + 1] if i + 1 < len(counts) else len(pool)
            num = (end - start) // n
            if self.min_n <= n <= self.max_n and num > 0:
                if self.radix**n >= 2**63:
                    raise ValueError(f"{node.describe()}: {n}-gram keys over a vocabulary of "
                                     f"{len(vocab)} exceed 64 bits")  # fmt: skip
                toks = np.array([self.code[t] for t in pool[start : start + num * n]], np.int64)
                keys = self._keys(toks.reshape(num, n))
                targets = np.array(indexes[gram_id : gram_id + num], dtype=np.int64)
                if targets.size != num:
                    raise ValueError(f"{node.describe()}: ngram_indexes is shorter than the pool")
                order = np.argsort(keys, kind="stable")
                keys = keys[order]
                if keys.size > 1 and (keys[1:] == keys[:-1]).any():
                    raise ValueError(f"{node.describe()}: the pool repeats a {n}-gram")
                targets = targets[order]
                lut = None
                if self.radix**n <= _DENSE_LIMIT:
                    # Small key spaces get a direct table: one gather instead of a binary search.
                    lut = np.full(self.radix**n, -1, dtype=np.int64)
                    lut[keys] = targets
                self.grams[n] = (lut, keys, targets)
            gram_id += num
        self.token_lut = None
        if not self.strings and vocab and vocab[-1] - vocab[0] < _DENSE_LIMIT:
            self.token_base = vocab[0]
            self.token_lut = np.zeros(vocab[-1] - vocab[0] + 1, dtype=np.int64)
            self.token_lut[np.array(vocab) - vocab[0]] = np.arange(1, len(vocab) + 1)

    def _keys(self, codes: np.ndarray) -> np.ndarray:
        """Mixed-radix key of the last axis of a code array."""
        key = np.zeros(codes.shape[:-1], dtype=np.int64)
        for k in range(codes.shape[-1]):
            key = key * self.radix + codes[..., k]
        return key

    def codes(self, x: np.ndarray) -> np.ndarray:
        if self.strings:
            get = self.code.get
            return np.array([get(t, 0) for t in x.ravel().tolist()], np.int64).reshape(x.shape)
        if self.token_lut is not None:
            off = x.astype(np.int64) - self.token_base
            inside = (off >= 0) & (off < self.token_lut.size)
            return np.where(inside, self.token_lut[np.where(inside, off, 0)], 0)
        pos = np.searchsorted(self.vocab, x)
        pos = np.minimum(pos, max(len(self.vocab) - 1, 0))
        hit = self.vocab[pos] == x if len(self.vocab) else np.zeros(x.shape, bool)
        return np.where(hit, pos + 1, 0).astype(np.int64)

    def count(self, codes: np.ndarray) -> np.ndarray:
        """[rows, C] token codes -> [rows, size] n-gram counts."""
        rows, width = codes.shape
        freq = np.zeros(rows * self.size, dtype=np.int64)
        row_base = (np.arange(rows, dtype=np.int64) * self.size)[:, None]
        for n, (lut, keys, targets) in self.grams.items():
            # Unigrams do not depend on the skip distance, so they are counted once.
            for skip in range(1, (self.max_skip + 1 if n > 1 else 1) + 1):
                span = (n - 1) * skip
                if span >= width:
                    break
                starts = width - span
                key = codes[:, :starts]
                for k in range(1, n):
                    key = key * self.radix + codes[:, k * skip : k * skip + starts]
                if lut is not None:
                    target = lut[key]
                else:
                    pos = np.minimum(np.searchsorted(keys, key), keys.size - 1)
                    target = np.where(keys[pos] == key, targets[pos], -1)
                found = target >= 0
                flat = (row_base + target)[found]
                freq += np.bincount(flat, minlength=freq.size)
        return freq.reshape(rows, self.size)


@registry.kernel(
    "TfIdfVectorizer",
    since=9,
    types={"T": ("tensor(string)", "tensor(int32)", "tensor(int64)")},
)
def tfidf_vectorizer(node: NodeInfo):
    mode = node.attr("mode")
    if mode not in ("TF", "IDF", "TFIDF"):
        raise ValueError(f"{node.describe()}: mode must be TF, IDF or TFIDF, got {mode!r}")
    table = _NgramTable(node)
    weights = node.attr("weights", None)
    w = None
    if weights:
        # weights[i] belongs to the i-th pool n-gram, which lands in output ngram_indexes[i].
        if len(weights) != table.indexes.size:
            raise ValueError(
                f"{node.describe()}: weights has {len(weights)} entries, ngram_indexes "
                f"{table.indexes.size}"
            )
        w = np.zeros(table.size, dtype=np.float32)
        w[table.indexes] = np.asarray(weights, dtype=np.float32)

    def compute(x):
        if x.ndim > 2 or (x.ndim == 2 and x.shape[0] < 1):
            raise ValueError(f"{node.describe()}: input must be [C] or [B, C], got {x.shape}")
        if table.strings != (x.dtype == object):
            raise ValueError(f"{node.describe()}: input type {x.dtype} does not match the pool")
        rows = x.reshape(1, -1) if x.ndim < 2 else x
        freq = (
            table.count(table.codes(rows))
            if rows.size
            else np.zeros((rows.shape[0], table.size), np.int64)
        )
        if mode == "TF":
            y = freq.astype(np.float32)
        elif mode == "IDF":
            y = (freq > 0).astype(np.float32)
            if w is not None:
                y *= w
        else:
            y = freq.astype(np.float32)
            if w is not None:
                y *= w
        return (y if x.ndim == 2 else y.reshape(-1),)

    return compute
