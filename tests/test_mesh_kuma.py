"""Kuma's adapter and simulator rendering against Kuma's own dashboards, on the Prometheus holding every mesh.

Each adapter must return the numbers of the mesh's own PromQL (Kuma's Grafana dashboards,
with ``rate`` for ``irate``) run on the same server, to 1e-9; and the simulator's ground
truth: counts exactly, latency within bucket resolution. The scenario's gRPC errors are
successes to Kuma and its only HTTP 5xx go to an external service, so a small second
scenario (``errors_run``) with HTTP 500, 503 and 404 between meshed workloads checks the
failure path, next to Consul's Envoy stats, which Kuma's adapter must not read.
"""

from __future__ import annotations

import numpy as np
import pytest

import meshlab as ml
from meshlab import schema
from meshlab.errors import InvalidArgument
from meshlab.meshes.kuma import Kuma
from meshlab.prometheus.local import LocalPrometheus
from meshlab.sim import truth
from meshlab.sim.meshes import ENVOY_BUCKETS_MS, mesh_families
from meshlab.sim.output import write_backfill
from meshlab.sim.scenario import scenario_from_dict
from meshlab.sim.traffic import simulate

from .adapter_support import TCP_KEYS, by_key, count_requests, restarted_in_window, windowed_tcp_truth
from .mesh_truths import (
    ERRORS,
    KUMA_OUTGOING,
    assert_close,
    check_edge_counts_by_name,
    check_failures_match_truth,
    check_latency_by_name,
    check_workload_counts_by_name,
    family,
    workload_names,
)


@pytest.fixture(scope="module")
def run(mesh_run):
    """``(traffic, client, start, end)`` of the Prometheus holding every mesh (conftest.py)."""
    return mesh_run[:4]


@pytest.fixture(scope="module")
def traffic(mesh_run):
    return mesh_run[0]


# -- the simulator's rendering, against the mesh's own sources ------------------------------------

def test_kuma_names_labels_and_buckets(traffic):
    families = mesh_families(traffic, "kuma")
    names = {f.name for f in families}
    assert {"envoy_cluster_upstream_rq_total", "envoy_cluster_upstream_rq_xx", "envoy_cluster_external_upstream_rq_xx",
            "envoy_cluster_upstream_rq_time", "envoy_cluster_upstream_cx_active", "envoy_server_live",
            "container_cpu_usage_seconds_total", "container_memory_working_set_bytes"} <= names
    # no Envoy listener stats: Consul's adapter reads those, and Kuma's dashboards do not
    assert not any(n.startswith("envoy_http_downstream") for n in names)
    assert family(families, "envoy_cluster_upstream_rq_time").le == ENVOY_BUCKETS_MS
    xx = [s.labels for s in family(families, "envoy_cluster_upstream_rq_xx").series]
    clusters = {x["envoy_cluster_name"] for x in xx}
    assert clusters == {"localhost_8080", "localhost_9090", "api_back_svc_9090", "idle_back_svc_8080", "partner",
                        "kuma_metrics_hijacker"}
    scrape = {"mesh", "dataplane", "kuma_io_service", "kuma_io_services", "kuma_io_zone", "k8s_kuma_io_namespace",
              "k8s_kuma_io_name", "namespace", "pod", "job", "instance"}
    assert all(set(x) == scrape | {"envoy_cluster_name", "envoy_response_code_class"} for x in xx)
    for x in xx:
        assert x["dataplane"] == f"{x['pod']}.{x['namespace']}" and x["mesh"] == "default"
        assert x["kuma_io_services"] == f",{x['kuma_io_service']}," and x["instance"].endswith(":5670")
        assert x["job"] == "kuma-dataplanes" and x["k8s_kuma_io_name"] == x["pod"]
    inbound = {(x["kuma_io_service"], x["envoy_cluster_name"]) for x in xx if x["envoy_cluster_name"].startswith("loc")}
    assert inbound == {("web_front_svc_8080", "localhost_8080"), ("api_back_svc_9090", "localhost_9090"),
                       ("idle_back_svc_8080", "localhost_8080")}
    # gRPC errors ride in HTTP 200: class 2 only at api; the partner's 503s are class 5
    assert {x["envoy_response_code_class"] for x in xx if x["envoy_cluster_name"] == "localhost_9090"} == {"2"}
    assert {x["envoy_response_code_class"] for x in xx if x["envoy_cluster_name"] == "partner"} == {"2", "5"}
    # the unmeshed caller and the external service have no dataplane
    assert not {x["pod"] for x in xx if x["pod"].startswith(("client-", "partner-"))}
    # every cluster has connection stats (pooled HTTP connections too), inbound and outbound;
    # the TCP edge has nothing else
    cx = {s.labels["envoy_cluster_name"] for s in family(families, "envoy_cluster_upstream_cx_total").series}
    assert cx == {"localhost_8080", "localhost_9090", "localhost_6379", "api_back_svc_9090", "idle_back_svc_8080",
                  "db_back_svc_6379", "partner"}
    assert not {x["envoy_cluster_name"] for x in xx} & {"localhost_6379", "db_back_svc_6379"}
    # the external split counts the same requests as the total
    ext = family(families, "envoy_cluster_external_upstream_rq_xx").series
    assert [s.labels for s in ext] == xx
    assert all((a.data == b.data).all() for a, b in zip(ext, family(families, "envoy_cluster_upstream_rq_xx").series,
                                                         strict=True))
    containers = {s.labels["container"] for s in family(families, "container_cpu_usage_seconds_total").series}
    assert containers == {"kuma-sidecar"}


