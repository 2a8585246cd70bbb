"""Loading: a path, bytes or ModelProto becomes a checked, shape-inferred onnx-ir Model.

External data is read only from inside the model's folder, after checking every location,
offset and length, so a model cannot make Tessera read files it should not.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import onnx
import onnx.inliner  # a submodule: `import onnx` alone does not load it
import onnx_ir as ir
from google.protobuf.message import DecodeError, Message

from tessera._errors import InvalidGraph

_EXTERNAL_KEYS = {"location", "offset", "length", "checksum", "basepath"}

LOADER_MAX_DEPTH = 256
"""Deepest If/Loop/Scan nesting the loader accepts whatever the session options say: onnx-ir's
deserializer recurses per level and, past a few hundred levels, exhausts the stack and memory."""


def _decode_error(source: str, exc: Exception) -> InvalidGraph:
    if "MaxDepth" in str(exc):
        # upb stops at 100 nested messages, about 32 levels of If/Loop/Scan; onnxruntime's
        # protobuf has the same limit, so such a file is not loadable anywhere.
        return InvalidGraph(
            f"{source} nests messages deeper than protobuf's decoder allows (100 levels, about "
            "32 levels of If/Loop/Scan subgraphs); flatten the control flow"
        )
    return InvalidGraph(
        f"{source} is not a valid ONNX ModelProto ({exc}); pass the bytes of an .onnx file, "
        "a path, or an onnx.ModelProto"
    )


def read_model_proto(
    model: str | os.PathLike | bytes | onnx.ModelProto,
) -> tuple[onnx.ModelProto, Path | None]:
    """Parse ``model`` into a ModelProto (external data still external) and its folder."""
    if isinstance(model, onnx.ModelProto):
        return model, None
    if isinstance(model, (bytes, bytearray, memoryview)):
        proto = onnx.ModelProto()
        try:
            proto.ParseFromString(bytes(model))
        except (DecodeError, RuntimeError, ValueError) as exc:
            raise _decode_error("the model bytes", exc) from exc
        return proto, None
    if isinstance(model, (str, os.PathLike)):
        path = Path(model)
        if not path.is_file():
            raise InvalidGraph(f"model file {str(path)!r} does not exist or is not a file")
        try:
            proto = onnx.load(str(path), load_external_data=False)
        except (DecodeError, RuntimeError, ValueError) as exc:
            raise _decode_error(f"model file {str(path)!r}", exc) from exc
        except OSError as exc:
            raise InvalidGraph(f"model file {str(path)!r} cannot be read ({exc.strerror})") from exc
        return proto, path.resolve().parent
    raise TypeError(
        f"InferenceSession needs a path, bytes or onnx.ModelProto, not {type(model).__name__}"
    )


def _all_tensors(proto: onnx.ModelProto) -> Iterator[onnx.TensorProto]:
    """Every TensorProto anywhere in the model: initializers, sparse initializers, tensor
    attributes of nodes in subgraphs and functions. A generic walk over the message fields, so
    no place a tensor can hide is forgotten (and no external tensor reaches onnx-ir, which would
    read it relative to the working directory). Iterative, so deep nesting cannot overflow."""
    stack: list[Message] = [proto]
    while stack:
        message = stack.pop()
        if isinstance(message, onnx.TensorProto):
            yield message
            continue
        for field, value in message.ListFields():
            if field.type != field.TYPE_MESSAGE:
                continue
            if isinstance(value, Message):
                stack.append(value)
            else:  # a repeated message field
                stack.extend(value)


def check_text_fields(proto: onnx.ModelProto) -> None:
    """Names, op types and other string fields must be UTF-8: protobuf hands invalid ones back
    as bytes, which would break every message and lookup that uses them."""
    stack: list[tuple[Message, str]] = [(proto, "model")]
    while stack:
        message, where = stack.pop()
        for field, value in message.ListFields():
            if field.type == field.TYPE_STRING:
                for text in (
                    value
                    if isinstance(value, Sequence) and not isinstance(value, (str, bytes))
                    else [value]
                ):
                    if isinstance(text, bytes):
                        raise InvalidGraph(
                            f"{where}: field {field.name!r} holds {text[:40]!r}, which is not "
                            "valid UTF-8; the file is corrupt"
                        )
            elif field.type == field.TYPE_MESSAGE:
                name = getattr(message, "name", "")
                here = f"{where}/{name}" if isinstance(name, str) and name else where
                if isinstance(value, Message):
                    stack.append((value, here))
                else:
                    stack.extend((v, here) for v in value)


def _external_info(tensor: onnx.TensorProto, where: str) -> dict[str, str]:
    info: dict[str, str] = {}
    for entry in tensor.external_data:
        if entry.key in info:
            raise InvalidGraph(f"{where}: external-data key {entry.key!r} is given twice")
        info[entry.key] = entry.value
    unknown = sorted(set(info) - _EXTERNAL_KEYS)
    if unknown:
        raise InvalidGraph(
            f"{where}: unknown external-data keys {unknown}; valid keys: {sorted(_EXTERNAL_KEYS)}"
        )
    return info


def _int_entry(info: dict[str, str], key: str, where: str) -> int | None:
    if key not in info:
        return None
    text = info[key].strip()
    # int() alone would accept "1_000" and " 12"; the ONNX spec says a decimal integer.
    if not text.isdigit():
        raise InvalidGraph(
            f"{where}: external-data {key} {info[key]!r} must be a non-negative decimal integer"
        )
    return int(text)


def _external_file(location: str, base_dir: Path, where: str) -> tuple[Path, int]:
    """The checked real path of ``location`` inside ``base_dir`` and its size."""
    if not location or "\0" in location:
        raise InvalidGraph(f"{where}: external-data location {location!r} is empty or has a NUL")
    if os.path.isabs(location) or Path(location).drive or location.startswith(("/", "\\")):
        raise InvalidGraph(
            f"{where}: external-data location {location!r} must be a relative path inside "
            "the model folder"
        )
    if ".." in Path(location.replace("\\", "/")).parts:
        raise InvalidGraph(f"{where}: external-data location {location!r} may not contain '..'")
    # realpath resolves symlinks in every component, so a link anywhere on the way out is caught.
    real = Path(os.path.realpath(base_dir / location))
    if os.path.commonpath([str(real), str(base_dir)]) != str(base_dir):
        raise InvalidGraph(
            f"{where}: external-data location {location!r} resolves outside the model folder"
        )
    try:
        st = os.stat(real)
    except OSError as exc:
        raise InvalidGraph(
            f"{where}: external-data file {location!r} cannot be opened ({exc.strerror})"
        ) from None
    if not stat.S_ISREG(st.st_mode):
        raise InvalidGraph(f"{where}: external-data location {location!r} is not a regular file")
    return real, st.st_size


def load_external_data(proto: onnx.ModelProto, base_dir: Path | None) -> None:
    """Read every external tensor's bytes into the proto, refusing any location outside
    ``base_dir`` (``..``, absolute paths, symlinks out) and any offset/length past the file.
    Every tensor is checked before any file is read."""
    todo = []
    for tensor in _all_tensors(proto):
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            if tensor.external_data:
                raise InvalidGraph(
                    f"tensor {tensor.name!r} has external-data entries but is not marked "
                    "data_location=EXTERNAL; re-save the model with onnx.save"
                )
            continue
        where = f"tensor {tensor.name!r}"
        info = _external_info(tensor, where)
        if base_dir is None:
            raise InvalidGraph(
                f"{where} stores its data in an external file, which needs a model path: "
                "load the model by its file path rather than from bytes"
            )
        real, size = _external_file(info.get("location", ""), base_dir, where)
        offset = _int_entry(info, "offset", where) or 0
        length = _int_entry(info, "length", where)
        length = size - offset if length is None else length
        if offset > size or length < 0 or offset + length > size:
            raise InvalidGraph(
                f"{where}: external data [{offset}, {offset + max(length, 0)}) lies outside "
                f"{info['location']!r} ({size} bytes)"
            )
        todo.append((tensor, real, offset, length))
    for tensor, real, offset, length in todo:
        with open(real, "rb") as fh:
            fh.seek(offset)
            tensor.raw_data = fh.read(length)
        del tensor.external_data[:]
        tensor.data_location = onnx.TensorProto.DEFAULT


_SUB_BYTE_BITS = {21: 4, 22: 4, 23: 4, 25: 2, 26: 2}
_PACKED_6_BIT = {27, 28}  # packing not pinned down by the spec yet: length is not checked


def check_tensor_payloads(proto: onnx.ModelProto) -> None:
    """Every embedded tensor's data must match its dtype and dims, so a tampered size or dtype is
    an InvalidGraph naming the tensor here rather than a NumPy error deep in planning."""
    for tensor in _all_tensors(proto):
        where = f"tensor {tensor.name!r}"
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            continue  # refused or inlined by load_external_data before this check
        if tensor.data_type not in onnx.TensorProto.DataType.values() or tensor.data_type == 0:
            raise InvalidGraph(f"{where} has unknown data type {tensor.data_type}")
        if any(d < 0 for d in tensor.dims):
            raise InvalidGraph(f"{where} has negative dims {list(tensor.dims)}")
        numel, nonzero = 1, 1
        for d in tensor.dims:
            numel *= d
            nonzero *= max(d, 1)
        # NumPy refuses a shape whose non-zero dims overflow even when another dim is 0.
        if nonzero >= 1 << 62:
            raise InvalidGraph(f"{where} has dims {list(tensor.dims)}, too large for any array")
        dtype = tensor.data_type
        if dtype in _PACKED_6_BIT:
            continue
        field = onnx.helper.tensor_dtype_to_field(dtype)
        if tensor.HasField("raw_data") and dtype != onnx.TensorProto.STRING:
            bits = _SUB_BYTE_BITS.get(dtype)
            itemsize = onnx.helper.tensor_dtype_to_np_dtype(dtype).itemsize
            expected = (numel * bits + 7) // 8 if bits else numel * itemsize
            got = len(tensor.raw_data)
            what = "bytes of raw_data"
        else:
            got = len(getattr(tensor, field))
            per = 2 if dtype in (onnx.TensorProto.COMPLEX64, onnx.TensorProto.COMPLEX128) else 1
            expected = numel * per
            if dtype in _SUB_BYTE_BITS and got != expected:
                expected = (numel * _SUB_BYTE_BITS[dtype] + 31) // 32 if got else expected
            what = f"entries of {field}"
        if got != expected:
            type_name = onnx.helper.tensor_dtype_to_string(dtype).split(".")[-1]
            raise InvalidGraph(
                f"{where} ({type_name}, dims {list(tensor.dims)}) has {got} {what}, expected "
                f"{expected}; the file is corrupt or was edited without updating the data"
            )


def check_structure(proto: onnx.ModelProto, max_depth: int = LOADER_MAX_DEPTH) -> None:
    """Checks on the proto that onnx-ir would otherwise fail on obscurely or expensively: nesting
    deeper than ``max_depth`` and a value written by two nodes (or by a node and an input)."""
    max_depth = min(max_depth, LOADER_MAX_DEPTH)
    opsets = {("" if o.domain == "ai.onnx" else o.domain): o.version for o in proto.opset_import}
    graphs: list[tuple[onnx.GraphProto, int, str]] = [(proto.graph, 0, "")]
    graphs.extend((g, 1, f"function {f.name!r}/") for f in proto.functions for g in _subgraphs(f))
    while graphs:
        graph, depth, path = graphs.pop()
        if depth > max_depth:
            parts = path.rstrip("/").split("/")
            where = "/".join(parts if len(parts) <= 8 else [*parts[:4], "...", *parts[-4:]])
            raise InvalidGraph(
                f"subgraph {where!r} nests {depth} levels deep, more than "
                f"{max_depth}; raise SessionOptions.max_subgraph_depth if the model is "
                f"legitimate (the loader accepts at most {LOADER_MAX_DEPTH})"
            )
        writer = {v.name: "a graph input" for v in graph.input}
        writer.update((t.name, "an initializer") for t in graph.initializer if t.name not in writer)
        for index, node in enumerate(graph.node):
            label = f"node {path}{node.name or f'{node.op_type}_{index}'}"
            _check_arity(node, label, opsets)
            for name in node.output:
                if not name:
                    continue
                if name in writer:
                    raise InvalidGraph(
                        f"{label} (op {node.op_type}) writes {name!r}, which is already "
                        f"{writer[name]}; every value must have exactly one producer"
                    )
                writer[name] = f"written by {label!r}"
            for attr in node.attribute:
                _check_attribute(attr, label)
                for i, sub in enumerate(_attr_graphs(attr)):
                    suffix = f"[{i}]" if attr.type == onnx.AttributeProto.GRAPHS else ""
                    graphs.append((sub, depth + 1, f"{label[5:]}/{attr.name}{suffix}/"))


def _check_arity(node: onnx.NodeProto, label: str, opsets: dict[str, int]) -> None:
    """A node's input and output counts must fit its schema (MatMul with no output, Add with
    one input), or kernels and optimizers would meet it as an obscure IndexError."""
    domain = "" if node.domain == "ai.onnx" else node.domain
    if domain not in opsets:
        return
    try:
        schema = onnx.defs.get_schema(node.op_type, opsets[domain], domain)
    except onnx.defs.SchemaError:
        return  # unknown ops are reported by the capability query, naming the node
    # As onnx's checker does, an empty name counts: it holds an optional input's place.
    n_in, n_out = len(node.input), len(node.output)
    for kind, count, low, high in (
        ("inputs", n_in, schema.min_input, schema.max_input),
        ("outputs", n_out, schema.min_output, schema.max_output),
    ):
        if not low <= count <= high:
            bound = (
                f"{low}"
                if low == high
                else f"{low} to {high}"
                if high < 2**30
                else f"at least {low}"
            )
            raise InvalidGraph(
                f"node {label[len('node ') :]!r} (op {node.op_type}, opset {opsets[domain]}) "
                f"has {count} {kind}; "
                f"its schema takes {bound}"
            )


_ATTR_FIELD = {
    onnx.AttributeProto.TENSOR: "t",
    onnx.AttributeProto.GRAPH: "g",
    onnx.AttributeProto.SPARSE_TENSOR: "sparse_tensor",
    onnx.AttributeProto.TYPE_PROTO: "tp",
}


def _check_attribute(attr: onnx.AttributeProto, label: str) -> None:
    """An attribute whose declared type has no value (a TENSOR without ``t``) would otherwise
    reach kernels and optimizers as an UNDEFINED tensor or a None graph."""
    if attr.ref_attr_name:
        return
    if attr.type not in onnx.AttributeProto.AttributeType.values() or attr.type == 0:
        raise InvalidGraph(f"{label}: attribute {attr.name!r} has unknown type {attr.type}")
    field = _ATTR_FIELD.get(attr.type)
    if field is not None and not attr.HasField(field):
        type_name = onnx.AttributeProto.AttributeType.Name(attr.type)
        raise InvalidGraph(
            f"{label}: attribute {attr.name!r} is declared {type_name} but has no value"
        )


def _attr_graphs(attr: onnx.AttributeProto) -> list[onnx.GraphProto]:
    if attr.type == onnx.AttributeProto.GRAPH:
        return [attr.g]
    if attr.type == onnx.AttributeProto.GRAPHS:
        return list(attr.graphs)
    return []


def _subgraphs(function: onnx.FunctionProto) -> list[onnx.GraphProto]:
    return [g for node in function.node for attr in node.attribute for g in _attr_graphs(attr)]


def proto_type_string(t: onnx.TypeProto) -> str:
    """ORT-style type string of a TypeProto: ``map(int64,tensor(float))``, ``seq(...)``, ..."""
    kind = t.WhichOneof("value")
    if kind == "tensor_type":
        return f"tensor({onnx.helper.tensor_dtype_to_string(t.tensor_type.elem_type).split('.')[-1].lower()})"
    if kind == "sequence_type":
        return f"seq({proto_type_string(t.sequence_type.elem_type)})"
    if kind == "optional_type":
        return f"optional({proto_type_string(t.optional_type.elem_type)})"
    if kind == "map_type":
        key = onnx.helper.tensor_dtype_to_string(t.map_type.key_type).split(".")[-1].lower()
        return f"map({key},{proto_type_string(t.map_type.value_type)})"
    return "unknown"


def _has_map(t: onnx.TypeProto) -> bool:
    kind = t.WhichOneof("value")
    if kind == "map_type":
        return True
    if kind == "sequence_type":
        return _has_map(t.sequence_type.elem_type)
    if kind == "optional_type":
        return _has_map(t.optional_type.elem_type)
    return False


def _strip_map_types(graph: onnx.GraphProto, found: dict[str, str]) -> None:
    """onnx-ir cannot represent map types yet: drop them from value infos (they are hints to the
    runtime; kernels handle dicts), remembering each one's ORT type string by value name."""
    for vi in [*graph.input, *graph.output, *graph.value_info]:
        if vi.HasField("type") and _has_map(vi.type):
            found[vi.name] = proto_type_string(vi.type)
            vi.ClearField("type")
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                _strip_map_types(attr.g, found)
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for g in attr.graphs:
                    _strip_map_types(g, found)


