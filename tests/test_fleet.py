"""Fleets: several simulated clusters in one VictoriaMetrics (a vmagent per cluster), read with by_cluster=True.

The reference is independent of the fleet's one store: each cluster's history pushed into a
VictoriaMetrics of its own, without any cluster label, and read with ml.concat_sources.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import requests as req
import yaml

import meshlab as ml
from meshlab import schema
from meshlab.errors import InvalidArgument
from meshlab.prometheus.local import LocalVictoriaMetrics
from meshlab.sim import load_scenario
from meshlab.sim.output import push_backfill

from .conftest import require_binary
from .test_sim import INCIDENTS

END = "2026-03-04T06:00:00Z"
START = "2026-03-04T05:20:00Z"
CLUSTERS = {"eu": "shop", "us": "shop"}
FRAMES = ("traffic", "edges", "tcp", "proxies")


class Reference:
    def __init__(self, fleet: ml.Prometheus, singles: dict[str, LocalVictoriaMetrics]):
        self.fleet = fleet
        self.singles = singles


@pytest.fixture(scope="module")
def fleet() -> Iterator[Reference]:
    require_binary("victoria-metrics", "victoria-metrics-prod")
    with ml.sandbox(clusters=CLUSTERS, meshes=["istio"], hours=1, end=END) as vm, contextlib.ExitStack() as stack:
        singles = {}
        for name, traffic in vm.sandbox.traffic.items():
            single = stack.enter_context(LocalVictoriaMetrics())
            push_backfill(traffic, ["istio"], single.client)
            single.force_flush()
            singles[name] = single
        yield Reference(vm, singles)


def sort_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows in one order, whatever the categories' order: by every label column's text."""
    keys = [c for c in frame.columns if c == "timestamp" or isinstance(frame[c].dtype, pd.CategoricalDtype)]
    order = frame[keys].astype(str).sort_values(keys, kind="stable").index
    return frame.loc[order].reset_index(drop=True)


def assert_same_frames(got: pd.DataFrame, want: pd.DataFrame) -> None:
    got, want = sort_rows(got), sort_rows(want)
    bounds = [c for c in got.columns if c.endswith(("_low_ms", "_high_ms"))]
    pd.testing.assert_frame_equal(got.drop(columns=bounds), want.drop(columns=bounds), check_categorical=False)
    # A quantile on a bucket edge lies in both buckets: the sums' last bits (summed in another order in a
    # store of two clusters) pick one, and may put one estimate a hair either side of the edge. Elsewhere
    # the bounds are equal.
    def near(a: pd.Series, b: pd.Series) -> np.ndarray:
        return np.isclose(a.to_numpy(float), b.to_numpy(float), rtol=1e-9, atol=0.0)

    for column in [c for c in got.columns if c.endswith("_low_ms")]:
        name, high = column.removesuffix("_low_ms") + "_ms", column.removesuffix("_low_ms") + "_high_ms"
        estimate = got[name]
        on_edge = (near(estimate, got[column]) | near(estimate, got[high]) | near(want[name], want[column])
                   | near(want[name], want[high]))
        assert on_edge.mean() < 0.05
        for part in (column, high):
            pd.testing.assert_series_equal(got.loc[~on_edge, part], want.loc[~on_edge, part])
        inside = estimate.isna() | ((got[column] <= estimate) & (estimate <= got[high]))
        assert inside.all()


class Counting(ml.Prometheus):
    """A real client that counts the requests it sends (each query, each series lookup)."""

    sent = 0

    def _exchange(self, method, url, data, headers):  # type: ignore[no-untyped-def]
        self.sent += 1
        return super()._exchange(method, url, data, headers)


def requests_sent(url: str, frame: str, **options: object) -> int:
    client = Counting(url, params={"nocache": "1"})
    getattr(ml.Istio(client), frame)(start=START, end=END, step="1m", **options)
    return client.sent


