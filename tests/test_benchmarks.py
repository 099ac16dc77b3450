"""ml.read_benchmark and ml.write_smp: every reader against the real upstream files read
independently (csv/json modules, hand calculations) and synthetic files with known answers."""

from __future__ import annotations

import copy
import csv
import json
import math
from pathlib import Path

import pandas as pd
import pandas.testing as tm
import pytest

import meshlab as ml
from meshlab.schema import validate

from .conftest import upstream_fixture


def _istio_rows() -> list[dict[str, str]]:
    with open(upstream_fixture("istio-tools-benchmark.csv"), newline="") as f:
        return list(csv.DictReader(f))


def _smp_docs() -> list[dict]:
    return json.loads(upstream_fixture("smp-test-results.json").read_text())


# A hand-made Fortio histogram (seconds): 10 requests, 4 up to 1 ms (first bucket from Min),
# 5 up to 2 ms, 1 up to Max. By hand: p50 = 1 + (50-40)/(90-40)·1 = 1.2 ms; p90 = 2 ms
# (end of the second bucket); p99 = 2 + (99-90)/(100-90)·1.5 = 3.35 ms; p99.9 = 3.485 ms.
HAND = {
    "RunType": "HTTP", "Labels": "hand", "StartTime": "2024-01-02T03:04:05.5+01:00", "RequestedQPS": "100",
    "RequestedDuration": "10s", "ActualQPS": 99.5, "ActualDuration": 10_050_000_000, "NumThreads": 4,
    "RetCodes": {"200": 9, "503": 1},
    "DurationHistogram": {
        "Count": 10, "Min": 0.0005, "Max": 0.0035, "Sum": 0.017, "Avg": 0.0017, "StdDev": 0.0008,
        "Data": [{"Start": 0.0005, "End": 0.001, "Percent": 40, "Count": 4},
                 {"Start": 0.001, "End": 0.002, "Percent": 90, "Count": 5},
                 {"Start": 0.002, "End": 0.0035, "Percent": 100, "Count": 1}],
        "Percentiles": None,
    },
}
HAND_MS = {"latency_p50_ms": 1.2, "latency_p90_ms": 2.0, "latency_p99_ms": 3.35, "latency_p999_ms": 3.485,
           "latency_max_ms": 3.5}


def _write(path: Path, doc: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))
    return path


def test_istio_csv_every_row_converted_by_hand():
    rows = _istio_rows()
    frame = ml.read_benchmark(upstream_fixture("istio-tools-benchmark.csv"))
    validate(frame, "benchmark")
    assert len(frame) == len(rows) == 82
    for got, raw in zip(frame.to_dict("records"), rows, strict=True):
        parts = raw["Labels"].split("_")  # hash, "qps", N, "c", N, payload, mode words..., sidecar mode
        assert parts[1] == "qps" and parts[3] == "c"
        assert got["requested_qps"] == float(parts[2])
        assert got["connections"] == float(parts[4]) == float(raw["NumThreads"])
        assert got["payload_bytes"] == float(parts[5])
        assert got["mode"] == "_".join(parts[6:-1])
        assert got["mesh"] == ("none" if parts[-1] == "baseline" else "istio")
        assert got["sidecars"] == {"baseline": "none", "both": "both"}[parts[-1]]
        for p in ("p50", "p90", "p99"):  # microseconds in the file
            assert got[f"latency_{p}_ms"] == pytest.approx(int(raw[p]) / 1000, rel=1e-15)
        assert got["actual_qps"] == float(raw["ActualQPS"])
        assert got["duration_s"] == float(raw["ActualDuration"])
        assert got["timestamp"] == pd.Timestamp(raw["StartTime"])
        for role, who in (("client", "fortioclient"), ("server", "fortioserver"), ("gateway", "istio-ingressgateway")):
            assert got[f"{role}_cpu_mcores"] == float(raw[f"cpu_mili_avg_istio_proxy_{who}"])
            assert got[f"{role}_mem_mib"] == float(raw[f"mem_Mi_avg_istio_proxy_{who}"])
        assert math.isnan(got["latency_p999_ms"]) and math.isnan(got["error_ratio"])