def prepare_model(
    model: str | os.PathLike | bytes | onnx.ModelProto, max_subgraph_depth: int = LOADER_MAX_DEPTH
) -> ir.Model:
    """Parse, check, inline model-local functions, infer shapes and convert to onnx-ir."""
    proto, base_dir = read_model_proto(model)
    if not proto.HasField("graph"):
        raise InvalidGraph("the model has no graph")
    check_text_fields(proto)
    check_structure(proto, max_subgraph_depth)
    if any(
        t.data_location == onnx.TensorProto.EXTERNAL or t.external_data for t in _all_tensors(proto)
    ):
        # Checks every tensor before reading any, so a refused ModelProto is left untouched.
        load_external_data(proto, base_dir)
    check_tensor_payloads(proto)
    try:
        return _convert(proto, owned=not isinstance(model, onnx.ModelProto))
    except RecursionError:
        # The depth check bounds nesting; a pathological model may still recurse elsewhere
        # (a long chain of nested function calls in the inliner, for instance).
        raise InvalidGraph(
            "the model is nested too deeply to load (Python's recursion limit was reached)"
        ) from None


_LARGE_PAYLOAD = 1 << 20


def _detach_large_payloads(proto: onnx.ModelProto) -> dict[str, bytes]:
    """Remove the raw data of main-graph initializers over 1 MiB, returned by name."""
    stash: dict[str, bytes] = {}
    for tensor in proto.graph.initializer:
        if len(tensor.raw_data) > _LARGE_PAYLOAD and tensor.name not in stash:
            stash[tensor.name] = tensor.raw_data
            tensor.ClearField("raw_data")
    return stash


