"""Cilium Hubble's adapter and simulator rendering against Cilium's dashboards, on the Prometheus of every mesh.

As ``test_mesh_kuma.py``, for Hubble: the L7 HTTP metrics by workload and the node proxies.
"""

from __future__ import annotations

import pandas as pd
import pytest

import meshlab as ml
from meshlab import schema
from meshlab.errors import InvalidArgument
from meshlab.meshes.hubble import Hubble
from meshlab.sim import truth
from meshlab.sim.costs import MESH_COSTS
from meshlab.sim.meshes import NODES, mesh_families, node_proxies
from meshlab.sim.output import format_le

from .adapter_support import by_key, count_requests
from .mesh_truths import (
    assert_close,
    check_edge_counts_by_name,
    check_failures_match_truth,
    check_latency_by_name,
    check_workload_counts_by_name,
    family,
)


@pytest.fixture(scope="module")
def run(mesh_run):
    """``(traffic, client, start, end)`` of the Prometheus holding every mesh (conftest.py)."""
    return mesh_run[:4]


@pytest.fixture(scope="module")
def traffic(mesh_run):
    return mesh_run[0]


# -- the simulator's rendering, against the mesh's own sources ------------------------------------

def test_hubble_names_labels_and_buckets(traffic):
    families = mesh_families(traffic, "hubble")
    assert {f.name for f in families} == {"hubble_http_requests_total", "hubble_http_request_duration_seconds",
                                          "container_cpu_usage_seconds_total", "container_memory_working_set_bytes"}
    duration = family(families, "hubble_http_request_duration_seconds")
    # client_golang's DefBuckets, in seconds (Hubble sets none)
    assert [format_le(b) for b in duration.le] == ["0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1",
                                                   "2.5", "5", "10", "+Inf"]
    assert duration.unit_ms == 1000
    context = {"source_namespace", "source_workload", "destination_namespace", "destination_workload",
               "traffic_direction"}
    agent = {"namespace", "pod", "job", "instance"}
    requests = [s.labels for s in family(families, "hubble_http_requests_total").series]
    assert all(set(r) == context | agent | {"method", "protocol", "status", "reporter"} for r in requests)
    assert all(set(s.labels) == context | agent | {"method", "reporter"} for s in duration.series)
    assert {(r["reporter"], r["traffic_direction"]) for r in requests} == {("client", "egress"), ("server", "ingress")}
    assert all(r["namespace"] == "kube-system" and r["pod"].startswith("cilium-") and r["instance"].endswith(":9965")
               for r in requests)
    assert len({r["pod"] for r in requests}) == len(NODES)
    # gRPC: POST over HTTP/2 with status 200, whatever the gRPC status
    grpc = {(r["method"], r["protocol"], r["status"]) for r in requests if r["destination_workload"] == "api"}
    assert grpc == {("POST", "HTTP/2", "200")}
    # the unmeshed caller is named, but only the server reports it
    client = [r for r in requests if r["source_workload"] == "client"]
    assert client and {r["reporter"] for r in client} == {"server"}
    # the external service is reserved:world: no namespace, no workload, and only a client side
    world = [r for r in requests if r["destination_workload"] == ""]
    assert world and all(r["destination_namespace"] == "" and r["reporter"] == "client" for r in world)
    assert {r["status"] for r in world} == {"200", "503"}
    # meshed to meshed: both reporters
    assert {r["reporter"] for r in requests if r["destination_workload"] == "api"} == {"client", "server"}


def test_proxy_cost_is_per_node(traffic):
    cilium = family(mesh_families(traffic, "hubble"), "container_memory_working_set_bytes").series
    proxies = node_proxies(traffic)
    assert [(s.labels["pod"], s.labels["node"]) for s in cilium] == [(p.name, p.node) for p in proxies]
    assert {(s.labels["namespace"], s.labels["container"]) for s in cilium} == {("kube-system", "cilium-envoy")}
    frame = truth.proxies_truth(traffic, "hubble")
    schema.validate(frame, "proxies")
    assert set(frame["pod"]) == {p.name for p in proxies} and set(frame["workload"]) == {"cilium-envoy"}
    # every node proxy works above its idle cost: each node has L7 pods
    busy = frame.groupby("pod", observed=True)["cpu_cores"].mean()
    assert (busy > MESH_COSTS["hubble"].cpu_idle).all()


