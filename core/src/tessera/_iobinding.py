"""IOBinding and OrtValue: ORT's way to bind inputs and outputs to buffers before a run."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from tessera._errors import InvalidArgument
from tessera._feeds import DeviceFeed
from tessera._provider import ExecutionProvider, host_array
from tessera._types import value_type_string

_DEVICE_PROVIDERS: dict[tuple[str, int], ExecutionProvider] = {}
_DEVICE_LOCK = threading.Lock()


def _device_provider(device_type: str, device_id: int) -> ExecutionProvider:
    """A provider for ``device_type`` (created as a session would create it, by name), to make
    device OrtValues; kept per (device type, id)."""
    from tessera._providers import resolve

    key = (device_type, device_id)
    with _DEVICE_LOCK:
        provider = _DEVICE_PROVIDERS.get(key)
        if provider is None:
            options = {"device_id": device_id} if device_id else {}
            ((_factory, provider, _options),) = resolve(
                [(device_type, options)], None, fallback=False
            )
            _DEVICE_PROVIDERS[key] = provider
        return provider


class OrtValue:
    """A value with a device, as onnxruntime's OrtValue. Host values wrap a NumPy array."""

    def __init__(
        self,
        value: Any,
        device_type: str = "cpu",
        device_id: int = 0,
        to_host: Callable[[Any], Any] | None = None,
    ) -> None:
        self._value = value
        self._device = (device_type.lower(), int(device_id))
        self._to_host = to_host  # the producing provider's, for a value kept on its device

    @classmethod
    def ortvalue_from_numpy(
        cls, array: np.ndarray, device_type: str = "cpu", device_id: int = 0
    ) -> OrtValue:
        """A value on the host, or copied to ``device_type`` ("opencl", "cuda") by that device's
        installed provider, as onnxruntime's ``OrtValue.ortvalue_from_numpy(x, "cuda", 0)``."""
        device_type = device_type.lower()
        if device_type == "cpu":
            return cls(np.asarray(array), device_type, device_id)
        provider = _device_provider(device_type, int(device_id))
        value = provider.to_device(np.ascontiguousarray(array))
        return cls(value, device_type, device_id, to_host=provider.to_host)

    def numpy(self) -> np.ndarray:
        """The value on the host (a copy from the device for a device value)."""
        if self._to_host is not None:
            return np.asarray(self._to_host(self._value))
        return self._value if isinstance(self._value, np.ndarray) else np.asarray(self._value)

    def shape(self) -> list[int]:
        shape = getattr(self._value, "shape", None)
        if shape is None and self._to_host is not None:
            shape = np.shape(self.numpy())  # a device type without .shape: ask through a copy
        return list(shape) if shape is not None else list(np.shape(self._value))

    def data_type(self) -> str:
        if self._to_host is None:
            return value_type_string(self._value)
        dtype = getattr(self._value, "dtype", None)
        return value_type_string(np.empty(0, dtype) if dtype is not None else self.numpy())

    def device_value(self) -> Any:
        """The provider's own object for this value (a device array for a device value)."""
        return self._value

    def device_name(self) -> str:
        return self._device[0]

    def is_tensor(self) -> bool:
        return isinstance(self._value, np.ndarray) or self._to_host is not None


