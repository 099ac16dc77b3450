"""Mesh adapters against a real Prometheus loaded by the simulator.

Every adapter must return the numbers of the mesh's own PromQL (from the reference, with
``rate`` in place of ``irate``) run directly on the same server, to 1e-9, and the
simulator's ground truth: counts exactly, latency within bucket resolution. The
scenario has an error burst, a counter reset, a cross-namespace edge, an idle workload,
an unmeshed caller and an egress call: the last two are traffic the adapters must not
attribute to edges.
"""

from __future__ import annotations

import sys
import textwrap

import numpy as np
import pandas as pd
import pytest

import meshlab as ml
from meshlab import schema
from meshlab.errors import InvalidArgument
from meshlab.meshes import base
from meshlab.prometheus.local import LocalPrometheus, LocalVictoriaMetrics, free_port
from meshlab.prometheus.promql import by
from meshlab.sim import truth
from meshlab.sim.meshes import ENVOY_BUCKETS_MS, LINKERD_BUCKETS_MS

from .adapter_support import (
    TCP_KEYS,
    assert_latency_within_buckets,
    by_key,
    count_requests,
    restarted_in_window,
    windowed_proxy_truth,
    windowed_tcp_truth,
    windowed_truth,
)
from .conftest import require_binary

KINDS = {"linkerd": "deployment", "istio": "deployment", "consul": "service"}
BUCKETS = {"linkerd": LINKERD_BUCKETS_MS, "istio": ENVOY_BUCKETS_MS, "consul": ENVOY_BUCKETS_MS}


@pytest.fixture(scope="module")
def run(sim_run):
    traffic, prom, _ = sim_run
    times = traffic.timestamps()
    return traffic, prom, times[4], times[-1]


# -- the registry ----------------------------------------------------------------------------

def test_registry_and_errors(run):
    _, prom, _, _ = run
    assert {"linkerd", "istio", "consul"} <= set(ml.meshes.available())
    assert isinstance(ml.mesh("istio", prom), ml.Istio)
    with pytest.raises(InvalidArgument, match=r"unknown mesh 'kumaa'; available: consul, hubble, istio, kuma, linkerd"):
        ml.mesh("kumaa", prom)
    with pytest.raises(InvalidArgument, match="consul cannot name workloads by kind 'deployment'; supported kinds: "
                                              "namespace, workload, service, pod"):
        ml.Consul(prom).traffic("deployment", at="now")
    with pytest.raises(InvalidArgument, match="give start= and end= for a range, or at= for one instant"):
        ml.Linkerd(prom).traffic()


def test_a_third_party_mesh_plugs_in_through_the_entry_point_group(run, tmp_path, monkeypatch):
    _, prom, _, end = run
    (tmp_path / "toy_mesh.py").write_text(textwrap.dedent('''
        from meshlab.meshes.linkerd import Linkerd
        class Toy(Linkerd):
            name = "toy"
    '''))
    dist = tmp_path / "toy_mesh-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-mesh\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[meshlab.meshes]\ntoy = toy_mesh:Toy\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with ml.meshes.registry.snapshot() as registry:
        registry.refresh()
        assert "toy" in ml.meshes.available()
        frame = ml.mesh("toy", prom).traffic(at=end)
        assert set(frame["mesh"]) == {"toy"} and len(frame) > 0
    sys.modules.pop("toy_mesh", None)


# -- the mesh's own PromQL ---------------------------------------------------------------------

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


def test_istio_equals_its_dashboard_promql(run):
    _, prom, start, end = run
    frame = ml.Istio(prom).traffic("deployment", start=start, end=end, step="1m")
    sel = 'reporter="destination"'
    success_rate = prom.query_range(
        f'sum by (destination_workload_namespace, destination_workload) (rate(istio_requests_total{{{sel}, '
        f'response_code!~"5.*"}}[1m])) / sum by (destination_workload_namespace, destination_workload) '
        f"(rate(istio_requests_total{{{sel}}}[1m]))", start, end, "1m")
    p90 = prom.query_range(f"histogram_quantile(0.9, sum(rate(istio_request_duration_milliseconds_bucket{{{sel}}}"
                           "[1m])) by (le, destination_workload_namespace, destination_workload))", start, end, "1m")
    keys = ["timestamp", "destination_workload_namespace", "destination_workload"]
    mine = frame.rename(columns={"namespace": keys[1], "name": keys[2]})
    theirs = by_key(success_rate, keys, "value").dropna()
    np.testing.assert_allclose(by_key(mine, keys, "success_rate").loc[theirs.index], theirs, rtol=1e-9)
    theirs = by_key(p90, keys, "value").dropna()
    np.testing.assert_allclose(by_key(mine, keys, "latency_p90_ms").loc[theirs.index], theirs, rtol=1e-9)
    assert len(theirs) > 100