def test_fleet_store_labels_every_series_with_its_cluster(fleet):
    vm = fleet.fleet
    per_cluster = vm.query('count by (cluster) (count_over_time({__name__!=""}[2h]))', time=END)
    unlabelled = vm.query('count(count_over_time({__name__!="", cluster=""}[2h]))', time=END)
    assert len(unlabelled) == 0
    counts = dict(zip(per_cluster["cluster"].astype(str), per_cluster["value"], strict=True))
    for name, single in fleet.singles.items():
        own = single.client.query('count(count_over_time({__name__!=""}[2h]))', time=END)
        assert counts[name] == own["value"].item()
    # each cluster has its own seed: the same workloads, different traffic
    totals = vm.query('sum by (cluster) (istio_requests_total{reporter="destination"})', time=END)
    assert totals["value"].nunique() == 2


@pytest.mark.parametrize("frame", FRAMES)
def test_by_cluster_equals_concat_sources_over_per_cluster_servers(fleet, frame):
    got = getattr(ml.Istio(fleet.fleet), frame)(start=START, end=END, step="1m", by_cluster=True)
    want = ml.concat_sources({n: s.client for n, s in fleet.singles.items()}, frame, mesh="istio", start=START,
                             end=END, step="1m")
    assert len(got) and set(got["cluster"].astype(str)) == set(CLUSTERS)
    assert list(got.columns) == list(want.columns) and list(got.columns)[1] == "cluster"
    assert isinstance(got["cluster"].dtype, pd.CategoricalDtype)
    schema.validate(got, frame)
    assert_same_frames(got, want)


@pytest.mark.parametrize("frame", FRAMES)
def test_by_cluster_query_count_does_not_grow_with_clusters(fleet, frame):
    """A store of two clusters gets as many requests as one cluster's own server: one per signal."""
    one_cluster = requests_sent(fleet.singles["eu"].url, frame)
    assert one_cluster > 0
    assert requests_sent(fleet.fleet.url, frame, by_cluster=True) == one_cluster


@pytest.mark.parametrize("frame", FRAMES)
def test_by_cluster_refuses_a_bad_label_before_any_query(frame):
    unreachable = ml.Prometheus("http://127.0.0.1:9")  # any query would fail as unreachable, not as a bad argument
    for bad in ("not a label", 3, ""):
        with pytest.raises(InvalidArgument, match="by_cluster"):
            getattr(ml.Istio(unreachable), frame)(at=END, by_cluster=bad)


def test_by_cluster_names_another_label_and_keeps_default_promql():
    plain = ml.Istio.promql("success_count", "deployment")
    labelled = ml.Istio.promql("success_count", "deployment", by_labels=("k8s_cluster",))
    assert "k8s_cluster" not in plain
    assert labelled == plain.replace("destination_workload)", "destination_workload, k8s_cluster)")


def test_fleet_arguments_are_checked():
    with pytest.raises(InvalidArgument, match="clusters"):
        ml.sim.fleet.Fleet({})
    with pytest.raises(InvalidArgument, match="cluster names"):
        ml.sim.fleet.Fleet({"a,b": "shop"})
    with pytest.raises(InvalidArgument, match="store"):
        ml.sim.fleet.Fleet(CLUSTERS, store="thanos")


