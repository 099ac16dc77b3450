"""ml.capacity: fits against numpy.polyfit / scipy.linregress on the Istio CSV read with the
csv module, projections against statsmodels' own prediction, SLO answers read off the table."""

from __future__ import annotations

import csv
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import meshlab as ml

from .conftest import upstream_fixture

MODES = ["none_mtls", "v2-sd-full-nullvm", "v2-sd-nologging-nullvm", "v2-stats-nullvm", "v2-stats-wasm"]


def _istio_runs() -> pd.DataFrame:
    return ml.read_benchmark(upstream_fixture("istio-tools-benchmark.csv"))


def _csv_points(mode: str, connections: int, column: str) -> tuple[np.ndarray, np.ndarray]:
    """(ActualQPS, column) of the both-mode runs of one configuration, straight from the file."""
    with open(upstream_fixture("istio-tools-benchmark.csv"), newline="") as f:
        rows = [r for r in csv.DictReader(f)
                if r["Labels"].endswith(f"_{mode}_both") and int(r["NumThreads"]) == connections]
    return np.array([float(r["ActualQPS"]) for r in rows]), np.array([float(r[column]) for r in rows])


@pytest.mark.parametrize("mode", MODES)
def test_server_cpu_per_1k_rps_at_16_connections_matches_polyfit(mode):
    x, y = _csv_points(mode, 16, "cpu_mili_avg_istio_proxy_fortioserver")
    slope, intercept = np.polyfit(x, y, 1)
    line = stats.linregress(x, y)
    half = stats.t.ppf(0.975, len(x) - 2) * line.stderr
    runs = _istio_runs()
    fit = ml.capacity.fit(runs[runs["connections"] == 16])
    row = fit[(fit["mesh"] == "istio") & (fit["mode"] == mode) & (fit["role"] == "server")
              & (fit["resource"] == "cpu_mcores")].iloc[0]
    assert row["per_1k_rps"] == pytest.approx(slope * 1000, rel=1e-9)
    assert row["intercept"] == pytest.approx(intercept, rel=1e-9)
    assert row["per_1k_rps_low"] == pytest.approx((line.slope - half) * 1000, rel=1e-9)
    assert row["per_1k_rps_high"] == pytest.approx((line.slope + half) * 1000, rel=1e-9)
    assert row["r2"] == pytest.approx(line.rvalue**2, rel=1e-9)
    assert row["n"] == len(x)


def test_memory_fit_and_columns():
    x, y = _csv_points("v2-stats-nullvm", 16, "mem_Mi_avg_istio_proxy_fortioclient")
    runs = _istio_runs()
    fit = ml.capacity.fit(runs[runs["connections"] == 16])
    assert list(fit.columns[:12]) == ["mesh", "mode", "role", "resource", "intercept", "intercept_low",
                                      "intercept_high", "per_1k_rps", "per_1k_rps_low", "per_1k_rps_high", "r2", "n"]
    row = fit[(fit["mode"] == "v2-stats-nullvm") & (fit["mesh"] == "istio") & (fit["role"] == "client")
              & (fit["resource"] == "memory_mib")].iloc[0]
    assert row["per_1k_rps"] == pytest.approx(np.polyfit(x, y, 1)[0] * 1000, rel=1e-9)
    assert set(fit["role"]) == {"client", "server", "gateway"}


def test_project_equals_statsmodels_prediction_for_one_proxy():
    import statsmodels.api as sm

    x, y = _csv_points("none_mtls", 16, "cpu_mili_avg_istio_proxy_fortioserver")
    model = sm.OLS(y, sm.add_constant(x)).fit()
    pred = model.get_prediction(np.array([[1.0, 1500.0]])).summary_frame(alpha=0.05).iloc[0]
    runs = _istio_runs()
    fit = ml.capacity.fit(runs[(runs["connections"] == 16) & (runs["mode"] == "none_mtls")])
    out = ml.capacity.project(fit[fit["mesh"] == "istio"], rps=1500, pods=1, roles=["server"])
    row = out[out["resource"] == "cpu_mcores"].iloc[0]
    assert row["estimate"] == pytest.approx(pred["mean"], rel=1e-9)
    assert row["low"] == pytest.approx(pred["obs_ci_lower"], rel=1e-9)
    assert row["high"] == pytest.approx(pred["obs_ci_upper"], rel=1e-9)
    assert not row["extrapolated"]


def test_project_sums_pods_and_workloads():
    runs = _istio_runs()
    fit = ml.capacity.fit(runs[runs["connections"] == 16])
    istio = fit[(fit["mesh"] == "istio") & (fit["mode"] == "none_mtls")]
    total = ml.capacity.project(istio, rps=4000, pods=10)
    table = ml.capacity.project(istio, workloads=pd.DataFrame({"rps": [1000, 3000], "replicas": [4, 6]}))
    pd.testing.assert_frame_equal(total, table)
    row = total[(total["role"] == "server") & (total["resource"] == "cpu_mcores")].iloc[0]
    a, b = istio[(istio["role"] == "server") & (istio["resource"] == "cpu_mcores")][["intercept", "per_1k_rps"]].iloc[0]
    assert row["estimate"] == pytest.approx(10 * a + 4 * b)  # ten idle proxies plus 4k rps
    assert row["low"] < row["estimate"] < row["high"]
    far = ml.capacity.project(istio, rps=100_000, pods=10)
    assert far["extrapolated"].all()  # 10k rps per pod: beyond the 3000 qps measured
    with pytest.raises(ml.InvalidArgument, match="rps="):
        ml.capacity.project(istio, rps=10)
    with pytest.raises(ml.InvalidArgument, match="roles"):
        ml.capacity.project(istio, rps=10, pods=1, roles=["sidecar"])