def test_consul_equals_the_consul_ui_promql(run):
    _, prom, start, end = run
    frame = ml.Consul(prom).traffic("service", start=start, end=end, step="1m")
    sel = 'envoy_http_conn_manager_prefix="public_listener"'
    group = "by (namespace, consul_source_service)"
    rps = prom.query_range(f"sum {group} (rate(envoy_http_downstream_rq_completed{{{sel}}}[1m]))", start, end, "1m")
    errors = prom.query_range(f'sum {group} (rate(envoy_http_downstream_rq_xx{{{sel},envoy_response_code_class="5"}}'
                              f"[1m])) / sum {group} (rate(envoy_http_downstream_rq_xx{{{sel}}}[1m]))",
                              start, end, "1m")
    p99 = prom.query_range(f"histogram_quantile(0.99, sum by(le, namespace, consul_source_service) "
                           f"(rate(envoy_http_downstream_rq_time_bucket{{{sel}}}[1m])))", start, end, "1m")
    keys = ["timestamp", "namespace", "consul_source_service"]
    mine = frame.rename(columns={"name": keys[2]})
    theirs = by_key(rps, keys, "value")
    np.testing.assert_allclose(by_key(mine, keys, "rps").loc[theirs.index], theirs, rtol=1e-9)
    if len(errors):
        theirs = by_key(errors, keys, "value").dropna()
        np.testing.assert_allclose(1 - by_key(mine, keys, "success_rate").loc[theirs.index], theirs, rtol=1e-9)
    else:  # no class-5 series at any public listener here: the UI's error rate is empty
        assert (frame["failure_count"] == 0).all()
    theirs = by_key(p99, keys, "value").dropna()
    np.testing.assert_allclose(by_key(mine, keys, "latency_p99_ms").loc[theirs.index], theirs, rtol=1e-9)


# -- the ground truth ---------------------------------------------------------------------------

@pytest.mark.parametrize("mesh", ["linkerd", "istio", "consul"])
def test_workload_counts_equal_the_truth(run, mesh):
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


@pytest.mark.parametrize("mesh", ["linkerd", "istio", "consul"])
def test_edge_counts_equal_the_truth(run, mesh):
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


@pytest.mark.parametrize("mesh", ["linkerd", "istio", "consul"])
def test_latency_within_bucket_resolution_of_the_truth(run, mesh):
    traffic, prom, _, end = run
    times = traffic.timestamps()
    frame = ml.mesh(mesh, prom).traffic(KINDS[mesh], start=times[20], end=end, step="5m", window="5m")
    assert_latency_within_buckets(traffic, frame, mesh, BUCKETS[mesh])


# -- the contract ---------------------------------------------------------------------------------

def test_queries_do_not_grow_with_the_number_of_workloads(run, monkeypatch):
    _, prom, start, end = run
    calls = count_requests(prom, monkeypatch)
    frame = ml.Linkerd(prom).traffic("deployment", start=start, end=end, step="1m")
    # success, failure, three quantiles, and the buckets their bounds come from
    assert frame["name"].nunique() == 3 and len(calls) == 2 + 3 + 1
    calls.clear()
    ml.Istio(prom).edges("deployment", start=start, end=end, step="1m", quantiles=(0.99,))
    assert len(calls) == 2 * (2 + 3 + 1)  # two sides; 0.99 is one of the defaults
    calls.clear()
    ml.Consul(prom).edges("service", at=end, quantiles=(0.95,))
    assert len(calls) == 2 + 4 + 1 + 1  # plus the series lookup for destination namespaces


def test_one_instant_smi_style(run):
    _, prom, _, end = run
    frame = ml.Istio(prom).traffic("deployment", namespace="back", at=end, window="30s")
    assert frame["timestamp"].unique().tolist() == [end] and set(frame["namespace"]) == {"back"}
    assert set(frame["name"]) == {"api", "idle"}
    assert (frame["rps"] == frame["requests"] / 30).all()


def test_user_values_are_escaped_not_pasted(run):
    _, prom, _, end = run
    adapter = ml.Linkerd(prom)
    assert adapter.traffic(namespace='front"} or up{x="', at=end).empty
    assert 'namespace="front\\"} or up{x=\\""' in adapter.promql("success_count", namespace='front"} or up{x="')


