"""Loading: a path, bytes or ModelProto becomes a checked, shape-inferred onnx-ir Model.

External data is read only from inside the model's folder, after checking every location,
offset and length, so a model cannot make Tessera read files it should not.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import onnx
import onnx_ir as ir
from google.protobuf.message import DecodeError

from tessera._errors import InvalidGraph

_EXTERNAL_KEYS = {"location", "offset", "length", "checksum", "basepath"}


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
            raise InvalidGraph(
                f"the model bytes are not a valid ONNX ModelProto ({exc}); pass the bytes of "
                "an .onnx file, a path, or an onnx.ModelProto"
            ) from exc
        return proto, None
    if isinstance(model, (str, os.PathLike)):
        path = Path(model)
        if not path.is_file():
            raise InvalidGraph(f"model file {str(path)!r} does not exist or is not a file")
        try:
            proto = onnx.load(str(path), load_external_data=False)
        except (DecodeError, RuntimeError, ValueError) as exc:
            raise InvalidGraph(f"{str(path)!r} is not a valid ONNX model file ({exc})") from exc
        return proto, path.resolve().parent
    raise TypeError(
        f"InferenceSession needs a path, bytes or onnx.ModelProto, not {type(model).__name__}"
    )


def _external_tensors(proto: onnx.ModelProto):
    def from_graph(graph: onnx.GraphProto):
        yield from graph.initializer
        for node in graph.node:
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.TENSOR:
                    yield attr.t
                elif attr.type == onnx.AttributeProto.GRAPH:
                    yield from from_graph(attr.g)
                elif attr.type == onnx.AttributeProto.GRAPHS:
                    for g in attr.graphs:
                        yield from from_graph(g)

    yield from from_graph(proto.graph)
    for fn in proto.functions:
        for node in fn.node:
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.TENSOR:
                    yield attr.t


def load_external_data(proto: onnx.ModelProto, base_dir: Path | None) -> None:
    """Read every external tensor's bytes into the proto, refusing any location outside
    ``base_dir`` (``..``, absolute paths, symlinks out) and any offset/length past the file."""
    for tensor in _external_tensors(proto):
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        info = {e.key: e.value for e in tensor.external_data}
        where = f"initializer {tensor.name!r}"
        unknown = sorted(set(info) - _EXTERNAL_KEYS)
        if unknown:
            raise InvalidGraph(
                f"{where}: unknown external-data keys {unknown}; valid keys: {sorted(_EXTERNAL_KEYS)}"
            )
        if base_dir is None:
            raise InvalidGraph(
                f"{where} stores its data in an external file, which needs a model path: "
                "load the model by its file path rather than from bytes"
            )
        location = info.get("location", "")
        if not location or os.path.isabs(location) or Path(location).drive:
            raise InvalidGraph(
                f"{where}: external-data location {location!r} must be a relative path inside the model folder"
            )
        if ".." in Path(location).parts:
            raise InvalidGraph(f"{where}: external-data location {location!r} may not contain '..'")
        target = base_dir / location
        real = Path(os.path.realpath(target))
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
            raise InvalidGraph(
                f"{where}: external-data location {location!r} is not a regular file"
            )
        try:
            offset = int(info.get("offset", 0))
            length = int(info["length"]) if "length" in info else st.st_size - offset
        except ValueError:
            raise InvalidGraph(f"{where}: external-data offset/length must be integers") from None
        if offset < 0 or length < 0 or offset + length > st.st_size:
            raise InvalidGraph(
                f"{where}: external data [{offset}, {offset + length}) lies outside {location!r} "
                f"({st.st_size} bytes)"
            )
        with open(real, "rb") as fh:
            fh.seek(offset)
            tensor.raw_data = fh.read(length)
        del tensor.external_data[:]
        tensor.data_location = onnx.TensorProto.DEFAULT


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


def prepare_model(model: str | os.PathLike | bytes | onnx.ModelProto) -> ir.Model:
    """Parse, inline model-local functions, infer shapes and convert to onnx-ir."""
    proto, base_dir = read_model_proto(model)
    if any(t.data_location == onnx.TensorProto.EXTERNAL for t in _external_tensors(proto)):
        proto = onnx.ModelProto.FromString(proto.SerializeToString()) if base_dir is None else proto
        load_external_data(proto, base_dir)
    if not proto.HasField("graph"):
        raise InvalidGraph("the model has no graph")
    if proto.functions:
        try:
            proto = onnx.inliner.inline_local_functions(proto)
        except Exception as exc:
            raise InvalidGraph(f"could not inline the model's local functions: {exc}") from exc
    try:
        proto = onnx.shape_inference.infer_shapes(
            proto, check_type=False, strict_mode=False, data_prop=True
        )
    except Exception:  # noqa: BLE001 - inference is best effort; kernels work without it
        pass
    map_types: dict[str, str] = {}
    _strip_map_types(proto.graph, map_types)
    try:
        model = ir.serde.deserialize_model(proto)
    except Exception as exc:
        raise InvalidGraph(f"the model could not be read: {type(exc).__name__}: {exc}") from exc
    model.meta["tessera.map_types"] = map_types
    return model