def _slo(frame: pd.DataFrame, **kw: object) -> pd.DataFrame:
    return ml.capacity.max_rps(frame, **kw)  # type: ignore[arg-type]


def _one(result: pd.DataFrame, mesh: str, mode: str, connections: float) -> pd.Series:
    hit = result[(result["mesh"] == mesh) & (result["mode"] == mode) & (result["connections"] == connections)]
    assert len(hit) == 1
    return hit.iloc[0]


def test_max_rps_read_off_the_istio_table():
    runs = _istio_runs()
    # none_mtls, both, 16 connections, p99 (µs): 10:1975 100:1940 500:1924 1000:2186 and 2730 2000:2728
    row = _one(_slo(runs, slo_ms=2.0), "istio", "none_mtls", 16)
    assert row["max_rps_measured"] == 500 and row["min_rps_failing"] == 1000
    # interpolated on the worst run at 1000 qps: 500 + 500·(2000-1924)/(2730-1924)
    assert row["max_rps_interpolated"] == pytest.approx(500 + 500 * 76 / 806)
    assert row["monotone"] and "interpolated" in row["note"]
    # v2-sd-full-nullvm: 500:3245 1000:3740,3937 2000:4356 3000:3921 -> 3000 passes above a failure
    row = _one(_slo(runs, slo_ms=4.0), "istio", "v2-sd-full-nullvm", 16)
    assert row["max_rps_measured"] == 1000 and row["min_rps_failing"] == 2000
    assert row["max_rps_interpolated"] == pytest.approx(1000 + 1000 * (4000 - 3937) / (4356 - 3937))
    assert not row["monotone"] and "not monotone: 3000 qps" in row["note"]
    # every level meets 4 ms for none_mtls: beyond the measured range, nothing extrapolated
    row = _one(_slo(runs, slo_ms=4.0), "istio", "none_mtls", 16)
    assert row["max_rps_measured"] == 3000 and math.isnan(row["min_rps_failing"])
    assert math.isnan(row["max_rps_interpolated"]) and "beyond the measured range" in row["note"]
    # wasm at 2 ms: the lowest level (10 qps, 2965 µs) already fails
    row = _one(_slo(runs, slo_ms=2.0), "istio", "v2-stats-wasm", 16)
    assert math.isnan(row["max_rps_measured"]) and row["min_rps_failing"] == 10
    assert "fails at the lowest measured level" in row["note"]
    # p50 at 1.5 ms: 10:1389 100:980 500:990 1000:1214,1444 2000:1618
    row = _one(_slo(runs, slo_ms=1.5, percentile="p50"), "istio", "none_mtls", 16)
    assert row["max_rps_measured"] == 1000 and row["min_rps_failing"] == 2000
    assert row["max_rps_interpolated"] == pytest.approx(1000 + 1000 * (1500 - 1444) / (1618 - 1444))


def test_saturated_run_fails_its_load_and_is_flagged():
    table = pd.DataFrame({"mesh": "linkerd", "requested_qps": [100.0, 200.0, 300.0],
                          "actual_qps": [100.0, 150.0, 299.0], "latency_p99_ms": [1.0, 1.1, 1.2]})
    row = ml.capacity.max_rps(ml.read_benchmark(table), slo_ms=5.0, by=("mesh",)).iloc[0]
    assert row["max_rps_measured"] == 100 and row["min_rps_failing"] == 200
    assert math.isnan(row["max_rps_interpolated"])  # not a latency failure: no interpolation
    assert not row["monotone"] and "saturated at 200 qps" in row["note"]


def test_failed_runs_fail_the_slo():
    frame = ml.read_benchmark(upstream_fixture("smp-test-results.json"))
    row = ml.capacity.max_rps(frame, slo_ms=1000, by=("mesh",)).set_index("mesh").loc["linkerd"]
    assert math.isnan(row["max_rps_measured"]) and row["min_rps_failing"] == 10
    assert "error ratio 1" in row["note"]


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"slo_ms": -1}, "slo_ms"), ({"slo_ms": 1, "percentile": "p95"}, "percentile"),
    ({"slo_ms": 1, "max_error_ratio": 2}, "max_error_ratio"),
])
def test_max_rps_bad_arguments(kwargs, match):
    with pytest.raises(ml.InvalidArgument, match=match):
        ml.capacity.max_rps(_istio_runs(), **kwargs)


def test_fit_refuses_runs_without_mesh_and_non_frames():
    with pytest.raises(ml.InvalidArgument, match="pass mesh="):
        ml.capacity.fit(ml.read_benchmark(pd.DataFrame({"actual_qps": [1.0, 2.0], "server_cpu_mcores": [1.0, 2.0]})))
    with pytest.raises(ml.InvalidArgument, match="benchmark frame"):
        ml.capacity.fit([1, 2])  # type: ignore[arg-type]
