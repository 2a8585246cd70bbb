"""Running one case on one provider, in strict or fallback mode, and naming the outcome.

- **passed**: every output matches the suite's expectation with the suite's tolerances.
- **failed**: the provider claimed the nodes but an output is wrong (a capability-honesty failure).
- **unsupported**: strict mode, and the provider declined a node; the reason is its own answer.
- **error**: session creation or the run raised anything else.
- **random**: the expected values come from a random generator; shape and dtype matched, values
  cannot be compared and are not counted as passed.
"""

from __future__ import annotations

import dataclasses

import numpy as np

import tessera
from tessera_conformance._cases import Case
from tessera_conformance._compare import assert_similar_outputs

STATUSES = ("passed", "failed", "unsupported", "error", "random")


@dataclasses.dataclass
class Result:
    status: str
    reason: str = ""
    claimed: int = 0  # nodes the provider under test ran (the rest fell back to CPU)
    nodes: int = 0


def session_for(case: Case, provider: str, strict: bool) -> tessera.InferenceSession:
    opts = tessera.SessionOptions()
    opts.log_severity_level = 3
    if strict:
        opts.add_session_config_entry("session.disable_cpu_ep_fallback", "1")
        providers = [provider]
    else:
        providers = [provider, "CPUExecutionProvider"]
    return tessera.InferenceSession(case.model.SerializeToString(), opts, providers=providers)


def _shapes_and_dtypes_match(expected: list, outputs: list) -> bool:
    if len(expected) != len(outputs):
        return False
    for e, o in zip(expected, outputs):
        if isinstance(e, np.ndarray) and (
            not isinstance(o, np.ndarray) or e.shape != o.shape or e.dtype != o.dtype
        ):
            return False
    return True


def run_case(case: Case, provider: str, strict: bool = True) -> Result:
    """Run ``case`` on ``provider``; never raises for a provider's misbehaviour."""
    try:
        session = session_for(case, provider, strict)
    except tessera.NoKernelError as exc:
        if strict:
            return Result("unsupported", _first_reason(str(exc)))
        return Result("error", f"NoKernelError: {_first_reason(str(exc))}")
    except Exception as exc:  # noqa: BLE001 - a provider may raise anything; that is the finding
        return Result("error", f"session creation: {type(exc).__name__}: {_short(exc)}")
    names = session.get_providers()
    target = names[0]
    nodes = len(session.assignments)
    claimed = sum(1 for p in session.assignments.values() if p == target)
    feeds_names = [i.name for i in session.get_inputs()]
    for inputs, expected in case.data_sets:
        feed = dict(zip(feeds_names, inputs))
        try:
            outputs = session.run(None, feed)
        except Exception as exc:  # noqa: BLE001
            return Result("error", f"run: {type(exc).__name__}: {_short(exc)}", claimed, nodes)
        outputs = outputs[: len(expected)]
        try:
            assert_similar_outputs(expected, outputs, rtol=case.rtol, atol=case.atol)
        except Exception as exc:  # noqa: BLE001 - AssertionError, or TypeError on wrong kinds
            if case.random and _shapes_and_dtypes_match(expected, outputs):
                return Result(
                    "random",
                    "values come from a random generator; shape and dtype match",
                    claimed,
                    nodes,
                )
            return Result("failed", f"{type(exc).__name__}: {_short(exc)}", claimed, nodes)
    return Result("passed", "", claimed, nodes)


def _short(exc: BaseException, limit: int = 300) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _first_reason(message: str) -> str:
    lines = [ln.strip(" -") for ln in message.splitlines() if ln.strip()]
    return lines[1] if len(lines) > 1 else (lines[0] if lines else "declined")
