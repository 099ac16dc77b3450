"""Load-dependent proxy latency (fitted to Istio's benchmark), load sweeps, and the bundled mesh-sweep dataset."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import brentq
from scipy.stats import norm

import meshlab as ml
from meshlab import sim
from meshlab.sim.costs import ENVOY_ADDED_LATENCY, MESH_COSTS
from meshlab.sim.latency_fit import fit_added_latency
from meshlab.sim.scenario import ScenarioError

from .conftest import upstream_fixture

QUANTILES = {"latency_p50_ms": 0.5, "latency_p90_ms": 0.9, "latency_p99_ms": 0.99}


@pytest.fixture(scope="module")
def istio_csv() -> pd.DataFrame:
    return ml.read_benchmark(upstream_fixture("istio-tools-benchmark.csv"))


@pytest.fixture(scope="module")
def measured_added(istio_csv: pd.DataFrame) -> pd.DataFrame:
    """What both sidecars add in the CSV, by hand: v2-stats-nullvm minus the baseline runs, per level."""
    keys = ["requested_qps", "connections"]
    base = istio_csv[istio_csv["mesh"] == "none"].groupby(keys)[list(QUANTILES)].mean()
    runs = istio_csv[(istio_csv["mode"] == "v2-stats-nullvm") & (istio_csv["mesh"] == "istio")]
    return (runs.groupby(keys)[list(QUANTILES)].mean() - base).dropna()


def test_stored_latency_constants_are_the_fit_of_the_istio_csv(istio_csv):
    refit = fit_added_latency(istio_csv)
    assert [q for q, *_ in ENVOY_ADDED_LATENCY] == sorted(refit)
    for q, *stored in ENVOY_ADDED_LATENCY:
        np.testing.assert_allclose(stored, refit[q], atol=5e-5)  # stored rounded to 4 decimals


def test_the_fit_is_least_squares_on_the_csv_levels(measured_added):
    # an independent fit of the same model: numpy.polyfit can't take two regressors, so solve the normal equations
    levels = measured_added.reset_index()
    x = np.column_stack([np.ones(len(levels)), levels["requested_qps"] / 1000, np.log2(levels["connections"])])
    for q, *stored in ENVOY_ADDED_LATENCY:
        y = levels[next(c for c, v in QUANTILES.items() if v == q)].to_numpy() / 2  # two sidecars
        np.testing.assert_allclose(stored, np.linalg.solve(x.T @ x, x.T @ y), atol=5e-5)


@pytest.fixture(scope="module")
def csv_levels_run(measured_added):
    """Every CSV level as its own Fortio-like pair (a meshed client over N connections), simulated with the fit."""
    workloads, edges = [], []
    for i, (qps, connections) in enumerate(measured_added.index):
        workloads += [{"name": f"fortio{i}", "namespace": "bench"},
                      {"name": f"server{i}", "namespace": "bench", "latency": {"median_ms": 0.35, "sigma": 0.25}}]
        edges.append({"from": f"fortio{i}", "to": f"server{i}", "rate": qps, "network_ms": 0,
                      "tcp": {"connections": int(connections)}})
    scenario = sim.scenario_from_dict({"name": "csv-levels", "proxy_latency": "fitted", "duration": "1m",
                                       "workloads": workloads, "edges": edges})
    traffic = sim.simulate(scenario)
    return {mesh: sim.truth.edges_truth(traffic, mesh) for mesh in ("none", "istio", "linkerd")}


def _client_side(edges: pd.DataFrame, i: int) -> pd.Series:
    return edges[(edges["src_name"] == f"fortio{i}") & (edges["side"] == "client")].iloc[-1]


def test_simulated_added_latency_is_the_csv_measurement(measured_added, csv_levels_run):
    # within 0.65 ms: twice (two sidecars) the fit's largest per-proxy residual, 0.32 ms at p99
    for i, level in enumerate(measured_added.index):
        none, istio = _client_side(csv_levels_run["none"], i), _client_side(csv_levels_run["istio"], i)
        for column in QUANTILES:
            assert istio[column] - none[column] == pytest.approx(measured_added.loc[level, column], abs=0.65), \
                (level, column)


def test_simulated_added_latency_realises_the_model_exactly_at_p50_and_p99(measured_added, csv_levels_run):
    # the service (median 0.35 ms, sigma 0.25) by hand, to tell where the model's stretch is held (shift >= 0)
    q50, q99 = 0.35, 0.35 * np.exp(0.25 * norm.ppf(0.99))
    held = 0
    for i, (qps, connections) in enumerate(measured_added.index):
        none = _client_side(csv_levels_run["none"], i)
        rps = none["rps"]  # each sidecar handles the pair's requests once
        for mesh, scale in (("istio", 1.0), ("linkerd", 0.4)):
            seen = _client_side(csv_levels_run[mesh], i)
            by_hand = {q: 2 * scale * max(a + b * rps / 1000 + c * np.log2(connections), 0)
                       for q, a, b, c in ENVOY_ADDED_LATENCY}
            by_hand[0.99] = max(by_hand.values())
            assert seen["latency_p50_ms"] - none["latency_p50_ms"] == pytest.approx(by_hand[0.5], rel=1e-6)
            added_p99 = seen["latency_p99_ms"] - none["latency_p99_ms"]
            if (by_hand[0.99] - by_hand[0.5]) / (q99 - q50) <= by_hand[0.5] / q50:
                assert added_p99 == pytest.approx(by_hand[0.99], rel=1e-6), (mesh, qps, connections)
            else:  # held at shift 0: latency = (1 + p50 added / q50) * service, less than the fit at p99
                held += 1
                assert added_p99 == pytest.approx(by_hand[0.5] * q99 / q50, rel=1e-6) and added_p99 < by_hand[0.99]
    assert 0 < held < 2 * len(measured_added)  # this fast a service shows both cases


def test_added_latency_never_falls_with_the_quantile_and_holds_connections_to_the_measured_range():
    cost = MESH_COSTS["istio"]
    added = cost.added_latency_ms(np.array([0.0, 10.0, 5000.0]), np.array([1.0, 2.0, 1000.0]))
    assert (np.diff(added, axis=-1) >= 0).all() and (added >= 0).all()
    np.testing.assert_allclose(cost.added_latency_ms(np.array([100.0]), np.array([1.0])),
                               cost.added_latency_ms(np.array([100.0]), np.array([2.0])))
    np.testing.assert_allclose(cost.added_latency_ms(np.array([100.0]), np.array([500.0])),
                               cost.added_latency_ms(np.array([100.0]), np.array([64.0])))


@pytest.fixture(scope="module")
def sweep_run():
    return sim.simulate(sim.load_scenario("sweep"))


def test_the_sweep_is_a_staircase_of_request_rates(sweep_run):
    truth = sim.truth.traffic_truth(sweep_run, "none")
    api = truth[truth["name"] == "api"].set_index("timestamp")["rps"]
    start = sweep_run.scenario.start
    for k, level in enumerate(np.linspace(100, 1000, 10)):
        begin, end = start + pd.Timedelta(minutes=5 * k), start + pd.Timedelta(minutes=5 * k + 5)
        inside = api[(api.index > begin) & (api.index <= end)]
        assert len(inside) == 20 and inside.mean() == pytest.approx(level, rel=0.02)


def test_a_pod_near_its_capacity_queues(sweep_run):
    # no tail, no proxy: the median is median_ms / (1 - load / capacity) with the interval's own load
    truth = sim.truth.traffic_truth(sweep_run, "none")
    api = truth[truth["name"] == "api"]
    np.testing.assert_allclose(api["latency_p50_ms"], 4.0 / (1 - api["rps"] / 1100), rtol=1e-9)
    assert api["latency_p99_ms"].iloc[-1] > 5 * api["latency_p99_ms"].iloc[0]  # the knee


@pytest.mark.parametrize(("rate", "message"), [
    ({"rps": 10, "shape": "steps", "steps": 5, "step": "5m"}, "needs to_rps"),
    ({"rps": 10, "to_rps": 50, "shape": "steps", "step": "5m"}, "needs to_rps .*steps"),
    ({"rps": 10, "to_rps": 50, "shape": "steps", "steps": 1, "step": "5m"}, r"rate\.steps: must be a whole number"),
    ({"rps": 10, "to_rps": 50, "shape": "steps", "steps": 4, "step": "0s"}, r"rate\.step: must be a duration"),
])
def test_a_bad_staircase_names_what_it_needs(rate, message):
    data = {"workloads": [{"name": "a", "namespace": "n"}, {"name": "b", "namespace": "n"}],
            "edges": [{"from": "a", "to": "b", "rate": rate}]}
    with pytest.raises(ScenarioError, match=message):
        sim.scenario_from_dict(data)


@pytest.mark.parametrize(("key", "value", "message"), [
    ("proxy_latency", "cubic", "unknown proxy_latency 'cubic'; must be one of: linear, fitted"),
    ("capacity_rps", 0, r"workloads\[0\]\.capacity_rps: must be a number > 0"),
])
def test_bad_latency_options_are_refused(key, value, message):
    data = {"workloads": [{"name": "a", "namespace": "n"}], "edges": []}
    if key == "capacity_rps":
        data["workloads"][0][key] = value
    else:
        data[key] = value
    with pytest.raises(ScenarioError, match=message):
        sim.scenario_from_dict(data)


def test_the_sweep_scenario_round_trips(sweep_run):
    scenario = sweep_run.scenario
    assert sim.scenario_from_dict(scenario.to_dict()) == scenario
    assert "proxy_latency" not in sim.load_scenario("shop").to_dict()  # the shop (and its dataset) stay linear


def test_the_shootout_dataset_is_still_what_the_simulator_makes():
    data = ml.datasets.load("mesh-shootout")
    traffic = sim.simulate(data.scenario, hours=1)  # a shorter run is exactly the start of the dataset's
    stored = data.truth["traffic"]
    stored = stored[stored["timestamp"] <= traffic.timestamps()[-1]]
    for mesh in ("istio", "linkerd"):
        fresh = sim.truth.traffic_truth(traffic, mesh)
        mine = stored[stored["mesh"] == mesh].reset_index(drop=True)
        pd.testing.assert_frame_equal(fresh.reset_index(drop=True), mine, check_categorical=False)


# -- the bundled mesh-sweep dataset -------------------------------------------------------------------


@pytest.fixture(scope="module")
def bundled():
    return ml.datasets.load("mesh-sweep")


def _window_quantile(mixture: sim.dist.Mixture, weights: np.ndarray, q: float) -> float:
    # the q-quantile of the window's requests: root of the request-weighted CDF (brentq, not bisection)
    def excess(x: float) -> float:
        return float((mixture.cdf(np.full(len(weights), x)) * weights).sum() / weights.sum() - q)
    return brentq(excess, 1e-3, 1e4, xtol=1e-9)


def test_the_bundled_sweep_is_the_simulation_through_the_adapters(bundled, sweep_run):
    frame = bundled.frames["benchmark"]
    assert set(frame["mesh"].astype(str)) == {"linkerd", "istio", "consul"} and len(frame) == 30
    api = sweep_run.scenario.workload("api")
    times = sweep_run.timestamps()
    requests = sweep_run.inbound_requests(api).sum(axis=1)
    cost = {mesh: sim.truth.proxies_truth(sweep_run, mesh) for mesh in ("linkerd", "istio", "consul")}
    for row in frame.itertuples():
        window = (times > row.timestamp + pd.Timedelta(minutes=1)) & (times <= row.timestamp + pd.Timedelta(minutes=5))
        assert window.sum() == row.duration_s / sweep_run.interval_s == 16
        assert row.actual_qps == pytest.approx(requests[window].sum() / row.duration_s, rel=0.01)
        assert row.requested_qps == 100 * (int(row.run_id[-2:]) + 1)
        mixture = sweep_run.latency(api, row.mesh, "server").select(np.flatnonzero(window), sweep_run.n)
        for column, q in QUANTILES.items():
            exact = _window_quantile(mixture, requests[window].astype(float), q)
            assert abs(getattr(row, column) - exact) <= row.latency_resolution_ms, (row.run_id, column)
        mine = cost[row.mesh]
        mine = mine[(mine["timestamp"] > times[window][0] - pd.Timedelta(seconds=15))
                    & (mine["timestamp"] <= times[window][-1])]
        assert row.server_cpu_mcores == pytest.approx(mine["cpu_cores"].mean() * 1000, rel=0.01)


def test_the_bundled_sweep_shows_a_knee_and_its_card_says_how_it_was_made(bundled):
    frame = bundled.frames["benchmark"]
    answer = ml.capacity.max_rps(frame, slo_ms=50)
    assert (answer["max_rps_measured"] == 800).all() and (answer["min_rps_failing"] == 900).all()
    assert answer["monotone"].all()
    truth = bundled.truth["benchmark"]
    assert set(truth["mesh"].astype(str)) == {"none", "linkerd", "istio", "consul"}
    assert "**This dataset is synthetic.**" in bundled.card and "make datasets" in bundled.card
    assert "latency_fit.py" in bundled.card and "istio-tools-benchmark.csv" in bundled.card
    assert bundled.scenario.name == "sweep"


def test_the_readme_sweep_example_prints_what_the_readme_shows(capsys):
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    pairs = re.findall(r"^```python\n((?:(?!```).)*?)^```\n\n```text\n((?:(?!```).)*?)^```", readme, flags=re.S | re.M)
    [(code, shown)] = [pair for pair in pairs if 'ml.datasets.load("mesh-sweep")' in pair[0]]
    exec(compile(code, "README.md", "exec"), {})
    assert capsys.readouterr().out == shown