def test_live_fleet_vmagents_scrape_each_cluster_into_one_store():
    require_binary("victoria-metrics", "victoria-metrics-prod")
    require_binary("vmagent")
    scenario = {**load_scenario(INCIDENTS).to_dict(), "interval": "2s"}
    with ml.sandbox(clusters={"eu": scenario, "us": scenario}, meshes=["linkerd"], hours=0.05, live=True,
                    live_hours=0.05) as vm:
        fleet = vm.sandbox
        end_ms = max(int(t.times_ms[-1]) for t in fleet.traffic.values())
        newest: dict[str, float] = {}
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            fleet.server.force_flush()
            found = vm.query('max by (cluster) (timestamp(request_total{direction="inbound"}))')
            newest = dict(zip(found["cluster"].astype(str), found["value"] * 1000, strict=True))
            if len(newest) == 2 and min(newest.values()) > end_ms + 2 * 2000:
                break
            time.sleep(0.5)
        assert sorted(newest) == ["eu", "us"] and min(newest.values()) > end_ms + 2 * 2000, newest
        # the agents' own scrape series say who scraped: each cluster's vmagent, its label added
        up = vm.query('up{job="meshlab-sim"}')
        assert sorted(up["cluster"].astype(str)) == ["eu", "us"] and (up["value"] == 1).all()
        # at="now" reads the live scrapes, per cluster, in one query per signal
        now = ml.Linkerd(vm, scrape_interval="2s").traffic("deployment", at="now", window="10s", by_cluster=True)
        assert set(now["cluster"].astype(str)) == {"eu", "us"}
        assert (now["timestamp"] > pd.Timestamp(end_ms, unit="ms", tz="UTC")).all()
        agents = [agent.pid for agent in fleet.agents.values()]
    assert all(pid is not None for pid in agents)
    for pid in agents:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


# -- meshlab sandbox --live / --clusters, as real subprocesses ---------------------------------------

ROOT = Path(__file__).resolve().parent.parent


def _instant(url: str, promql: str) -> list[dict]:
    body = req.get(f"{url}/api/v1/query", params={"query": promql, "time": f"{time.time():.3f}"}, timeout=10).json()
    assert body["status"] == "success", body
    return body["data"]["result"]


def _sandbox_process(tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MESHLAB_CACHE": str(tmp_path / "cache")}
    return subprocess.Popen([sys.executable, "-m", "meshlab", "sandbox", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def _stop(process: subprocess.Popen[str], urls: list[str], ready: str) -> None:
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=30) == 0
    stderr = process.stderr.read() if process.stderr else ""
    assert "Traceback" not in stderr and stderr.splitlines()[-1] == "meshlab: sandbox stopped"
    for url in urls:
        with pytest.raises(req.ConnectionError):
            req.get(url + ready, timeout=5)


def test_cli_sandbox_live_moves_at_now_until_interrupted(tmp_path):
    require_binary("prometheus")
    scenario = tmp_path / "fast.yaml"
    scenario.write_text(yaml.safe_dump({**load_scenario(INCIDENTS).to_dict(), "interval": "2s"}))
    process = _sandbox_process(tmp_path, "--scenario", str(scenario), "--meshes", "linkerd", "--hours", "0.05",
                               "--live", "--live-hours", "0.05")
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), process.stderr.read() if process.stderr else ""
        query = 'sum(response_total{direction="inbound"})'
        first = _instant(url, query)
        time.sleep(2 * 2 + 1)  # two scrapes later
        second = _instant(url, query)
        assert float(second[0]["value"][1]) > float(first[0]["value"][1]) > 0  # the counters move at "now"
        assert second[0]["value"][0] > first[0]["value"][0]
        _stop(process, [url], "/-/ready")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_cli_sandbox_clusters_on_prometheus_serve_one_server_per_cluster(tmp_path):
    """--store prometheus: one sandbox per cluster, a NAME=URL line each, each its own seed."""
    require_binary("prometheus")
    process = _sandbox_process(tmp_path, "--clusters", "eu=shop,us=shop", "--store", "prometheus",
                               "--meshes", "istio", "--hours", "0.1")
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline().strip() for _ in range(2)]
        urls = dict(line.split("=", 1) for line in lines if "=" in line)
        assert sorted(urls) == ["eu", "us"], (lines, process.stderr.read() if process.stderr else "")
        totals = {name: float(_instant(url, 'sum(istio_requests_total{reporter="destination"})')[0]["value"][1])
                  for name, url in urls.items()}
        assert totals["eu"] != totals["us"] and min(totals.values()) > 0
        assert all(not _instant(url, 'count({__name__=~"istio.*", cluster!=""})') for url in urls.values())
        _stop(process, list(urls.values()), "/-/ready")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
