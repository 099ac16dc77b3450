"""Linkerd's adapter against its own PromQL (linkerd viz), on the Prometheus holding every mesh.

Each adapter must return the numbers of the mesh's own PromQL (with ``rate`` in place of
``irate``) run directly on the same server, to 1e-9, and the simulator's ground truth by the
mesh's own names: counts exactly, latency within bucket resolution. What every mesh must do
is in ``test_mesh_contract.py``.
"""

from __future__ import annotations

import numpy as np
import pytest

import meshlab as ml

from .adapter_support import TCP_KEYS, by_key
from .mesh_truths import check_edge_counts, check_latency, check_tcp, check_tcp_per_workload, check_workload_counts


@pytest.fixture(scope="module")
def run(mesh_run):
    """``(traffic, client, start, end)`` of the Prometheus holding every mesh (conftest.py)."""
    return mesh_run[:4]


# -- linkerd viz's own PromQL ------------------------------------------------------------------

def own_linkerd(prom, start, end):
    counts = prom.query_range('sum(increase(response_total{direction="inbound"}[1m])) '
                              "by (namespace, deployment, classification, tls)", start, end, "1m")
    counts = counts.groupby(["timestamp", "namespace", "deployment", "classification"], observed=True)["value"].sum()
    latency = {q: prom.query_range(f'histogram_quantile({q}, sum(rate(response_latency_ms_bucket{{direction="inbound"}}'
                                   '[1m])) by (le, namespace, deployment))', start, end, "1m")
               for q in (0.5, 0.95, 0.99)}
    return counts.unstack("classification").fillna(0.0), latency


@pytest.mark.parametrize("q_column", [(0.5, "latency_p50_ms"), (0.95, "latency_p95_ms"), (0.99, "latency_p99_ms")])
def test_linkerd_equals_linkerd_viz_promql(run, q_column):
    _, prom, start, end = run
    frame = ml.Linkerd(prom).traffic("deployment", start=start, end=end, step="1m", quantiles=(0.5, 0.95, 0.99))
    counts, latency = own_linkerd(prom, start, end)
    ours = frame.astype({"namespace": str, "name": str}).set_index(["timestamp", "namespace", "name"])
    counts.index = counts.index.set_names(["timestamp", "namespace", "name"])
    counts.index = counts.index.set_levels([lvl.astype(str) if i else lvl for i, lvl in enumerate(counts.index.levels)])
    joined = ours.join(counts, how="inner")
    assert len(joined) == len(ours) == len(counts) > 100
    np.testing.assert_allclose(joined["success_count"], joined["success"], rtol=1e-9)
    np.testing.assert_allclose(joined["failure_count"], joined.get("failure", 0.0), rtol=1e-9)
    q, column = q_column
    theirs = by_key(latency[q].rename(columns={"deployment": "name"}), ["timestamp", "namespace", "name"], "value")
    mine = by_key(frame, ["timestamp", "namespace", "name"], column).dropna()
    np.testing.assert_allclose(mine.loc[theirs.dropna().index], theirs.dropna(), rtol=1e-9)
    assert len(theirs.dropna()) > 100


def test_tcp_equals_linkerd_viz_edges_and_stat_promql(run):
    _, prom, start, end = run
    # linkerd viz edges' own query (viz/metrics-api), its finer groups summed here per edge
    linkerd = ml.Linkerd(prom).tcp("deployment", start=start, end=end, step="1m")
    keys = ["timestamp", "namespace", "deployment", "dst_namespace", "dst_deployment"]
    viz = prom.query_range('sum(tcp_open_connections{deployment!="", direction="outbound", dst_deployment!=""}) '
                           "by (deployment, dst_deployment, pod, server_id, namespace, dst_namespace, no_tls_reason)",
                           start, end, "1m")
    theirs = viz.astype({k: str for k in keys[1:]}).groupby(keys)["value"].sum()
    mine = linkerd.rename(columns=dict(zip(TCP_KEYS[1:5], keys[1:], strict=True)))
    np.testing.assert_allclose(by_key(mine, keys, "open_connections").loc[theirs.index], theirs, rtol=1e-9)
    assert len(theirs) == len(linkerd) > 50
    # linkerd viz stat --from: bytes with peer="dst" on the outbound side
    theirs = by_key(prom.query_range(
        'sum by (namespace, deployment, dst_namespace, dst_deployment) (rate(tcp_read_bytes_total{direction='
        '"outbound", peer="dst", deployment!="", dst_deployment!=""}[1m]))', start, end, "1m"), keys, "value")
    np.testing.assert_allclose(by_key(mine, keys, "received_bytes_per_second").loc[theirs.index], theirs, rtol=1e-9)


def test_linkerd_proxy_process_metrics_and_their_dashboard(run):
    _, prom, start, end = run
    frame = ml.Linkerd(prom).proxies(start=start, end=end, step="1m", source="proxy", namespace="back")
    theirs = prom.query_range('sum(rate(process_cpu_seconds_total{job="linkerd-proxy", namespace="back"}[1m])) '
                              "by (namespace, pod)", start, end, "1m")
    keys = ["timestamp", "namespace", "pod"]
    theirs = by_key(theirs, keys, "value")
    np.testing.assert_allclose(by_key(frame, keys, "cpu_cores").loc[theirs.index], theirs, rtol=1e-9)
    assert set(frame["namespace"]) == {"back"} and set(frame["workload"].astype(str)) == {"api", "db", "idle"}


# -- the ground truth, by this mesh's names -------------------------------------------------------

def test_workload_counts_equal_the_truth(run):
    check_workload_counts(run, "linkerd")


def test_edge_counts_equal_the_truth(run):
    check_edge_counts(run, "linkerd")


def test_latency_within_bucket_resolution_of_the_truth(run):
    check_latency(run, "linkerd")


def test_tcp_equals_the_truth(run):
    check_tcp(run, "linkerd")


def test_tcp_per_workload_equals_the_truth(run):
    check_tcp_per_workload(run, "linkerd")
