"""The README's commands are the whole set-up; CI must run exactly its test command."""

from __future__ import annotations

import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _commands(text: str) -> list[str]:
    return [
        line.strip()
        for line in text.splitlines()
        if line.strip().startswith("python -m pip install")
    ]


def test_ci_runs_the_readme_test_command():
    readme = _commands((ROOT / "README.md").read_text())
    ci = _commands((ROOT / ".ci" / "run").read_text())
    assert len(readme) == 2, "the README has one demo command and one test command"
    assert ci == [readme[1]]
    assert readme[1].endswith("python -m pytest")
    assert readme[0].endswith("tessera demo")