def _reattach_payloads(proto: onnx.ModelProto, stash: dict[str, bytes]) -> None:
    for tensor in proto.graph.initializer:
        data = stash.get(tensor.name)
        if data is not None and not tensor.raw_data:
            tensor.raw_data = data


# Element types whose raw data NumPy reads as is (little-endian, one element per item).
_PLAIN_TYPES = {
    t: np.dtype(onnx.helper.tensor_dtype_to_np_dtype(t)).newbyteorder("<")
    for t in (
        onnx.TensorProto.FLOAT,
        onnx.TensorProto.DOUBLE,
        onnx.TensorProto.FLOAT16,
        onnx.TensorProto.INT8,
        onnx.TensorProto.INT16,
        onnx.TensorProto.INT32,
        onnx.TensorProto.INT64,
        onnx.TensorProto.UINT8,
        onnx.TensorProto.UINT16,
        onnx.TensorProto.UINT32,
        onnx.TensorProto.UINT64,
        onnx.TensorProto.BOOL,
        onnx.TensorProto.COMPLEX64,
        onnx.TensorProto.COMPLEX128,
    )
}


def _arrays_from_stash(proto: onnx.ModelProto, stash: dict[str, bytes]) -> dict[str, np.ndarray]:
    """Arrays over the stashed payloads of plain-typed initializers (no copy); the others go
    back into ``proto``."""
    arrays: dict[str, np.ndarray] = {}
    for tensor in proto.graph.initializer:
        data = stash.get(tensor.name)
        if data is None or tensor.raw_data:
            continue
        dtype = _PLAIN_TYPES.get(tensor.data_type)
        if dtype is None:
            tensor.raw_data = data
            continue
        arrays[tensor.name] = np.frombuffer(data, dtype).reshape(tuple(tensor.dims))
    return arrays