# -- the mesh's own PromQL --------------------------------------------------------------------------

def test_hubble_equals_its_dashboard_promql(run):
    """Cilium's "Hubble L7 HTTP Metrics by Workload" dashboard, reporter="server", for every workload at once."""
    _, prom, start, end = run
    frame = ml.Hubble(prom).traffic("deployment", start=start, end=end, step="1m", quantiles=(0.5, 0.95, 0.99))
    sel = 'reporter="server"'
    group = "by (destination_namespace, destination_workload)"
    keys = ["timestamp", "destination_namespace", "destination_workload"]
    mine = frame.rename(columns={"namespace": keys[1], "name": keys[2]})
    volume = prom.query_range(f"sum {group} (rate(hubble_http_requests_total{{{sel}}}[1m]))", start, end, "1m")
    assert_close(by_key(mine, keys, "rps"), by_key(volume, keys, "value"))
    success = prom.query_range(f'sum(rate(hubble_http_requests_total{{{sel}, status!~"5.*"}}[1m])) {group}\n/\n'
                               f"sum(rate(hubble_http_requests_total{{{sel}}}[1m])) {group}", start, end, "1m")
    assert_close(by_key(mine, keys, "success_rate"), by_key(success, keys, "value"))
    for q in (0.5, 0.95, 0.99):  # the dashboard shows seconds; meshlab milliseconds
        theirs = prom.query_range(f"histogram_quantile({q}, sum(rate(hubble_http_request_duration_seconds_bucket{{"
                                  f"{sel}}}[1m])) by (le, destination_namespace, destination_workload))",
                                  start, end, "1m")
        assert_close(by_key(mine, keys, schema.quantile_column(q)), by_key(theirs, keys, "value"), scale=1000)


def test_hubble_edges_equal_its_requests_by_source_panels(run):
    _, prom, start, end = run
    frame = ml.Hubble(prom).edges("deployment", start=start, end=end, step="1m", sides=("server",))
    group = "by (source_namespace, source_workload, destination_namespace, destination_workload)"
    keys = ["timestamp", "source_namespace", "source_workload", "destination_namespace", "destination_workload"]
    mine = frame.rename(columns=dict(zip(["src_namespace", "src_name", "dst_namespace", "dst_name"], keys[1:],
                                         strict=True)))
    by_source = prom.query_range(f'sum(rate(hubble_http_requests_total{{reporter="server"}}[1m])) {group}',
                                 start, end, "1m")
    assert_close(by_key(mine, keys, "rps"), by_key(by_source, keys, "value"))
    success = prom.query_range(
        f'sum(rate(hubble_http_requests_total{{reporter="server",status!~"5.*"}}[1m])) {group} / '
        f'sum(rate(hubble_http_requests_total{{reporter="server"}}[1m])) {group}', start, end, "1m")
    assert_close(by_key(mine, keys, "success_rate"), by_key(success, keys, "value"))


def test_promql_is_the_dashboards(run):
    prom = run[1]
    hubble = ml.Hubble(prom)
    assert hubble.promql("latency", quantile=0.5) == (
        'histogram_quantile(0.5, sum by (le, destination_namespace, destination_workload) '
        '(rate(hubble_http_request_duration_seconds_bucket{reporter="server"}[1m]))) * 1000')


def test_kinds_and_errors(run):
    _, prom, _, end = run
    assert ml.Hubble is Hubble and "Hubble" in ml.__all__ and isinstance(ml.mesh("hubble", prom), Hubble)
    with pytest.raises(InvalidArgument, match="hubble cannot name workloads by kind 'pod'"):
        ml.Hubble(prom).traffic("pod", at=end)
    namespaces = ml.Hubble(prom).edges("namespace", at=end)
    assert set(zip(namespaces["src_name"].astype(str), namespaces["dst_name"].astype(str), strict=True)) == {
        ("front", "back"), ("front", "front")}