def test_proxy_cost_is_per_sidecar(traffic):
    kuma = family(mesh_families(traffic, "kuma"), "container_memory_working_set_bytes").series
    meshed = {p.name for w in traffic.scenario.workloads if w.meshed for p in traffic.pods[w.key]}
    assert {s.labels["pod"] for s in kuma} == meshed


# -- the mesh's own PromQL --------------------------------------------------------------------------

def test_kuma_equals_its_dashboards_promql(run):
    """The Kuma Service dashboard's Incoming panels (kuma-service.json), for every service at once."""
    _, prom, start, end = run
    frame = ml.Kuma(prom).traffic("service", start=start, end=end, step="1m", quantiles=(0.5, 0.95, 0.99))
    inbound = 'mesh="default",envoy_cluster_name=~"localhost_.*"'
    group = "by (namespace, kuma_io_service)"
    keys = ["timestamp", "namespace", "kuma_io_service"]
    mine = frame.rename(columns={"name": "kuma_io_service"})
    incoming = prom.query_range(f"sum {group} (rate(envoy_cluster_upstream_rq_total{{{inbound}}}[1m]))",
                                start, end, "1m")
    assert_close(by_key(mine, keys, "rps"), by_key(incoming, keys, "value"))
    # its status-code panel, as the share of non-5xx
    success = prom.query_range(
        f'sum {group} (rate(envoy_cluster_external_upstream_rq_xx{{{inbound},envoy_response_code_class!="5"}}[1m]))'
        f" / sum {group} (rate(envoy_cluster_external_upstream_rq_xx{{{inbound}}}[1m]))", start, end, "1m")
    assert_close(by_key(mine, keys, "success_rate"), by_key(success, keys, "value"))
    # its latency panel with the buckets of all a service's dataplanes summed first (the dashboard
    # takes max() over per-dataplane quantiles; see the adapter's docstring)
    for q in (0.5, 0.95, 0.99):
        theirs = prom.query_range(f"histogram_quantile({q}, sum by (le, namespace, kuma_io_service) "
                                  f"(rate(envoy_cluster_upstream_rq_time_bucket{{{inbound}}}[1m])))", start, end, "1m")
        assert_close(by_key(mine, keys, schema.quantile_column(q)), by_key(theirs, keys, "value"))


def test_kuma_edges_equal_its_service_to_service_dashboard(run):
    _, prom, start, end = run
    frame = ml.Kuma(prom).edges("service", start=start, end=end, step="1m")
    group = "by (kuma_io_service, envoy_cluster_name)"
    keys = ["timestamp", "kuma_io_service", "envoy_cluster_name"]
    mine = frame.rename(columns={"src_name": "kuma_io_service", "dst_name": "envoy_cluster_name"})
    traffic_panel = prom.query_range(f"sum {group} (rate(envoy_cluster_upstream_rq_total{{{KUMA_OUTGOING}}}[1m]))",
                                     start, end, "1m")
    theirs = by_key(traffic_panel, keys, "value")
    assert set(theirs.index) == set(by_key(mine, keys, "rps").index)
    assert_close(by_key(mine, keys, "rps"), theirs)
    errors = prom.query_range(
        f'sum {group} (rate(envoy_cluster_upstream_rq_xx{{{KUMA_OUTGOING},envoy_response_code_class="5"}}[1m]))'
        f" / sum {group} (rate(envoy_cluster_upstream_rq_xx{{{KUMA_OUTGOING}}}[1m]))", start, end, "1m")
    assert set(errors["envoy_cluster_name"].astype(str)) == {"partner"}  # the only class-5 responses here
    mine_errors = by_key(mine, keys, "failure_count") / by_key(mine, keys, "requests")
    assert_close(mine_errors, by_key(errors, keys, "value"))
    assert mine_errors.loc[by_key(errors, keys, "value").dropna().index].max() > 0
    p99 = prom.query_range(f"histogram_quantile(0.99, sum by (le, kuma_io_service, envoy_cluster_name) (rate("
                           f"envoy_cluster_upstream_rq_time_bucket{{{KUMA_OUTGOING}}}[1m])))", start, end, "1m")
    assert_close(by_key(mine, keys, "latency_p99_ms"), by_key(p99, keys, "value"))