def _convert(proto: onnx.ModelProto, owned: bool = True) -> ir.Model:
    """The ir model of ``proto``. ``owned`` is False when ``proto`` is the caller's ModelProto,
    which must be left as it was given."""
    if proto.functions:
        try:
            proto = onnx.inliner.inline_local_functions(proto)
            owned = True
        except RecursionError:
            raise
        except Exception as exc:
            raise InvalidGraph(f"could not inline the model's local functions: {exc}") from exc
    # Shape inference copies the whole model through C++ and back; weights need not travel with
    # it (data propagation only reads small shape-like constants), so large payloads wait aside.
    # They never go back into a proto: the graph's initializers become arrays over the stashed
    # bytes, so the parsed model's copy of the weights is freed with it, and loading holds at
    # most two copies (parsed and stashed) instead of three.
    original = proto
    stash = _detach_large_payloads(proto)
    try:
        proto = onnx.shape_inference.infer_shapes(
            proto, check_type=False, strict_mode=False, data_prop=True
        )
    except Exception:  # noqa: BLE001 - inference is best effort; kernels work without it
        copy = onnx.ModelProto()
        copy.CopyFrom(proto)
        proto = copy
    finally:
        if not owned:
            _reattach_payloads(original, stash)
    arrays = _arrays_from_stash(proto, stash)
    del original, stash
    map_types: dict[str, str] = {}
    _strip_map_types(proto.graph, map_types)
    try:
        model = ir.serde.deserialize_model(proto)
    except RecursionError:
        raise
    except Exception as exc:
        raise InvalidGraph(f"the model could not be read: {type(exc).__name__}: {exc}") from exc
    model.meta["tessera.map_types"] = map_types
    for name, array in arrays.items():
        value = model.graph.initializers.get(name)
        if value is not None:
            value.const_value = ir.Tensor(array, name=name)
    return model