def _as_successes(doc: dict) -> dict:
    runner = copy.deepcopy(doc["runner_results"][0])
    runner["RetCodes"] = {"200": runner["DurationHistogram"]["Count"]}
    return runner


def test_fortio_percentiles_from_buckets_equal_fortios_own(tmp_path):
    """Strip Fortio's own Percentiles from the three real results; the buckets must give them back."""
    expected = []
    for i, doc in enumerate(_smp_docs()):
        runner = _as_successes(doc)
        expected.append({p["Percentile"]: p["Value"] * 1e3 for p in runner["DurationHistogram"]["Percentiles"]})
        runner["DurationHistogram"]["Percentiles"] = None
        _write(tmp_path / f"run{i}.json", runner)
    frame = ml.read_benchmark(tmp_path, mesh="x")
    assert len(frame) == 3
    for got, own in zip(frame.to_dict("records"), expected, strict=True):
        for p, column in ((50, "latency_p50_ms"), (90, "latency_p90_ms"), (99, "latency_p99_ms"),
                          (99.9, "latency_p999_ms")):
            assert got[column] == pytest.approx(own[p], rel=1e-12, abs=0), (p, got["source"])


def test_fortio_hand_histogram_known_answers(tmp_path):
    frame = ml.read_benchmark(_write(tmp_path / "hand.json", HAND), mesh="linkerd", mode="default")
    row = frame.iloc[0]
    for column, value in HAND_MS.items():
        assert row[column] == pytest.approx(value, rel=1e-12), column
    assert row["error_ratio"] == pytest.approx(0.1)  # one 503 in ten
    assert row["requested_qps"] == 100 and row["actual_qps"] == 99.5 and row["connections"] == 4
    assert row["duration_s"] == pytest.approx(10.05)  # ActualDuration is in nanoseconds
    assert row["requests"] == 10
    assert row["timestamp"] == pd.Timestamp("2024-01-02T02:04:05.5Z")
    assert row["latency_resolution_ms"] == pytest.approx(1.5)  # p99 and p99.9 come from the 1.5 ms bucket
    assert row["latency_coarse"] == ""  # no estimate in the first bucket or in a bucket wider than itself
    assert row["mesh"] == "linkerd" and row["mode"] == "default"


def test_fortio_estimate_in_first_or_wide_bucket_is_coarse(tmp_path):
    doc = copy.deepcopy(HAND)
    hist = doc["DurationHistogram"]
    hist["Data"][0]["Percent"] = 60  # p50 now falls in the first bucket (which starts at Min)
    hist["Data"][0]["Count"] = 6
    hist["Data"][1].update(Percent=90, Count=3)
    # 2..50 ms (48 ms wide): p99 = 2 + 0.9·48 = 45.2 ms is narrower than its bucket (coarse),
    # p99.9 = 2 + 0.99·48 = 49.52 ms is not
    hist["Data"][2].update(End=0.05, Count=1)
    hist["Max"] = 0.05
    frame = ml.read_benchmark(_write(tmp_path / "coarse.json", doc), mesh="x")
    assert frame["latency_coarse"].iloc[0] == "p50,p99"
    # in the first bucket Fortio starts from 100/Count percent at Min: 0.5 + (50-10)/(60-10)·0.5 = 0.9 ms
    assert frame["latency_p50_ms"].iloc[0] == pytest.approx(0.9, rel=1e-12)
    assert frame["latency_resolution_ms"].iloc[0] == pytest.approx(48.0)


