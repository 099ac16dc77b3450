"""capacity.fit on live frames: mesh.proxies() joined with the traffic each proxy serves,
checked against numpy.polyfit on a join made independently here."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import meshlab as ml
from meshlab.errors import InvalidArgument


@pytest.fixture(scope="module")
def shootout() -> ml.datasets.Dataset:
    return ml.datasets.load("mesh-shootout")


def _by_hand(proxies: pd.DataFrame, traffic: pd.DataFrame, mesh: str) -> pd.DataFrame:
    p = proxies[proxies["mesh"] == mesh]
    p = pd.DataFrame({"timestamp": p["timestamp"], "namespace": p["namespace"].astype(str),
                      "workload": p["workload"].astype(str), "pod": p["pod"].astype(str),
                      "mcores": p["cpu_cores"] * 1000, "mib": p["memory_bytes"] / 1024 / 1024})
    replicas = p.groupby(["timestamp", "namespace", "workload"])["pod"].nunique().rename("replicas").reset_index()
    t = traffic[traffic["mesh"] == mesh]
    t = pd.DataFrame({"timestamp": t["timestamp"], "namespace": t["namespace"].astype(str),
                      "workload": t["name"].astype(str), "rps": t["rps"]})
    joined = p.merge(replicas, on=["timestamp", "namespace", "workload"]).merge(
        t, on=["timestamp", "namespace", "workload"])
    joined["per_proxy_rps"] = joined["rps"] / joined["replicas"]
    return joined


@pytest.mark.parametrize("mesh", ["linkerd", "istio", "consul"])
def test_live_fit_matches_polyfit_on_an_independent_join(shootout, mesh):
    proxies, traffic = shootout.frames["proxies"], shootout.frames["traffic"]
    fit = ml.capacity.fit(proxies, traffic=traffic)
    assert set(fit["role"]) == {"server"} and set(fit["mode"]) == {"live"}
    joined = _by_hand(proxies, traffic, mesh)
    for resource, column in (("cpu_mcores", "mcores"), ("memory_mib", "mib")):
        data = joined.dropna(subset=["per_proxy_rps", column])
        slope, intercept = np.polyfit(data["per_proxy_rps"] / 1000, data[column], 1)
        row = fit[(fit["mesh"] == mesh) & (fit["resource"] == resource)].iloc[0]
        assert row["n"] == len(data)
        assert row["per_1k_rps"] == pytest.approx(slope, rel=1e-9)
        assert row["intercept"] == pytest.approx(intercept, rel=1e-9)
        assert row["per_1k_rps_low"] < slope < row["per_1k_rps_high"]
        r = np.corrcoef(data["per_proxy_rps"], data[column])[0, 1]
        assert row["r2"] == pytest.approx(r**2, rel=1e-9)
    # redis (TCP only) has proxies but no traffic row: left out, never fitted at zero load
    assert "redis" not in set(joined["workload"])


def test_live_fit_recovers_the_simulators_idle_cost(shootout):
    """The simulated proxies cost idle + slope x (in + out) rps; the fit's idle cost is the
    model's within a few millicores (the per-request slope includes outbound calls, so it is
    not the model's slope per proxy rps)."""
    from meshlab.sim.costs import MESH_COSTS

    fit = ml.capacity.fit(shootout.frames["proxies"], traffic=shootout.frames["traffic"])
    cpu = fit[fit["resource"] == "cpu_mcores"].set_index("mesh")
    for mesh in ("linkerd", "istio", "consul"):
        assert cpu.loc[mesh, "intercept"] == pytest.approx(MESH_COSTS[mesh].cpu_idle * 1000, abs=5)
        assert cpu.loc[mesh, "per_1k_rps"] > MESH_COSTS[mesh].cpu_per_krps * 1000  # outbound calls add cost


def test_live_fit_arguments_are_checked(shootout):
    proxies, traffic = shootout.frames["proxies"], shootout.frames["traffic"]
    with pytest.raises(InvalidArgument, match="needs the traffic"):
        ml.capacity.fit(proxies)
    with pytest.raises(InvalidArgument, match="needs columns"):
        ml.capacity.fit(proxies, traffic=traffic.drop(columns=["rps"]))
    with pytest.raises(InvalidArgument, match="share no"):
        ml.capacity.fit(proxies, traffic=traffic.assign(timestamp=traffic["timestamp"] + pd.Timedelta("1s")))
    runs = ml.read_benchmark("../shared/fixtures/upstream/istio-tools-benchmark.csv")
    with pytest.raises(InvalidArgument, match="applies to a live proxies frame"):
        ml.capacity.fit(runs, traffic=traffic)
