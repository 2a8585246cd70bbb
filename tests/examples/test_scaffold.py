"""`tessera new-provider` writes a package that installs, is discovered, and claims its op.

The end-to-end test installs the generated package into a throw-away virtual environment layered
on this one, so the test environment itself is never changed.
"""

from __future__ import annotations

import importlib.util
import os
import site
import subprocess
import sys
import textwrap

import pytest

from tessera._scaffold import ScaffoldError, placeholders, scaffold
from tessera.cli import main

EXPECTED_FILES = {
    "pyproject.toml",
    "README.md",
    "src/tessera_acme/__init__.py",
    "src/tessera_acme/plugin.py",
    "src/tessera_acme/_factory.py",
    "src/tessera_acme/kernels.py",
    "tests/test_conformance.py",
    "tests/test_acme_provider.py",
}

SESSION = """
import numpy as np
from onnx import TensorProto, helper
import tessera
nodes = [helper.make_node("Relu", ["x"], ["r"], name="relu"),
         helper.make_node("Sigmoid", ["r"], ["y"], name="sigmoid")]
graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3])])
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()
session = tessera.InferenceSession(model, providers=["acme"])
print(session.assignments["relu"], session.assignments["sigmoid"])
y = session.run(None, {"x": np.array([-1.0, 0.0, 2.0], np.float32)})[0]
print([round(float(v), 4) for v in y])
"""


def test_new_provider_writes_the_whole_package(tmp_path, capsys):
    assert main(["new-provider", "acme", "--output", str(tmp_path / "pkg")]) == 0
    written = {
        p.relative_to(tmp_path / "pkg").as_posix()
        for p in (tmp_path / "pkg").rglob("*")
        if p.is_file()
    }
    assert written == EXPECTED_FILES
    pyproject = (tmp_path / "pkg" / "pyproject.toml").read_text()
    assert '[project.entry-points."tessera.providers"]\nacme = "tessera_acme.plugin"' in pyproject
    kernels = (tmp_path / "pkg" / "src" / "tessera_acme" / "kernels.py").read_text()
    assert '@registry.kernel("Relu", since=(6, 13, 14)' in kernels
    for path in (tmp_path / "pkg").rglob("*.py"):
        compile(path.read_text(), str(path), "exec")  # every generated module is valid Python
    assert "pip install -e" in capsys.readouterr().out


def test_names_are_turned_into_package_module_and_class_names():
    values = placeholders("acme_npu")
    assert values["dist"] == "tessera-acme-npu"
    assert values["module"] == "tessera_acme_npu"
    assert values["alias"] == "AcmeNpuExecutionProvider"


@pytest.mark.parametrize(
    ("name", "message"),
    [("Acme", "lower-case letters"), ("9lives", "starting with a letter"), ("cpu", "is taken")],
)
def test_unusable_names_are_rejected_with_an_example(name, message):
    with pytest.raises(ScaffoldError, match=message):
        placeholders(name)


def test_a_non_empty_output_folder_is_refused_without_force(tmp_path, capsys):
    (tmp_path / "keep.txt").write_text("mine")
    assert main(["new-provider", "acme", "--output", str(tmp_path)]) == 2
    assert (
        "is not empty; pass an empty or new folder as --output, or --force"
        in capsys.readouterr().err
    )
    assert not (tmp_path / "pyproject.toml").exists()
    assert len(scaffold("acme", tmp_path, force=True)) == len(EXPECTED_FILES)
    assert (tmp_path / "keep.txt").read_text() == "mine"


def _layered_venv(path) -> str:
    """A venv without pip that also sees this interpreter's site-packages (editable installs too)."""
    subprocess.run(
        [sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(path)],
        check=True,
        timeout=120,
    )
    python = str(path / "bin" / "python")
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    # When this interpreter is itself a venv, --system-site-packages would skip its packages.
    outer = [*site.getsitepackages(), site.getusersitepackages()]
    lines = "".join(f"import site; site.addsitedir({d!r})\n" for d in outer if os.path.isdir(d))
    with open(os.path.join(purelib, "_tessera_outer_site.pth"), "w") as fh:
        fh.write(lines)
    return python


@pytest.fixture(scope="module")
def installed_scaffold(tmp_path_factory):
    if importlib.util.find_spec("setuptools") is None:
        pytest.skip("setuptools is needed to install the generated package without build isolation")
    root = tmp_path_factory.mktemp("scaffold")
    package = root / "tessera-acme"
    scaffold("acme", package)
    python = _layered_venv(root / "venv")
    install = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            python,
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-e",
            str(package),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert install.returncode == 0, install.stderr
    env = {k: v for k, v in os.environ.items() if k != "TESSERA_PROVIDERS"}
    return python, package, env


def test_installed_scaffold_is_listed_by_tessera_providers(installed_scaffold):
    python, _, env = installed_scaffold
    out = subprocess.run(
        [python, "-m", "tessera.cli", "providers", "--all"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    line = next(ln for ln in out.stdout.splitlines() if "AcmeExecutionProvider" in ln)
    assert "priority     50" in line and "available on cpu" in line
    assert "tessera-acme 0.1.0" in out.stdout


def test_installed_scaffold_claims_relu_and_cpu_runs_the_rest(installed_scaffold):
    python, _, env = installed_scaffold
    out = subprocess.run(
        [python, "-W", "ignore", "-c", textwrap.dedent(SESSION)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    claims, values = out.stdout.strip().splitlines()
    assert claims == "AcmeExecutionProvider CPUExecutionProvider"
    assert values == "[0.5, 0.5, 0.8808]"


def test_generated_tests_pass_including_conformance(installed_scaffold):
    python, package, env = installed_scaffold
    out = subprocess.run(
        [
            python,
            "-m",
            "pytest",
            "-q",
            "-rN",
            "-p",
            "no:cacheprovider",
            "--conformance-cases",
            "^test_relu",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=package,
        timeout=300,
    )
    summary = out.stdout.strip().splitlines()[-1]
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "failed" not in summary and " passed" in summary, summary