def test_kind_namespace_and_pod(run):
    _, prom, start, end = run
    by_namespace = ml.Linkerd(prom).traffic("namespace", start=start, end=end, step="1m")
    by_deployment = ml.Linkerd(prom).traffic("deployment", start=start, end=end, step="1m")
    assert set(by_namespace["name"]) == {"front", "back"}
    total = by_deployment.groupby(["timestamp", "namespace"], observed=True)["requests"].sum()
    np.testing.assert_array_equal(by_key(by_namespace, ["timestamp", "namespace"], "requests"), total.sort_index())
    pods = ml.Istio(prom).traffic("pod", at=end)
    assert pods["name"].str.startswith(("web-", "api-", "idle-")).all()


def test_detect_finds_exactly_the_meshes_present(run, prometheus_server):
    traffic, prom, _, _ = run
    found = ml.detect(prom)
    assert set(found) == {"linkerd", "istio", "consul"}
    first = pd.Timestamp(traffic.times_ms[0], unit="ms", tz="UTC")
    assert all(pd.Timedelta(0) <= since - first <= pd.Timedelta("1s") for since in found.values())
    assert ml.detect(prometheus_server.client) == {}


# -- TCP and proxy cost ----------------------------------------------------------------------------

@pytest.mark.parametrize("mesh", ["linkerd", "istio", "consul"])
def test_tcp_equals_the_truth(run, mesh):
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


def test_tcp_equals_the_meshes_own_promql(run):
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
    # Kiali's TCP graph: reporter="source", bytes by source and destination workload
    istio = ml.Istio(prom).tcp("deployment", start=start, end=end, step="1m", sides=["client"])
    keys = ["timestamp", "source_workload_namespace", "source_workload", "destination_workload_namespace",
            "destination_workload"]
    theirs = prom.query_range(f"sum {by(*keys[1:])} (rate(istio_tcp_sent_bytes_total{{reporter=\"source\"}}[1m]))",
                              start, end, "1m")
    mine = istio.rename(columns=dict(zip(TCP_KEYS[1:5], keys[1:], strict=True)))
    theirs = by_key(theirs, keys, "value")
    np.testing.assert_allclose(by_key(mine, keys, "received_bytes_per_second").loc[theirs.index], theirs, rtol=1e-9)
    assert len(theirs) == len(istio) > 50


@pytest.mark.parametrize("mesh", ["linkerd", "istio", "consul"])
def test_proxy_cost_equals_the_truth(run, mesh):
    traffic, prom, start, end = run
    frame = ml.mesh(mesh, prom).proxies(start=start, end=end, step="1m")
    schema.validate(frame, "proxies")
    keys = ["timestamp", "namespace", "workload", "pod"]
    expected = windowed_proxy_truth(truth.proxies_truth(traffic, mesh), frame["timestamp"].unique())
    # the workload comes from the mesh's own series, and agrees with the simulated owner
    assert set(frame["workload"].astype(str)) == {"web", "api", "db", "idle"}
    assert set(frame["container"].astype(str)) == {ml.mesh(mesh, prom).proxy_containers[0]}
    mine = by_key(frame, keys, "cpu_cores").dropna()
    theirs = by_key(expected, keys, "cpu_cores")
    assert mine.index.equals(theirs.index) and len(mine) > 100
    np.testing.assert_allclose(mine.to_numpy(), theirs.to_numpy(), rtol=1e-9)
    memory = by_key(frame, keys, "memory_bytes")
    np.testing.assert_array_equal(memory.loc[theirs.index].to_numpy(), by_key(expected, keys, "memory_bytes"))
    # the pod that scaled in later appears from its first scrape on
    assert frame.groupby("pod", observed=True)["timestamp"].min().nunique() == 2


def test_linkerd_proxy_process_metrics_and_their_dashboard(run):
    _, prom, start, end = run
    frame = ml.Linkerd(prom).proxies(start=start, end=end, step="1m", source="proxy", namespace="back")
    theirs = prom.query_range('sum(rate(process_cpu_seconds_total{job="linkerd-proxy", namespace="back"}[1m])) '
                              "by (namespace, pod)", start, end, "1m")
    keys = ["timestamp", "namespace", "pod"]
    theirs = by_key(theirs, keys, "value")
    np.testing.assert_allclose(by_key(frame, keys, "cpu_cores").loc[theirs.index], theirs, rtol=1e-9)
    assert set(frame["namespace"]) == {"back"} and set(frame["workload"].astype(str)) == {"api", "db", "idle"}
    with pytest.raises(InvalidArgument, match="istio's proxies export no process metrics; use source='cadvisor'"):
        ml.Istio(prom).proxies(at=end, source="proxy")
    with pytest.raises(InvalidArgument, match="unknown proxy source 'kubelet'; must be one of: cadvisor, proxy"):
        ml.Istio(prom).proxies(at=end, source="kubelet")


