"""ml.compare on benchmark frames: deltas and Welch intervals by hand from the Istio CSV,
unmatched levels reported, single runs without an interval, failed runs left out; and the
README's worked example run as written."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import meshlab as ml

from .conftest import upstream_fixture
from .test_benchmarks import HAND

ROOT = Path(__file__).resolve().parent.parent


def _p99_us(predicate) -> list[float]:
    with open(upstream_fixture("istio-tools-benchmark.csv"), newline="") as f:
        return [float(r["p99"]) for r in csv.DictReader(f) if predicate(r["Labels"], int(r["NumThreads"]))]


def _finding(result: pd.DataFrame, mode: str, qps: float, connections: float, metric: str = "latency_p99_ms"):
    hit = result[(result["mode"] == mode) & (result["requested_qps"] == qps)
                 & (result["connections"] == connections) & (result["metric"] == metric)]
    assert len(hit) == 1
    return hit.iloc[0]


def test_replicated_level_gets_a_welch_interval_by_hand():
    result = ml.compare(ml.read_benchmark(upstream_fixture("istio-tools-benchmark.csv")))
    mesh = np.array(_p99_us(lambda lab, c: "_qps_1000_c_16_" in lab and lab.endswith("none_mtls_both"))) / 1e3
    base = np.array(_p99_us(lambda lab, c: "_qps_1000_c_16_" in lab and lab.endswith("_baseline"))) / 1e3
    assert len(mesh) == 2 and len(base) == 4  # two builds with sidecars, four baseline runs (two configurations)
    va, vb = mesh.var(ddof=1) / len(mesh), base.var(ddof=1) / len(base)
    df = (va + vb) ** 2 / (va**2 / (len(mesh) - 1) + vb**2 / (len(base) - 1))  # Welch–Satterthwaite
    half = stats.t.ppf(0.975, df) * math.sqrt(va + vb)
    delta = mesh.mean() - base.mean()
    row = _finding(result, "none_mtls", 1000, 16)
    assert row["mesh"] == "istio" and row["baseline"] == "none"
    assert row["value"] == pytest.approx(mesh.mean()) and row["baseline_value"] == pytest.approx(base.mean())
    assert row["delta"] == pytest.approx(delta)
    assert row["delta_low"] == pytest.approx(delta - half) and row["delta_high"] == pytest.approx(delta + half)
    assert row["n"] == 2 and row["baseline_n"] == 4 and row["flags"] == ""
    assert row["summary"].startswith(f"istio (none_mtls) adds {delta:.3g} ms (")
    assert "at p99 over none at 1000 qps, 16 connections" in row["summary"]


def test_single_run_level_has_no_interval_and_says_why():
    result = ml.compare(ml.read_benchmark(upstream_fixture("istio-tools-benchmark.csv")))
    mesh = _p99_us(lambda lab, c: "_qps_10_c_16_" in lab and lab.endswith("v2-stats-wasm_both"))
    base = _p99_us(lambda lab, c: "_qps_10_c_16_" in lab and lab.endswith("_baseline"))
    row = _finding(result, "v2-stats-wasm", 10, 16)
    assert row["delta"] == pytest.approx(mesh[0] / 1e3 - np.mean(base) / 1e3)
    assert math.isnan(row["delta_low"]) and math.isnan(row["delta_high"])
    assert "single_run" in row["flags"] and "no interval: 1 and 2 run(s)" in row["summary"]


def test_unmatched_levels_are_reported_never_paired():
    table = pd.DataFrame({"mesh": ["linkerd", "none", "linkerd", "none"], "requested_qps": [700.0, 600.0, 100, 100],
                          "connections": 8.0, "actual_qps": [700.0, 600.0, 100, 100],
                          "latency_p99_ms": [3.0, 1.0, 2.0, 1.5]})
    result = ml.compare(ml.read_benchmark(table), metrics=["latency_p99_ms"])
    assert sorted(result["requested_qps"]) == [100, 600, 700]
    paired = result[result["requested_qps"] == 100].iloc[0]
    assert paired["delta"] == pytest.approx(0.5)
    for qps in (600, 700):
        row = result[result["requested_qps"] == qps].iloc[0]
        assert "unmatched" in row["flags"] and math.isnan(row["delta"]) and "not compared" in row["summary"]


def test_failed_runs_are_left_out_not_fast():
    result = ml.compare(ml.read_benchmark(upstream_fixture("smp-test-results.json")))
    linkerd = result[(result["mesh"] == "linkerd")]
    assert len(linkerd) and linkerd["delta"].isna().all()
    assert linkerd["flags"].str.contains("failed_runs").any()
    assert linkerd["summary"].str.contains("every linkerd run failed").any()


def test_saturated_and_within_resolution_flags(tmp_path):
    for i, (mesh, p50) in enumerate([("istio", 0.0012), ("istio", 0.00121), ("none", 0.00115), ("none", 0.00116)]):
        doc = json.loads(json.dumps(HAND))
        doc["DurationHistogram"]["Percentiles"] = [{"Percentile": 50, "Value": p50}]
        if i == 0:
            doc["ActualQPS"] = 60.0  # asked for 100
        (tmp_path / mesh).mkdir(exist_ok=True)
        (tmp_path / mesh / f"{i}.json").write_text(json.dumps(doc))
    frame = ml.read_benchmark(tmp_path, mesh=lambda p: Path(p).parent.name)
    row = ml.compare(frame, metrics=["latency_p50_ms"]).iloc[0]
    assert row["delta"] == pytest.approx(0.05)
    assert row["within_resolution"] and row["saturated"]  # 0.05 ms < the 1.5 ms bucket; 60 of 100 qps
    assert "within_resolution" in row["flags"] and "saturated" in row["flags"]


def test_compare_bad_arguments():
    frame = ml.read_benchmark(upstream_fixture("istio-tools-benchmark.csv"))
    with pytest.raises(ml.InvalidArgument, match="baseline: no run of mesh 'linkerd'"):
        ml.compare(frame, baseline="linkerd")
    with pytest.raises(ml.InvalidArgument, match="metrics"):
        ml.compare(frame, metrics=["p99"])


def _readme_example() -> tuple[str, str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Comparing meshes and planning capacity", 1)[1].split("\n## ", 1)[0]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    output = re.search(r"```text\n(.*?)```", section, re.S)
    assert code and output
    return code.group(1), output.group(1)


def test_readme_worked_example_prints_what_the_readme_shows(monkeypatch):
    code, shown = _readme_example()
    monkeypatch.chdir(ROOT)
    upstream_fixture("istio-tools-benchmark.csv")
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        exec(compile(code, "README.md", "exec"), {})
    assert buffer.getvalue() == shown