class IOBinding:
    """Bind inputs and outputs by name, run, then read outputs (ORT's ``session.io_binding()``)."""

    def __init__(self, session) -> None:
        self._session = session
        self._inputs: dict[str, Any] = {}
        self._outputs: list[str] = []
        self._output_buffers: dict[str, np.ndarray] = {}
        self._output_devices: dict[str, tuple[str, int]] = {}
        self._results: list[OrtValue] = []

    def bind_cpu_input(self, name: str, arr: np.ndarray) -> None:
        self._inputs[name] = arr

    def bind_ortvalue_input(self, name: str, value: OrtValue) -> None:
        """Bind an OrtValue. A device value stays on its device for the nodes of a provider on
        that device that can read it (``ExecutionProvider.adopt``); others get a host copy."""
        if value._to_host is None:
            self._inputs[name] = value.numpy()
            return
        array = value.device_value()
        dtype, shape = getattr(array, "dtype", None), getattr(array, "shape", None)
        if dtype is None or shape is None:
            self._inputs[name] = value.numpy()
            return
        device_type, device_id = value._device
        self._inputs[name] = DeviceFeed(
            array, device_type, device_id, np.dtype(dtype), tuple(shape), value._to_host
        )

    def bind_input(
        self,
        name: str,
        device_type: str,
        device_id: int,
        element_type: Any,
        shape: Any,
        buffer_ptr: Any,
    ) -> None:
        raise InvalidArgument(
            "bind_input with a raw buffer pointer needs a device provider that accepts pointers; "
            "use bind_cpu_input(name, numpy_array) for host data"
        )

    def bind_output(
        self,
        name: str,
        device_type: str = "cpu",
        device_id: int = 0,
        element_type: Any = None,
        shape: Any = None,
        buffer_ptr: Any = None,
    ) -> None:
        if buffer_ptr is not None:
            raise InvalidArgument(
                f"output {name!r}: binding a raw buffer pointer is not supported; omit the "
                "buffer (the output is allocated by the provider) or use bind_ortvalue_output"
            )
        if device_type.lower() == "cpu":
            self._output_devices.pop(name, None)
        else:
            # Kept on the device that computes it: checked at run time against the plan.
            self._output_devices[name] = (device_type.lower(), int(device_id))
        if name not in self._outputs:
            self._outputs.append(name)

    def bind_ortvalue_output(self, name: str, value: OrtValue) -> None:
        self._output_buffers[name] = value.numpy()
        if name not in self._outputs:
            self._outputs.append(name)

    def clear_binding_inputs(self) -> None:
        self._inputs.clear()

    def clear_binding_outputs(self) -> None:
        self._outputs.clear()
        self._output_buffers.clear()
        self._output_devices.clear()

    def synchronize_inputs(self) -> None:
        """Host bindings need no synchronisation."""

    def synchronize_outputs(self) -> None:
        """Host bindings need no synchronisation."""

    def _run(self, run_options) -> None:
        session = self._session
        names = self._outputs or [o.name for o in session.get_outputs()]
        picks = session._pick_outputs(names)
        plan = session._plan
        keep: dict[int, tuple[str, int]] = {}
        for name, i in zip(names, picks):
            wanted = self._output_devices.get(name)
            if wanted is None:
                continue
            device = plan.output_devices[i]
            if device.split(":")[0].lower() != wanted[0] or plan.output_to_host[i] is None:
                raise InvalidArgument(
                    f"output {name!r} is computed on {device!r}, not on {wanted[0]!r}; bind it "
                    f"to 'cpu', or to the device of the provider that computes it"
                )
            keep[i] = wanted
        values = session._run_values(self._inputs, run_options, frozenset(keep))
        results = [values[i] if i in keep else host_array(values[i]) for i in picks]
        for name, value, i in zip(names, results, picks):
            if i in keep:
                continue
            buf = self._output_buffers.get(name)
            if buf is not None:
                if buf.shape != np.shape(value) or buf.dtype != value.dtype:
                    raise InvalidArgument(
                        f"output {name!r} is {value.dtype}{list(value.shape)}, the bound OrtValue is "
                        f"{buf.dtype}{list(buf.shape)}"
                    )
                np.copyto(buf, value)
        self._results = [
            OrtValue(v, *keep[i], to_host=plan.output_to_host[i]) if i in keep else OrtValue(v)
            for v, i in zip(results, picks)
        ]

    def get_outputs(self) -> list[OrtValue]:
        return list(self._results)

    def copy_outputs_to_cpu(self) -> list[Any]:
        return [v.numpy() if v.is_tensor() else v._value for v in self._results]