def test_tcp_and_proxy_queries_do_not_grow_with_the_workloads(run, monkeypatch):
    _, prom, start, end = run
    calls = count_requests(prom, monkeypatch)
    ml.Istio(prom).tcp("deployment", start=start, end=end, step="1m")
    assert len(calls) == 4 * 2  # four signals, two sides
    calls.clear()
    frame = ml.Istio(prom).proxies(start=start, end=end, step="1m")
    assert frame["pod"].nunique() == 7 and len(calls) == 3  # CPU, memory, and the pods' owners


@pytest.mark.parametrize(("pod", "workload"), [
    ("web-5d9c8b7f6-x2k9p", "web"), ("my-api-v2-7c9f8b6d4f-x2k9p", "my-api-v2"), ("db-0", "db"),
    ("redis-cluster-12", "redis-cluster"), ("node-agent-x2k9p", "node-agent"), ("standalone", "standalone"),
    ("web-abcde", "web-abcde"),  # vowels never appear in generated suffixes
])
def test_workload_of_pod(pod, workload):
    assert base.workload_of_pod(pod) == workload


# -- many sources ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def second_cluster(sim_files):
    """The same metrics in VictoriaMetrics, standing in for a second cluster's scale-out store."""
    require_binary("victoria-metrics", "victoria-metrics-prod")
    _, files, _ = sim_files
    with LocalVictoriaMetrics(openmetrics=files) as server:
        yield server.client


def test_concat_sources_reads_every_cluster_and_reports_the_failed_one(run, second_cluster, monkeypatch):
    _, prom, start, end = run
    down = ml.Prometheus(f"http://user:s3cret@127.0.0.1:{free_port()}", retries=0, timeout=2)
    sources = {"prod-eu": prom, "prod-us": second_cluster, "prod-ap": down}
    calls = count_requests(prom, monkeypatch)
    with pytest.warns(ml.SourcesFailedWarning, match=r"1 of 3 sources failed.*prod-ap: PrometheusUnavailable"):
        frame = ml.concat_sources(sources, "traffic", mesh="istio", kind="deployment", start=start, end=end)
    assert len(calls) == 2 + 3 + 1  # still one query per signal for all workloads, per source
    schema.validate(frame, "traffic")
    assert list(frame.columns[:3]) == ["timestamp", "cluster", "mesh"]
    assert list(frame["cluster"].cat.categories) == list(sources)
    assert set(frame.attrs["failed_sources"]) == {"prod-ap"}
    assert "s3cret" not in frame.attrs["failed_sources"]["prod-ap"]
    # each cluster's rows are exactly what its own source returns alone
    for name in ("prod-eu", "prod-us"):
        alone = ml.Istio(sources[name]).traffic("deployment", start=start, end=end)
        mine = frame[frame["cluster"] == name].drop(columns="cluster").reset_index(drop=True)
        pd.testing.assert_frame_equal(mine.astype({c: str for c in ("mesh", "kind", "namespace", "name")}),
                                      alone.astype({c: str for c in ("mesh", "kind", "namespace", "name")}))
        assert len(alone) > 50
    with pytest.raises(ml.SourcesFailed, match=r"1 source\(s\) failed: prod-ap") as raised:
        ml.concat_sources(sources, "proxies", mesh={"prod-eu": "linkerd", "prod-us": "consul", "prod-ap": "istio"},
                          at=end, errors="raise")
    partial = raised.value.frame
    assert set(partial["cluster"]) == {"prod-eu", "prod-us"} and set(partial["mesh"]) == {"linkerd", "consul"}
    with pytest.raises(ml.SourcesFailed, match=r"1 source\(s\) failed: prod-ap"):
        ml.concat_sources({"prod-ap": down}, "traffic", mesh="istio", at=end)


def test_concat_sources_takes_a_callable_and_checks_its_arguments(run):
    _, prom, _, end = run
    frame = ml.concat_sources({"a": prom, "b": prom}, lambda p: ml.Consul(p).tcp("service", at=end))
    schema.validate(frame, "tcp")
    alone = ml.Consul(prom).tcp("service", at=end)
    assert frame.groupby("cluster", observed=True).size().tolist() == [len(alone)] * 2 and len(alone) > 0
    with pytest.raises(InvalidArgument, match="unknown frame 'trafic'; must be one of: traffic, edges, tcp, proxies"):
        ml.concat_sources({"a": prom}, "trafic", mesh="istio")
    with pytest.raises(InvalidArgument, match=r"unknown mesh 'istoi'; available: "):
        ml.concat_sources({"a": prom}, mesh="istoi")
    with pytest.raises(InvalidArgument, match=r"no mesh given for sources \['b'\]"):
        ml.concat_sources({"a": prom, "b": prom}, mesh={"a": "istio"})
    with pytest.raises(InvalidArgument, match=r"source 'a' needs a meshlab\.Prometheus or a URL string .*got int"):
        ml.concat_sources({"a": 9090}, mesh="istio")


