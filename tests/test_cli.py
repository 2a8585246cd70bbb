"""The tessera command line: run, explain, providers and demo."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from conftest import tensor
from onnx import helper

from tessera.cli import main


@pytest.fixture
def model_path(tmp_path):
    nodes = [
        helper.make_node("Add", ["x", "x"], ["d"], name="double"),
        helper.make_node("Relu", ["d"], ["y"], name="relu"),
    ]
    graph = helper.make_graph(nodes, "g", [tensor("x", ["n", 3])], [tensor("y", ["n", 3])])
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def test_run_reads_npy_inputs_and_saves_outputs(model_path, tmp_path, capsys):
    x = np.array([[-1, 2, 3]], np.float32)
    np.save(tmp_path / "x.npy", x)
    out_dir = tmp_path / "out"
    assert (
        main(
            [
                "run",
                str(model_path),
                "--input",
                f"x={tmp_path / 'x.npy'}",
                "--output-dir",
                str(out_dir),
                "--repeat",
                "3",
            ]
        )
        == 0
    )
    np.testing.assert_array_equal(np.load(out_dir / "y.npy"), np.maximum(2 * x, 0))
    text = capsys.readouterr().out
    assert "y: float32[1, 3]" in text and "median latency over 3 runs" in text


def test_run_with_random_inputs_when_none_are_given(model_path, capsys):
    assert main(["run", str(model_path)]) == 0
    assert "y: float32[1, 3]" in capsys.readouterr().out


def test_explain_lists_every_node_assignment(model_path, capsys):
    assert main(["explain", str(model_path), "--providers", "cpu", "-v"]) == 0
    text = capsys.readouterr().out
    assert "double -> CPUExecutionProvider" in text and "relu -> CPUExecutionProvider" in text


def test_bad_model_path_is_a_clear_error_not_a_traceback(tmp_path, capsys):
    assert main(["run", str(tmp_path / "missing.onnx")]) == 2
    assert "tessera: error: model file" in capsys.readouterr().err


def test_malformed_input_argument_is_explained(model_path):
    with pytest.raises(SystemExit, match=r"--input takes NAME=FILE\.npy"):
        main(["run", str(model_path), "--input", "x.npy"])


def test_demo_prints_outputs_partition_and_timing(capsys):
    assert main(["demo", "--repeat", "3"]) == 0
    text = capsys.readouterr().out
    assert "probabilities for one 3x32x32 image (sum 1.0000)" in text
    assert "conv1" in text and "-> CPUExecutionProvider" in text
    assert "median run" in text


def test_providers_lists_the_cpu_provider(capsys):
    assert main(["providers"]) == 0
    assert "CPUExecutionProvider" in capsys.readouterr().out