def test_promql_is_the_dashboards(run):
    prom = run[1]
    kuma = ml.Kuma(prom)
    assert kuma.promql("failure_count", "service") == (
        'sum by (namespace, kuma_io_service) (increase(envoy_cluster_upstream_rq_xx{kuma_io_service!="",'
        'envoy_cluster_name=~"localhost_.*",envoy_response_code_class="5"}[1m]))')
    assert kuma.promql("latency", "service").startswith("histogram_quantile(0.99, sum by (le, namespace, kuma_io_se")
    assert not kuma.promql("latency", "service").endswith("1000")


def test_kinds_and_errors(run):
    _, prom, _, end = run
    assert ml.Kuma is Kuma and "Kuma" in ml.__all__ and isinstance(ml.mesh("kuma", prom), Kuma)
    with pytest.raises(InvalidArgument, match="kuma cannot name workloads by kind 'deployment'; supported kinds: "
                                              "namespace, workload, service, pod"):
        ml.Kuma(prom).traffic("deployment", at=end)
    with pytest.raises(InvalidArgument, match="kuma names edges by service or workload only, not by 'pod'"):
        ml.Kuma(prom).edges("pod", at=end)
    with pytest.raises(InvalidArgument, match="kuma has no 'server' side for edges; sides: client"):
        ml.Kuma(prom).edges("service", at=end, sides=("server",))
    pods = ml.Kuma(prom).traffic("pod", at=end)
    assert pods["name"].str.startswith(("web-", "api-", "idle-")).all() and len(pods) == 2 + 3 + 1


def test_edge_queries_do_not_grow_with_the_number_of_workloads(run, monkeypatch):
    _, prom, start, end = run
    calls = count_requests(prom, monkeypatch)
    ml.Kuma(prom).edges("service", start=start, end=end, step="1m", quantiles=(0.95,))
    assert len(calls) == 2 + 4 + 1 + 1  # plus the series lookup for destination namespaces


def test_decoys_are_in_the_data_and_not_in_the_frames(run):
    _, prom, _, end = run
    window = "30m"
    kuma = ml.Kuma(prom)
    served = kuma.traffic("service", at=end, window=window)["requests"].sum()
    called = kuma.edges("service", at=end, window=window)["requests"].sum()
    # Kuma's series only (its dataplanes' mesh label): Consul's Envoy stats share these names
    everything, external = (prom.query(f'sum(increase({name}{{mesh="default"}}[{window}]))', time=end)["value"].item()
                            for name in ("envoy_cluster_upstream_rq_xx", "envoy_cluster_external_upstream_rq_xx"))
    scrapes = prom.query(f'sum(increase(envoy_cluster_upstream_rq_xx{{envoy_cluster_name="kuma_metrics_hijacker"}}'
                         f"[{window}]))", time=end)["value"].item()
    # every request once inbound, once outbound (unless a side is unmeshed), plus Prometheus' own scrapes
    assert scrapes > 0 and external == everything == pytest.approx(served + called + scrapes, rel=1e-9)


def test_failures_are_http_5xx_as_the_dashboards_count_them(errors_run):
    prom, start, end = check_failures_match_truth(errors_run, "kuma")
    # the dashboard's own error ratio on this server
    kuma = ml.Kuma(prom).traffic("service", start=start, end=end, step="1m")
    inbound = 'envoy_cluster_name=~"localhost_.*"'
    status = "sum by (kuma_io_service) (rate(envoy_cluster_external_upstream_rq_xx{{{}}}[1m]))"
    failed = status.format(f'{inbound},envoy_response_code_class="5"')
    errors = prom.query_range(f"{failed} / {status.format(inbound)}", start, end, "1m")
    keys = ["timestamp", "kuma_io_service"]
    assert_close(1 - by_key(kuma.rename(columns={"name": "kuma_io_service"}), keys, "success_rate"),
                 by_key(errors, keys, "value"))


