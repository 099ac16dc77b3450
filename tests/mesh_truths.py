"""What the per-mesh adapter files share: names, the errors scenario, and the truth checks
of the original meshes' parametrised tests, called from each mesh's own file.

The mesh-agnostic part of the contract is in ``test_mesh_contract.py``; these checks hold
what differs per mesh (its kind, its names for workloads, which edges its proxies see).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import meshlab as ml
from meshlab import schema
from meshlab.errors import InvalidArgument
from meshlab.sim import truth
from meshlab.sim.meshes import ENVOY_BUCKETS_MS, HUBBLE_BUCKETS_S, LINKERD_BUCKETS_MS

from .adapter_support import (
    TCP_KEYS,
    assert_latency_within_buckets,
    by_key,
    restarted_in_window,
    windowed_tcp_truth,
    windowed_truth,
)

KINDS = {"linkerd": "deployment", "istio": "deployment", "consul": "service", "kuma": "service",
         "hubble": "deployment"}
BUCKETS = {"linkerd": LINKERD_BUCKETS_MS, "istio": ENVOY_BUCKETS_MS, "consul": ENVOY_BUCKETS_MS}
BUCKETS_MS = {"kuma": ENVOY_BUCKETS_MS, "hubble": tuple(b * 1000 for b in HUBBLE_BUCKETS_S)}
#: Kuma names a Kubernetes Service port <service>_<namespace>_svc_<port>; the scenario names workloads.
KUMA_SERVICES = {"web_front_svc_8080": "web", "api_back_svc_9090": "api", "idle_back_svc_8080": "idle",
                 "db_back_svc_6379": "db", "shop_a_svc_8080": "shop", "pay_b_svc_8080": "pay"}
#: Kuma's dashboards select by the dataplanes' mesh label: Consul's Envoy stats, beside them
#: in the Prometheus of every mesh, have the same names but no such label.
KUMA_OUTGOING = 'mesh="default",envoy_cluster_name!~"localhost_.*",envoy_cluster_name!="kuma_envoy_admin",' \
                'envoy_cluster_name!="kuma_metrics_hijacker"'
#: HTTP 5xx between meshed workloads, a 4xx that is no failure, and an unmeshed caller.
ERRORS = {
    "name": "errors", "seed": 5, "interval": "15s", "start": "2024-05-01T00:00:00Z", "duration": "30m",
    "workloads": [{"name": "bot", "namespace": "a", "meshed": False},
                  {"name": "shop", "namespace": "a", "replicas": 2},
                  {"name": "pay", "namespace": "b"}],
    "edges": [{"from": "bot", "to": "shop", "rate": 20, "errors": {"500": 0.05, "404": 0.05}},
              {"from": "shop", "to": "pay", "per_request": 1.0, "errors": {"503": 0.1}}],
}


def workload_names(frame: pd.DataFrame, mesh: str) -> pd.DataFrame:
    """Kuma's service names as the scenario's workload names (Hubble's already are)."""
    if mesh != "kuma":
        return frame
    frame = frame.copy()
    for column in ("name", "src_name", "dst_name"):
        if column in frame:
            frame[column] = frame[column].astype(str).map(lambda n: KUMA_SERVICES.get(n, n))
    return frame


def assert_close(mine: pd.Series, theirs: pd.Series, *, scale: float = 1.0) -> None:
    """Every value of the mesh's own query, matched by key, to 1e-9 relative."""
    theirs = theirs.dropna()
    assert len(theirs) > 10 and set(theirs.index) <= set(mine.index)
    np.testing.assert_allclose(mine.loc[theirs.index].to_numpy(), theirs.to_numpy() * scale, rtol=1e-9)


def family(families, name):
    return next(f for f in families if f.name == name)


# -- the truth checks of linkerd, istio and consul (one call per mesh, from its own file) ------------

def check_workload_counts(run, mesh):
    traffic, prom, start, end = run
    frame = ml.mesh(mesh, prom).traffic(KINDS[mesh], start=start, end=end, step="1m")
    schema.validate(frame, "traffic")
    expected = windowed_truth(truth.traffic_truth(traffic, mesh), ["namespace", "name"], frame["timestamp"].unique())
    keys = ["timestamp", "namespace", "name"]
    for column in ("success_count", "failure_count", "requests"):
        mine = by_key(frame, keys, column)
        np.testing.assert_array_equal(mine.to_numpy(), by_key(expected, keys, column).loc[mine.index].to_numpy())
    assert frame[["namespace", "name"]].notna().all().all()
    # The error burst is in the counts (as gRPC INTERNAL: a failure to Linkerd only).
    assert (frame["failure_count"].sum() > 1000) == (mesh == "linkerd")
    # The idle workload is present with zero counts and a NaN success rate, not an error.
    idle = frame[frame["name"] == "idle"]
    assert len(idle) == frame["timestamp"].nunique() and (idle["requests"] == 0).all()
    assert idle["success_rate"].isna().all() and idle["latency_p99_ms"].isna().all()


def check_edge_counts(run, mesh):
    traffic, prom, start, end = run
    frame = ml.mesh(mesh, prom).edges(KINDS[mesh], start=start, end=end, step="1m")
    schema.validate(frame, "edges")
    expected = windowed_truth(truth.edges_truth(traffic, mesh),
                              ["src_namespace", "src_name", "dst_namespace", "dst_name", "side"],
                              frame["timestamp"].unique())
    keys = ["timestamp", "src_namespace", "src_name", "dst_namespace", "dst_name", "side"]
    if mesh == "consul":
        # Consul reaches the external partner through a declared upstream: a real edge, but
        # no public listener says which Kubernetes namespace it is in.
        partner = frame[frame["dst_name"] == "partner"]
        assert len(partner) and partner["dst_namespace"].isna().all()
        frame = frame[frame["dst_name"] != "partner"]
    mine = by_key(frame, keys, "requests")
    np.testing.assert_array_equal(mine.to_numpy(), by_key(expected, keys, "requests").loc[mine.index].to_numpy())
    edges = set(zip(frame["src_name"].astype(str), frame["dst_name"].astype(str), strict=True))
    # cross-namespace (front -> back) is there; the unmeshed caller and egress without labels are not
    assert ("web", "api") in edges and not {e for e in edges if "client" in e or "partner" in e or "unknown" in e}
    assert set(frame["side"]) == ({"client", "server"} if mesh == "istio" else {"client"})
    assert frame.loc[frame["dst_name"] == "api", "dst_namespace"].astype(str).unique().tolist() == ["back"]


def check_latency(run, mesh):
    traffic, prom, _, end = run
    times = traffic.timestamps()
    frame = ml.mesh(mesh, prom).traffic(KINDS[mesh], start=times[20], end=end, step="5m", window="5m")
    assert_latency_within_buckets(traffic, frame, mesh, BUCKETS[mesh])


def check_tcp(run, mesh):
    traffic, prom, start, end = run
    adapter = ml.mesh(mesh, prom)
    frame = adapter.tcp(KINDS[mesh], start=start, end=end, step="1m")
    schema.validate(frame, "tcp")
    expected = windowed_tcp_truth(truth.tcp_truth(traffic, mesh), frame["timestamp"].unique())
    # only Istio's server-side proxies name the caller
    expected = expected[expected["side"].isin(list(adapter.tcp_signals))]
    if mesh == "linkerd":  # deployment to deployment, as linkerd viz edges names them
        expected = expected[expected["dst_name"].isin(["web", "api", "idle"])]
    assert set(frame["side"]) == {"client", "server"} if mesh == "istio" else {"client"}
    mine_edges = set(zip(frame["src_name"].astype(str), frame["dst_name"].astype(str), strict=True))
    # Linkerd and Envoy's cluster stats (Consul) count the HTTP and gRPC connections too;
    # istio_tcp_* only the TCP edge
    assert mine_edges == {"linkerd": {("web", "api"), ("web", "idle")}, "istio": {("api", "db")},
                          "consul": {("web", "api"), ("web", "idle"), ("api", "db"), ("api", "partner")}}[mesh]
    if mesh == "consul":  # the external partner has no proxy to say its namespace (see the edges test)
        assert frame.loc[frame["dst_name"] == "partner", "dst_namespace"].isna().all()
        frame = frame[frame["dst_name"] != "partner"]
        expected = expected[expected["dst_name"] != "partner"]
    for column in ("opened_connections", "open_connections", "sent_bytes_per_second", "received_bytes_per_second"):
        mine = by_key(frame, TCP_KEYS, column)
        theirs = by_key(expected, TCP_KEYS, column)
        assert mine.index.equals(theirs.index), column
        if column == "opened_connections":  # a reset Prometheus cannot see (the restarted web pod's pools)
            hidden = restarted_in_window(traffic, mine.index.to_frame(index=False))
            assert hidden.any() == (mesh != "istio")
            np.testing.assert_array_less(mine.to_numpy()[hidden], theirs.to_numpy()[hidden])
            mine, theirs = mine[~hidden], theirs[~hidden]
        np.testing.assert_allclose(mine.to_numpy(), theirs.to_numpy(), rtol=1e-9, err_msg=column)
    assert frame["sent_bytes_per_second"].sum() > 0 and frame["open_connections"].sum() > 0


def check_tcp_per_workload(run, mesh):
    traffic, prom, start, end = run
    frame = schema.validate(ml.mesh(mesh, prom).tcp(KINDS[mesh], start=start, end=end, step="1m", per="workload"),
                            "tcp")
    assert frame["src_name"].isna().all() and set(frame["side"]) == {"server"}
    # every caller's connections, the unmeshed client's included, summed per destination
    per_edge = windowed_tcp_truth(truth.tcp_truth(traffic, mesh), frame["timestamp"].unique())
    server = per_edge[per_edge["side"] == "server"]
    keys = ["timestamp", "dst_namespace", "dst_name"]
    expected = server.groupby(keys, observed=True)[
        ["opened_connections", "open_connections", "sent_bytes_per_second", "received_bytes_per_second"]].sum()
    expected = expected.reset_index()
    if mesh == "linkerd":  # by deployment: the statefulset's series have no deployment label
        expected = expected[expected["dst_name"] != "db"]
        assert set(frame["dst_name"].astype(str)) == {"web", "api", "idle"}
    else:  # TCP-protocol traffic only
        assert set(frame["dst_name"].astype(str)) == {"db"}
    columns = ["opened_connections", "sent_bytes_per_second", "received_bytes_per_second"]
    if mesh != "consul":  # Envoy's TCP proxy stats have no open-connection gauge
        columns.append("open_connections")
    else:
        assert frame["open_connections"].isna().all()
    for column in columns:
        mine, theirs = by_key(frame, keys, column), by_key(expected, keys, column)
        assert mine.index.equals(theirs.index), column
        if column == "opened_connections":  # a reset Prometheus cannot see (the restarted web pod's pools)
            hidden = restarted_in_window(traffic, mine.index.to_frame(index=False))
            np.testing.assert_array_less(mine.to_numpy()[hidden], theirs.to_numpy()[hidden])
            mine, theirs = mine[~hidden], theirs[~hidden]
        np.testing.assert_allclose(mine.to_numpy(), theirs.to_numpy(), rtol=1e-9, err_msg=column)
    with pytest.raises(InvalidArgument, match="per must be 'edge' or 'workload', got 'pod'"):
        ml.mesh(mesh, prom).tcp(KINDS[mesh], at=end, per="pod")


# -- the truth checks of kuma and hubble -------------------------------------------------------------

def check_workload_counts_by_name(run, mesh):
    traffic, prom, start, end = run
    frame = ml.mesh(mesh, prom).traffic(KINDS[mesh], start=start, end=end, step="1m")
    schema.validate(frame, "traffic")
    frame = workload_names(frame, mesh)
    assert set(frame["name"]) == {"web", "api", "idle"}  # db is TCP only: no requests
    expected = windowed_truth(truth.traffic_truth(traffic, mesh), ["namespace", "name"], frame["timestamp"].unique())
    keys = ["timestamp", "namespace", "name"]
    for column in ("success_count", "failure_count", "requests"):
        mine = by_key(frame, keys, column)
        np.testing.assert_array_equal(mine.to_numpy(), by_key(expected, keys, column).loc[mine.index].to_numpy())
    assert len(frame) == len(expected[expected["name"].isin(["web", "api", "idle"])])
    # the error burst is gRPC INTERNAL, in HTTP 200 responses: no failure to either mesh
    assert frame["failure_count"].sum() == 0 and frame["requests"].sum() > 300_000
    # the idle workload is present with zero counts, NaN success rate and NaN latency
    idle = frame[frame["name"] == "idle"]
    assert len(idle) == frame["timestamp"].nunique() and (idle["requests"] == 0).all()
    assert idle["success_rate"].isna().all() and idle["latency_p99_ms"].isna().all()


def check_edge_counts_by_name(run, mesh):
    traffic, prom, start, end = run
    frame = ml.mesh(mesh, prom).edges(KINDS[mesh], start=start, end=end, step="1m")
    schema.validate(frame, "edges")
    frame = workload_names(frame, mesh)
    if mesh == "kuma":
        # the partner is a Kuma ExternalService: a real edge, but no dataplane says its namespace
        partner = frame[frame["dst_name"] == "partner"]
        assert len(partner) and partner["dst_namespace"].isna().all() and partner["failure_count"].sum() > 0
        frame = frame[frame["dst_name"] != "partner"]
    expected = windowed_truth(truth.edges_truth(traffic, mesh),
                              ["src_namespace", "src_name", "dst_namespace", "dst_name", "side"],
                              frame["timestamp"].unique())
    keys = ["timestamp", "src_namespace", "src_name", "dst_namespace", "dst_name", "side"]
    for column in ("success_count", "failure_count", "requests"):
        mine = by_key(frame, keys, column)
        np.testing.assert_array_equal(mine.to_numpy(), by_key(expected, keys, column).loc[mine.index].to_numpy())
    sides = set(zip(frame["src_name"].astype(str), frame["dst_name"].astype(str), frame["side"].astype(str),
                    strict=True))
    if mesh == "kuma":
        # outbound clusters only; Kuma's own clusters and the inbound ones are not edges
        assert sides == {("web", "api", "client"), ("web", "idle", "client")}
    else:
        # both reporters for meshed pairs; the unmeshed caller named by the server; the world left out
        assert sides == {("web", "api", "client"), ("web", "api", "server"), ("web", "idle", "client"),
                         ("web", "idle", "server"), ("client", "web", "server")}
    assert frame.loc[frame["dst_name"] == "api", "dst_namespace"].astype(str).unique().tolist() == ["back"]


def check_latency_by_name(run, mesh):
    traffic, prom, _, end = run
    times = traffic.timestamps()
    frame = ml.mesh(mesh, prom).traffic(KINDS[mesh], start=times[20], end=end, step="5m", window="5m")
    frame = workload_names(frame, mesh)
    assert_latency_within_buckets(traffic, frame, mesh, BUCKETS_MS[mesh])


def check_failures_match_truth(errors_run, mesh):
    """Success and failure counts per workload and failures per edge equal the simulator's truth, and the
    failed share is the scenario's (5% HTTP 500 to shop, its 5% 404s succeeding; 10% 503 to pay).
    Returns the server and span, for the mesh's own dashboard PromQL."""
    traffic, prom, start, end = errors_run
    frame = workload_names(ml.mesh(mesh, prom).traffic(KINDS[mesh], start=start, end=end, step="1m"), mesh)
    expected = windowed_truth(truth.traffic_truth(traffic, mesh), ["namespace", "name"],
                              frame["timestamp"].unique())
    keys = ["timestamp", "namespace", "name"]
    for column in ("success_count", "failure_count"):
        mine = by_key(frame, keys, column)
        np.testing.assert_array_equal(mine.to_numpy(), by_key(expected, keys, column).loc[mine.index].to_numpy())
    assert set(frame["name"]) == {"shop", "pay"}  # other meshes' stats in the same Prometheus are not this one's
    share = frame.groupby("name", observed=True)[["failure_count", "requests"]].sum()
    failed = share["failure_count"] / share["requests"]
    # 5% HTTP 500 to shop (the 5% 404s succeed), 10% 503 to pay
    assert failed["shop"] == pytest.approx(0.05, abs=0.01) and failed["pay"] == pytest.approx(0.1, abs=0.015)
    edges = workload_names(ml.mesh(mesh, prom).edges(KINDS[mesh], start=start, end=end, step="1m"), mesh)
    expected = windowed_truth(truth.edges_truth(traffic, mesh),
                              ["src_namespace", "src_name", "dst_namespace", "dst_name", "side"],
                              edges["timestamp"].unique())
    keys = ["timestamp", "src_namespace", "src_name", "dst_namespace", "dst_name", "side"]
    mine = by_key(edges, keys, "failure_count")
    np.testing.assert_array_equal(mine.to_numpy(), by_key(expected, keys, "failure_count").loc[mine.index])
    assert mine.sum() > 0
    return prom, start, end
