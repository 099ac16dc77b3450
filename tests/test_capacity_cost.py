"""read_benchmark(..., cost=...): proxy CPU and memory from Prometheus range-query JSON,
joined to runs by time window, warm-up dropped, rates refused as memory. The JSON is built
by hand here with known answers, in both shapes Prometheus tools write."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

import meshlab as ml
from meshlab.errors import InvalidArgument

START = pd.Timestamp("2024-01-01T00:00:00Z")
STEP = 15  # seconds between samples
MIB = 2**20


def fortio(start: pd.Timestamp, qps: int) -> dict:
    return {"RunType": "HTTP", "Labels": f"run {qps}", "StartTime": start.isoformat(), "RequestedQPS": str(qps),
            "ActualQPS": float(qps), "ActualDuration": 300 * 10**9, "NumThreads": 16, "RetCodes": {"200": qps * 300},
            "DurationHistogram": {"Count": qps * 300, "Min": 0.001, "Max": 0.002, "Sum": 1.0, "Avg": 0.0015,
                                  "StdDev": 0.0001, "Percentiles": None,
                                  "Data": [{"Start": 0.001, "End": 0.002, "Percent": 100, "Count": qps * 300}]}}


def runs(tmp_path: Path) -> Path:
    """Run A: 00:00-00:05 at 100 qps; run B: 00:06-00:11 at 1000 qps."""
    folder = tmp_path / "runs"
    folder.mkdir(exist_ok=True)
    (folder / "a.json").write_text(json.dumps(fortio(START, 100)))
    (folder / "b.json").write_text(json.dumps(fortio(START + pd.Timedelta("6min"), 1000)))
    return folder


def level(at: pd.Timestamp, a: float, b: float, idle: float) -> float:
    """A proxy's value at a scrape: each run's level, but the first minute of a run (one rate[1m]
    window) still shows what came before it."""
    offset = (at - START).total_seconds()
    if 60 < offset <= 300:
        return a
    if 0 < offset <= 60:
        return idle
    if 360 + 60 < offset <= 660:
        return b
    if 360 < offset <= 420:
        return a
    return idle


def matrix(pods: dict[str, tuple[float, float, float]], name: str | None = None) -> list[dict]:
    times = pd.date_range(START - pd.Timedelta("1min"), START + pd.Timedelta("12min"), freq=f"{STEP}s")
    out = []
    for pod, (a, b, idle) in pods.items():
        metric = {"container": "istio-proxy", "namespace": "twopods-istio", "pod": pod}
        if name:
            metric["__name__"] = name
        out.append({"metric": metric, "values": [[t.timestamp(), repr(level(t, a, b, idle))] for t in times]})
    return out


CPU = {"fortioclient-6b58c4f5d7-abcde": (0.1, 0.3, 0.9), "fortioserver-5d6f9c8b7-aaaaa": (0.2, 0.6, 0.9),
       "fortioserver-5d6f9c8b7-bbbbb": (0.4, 0.8, 0.9), "prometheus-0": (5.0, 5.0, 5.0)}
MEMORY = {"fortioclient-6b58c4f5d7-abcde": (64 * MIB, 70 * MIB, 60 * MIB),
          "fortioserver-5d6f9c8b7-aaaaa": (100 * MIB, 130 * MIB, 90 * MIB),
          "fortioserver-5d6f9c8b7-bbbbb": (120 * MIB, 150 * MIB, 90 * MIB)}


def api(result: list[dict]) -> dict:
    return {"status": "success", "data": {"resultType": "matrix", "result": result}}


def write(path: Path, doc: object) -> Path:
    path.write_text(json.dumps(doc))
    return path


def test_cost_joined_by_window_with_the_warmup_dropped(tmp_path):
    cpu = write(tmp_path / "cpu.json", api(matrix(CPU)))                      # curl /api/v1/query_range
    memory = write(tmp_path / "memory.json", matrix(MEMORY, "container_memory_working_set_bytes"))  # promtool -o json
    frame = ml.read_benchmark(runs(tmp_path), mesh="istio", mode="both", cost={"cpu": cpu, "memory": memory})
    frame = frame.sort_values("requested_qps").reset_index(drop=True)
    # run A (100 qps): client 0.1 cores, servers 0.2 and 0.4 -> 0.3 per proxy; run B: 0.3, 0.7
    assert frame["client_cpu_mcores"].tolist() == pytest.approx([100.0, 300.0], rel=1e-12)
    assert frame["server_cpu_mcores"].tolist() == pytest.approx([300.0, 700.0], rel=1e-12)
    assert frame["client_mem_mib"].tolist() == pytest.approx([64.0, 70.0], rel=1e-12)
    assert frame["server_mem_mib"].tolist() == pytest.approx([110.0, 140.0], rel=1e-12)
    assert frame["gateway_cpu_mcores"].isna().all()  # no gateway pod in the files
    ml.validate(frame, "benchmark")


def test_cost_without_the_warmup_carries_the_previous_runs_load(tmp_path):
    cpu = write(tmp_path / "cpu.json", api(matrix(CPU)))
    frame = ml.read_benchmark(runs(tmp_path), mesh="istio", cost={"cpu": cpu}, warmup=0)
    a = frame.sort_values("requested_qps").iloc[0]
    # 20 samples in (00:00, 00:05]: the first 4 still show the idle 0.9 cores, 16 show 0.1
    assert a["client_cpu_mcores"] == pytest.approx(1000 * (4 * 0.9 + 16 * 0.1) / 20, rel=1e-12)
    longer = ml.read_benchmark(runs(tmp_path), mesh="istio", cost={"cpu": cpu}, warmup="2m")
    assert longer.sort_values("requested_qps")["client_cpu_mcores"].tolist() == pytest.approx([100.0, 300.0])


def test_cost_roles_by_another_label_and_sources_as_documents(tmp_path):
    series = matrix(CPU)
    for s in series:
        pod = s["metric"]["pod"]
        s["metric"]["app"] = "load" if "client" in pod else "echo" if "server" in pod else "monitoring"
    frame = ml.read_benchmark(runs(tmp_path), mesh="istio", cost={"cpu": [api(series[:2]), series[2:]]},
                              roles={"client": "^load$", "server": "^echo$"}, role_label="app")
    assert frame.sort_values("requested_qps")["server_cpu_mcores"].tolist() == pytest.approx([300.0, 700.0])


@pytest.mark.parametrize(("values", "name", "why"), [
    ((3000.0, 9000.0, 10.0), None, "under 1 MiB"),                                   # rate(bytes) of a small counter
    ((8 * MIB, 30 * MIB, 1000.0), None, "does not lose 90 %"),                         # a rate that falls to idle
    ((64 * MIB, 70 * MIB, 60 * MIB), "container_memory_working_set_bytes_total", "a counter or a rate"),
])
def test_memory_that_behaves_like_a_rate_is_refused(tmp_path, values, name, why):
    memory = write(tmp_path / "memory.json", api(matrix({"fortioserver-1": values}, name)))
    with pytest.raises(InvalidArgument, match=why) as info:
        ml.read_benchmark(runs(tmp_path), mesh="istio", cost={"memory": memory})
    assert "bytes" in str(info.value)


@pytest.mark.parametrize(("cost", "kwargs", "why"), [
    ({"disk": "x.json"}, {}, "keys 'cpu'"),
    ({"cpu": "missing.json"}, {}, "no such file"),
    ({"cpu": {"status": "success", "data": {"resultType": "vector", "result": []}}}, {}, "not a range query"),
    ({"cpu": {"status": "error", "errorType": "bad_data", "error": "parse error"}}, {}, "failed query"),
    ({"cpu": [{"metric": {"pod": "x"}, "values": [[0, "1"]]}]}, {}, "no cpu series"),
    ({"cpu": [{"metric": {"pod": "x"}, "values": [[0, "1"]]}]}, {"roles": {"sidecar": "x"}}, "not proxy roles"),
    ({"cpu": [{"metric": {"pod": "x"}, "values": [[0, "1"]]}]}, {"warmup": "soon"}, "warmup"),
])
def test_cost_arguments_are_checked(tmp_path, cost, kwargs, why):
    with pytest.raises(InvalidArgument, match=why):
        ml.read_benchmark(runs(tmp_path), mesh="istio", cost=cost, **kwargs)


def test_cost_needs_run_windows():
    table = pd.DataFrame({"mesh": ["istio"], "actual_qps": [100.0], "p99": [3.0]})
    with pytest.raises(InvalidArgument, match="no start time or duration"):
        ml.read_benchmark(table, columns={"p99": "latency_p99_ms"}, cost={"cpu": matrix(CPU)})