@pytest.mark.parametrize("mesh", ["linkerd", "istio", "consul"])
def test_tcp_per_workload_equals_the_truth(run, mesh):
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


def test_istio_open_connections_when_nothing_closed_yet_or_flags_differ(tmp_path):
    """Real Istio writes a closed series only once a connection closes, with its own response_flags."""
    require_binary("prometheus")
    t0, n = 1_700_000_000, 20

    def series(name, src, dst, values, flags="-"):
        labels = (f'reporter="source",source_workload="{src}",source_workload_namespace="shop",'
                  f'destination_workload="{dst}",destination_workload_namespace="shop",request_protocol="tcp",'
                  f'response_flags="{flags}",namespace="shop",pod="{src}-0"')
        return "".join(f"{name}{{{labels}}} {v} {t0 + 15 * i}\n" for i, v in enumerate(values))

    opened = {"a": ("db", 5), "b": ("cache", 4), "c": ("mq", 3)}
    text = ["# TYPE istio_tcp_connections_opened_total counter\n"]
    text += [series("istio_tcp_connections_opened_total", s, d, [k * i for i in range(n)])
             for s, (d, k) in opened.items()]
    text.append("# TYPE istio_tcp_connections_closed_total counter\n")
    text.append(series("istio_tcp_connections_closed_total", "b", "cache", [max(4 * i - 4, 0) for i in range(n)], "UF"))
    text.append(series("istio_tcp_connections_closed_total", "c", "mq", [max(3 * i - 1, 0) for i in range(n)]))
    for name in ("istio_tcp_sent_bytes_total", "istio_tcp_received_bytes_total"):
        text.append(f"# TYPE {name} counter\n")
        text += [series(name, s, d, [100 * i for i in range(n)]) for s, (d, _) in opened.items()]
    path = tmp_path / "istio.om"
    path.write_text("".join(text) + "# EOF\n")
    with LocalPrometheus(openmetrics=path) as server:
        frame = ml.Istio(server.client).tcp(at=t0 + 15 * (n - 1), sides=["client"])
    got = dict(zip(frame["src_name"].astype(str), frame["open_connections"], strict=True))
    # the written counters: a opened 95 and closed none; b opened 76, closed 72; c opened 57, closed 56
    assert got == {"a": 95.0, "b": 4.0, "c": 1.0}


def test_concat_sources_raises_the_callers_mistakes_at_once(run, monkeypatch):
    _, prom, _, end = run
    calls = count_requests(prom, monkeypatch)
    with pytest.raises(InvalidArgument, match=r"Istio.tcp\(\): got an unexpected keyword argument 'windw'"):
        ml.concat_sources({"eu": prom, "us": prom}, "tcp", mesh="istio", at=end, windw="5m")
    with pytest.raises(InvalidArgument, match="source 'us' runs kuma, which cannot name workloads by kind "
                                              "'deployment'"):
        ml.concat_sources({"eu": prom, "us": prom}, mesh={"eu": "istio", "us": "kuma"}, kind="deployment", at=end)
    assert calls == []  # nothing was asked of any source
    # without kind=, each mesh names workloads its own way (Consul by service)
    frame = ml.concat_sources({"eu": prom, "us": prom}, mesh={"eu": "istio", "us": "consul"}, at=end)
    assert frame.groupby("cluster", observed=True)["kind"].unique().map(list).to_dict() == {
        "eu": ["deployment"], "us": ["service"]}


def test_sides_and_kinds_are_checked(run):
    _, prom, _, end = run
    istio = ml.Istio(prom)
    with pytest.raises(InvalidArgument, match="sides must be a non-empty list such as \\['client'\\], got \\[\\]"):
        istio.edges(at=end, sides=[])
    with pytest.raises(InvalidArgument, match="istio has no 'middle' side for TCP; sides: client, server"):
        istio.tcp(at=end, sides=["middle"])
    with pytest.raises(InvalidArgument, match="per='workload' is the workloads' own"):
        istio.tcp(at=end, per="workload", sides=["client"])
    assert set(ml.Consul(prom).traffic(at=end)["kind"]) == {"service"}  # Consul's default kind