def test_fortio_max_qps_list_and_own_percentiles(tmp_path):
    own = copy.deepcopy(HAND)
    own["RequestedQPS"] = "max"
    own["DurationHistogram"]["Percentiles"] = [{"Percentile": 50, "Value": 0.00125}]  # Fortio's own wins
    frame = ml.read_benchmark(_write(tmp_path / "list.json", [HAND, own]), mesh="x")
    assert len(frame) == 2
    assert math.isnan(frame["requested_qps"].iloc[1])
    assert frame["latency_p50_ms"].tolist() == pytest.approx([1.2, 1.25])
    assert frame["latency_p99_ms"].iloc[1] == pytest.approx(3.35)  # absent from its Percentiles: from buckets


def test_meshery_failed_runs_have_error_ratio_one_and_no_latency():
    docs = _smp_docs()
    frame = ml.read_benchmark(upstream_fixture("smp-test-results.json"))
    assert list(frame["mesh"]) == [d["mesh"] or "none" for d in docs] == ["none", "linkerd", "linkerd"]
    for got, doc in zip(frame.to_dict("records"), docs, strict=True):
        runner = doc["runner_results"][0]
        codes = runner["RetCodes"]
        failed = sum(n for c, n in codes.items() if c != "200")
        assert got["error_ratio"] == failed / sum(codes.values())
        assert got["actual_qps"] == runner["ActualQPS"]
        assert got["connections"] == runner["NumThreads"]
        assert got["run_id"] == doc["meshery_id"]
        if codes == {"-1": 300}:
            assert got["error_ratio"] == 1.0
            # never a "fast" run: the histogram timed connection failures
            assert all(math.isnan(got[c]) for c in ("latency_p50_ms", "latency_p99_ms", "latency_max_ms"))
            assert "every request failed" in got["note"]
        else:
            own = {p["Percentile"]: p["Value"] for p in runner["DurationHistogram"]["Percentiles"]}
            assert got["latency_p99_ms"] == pytest.approx(own[99] * 1e3, rel=1e-15)  # seconds -> ms
    assert math.isnan(frame["requested_qps"].iloc[0])  # "max"


@pytest.mark.parametrize("which", ["istio-csv", "meshery", "fortio"])
def test_write_smp_reads_back_exactly(tmp_path, which):
    if which == "istio-csv":
        frame = ml.read_benchmark(upstream_fixture("istio-tools-benchmark.csv"))
    elif which == "meshery":
        frame = ml.read_benchmark(upstream_fixture("smp-test-results.json"))
    else:
        frame = ml.read_benchmark(_write(tmp_path / "hand.json", HAND), mesh="kuma")
    path = ml.write_smp(frame, tmp_path / "out" / "smp.json")
    assert not list(path.parent.glob(".*.tmp"))
    back = ml.read_benchmark(path)
    tm.assert_frame_equal(back, frame, check_exact=True, check_categorical=False)  # source: the original file
    docs = json.loads(path.read_text())
    # units: SMP latencies_ms really is milliseconds, checked against the source row
    assert docs[0]["latencies_ms"]["p99"] == frame["latency_p99_ms"].dropna().iloc[0] or math.isnan(
        frame["latency_p99_ms"].iloc[0])
    if which == "istio-csv":
        assert docs[0]["latencies_ms"]["p99"] == int(_istio_rows()[0]["p99"]) / 1000


@pytest.mark.parametrize(("unit", "raw", "column", "expected"), [
    ("us", 1500.0, "latency_p99_ms", 1.5),
    ("ns", 2_500_000.0, "latency_p99_ms", 2.5),
    ("s", 0.004, "latency_p99_ms", 4.0),
    ("ms", 7.0, "latency_p99_ms", 7.0),
    ("cores", 0.25, "server_cpu_mcores", 250.0),
    ("bytes", 3 * 2**20, "server_mem_mib", 3.0),
    ("GiB", 0.5, "server_mem_mib", 512.0),
    ("MB", 1.0, "server_mem_mib", 1e6 / 2**20),
    ("ms", 30_000.0, "duration_s", 30.0),
    ("%", 2.0, "error_ratio", 0.02),
])
def test_table_units_are_converted(unit, raw, column, expected):
    table = pd.DataFrame({"mesh": ["linkerd"], "rps": [100.0], "value": [raw]})
    frame = ml.read_benchmark(table, columns={"rps": "actual_qps", "value": column}, units={"value": unit})
    assert frame[column].iloc[0] == pytest.approx(expected, rel=1e-12)
    assert frame["mesh"].iloc[0] == "linkerd" and frame["actual_qps"].iloc[0] == 100


