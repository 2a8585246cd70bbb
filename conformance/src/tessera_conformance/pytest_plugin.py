"""pytest plugin: ``pytest --pyargs tessera_conformance --provider NAME`` in a vendor's CI.

Every test function that takes a ``conformance_case`` argument is parametrized over the suite's
cases. Cases the provider declines are skipped with the provider's own reason; wrong answers and
errors fail.
"""

from __future__ import annotations

import pytest

from tessera_conformance._cases import load_cases

_CACHE: dict[tuple, list] = {}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("tessera-conformance")
    group.addoption(
        "--provider",
        default=None,
        help="Tessera provider to prove (e.g. cpu, cuda, AcmeExecutionProvider)",
    )
    group.addoption(
        "--conformance-mode",
        default="strict",
        choices=["strict", "fallback"],
        help="strict: the provider alone (declined nodes skip); fallback: with CPU behind it",
    )
    group.addoption(
        "--conformance-cases", default=None, metavar="REGEX", help="only cases whose name matches"
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "conformance_case" not in metafunc.fixturenames:
        return
    pattern = metafunc.config.getoption("--conformance-cases")
    key = (pattern,)
    if key not in _CACHE:
        _CACHE[key] = load_cases(pattern=pattern)
    cases = _CACHE[key]
    metafunc.parametrize("conformance_case", cases, ids=[c.name for c in cases])


@pytest.fixture
def conformance_provider(request: pytest.FixtureRequest) -> str:
    """The provider under test: a class attribute ``provider`` wins over ``--provider``."""
    name = getattr(request.cls, "provider", None) if request.cls else None
    name = name or request.config.getoption("--provider")
    if not name:
        pytest.skip("no provider to prove: pass --provider NAME")
    return name


@pytest.fixture
def conformance_strict(request: pytest.FixtureRequest) -> bool:
    mode = getattr(request.cls, "mode", None) if request.cls else None
    return (mode or request.config.getoption("--conformance-mode")) == "strict"