def test_edge_queries_do_not_grow_with_the_number_of_workloads(run, monkeypatch):
    _, prom, _, end = run
    calls = count_requests(prom, monkeypatch)
    ml.Hubble(prom).edges("deployment", at=end, quantiles=(0.99,))  # one of the defaults
    assert len(calls) == 2 * (2 + 3 + 1)  # two sides


def test_decoys_are_in_the_data_and_not_in_the_frames(run):
    _, prom, _, end = run
    window = "30m"
    hubble = ml.Hubble(prom)
    seen = hubble.traffic("deployment", at=end, window=window)["requests"].sum()
    both = prom.query(f"sum by (reporter) (increase(hubble_http_requests_total[{window}]))", time=end)
    reported = dict(zip(both["reporter"].astype(str), both["value"], strict=True))
    assert reported["server"] == pytest.approx(seen, rel=1e-9) and reported["client"] > 0
    # a request between two L7-visible workloads is counted once by each reporter
    api = prom.query(f'sum by (reporter) (increase(hubble_http_requests_total{{destination_workload="api"}}'
                     f"[{window}]))", time=end)
    assert api["value"].nunique() == 1 and len(api) == 2
    sides = hubble.edges("deployment", at=end, window=window)
    world = prom.query(f'sum(increase(hubble_http_requests_total{{destination_workload=""}}[{window}]))', time=end)
    assert world["value"].item() > 0 and not (sides["dst_name"].astype(str) == "").any()


def test_failures_are_http_5xx_as_the_dashboards_count_them(errors_run):
    prom, start, end = check_failures_match_truth(errors_run, "hubble")
    # the dashboard's own error ratio on this server
    hubble = ml.Hubble(prom).traffic("deployment", start=start, end=end, step="1m")
    errors = prom.query_range('sum by (destination_workload) (rate(hubble_http_requests_total{reporter="server",'
                              'status=~"5.*"}[1m])) / sum by (destination_workload) (rate(hubble_http_requests_total'
                              '{reporter="server"}[1m]))', start, end, "1m")
    keys = ["timestamp", "destination_workload"]
    assert_close(1 - by_key(hubble.rename(columns={"name": "destination_workload"}), keys, "success_rate"),
                 by_key(errors, keys, "value"))


def test_proxy_cost_through_prometheus_equals_the_truth(run):
    traffic, prom, start, end = run
    cpu = prom.query_range('sum by (pod) (increase(container_cpu_usage_seconds_total{container="cilium-envoy"}[1m]))',
                           start, end, "1m")
    proxies = truth.proxies_truth(traffic, "hubble")
    proxies["cpu_seconds"] = proxies["cpu_cores"] * 15
    times = cpu["timestamp"].unique()
    expected = pd.concat([proxies[(proxies["timestamp"] > t - pd.Timedelta("1m")) & (proxies["timestamp"] <= t)]
                          .groupby("pod", observed=True)["cpu_seconds"].sum().reset_index().assign(timestamp=t)
                          for t in times])
    keys = ["timestamp", "pod"]
    assert_close(by_key(cpu, keys, "value"), by_key(expected, keys, "cpu_seconds"))
    assert cpu["pod"].nunique() == len(NODES)


def test_hubble_has_no_tcp(run):
    traffic, prom, _, end = run
    assert truth.tcp_truth(traffic, "hubble").empty
    with pytest.raises(InvalidArgument, match="hubble has no TCP metrics between workloads meshlab can read"):
        ml.Hubble(prom).tcp(at=end)
    with pytest.raises(InvalidArgument, match="hubble has no per-workload TCP metrics meshlab can read"):
        ml.Hubble(prom).tcp(at=end, per="workload")


# -- the ground truth, by this mesh's names -------------------------------------------------------

def test_workload_counts_equal_the_truth(run):
    check_workload_counts_by_name(run, "hubble")


def test_edge_counts_equal_the_truth(run):
    check_edge_counts_by_name(run, "hubble")


def test_latency_within_bucket_resolution_of_the_truth(run):
    check_latency_by_name(run, "hubble")