def test_table_csv_with_column_map(tmp_path):
    path = tmp_path / "home-grown.csv"
    path.write_text("mesh,qps,conns,p99_us\nistio,100,8,2500\nnone,100,8,900\n")
    frame = ml.read_benchmark(path, columns={"qps": "requested_qps", "conns": "connections",
                                             "p99_us": "latency_p99_ms"}, units={"p99_us": "us"})
    assert frame["latency_p99_ms"].tolist() == [2.5, 0.9]
    assert frame["connections"].tolist() == [8.0, 8.0]
    assert list(frame["mesh"]) == ["istio", "none"]


@pytest.mark.parametrize(("columns", "units", "match"), [
    ({"p99": "latency_p99"}, None, "not benchmark columns"),
    ({"nope": "latency_p99_ms"}, None, "has no column"),
    ({"p99": "latency_p99_ms"}, {"p99": "furlongs"}, "unknown unit"),
    ({"p99": "latency_p99_ms"}, {"p99": "MiB"}, "measures memory"),
    ({"p99": "latency_p99_ms"}, {"other": "us"}, "name no mapped column"),
    ({"p99": "actual_qps"}, {"p99": "us"}, "takes no unit"),
])
def test_table_bad_map_or_unit_is_named(columns, units, match):
    with pytest.raises(ml.InvalidArgument, match=match):
        ml.read_benchmark(pd.DataFrame({"p99": [1.0]}), columns=columns, units=units)


@pytest.mark.parametrize(("name", "content"), [
    ("other.json", '{"hello": 1}'),
    ("other.csv", "a,b\n1,2\n"),
    ("broken.json", "{not json"),
])
def test_unknown_format_lists_the_known_ones(tmp_path, name, content):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(ml.InvalidArgument) as info:
        ml.read_benchmark(path)
    for fmt in ("'fortio'", "'meshery'", "'smp'", "'istio-csv'", "'table'"):
        assert fmt in str(info.value)


def test_bad_source_and_format_arguments(tmp_path):
    with pytest.raises(ml.InvalidArgument, match="no such file"):
        ml.read_benchmark(tmp_path / "missing.json")
    with pytest.raises(ml.InvalidArgument, match="matches no file"):
        ml.read_benchmark(str(tmp_path / "*.json"))
    with pytest.raises(ml.InvalidArgument, match="format='wrk'"):
        ml.read_benchmark(tmp_path, format="wrk")
    path = _write(tmp_path / "hand.json", HAND)
    with pytest.raises(ml.InvalidArgument, match="does not look like"):
        ml.read_benchmark(path, format="meshery")


def test_glob_directory_and_mesh_from_folder_names(tmp_path):
    for mesh in ("istio", "linkerd"):
        for i in range(2):
            _write(tmp_path / mesh / f"run{i}.json", HAND)
    by_dir = ml.read_benchmark(tmp_path, mesh=lambda p: Path(p).parent.name)
    by_glob = ml.read_benchmark(str(tmp_path / "*" / "run*.json"), mesh=lambda p: Path(p).parent.name)
    by_list = ml.read_benchmark(sorted(tmp_path.glob("*/*.json")), mesh=lambda p: Path(p).parent.name)
    for frame in (by_dir, by_glob, by_list):
        assert sorted(frame["mesh"].astype(str)) == ["istio", "istio", "linkerd", "linkerd"]
        assert frame["latency_p50_ms"].tolist() == pytest.approx([1.2] * 4)
    tm.assert_frame_equal(by_dir, by_glob)
