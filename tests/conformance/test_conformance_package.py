"""tessera-conformance against in-repo reference providers: statuses, reports and the pytest path."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from support import fake_providers as fp

from tessera_conformance import (
    ConformanceSuite,
    build_report,
    load_cases,
    provider_matrix,
    run_case,
    to_markdown,
)


@pytest.fixture(scope="module")
def add_cases():
    return {c.name: c for c in load_cases(("node",), r"^test_(add|add_uint8|relu|bernoulli_seed)$")}


def test_claimed_case_with_right_answer_passes_in_strict_mode(plugins, add_cases):
    plugins(fp.Plugin(fp.FakeDeviceFactory()))
    result = run_case(add_cases["test_add"], "fakedevice", strict=True)
    assert result.status == "passed"
    assert result.claimed == result.nodes == 1


def test_declined_node_makes_the_case_unsupported_with_the_providers_reason(plugins, add_cases):
    plugins(fp.Plugin(fp.FakeDeviceFactory()))
    result = run_case(add_cases["test_add_uint8"], "fakedevice", strict=True)
    assert result.status == "unsupported"
    assert "tensor(uint8)" in result.reason


def test_fallback_mode_runs_declined_nodes_on_cpu(plugins, add_cases):
    plugins(fp.Plugin(fp.FakeDeviceFactory()))
    result = run_case(add_cases["test_add_uint8"], "fakedevice", strict=False)
    assert result.status == "passed"
    assert result.claimed == 0


def test_claimed_node_with_wrong_output_fails_strict_mode(plugins, add_cases):
    plugins(fp.Plugin(fp.LiarFactory()))
    result = run_case(add_cases["test_relu"], "liar", strict=True)
    assert result.status == "failed"
    assert "Mismatch" in result.reason or "Not equal" in result.reason


def test_random_output_cases_are_reported_as_random_not_passed(add_cases):
    result = run_case(add_cases["test_bernoulli_seed"], "cpu", strict=True)
    assert result.status in ("random", "passed")
    assert add_cases["test_bernoulli_seed"].random


def test_report_has_summary_cases_ops_and_versions(plugins, add_cases):
    plugins(fp.Plugin(fp.FakeDeviceFactory()))
    results = [
        (c, run_case(c, "fakedevice", strict=True))
        for c in add_cases.values()
        if c.name.startswith("test_add")
    ]
    report = build_report("fakedevice", "1.2.3", True, results)
    assert report["summary"] == {
        "passed": 1,
        "failed": 0,
        "unsupported": 1,
        "errors": 0,
        "random": 0,
        "total": 2,
    }
    assert report["cases"] == {"test_add": "passed", "test_add_uint8": "unsupported"}
    assert report["ops"]["Add"]["passed"] == 1 and report["ops"]["Add"]["unsupported"] == 1
    assert report["provider_version"] == "1.2.3" and report["onnx_version"]
    markdown = to_markdown(report)
    assert "| Add | 1 | 0 | 1 | 0 | 0 |" in markdown
    matrix = provider_matrix([report, {**report, "provider": "other", "mode": "fallback"}])
    assert "| Add | 1/2 | 1/2 |" in matrix


def test_suite_base_class_skips_declined_cases_with_the_reason(plugins, add_cases):
    plugins(fp.Plugin(fp.FakeDeviceFactory()))
    with pytest.raises(pytest.skip.Exception, match=r"declined by fakedevice: .*tensor\(uint8\)"):
        ConformanceSuite().test_case(add_cases["test_add_uint8"], "fakedevice", True)
    with pytest.raises(pytest.fail.Exception, match="failed"):
        plugins(fp.Plugin(fp.LiarFactory()))
        ConformanceSuite().test_case(add_cases["test_relu"], "liar", True)


def test_cli_writes_json_and_exits_zero_when_nothing_fails(tmp_path):
    out = tmp_path / "report.json"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "tessera.cli",
            "conformance",
            "--provider",
            "cpu",
            "-k",
            "^test_(abs|neg)$",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    report = json.loads(out.read_text())
    assert report["summary"]["passed"] == 2 and report["summary"]["total"] == 2
    assert "2 passed, 0 failed" in run.stdout


def test_pytest_plugin_runs_the_suite_for_a_named_provider(tmp_path):
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--pyargs",
            "tessera_conformance",
            "--provider",
            "cpu",
            "--conformance-cases",
            "^test_(abs|neg)$",
            "-q",
            "-p",
            "no:cacheprovider",
        ],
        cwd=tmp_path,  # outside this repository, as in a vendor's CI
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "2 passed" in run.stdout


def test_summary_table_counts_each_status_per_kind(add_cases):
    from tessera_conformance.cli import summary_table

    results = [
        (c, run_case(c, "cpu", strict=True))
        for c in add_cases.values()
        if c.name.startswith("test_add")
    ]
    table = summary_table(build_report("cpu", "0", True, results)).splitlines()
    assert table[0].split() == ["status", "node", "total"]
    assert table[1].split() == ["passed", "2", "2"]