def test_consuls_envoy_stats_are_not_kuma(errors_run, tmp_path):
    # the generic part (exactly the meshes present, since their first sample) is in the contract
    assert set(ml.detect(errors_run[1])) == {"kuma", "hubble", "consul"}
    # Consul's Envoy stats alone, with the same metric names as Kuma's, are not Kuma
    short = simulate(scenario_from_dict({**ERRORS, "duration": "5m"}))
    files, _ = write_backfill(short, ("consul",), tmp_path)
    with LocalPrometheus(openmetrics=files) as server:
        assert len(server.client.query("envoy_cluster_upstream_rq_xx", time=short.times_ms[-1] / 1000)) > 0
        assert set(ml.detect(server.client)) == {"consul"}


def test_proxy_memory_through_prometheus_equals_the_truth(run):
    traffic, prom, _, end = run
    memory = prom.query('container_memory_working_set_bytes{container="kuma-sidecar"}', time=end)
    kuma = truth.proxies_truth(traffic, "kuma")
    now = kuma[kuma["timestamp"] == end].set_index("pod")["memory_bytes"]
    assert dict(zip(memory["pod"].astype(str), memory["value"], strict=True)) == now.to_dict()


def test_tcp_equals_the_truth(run):
    traffic, prom, start, end = run
    frame = schema.validate(ml.Kuma(prom).tcp("service", start=start, end=end, step="1m"), "tcp")
    frame = workload_names(frame, "kuma")
    expected = windowed_tcp_truth(truth.tcp_truth(traffic, "kuma"), frame["timestamp"].unique())
    expected = expected[expected["side"] == "client"]
    # Envoy's cluster stats count pooled HTTP connections too, and the ExternalService's
    assert set(zip(frame["src_name"].astype(str), frame["dst_name"].astype(str), strict=True)) == {
        ("web", "api"), ("web", "idle"), ("api", "db"), ("api", "partner")}
    assert frame.loc[frame["dst_name"] == "partner", "dst_namespace"].isna().all()  # no dataplane says where
    frame, expected = frame[frame["dst_name"] != "partner"], expected[expected["dst_name"] != "partner"]
    for column in ("opened_connections", "open_connections", "sent_bytes_per_second", "received_bytes_per_second"):
        mine, theirs = by_key(frame, TCP_KEYS, column), by_key(expected, TCP_KEYS, column)
        assert mine.index.equals(theirs.index), column
        if column == "opened_connections":  # a reset Prometheus cannot see (the restarted web pod's pools)
            hidden = restarted_in_window(traffic, mine.index.to_frame(index=False))
            np.testing.assert_array_less(mine.to_numpy()[hidden], theirs.to_numpy()[hidden])
            mine, theirs = mine[~hidden], theirs[~hidden]
        np.testing.assert_allclose(mine.to_numpy(), theirs.to_numpy(), rtol=1e-9, err_msg=column)
    # per workload: the callee's inbound localhost_* clusters, every caller summed
    workload = schema.validate(ml.Kuma(prom).tcp("service", start=start, end=end, step="1m", per="workload"), "tcp")
    workload = workload_names(workload, "kuma")
    server = windowed_tcp_truth(truth.tcp_truth(traffic, "kuma"), workload["timestamp"].unique())
    server = server[server["side"] == "server"]
    keys = ["timestamp", "dst_namespace", "dst_name"]
    for column in ("opened_connections", "open_connections", "sent_bytes_per_second", "received_bytes_per_second"):
        theirs = by_key(server.groupby(keys, observed=True)[column].sum().reset_index(), keys, column)
        mine = by_key(workload, keys, column)
        assert mine.index.equals(theirs.index) and len(mine) > 10, column
        if column == "opened_connections":  # a reset Prometheus cannot see (the restarted web pod's pools)
            hidden = restarted_in_window(traffic, mine.index.to_frame(index=False))
            np.testing.assert_array_less(mine.to_numpy()[hidden], theirs.to_numpy()[hidden])
            mine, theirs = mine[~hidden], theirs[~hidden]
        np.testing.assert_allclose(mine.to_numpy(), theirs.to_numpy(), rtol=1e-9, err_msg=column)


# -- the ground truth, by this mesh's names -------------------------------------------------------

def test_workload_counts_equal_the_truth(run):
    check_workload_counts_by_name(run, "kuma")


def test_edge_counts_equal_the_truth(run):
    check_edge_counts_by_name(run, "kuma")


def test_latency_within_bucket_resolution_of_the_truth(run):
    check_latency_by_name(run, "kuma")
