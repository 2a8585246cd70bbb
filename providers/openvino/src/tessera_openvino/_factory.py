"""The OpenVINO provider's factory: option schema, lazy device probing, and provider creation."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tessera import InvalidArgument
from tessera.provider import OptionSpec, ProviderFactory
from tessera_openvino import __version__

DEVICE_TYPES = ("CPU", "GPU", "NPU", "AUTO")
# User spelling -> (OpenVINO's INFERENCE_PRECISION_HINT, the provider's declared precision).
PRECISIONS = {
    "f32": ("f32", "fp32"),
    "fp32": ("f32", "fp32"),
    "bf16": ("bf16", "bf16"),
    "f16": ("f16", "fp16"),
    "fp16": ("f16", "fp16"),
}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _as_bool(key: str, value: Any) -> Any:
    """ORT passes provider options as strings; "false" must not become True."""
    if isinstance(value, str):
        low = value.strip().lower()
        if low in _TRUE | _FALSE:
            return low in _TRUE
        raise InvalidArgument(
            f"provider 'openvino' option {key!r} must be a boolean (true/false), got {value!r}"
        )
    return value


class OpenVINOProviderFactory(ProviderFactory):
    name = "openvino"
    aliases = ("OpenVINOExecutionProvider",)
    vendor = "Intel (OpenVINO), Tessera glue"
    version = __version__
    api_version = "1.1"  # uses threads_option
    threads_option = "num_of_threads"
    default_priority = 100
    distribution = "tessera-openvino"
    options = {
        "device_type": OptionSpec(str, "CPU", f"OpenVINO device: one of {', '.join(DEVICE_TYPES)}"),
        "precision": OptionSpec(
            str, "f32", "inference precision: f32 (default), bf16 or f16 (faster, less exact)"
        ),
        "num_streams": OptionSpec(int, 0, "OpenVINO NUM_STREAMS; 0 keeps the latency default"),
        "num_of_threads": OptionSpec(
            int, 0, "OpenVINO INFERENCE_NUM_THREADS; 0 uses every core OpenVINO sees"
        ),
        "cache_dir": OptionSpec(
            str, "", "folder for compiled blobs, reused by later sessions; empty disables caching"
        ),
        "enable_dynamic_shapes": OptionSpec(
            bool,
            True,
            "compile symbolic dims as dynamic (true) or recompile per new input shape (false)",
        ),
    }

    def __init__(self) -> None:
        self._devices: list[str] | None = None

    def devices(self) -> list[str]:
        if self._devices is None:
            self._devices = self._probe()
        return list(self._devices)

    def _probe(self) -> list[str]:
        try:
            import openvino
        except ImportError as exc:
            self.unavailable_reason = (
                f"openvino is not installed ({exc}); install it with `pip install openvino`"
            )
            return []
        try:
            found = list(openvino.Core().available_devices)
        except Exception as exc:  # noqa: BLE001 - a broken runtime raises anything; keep the reason
            self.unavailable_reason = f"OpenVINO {openvino.__version__} failed to start: {exc}"
            return []
        if not found:
            self.unavailable_reason = f"OpenVINO {openvino.__version__} reports no usable device"
        return found

    def create(self, options: Mapping[str, Any]):
        options = dict(options)
        if "enable_dynamic_shapes" in options:
            options["enable_dynamic_shapes"] = _as_bool(
                "enable_dynamic_shapes", options["enable_dynamic_shapes"]
            )
        resolved = self.validate_options(options)
        resolved["device_type"] = str(resolved["device_type"]).upper()
        if resolved["device_type"] not in DEVICE_TYPES:
            raise InvalidArgument(
                f"provider 'openvino' option 'device_type' must be one of "
                f"{', '.join(DEVICE_TYPES)}, got {options['device_type']!r}"
            )
        precision = str(resolved["precision"]).lower()
        if precision not in PRECISIONS:
            raise InvalidArgument(
                f"provider 'openvino' option 'precision' must be one of "
                f"{', '.join(PRECISIONS)}, got {options['precision']!r}"
            )
        resolved["precision"] = precision
        for key in ("num_streams", "num_of_threads"):
            if resolved[key] < 0:
                raise InvalidArgument(
                    f"provider 'openvino' option {key!r} must be >= 0 (0 = OpenVINO's default), "
                    f"got {resolved[key]}"
                )
        available = self.devices()
        if not available:
            raise InvalidArgument(f"provider 'openvino' is unavailable: {self.unavailable_reason}")
        wanted = resolved["device_type"]
        if wanted != "AUTO" and not any(d.split(".")[0] == wanted for d in available):
            raise InvalidArgument(
                f"provider 'openvino' option device_type={wanted!r}: OpenVINO sees only "
                f"{', '.join(available)}; pick one of those (or AUTO)"
            )
        from tessera_openvino._provider import OpenVINOExecutionProvider

        return OpenVINOExecutionProvider(resolved)
