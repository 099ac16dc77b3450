"""Every mesh's common workload key, and open connections across restarts.

One real Prometheus holds all five meshes' metrics for tests/scenarios/workloads.yaml:
a Deployment, two StatefulSets (one over raw TCP), a DaemonSet and a Job, an unmeshed
caller, an external service, and restarts of both ends of the TCP edge.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import meshlab as ml
from meshlab import schema
from meshlab.prometheus.local import LocalPrometheus
from meshlab.sim import load_scenario, simulate, truth, write_backfill

from .adapter_support import TCP_KEYS, by_key, restarted_in_window, windowed_tcp_truth
from .conftest import require_binary

MESHES = ("linkerd", "istio", "consul", "kuma", "hubble")
TCP_MESHES = ("linkerd", "istio", "consul", "kuma")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    require_binary("prometheus")
    require_binary("promtool")
    traffic = simulate(load_scenario(Path(__file__).parent / "scenarios" / "workloads.yaml"))
    files, _ = write_backfill(traffic, MESHES, tmp_path_factory.mktemp("workloads"))
    with LocalPrometheus(openmetrics=files) as server:
        times = traffic.timestamps()
        yield traffic, server.client, times[4], times[-1]


def keys(frame: pd.DataFrame, *columns: str) -> set[tuple[str, ...]]:
    return set(frame[list(columns)].astype(str).itertuples(index=False, name=None))


def in_cluster(traffic, frame: pd.DataFrame) -> pd.DataFrame:
    """Truth rows between workloads in the cluster: no external destination."""
    external = {w.name for w in traffic.scenario.workloads if w.external}
    return frame[~frame["dst_name"].astype(str).isin(external)]


# -- kind="workload" ------------------------------------------------------------------------------

def test_every_mesh_names_the_same_workloads_by_kind_workload(run):
    traffic, prom, start, end = run
    span = {"start": start, "end": end, "step": "5m"}
    expected_traffic = keys(truth.traffic_truth(traffic, "none"), "namespace", "name")
    client_edges = truth.edges_truth(traffic, "linkerd")  # a meshed caller's proxy sees the client side
    client_edges = in_cluster(traffic, client_edges[client_edges["side"] == "client"])
    expected_edges = keys(client_edges, "src_namespace", "src_name", "dst_namespace", "dst_name")
    # the StatefulSet, the DaemonSet and the Job are there, as are the edges to them
    assert {("back", "ledger"), ("back", "agent"), ("back", "indexer")} <= expected_traffic
    assert {("back", "api", "back", "ledger"), ("front", "web", "back", "agent")} <= expected_edges
    for mesh in MESHES:
        adapter = ml.mesh(mesh, prom)
        frame = schema.validate(adapter.traffic("workload", **span), "traffic")
        assert keys(frame, "namespace", "name") == expected_traffic, mesh
        assert set(frame["kind"]) == {"workload"}
        edges = schema.validate(adapter.edges("workload", **span), "edges")
        edges = edges[edges["side"] == "client"]
        assert keys(edges, "src_namespace", "src_name", "dst_namespace", "dst_name") == expected_edges, mesh


@pytest.mark.parametrize("mesh", TCP_MESHES)
def test_tcp_by_workload_names_every_connection_the_truth_has(run, mesh):
    traffic, prom, start, end = run
    adapter = ml.mesh(mesh, prom)
    expected = in_cluster(traffic, truth.tcp_truth(traffic, mesh))
    frame = schema.validate(adapter.tcp("workload", start=start, end=end, step="5m"), "tcp")
    for side in adapter.tcp_signals:
        mine = keys(frame[frame["side"] == side], "src_namespace", "src_name", "dst_namespace", "dst_name")
        assert mine == keys(expected[expected["side"] == side], "src_namespace", "src_name", "dst_namespace",
                            "dst_name"), (mesh, side)
    # the StatefulSet behind raw TCP, whatever the mesh counts besides
    assert ("back", "api", "back", "cache") in keys(frame, "src_namespace", "src_name", "dst_namespace", "dst_name")
    workloads = adapter.tcp("workload", start=start, end=end, step="5m", per="workload")
    server = expected[expected["side"] == "server"]
    assert keys(workloads, "dst_namespace", "dst_name") == keys(server, "dst_namespace", "dst_name")


def test_workload_kind_says_the_kubernetes_kind_where_the_mesh_can(run):
    traffic, prom, _, end = run
    kinds = {w.name: w.kind for w in traffic.scenario.workloads}
    for mesh in MESHES:
        frame = ml.mesh(mesh, prom).traffic("workload", at=end)
        said = dict(zip(frame["name"].astype(str), frame["workload_kind"], strict=True))
        if mesh == "linkerd":  # its labels name the owner's kind
            assert said == {name: kinds[name] for name in said}
        elif mesh == "hubble":  # its series carry no pod of the workload
            assert all(pd.isna(kind) for kind in said.values())
        else:  # from the pods' names: a DaemonSet's and a Job's look alike
            assert {n: k for n, k in said.items() if pd.notna(k)} == {
                n: kinds[n] for n in said if kinds[n] in ("deployment", "statefulset")}


def test_kind_workload_filters_by_name_in_promql(run):
    _, prom, _, end = run
    for mesh in MESHES:
        adapter = ml.mesh(mesh, prom)
        whole = adapter.traffic("workload", at=end)
        one = adapter.traffic("workload", name="ledger", at=end)
        assert one["name"].astype(str).tolist() == ["ledger"], mesh
        pd.testing.assert_series_equal(one["requests"], whole.loc[whole["name"] == "ledger", "requests"]
                                       .reset_index(drop=True), check_names=False)


# -- open connections across restarts ---------------------------------------------------------------

@pytest.mark.parametrize("mesh", TCP_MESHES)
def test_open_connections_equal_the_truth_across_restarts(run, mesh):
    """The TCP client's pod restarts at 20 m, the server's at 40 m; Istio derives open = opened - closed."""
    traffic, prom, start, end = run
    adapter = ml.mesh(mesh, prom)
    frame = adapter.tcp("workload", start=start, end=end, step="1m")
    expected = windowed_tcp_truth(in_cluster(traffic, truth.tcp_truth(traffic, mesh)), frame["timestamp"].unique())
    expected = expected[expected["side"].isin(list(adapter.tcp_signals))]
    mine, theirs = by_key(frame, TCP_KEYS, "open_connections"), by_key(expected, TCP_KEYS, "open_connections")
    assert mine.index.equals(theirs.index)
    np.testing.assert_array_equal(mine.to_numpy(), theirs.to_numpy())
    # the TCP edge, on every side, before and after each restart
    cache = frame[frame["dst_name"] == "cache"]
    assert set(cache["side"]) == set(adapter.tcp_signals) and (cache["open_connections"] > 20).all()
    opened, truly = by_key(frame, TCP_KEYS, "opened_connections"), by_key(expected, TCP_KEYS, "opened_connections")
    hidden = restarted_in_window(traffic, opened.index.to_frame(index=False))
    np.testing.assert_array_equal(opened.to_numpy()[~hidden], truly.to_numpy()[~hidden])


# -- the first step ---------------------------------------------------------------------------------

@pytest.mark.parametrize("mesh", MESHES)
def test_every_frame_kind_follows_one_first_step_rule(run, mesh):
    """A step whose window holds one scrape has no rates: no row in any frame, never NaN rates or 0 gauges."""
    traffic, prom, _, _ = run
    times = traffic.timestamps()
    adapter = ml.mesh(mesh, prom)
    span = {"start": times[0], "end": times[8], "step": "1m", "window": "1m"}
    frames = {"traffic": adapter.traffic("workload", **span), "edges": adapter.edges("workload", **span),
              "proxies": adapter.proxies(**span)}
    if adapter.tcp_signals:
        frames["tcp"] = adapter.tcp("workload", **span)
        frames["tcp per workload"] = adapter.tcp("workload", per="workload", **span)
    rates = {"traffic": ["requests"], "edges": ["requests"], "proxies": ["cpu_cores"],
             "tcp": ["opened_connections", "sent_bytes_per_second"],
             "tcp per workload": ["opened_connections", "sent_bytes_per_second"]}
    for kind, frame in frames.items():
        assert frame["timestamp"].min() == times[4], (kind, "the first step's window holds one scrape")
        assert set(frame["timestamp"]) == {times[4], times[8]}, kind
        assert frame[rates[kind]].notna().all().all(), kind
    # the same rule at one instant
    for kind, frame in {"traffic": adapter.traffic("workload", at=times[0]),
                        "proxies": adapter.proxies(at=times[0])}.items():
        assert frame.empty, kind
