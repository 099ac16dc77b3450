"""Kuma and Cilium Hubble: the simulator's renderings, and the adapters against a real Prometheus.

One hour of tests/scenarios/incidents.yaml is rendered for Kuma and Hubble only and
backfilled into its own Prometheus. Each adapter must return the numbers of the mesh's
own PromQL (Kuma's and Cilium's Grafana dashboards, with ``rate`` for ``irate``) run on
the same server, to 1e-9; and the simulator's ground truth: counts exactly, latency
within bucket resolution. The scenario's gRPC errors are successes to both meshes and
its only HTTP 5xx go to an external service, so a small second scenario with HTTP 500,
503 and 404 between meshed workloads checks the failure path, next to Consul's Envoy
stats, which Kuma's adapter must not read.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import meshlab as ml
from meshlab import schema
from meshlab.errors import InvalidArgument
from meshlab.meshes.hubble import Hubble
from meshlab.meshes.kuma import Kuma
from meshlab.prometheus.local import LocalPrometheus
from meshlab.sim import truth
from meshlab.sim.costs import MESH_COSTS
from meshlab.sim.meshes import ENVOY_BUCKETS_MS, HUBBLE_BUCKETS_S, NODES, mesh_families, node_proxies
from meshlab.sim.output import format_le, write_backfill
from meshlab.sim.scenario import load_scenario, scenario_from_dict
from meshlab.sim.traffic import simulate

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
from .samples import stored_samples

INCIDENTS = Path(__file__).parent / "scenarios" / "incidents.yaml"
MESHES = ("kuma", "hubble")
KINDS = {"kuma": "service", "hubble": "deployment"}
BUCKETS_MS = {"kuma": ENVOY_BUCKETS_MS, "hubble": tuple(b * 1000 for b in HUBBLE_BUCKETS_S)}
#: Kuma names a Kubernetes Service port <service>_<namespace>_svc_<port>; the scenario names workloads.
KUMA_SERVICES = {"web_front_svc_8080": "web", "api_back_svc_9090": "api", "idle_back_svc_8080": "idle",
                 "db_back_svc_6379": "db", "shop_a_svc_8080": "shop", "pay_b_svc_8080": "pay"}
#: HTTP 5xx between meshed workloads, a 4xx that is no failure, and an unmeshed caller.
ERRORS = {
    "name": "errors", "seed": 5, "interval": "15s", "start": "2024-05-01T00:00:00Z", "duration": "30m",
    "workloads": [{"name": "bot", "namespace": "a", "meshed": False},
                  {"name": "shop", "namespace": "a", "replicas": 2},
                  {"name": "pay", "namespace": "b"}],
    "edges": [{"from": "bot", "to": "shop", "rate": 20, "errors": {"500": 0.05, "404": 0.05}},
              {"from": "shop", "to": "pay", "per_request": 1.0, "errors": {"503": 0.1}}],
}
KUMA_OUTGOING = 'envoy_cluster_name!~"localhost_.*",envoy_cluster_name!="kuma_envoy_admin",' \
                'envoy_cluster_name!="kuma_metrics_hijacker"'


@pytest.fixture(scope="module")
def traffic():
    return simulate(load_scenario(INCIDENTS))


@pytest.fixture(scope="module")
def kh_run(traffic, tmp_path_factory: pytest.TempPathFactory):
    """The incidents hour for Kuma and Hubble only, backfilled into a real Prometheus."""
    require_binary("prometheus")
    require_binary("promtool")
    files, samples = write_backfill(traffic, MESHES, tmp_path_factory.mktemp("kuma-hubble"))
    with LocalPrometheus(openmetrics=files) as server:
        yield traffic, server.client, samples


@pytest.fixture(scope="module")
def run(kh_run):
    traffic, prom, _ = kh_run
    times = traffic.timestamps()
    return traffic, prom, times[4], times[-1]


@pytest.fixture(scope="module")
def errors_run(tmp_path_factory: pytest.TempPathFactory):
    """Half an hour of ERRORS for Kuma, Hubble and Consul in one Prometheus."""
    require_binary("prometheus")
    require_binary("promtool")
    traffic = simulate(scenario_from_dict(ERRORS))
    files, _ = write_backfill(traffic, (*MESHES, "consul"), tmp_path_factory.mktemp("errors"))
    with LocalPrometheus(openmetrics=files) as server:
        times = traffic.timestamps()
        yield traffic, server.client, times[4], times[-1]


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


def _family(families, name):
    return next(f for f in families if f.name == name)


# -- the renderings, against the meshes' own sources ---------------------------------------------

def test_kuma_names_labels_and_buckets(traffic):
    families = mesh_families(traffic, "kuma")
    names = {f.name for f in families}
    assert {"envoy_cluster_upstream_rq_total", "envoy_cluster_upstream_rq_xx", "envoy_cluster_external_upstream_rq_xx",
            "envoy_cluster_upstream_rq_time", "envoy_cluster_upstream_cx_active", "envoy_server_live",
            "container_cpu_usage_seconds_total", "container_memory_working_set_bytes"} <= names
    # no Envoy listener stats: Consul's adapter reads those, and Kuma's dashboards do not
    assert not any(n.startswith("envoy_http_downstream") for n in names)
    assert _family(families, "envoy_cluster_upstream_rq_time").le == ENVOY_BUCKETS_MS
    xx = [s.labels for s in _family(families, "envoy_cluster_upstream_rq_xx").series]
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
    cx = {s.labels["envoy_cluster_name"] for s in _family(families, "envoy_cluster_upstream_cx_total").series}
    assert cx == {"localhost_8080", "localhost_9090", "localhost_6379", "api_back_svc_9090", "idle_back_svc_8080",
                  "db_back_svc_6379", "partner"}
    assert not {x["envoy_cluster_name"] for x in xx} & {"localhost_6379", "db_back_svc_6379"}
    # the external split counts the same requests as the total
    ext = _family(families, "envoy_cluster_external_upstream_rq_xx").series
    assert [s.labels for s in ext] == xx
    assert all((a.data == b.data).all() for a, b in zip(ext, _family(families, "envoy_cluster_upstream_rq_xx").series,
                                                         strict=True))
    containers = {s.labels["container"] for s in _family(families, "container_cpu_usage_seconds_total").series}
    assert containers == {"kuma-sidecar"}


def test_hubble_names_labels_and_buckets(traffic):
    families = mesh_families(traffic, "hubble")
    assert {f.name for f in families} == {"hubble_http_requests_total", "hubble_http_request_duration_seconds",
                                          "container_cpu_usage_seconds_total", "container_memory_working_set_bytes"}
    duration = _family(families, "hubble_http_request_duration_seconds")
    # client_golang's DefBuckets, in seconds (Hubble sets none)
    assert [format_le(b) for b in duration.le] == ["0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1",
                                                   "2.5", "5", "10", "+Inf"]
    assert duration.unit_ms == 1000
    context = {"source_namespace", "source_workload", "destination_namespace", "destination_workload",
               "traffic_direction"}
    agent = {"namespace", "pod", "job", "instance"}
    requests = [s.labels for s in _family(families, "hubble_http_requests_total").series]
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


def test_proxy_cost_is_per_sidecar_for_kuma_and_per_node_for_cilium(traffic):
    kuma = _family(mesh_families(traffic, "kuma"), "container_memory_working_set_bytes").series
    meshed = {p.name for w in traffic.scenario.workloads if w.meshed for p in traffic.pods[w.key]}
    assert {s.labels["pod"] for s in kuma} == meshed
    cilium = _family(mesh_families(traffic, "hubble"), "container_memory_working_set_bytes").series
    proxies = node_proxies(traffic)
    assert [(s.labels["pod"], s.labels["node"]) for s in cilium] == [(p.name, p.node) for p in proxies]
    assert {(s.labels["namespace"], s.labels["container"]) for s in cilium} == {("kube-system", "cilium-envoy")}
    frame = truth.proxies_truth(traffic, "hubble")
    schema.validate(frame, "proxies")
    assert set(frame["pod"]) == {p.name for p in proxies} and set(frame["workload"]) == {"cilium-envoy"}
    # every node proxy works above its idle cost: each node has L7 pods
    busy = frame.groupby("pod", observed=True)["cpu_cores"].mean()
    assert (busy > MESH_COSTS["hubble"].cpu_idle).all()


# -- the meshes' own PromQL ------------------------------------------------------------------------

def test_the_backfill_holds_every_sample(kh_run):
    traffic, prom, samples = kh_run
    assert stored_samples(prom, traffic.times_ms[-1] / 1000) == samples > 100_000


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
    traffic_panel = prom.query_range(f'sum {group} (rate(envoy_cluster_upstream_rq_total{{mesh="default",'
                                     f"{KUMA_OUTGOING}}}[1m]))", start, end, "1m")
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


# -- the ground truth ------------------------------------------------------------------------------

@pytest.mark.parametrize("mesh", MESHES)
def test_workload_counts_equal_the_truth(run, mesh):
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


@pytest.mark.parametrize("mesh", MESHES)
def test_edge_counts_equal_the_truth(run, mesh):
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


@pytest.mark.parametrize("mesh", MESHES)
def test_latency_within_bucket_resolution_of_the_truth(run, mesh):
    traffic, prom, _, end = run
    times = traffic.timestamps()
    frame = ml.mesh(mesh, prom).traffic(KINDS[mesh], start=times[20], end=end, step="5m", window="5m")
    frame = workload_names(frame, mesh)
    assert_latency_within_buckets(traffic, frame, mesh, BUCKETS_MS[mesh])


def test_decoys_are_in_the_data_and_not_in_the_frames(run):
    _, prom, _, end = run
    window = "30m"
    kuma = ml.Kuma(prom)
    served = kuma.traffic("service", at=end, window=window)["requests"].sum()
    called = kuma.edges("service", at=end, window=window)["requests"].sum()
    everything = prom.query(f"sum(increase(envoy_cluster_upstream_rq_xx[{window}]))", time=end)["value"].item()
    external = prom.query(f"sum(increase(envoy_cluster_external_upstream_rq_xx[{window}]))", time=end)["value"].item()
    scrapes = prom.query(f'sum(increase(envoy_cluster_upstream_rq_xx{{envoy_cluster_name="kuma_metrics_hijacker"}}'
                         f"[{window}]))", time=end)["value"].item()
    # every request once inbound, once outbound (unless a side is unmeshed), plus Prometheus' own scrapes
    assert scrapes > 0 and external == everything == pytest.approx(served + called + scrapes, rel=1e-9)
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
    traffic, prom, start, end = errors_run
    for mesh in MESHES:
        frame = workload_names(ml.mesh(mesh, prom).traffic(KINDS[mesh], start=start, end=end, step="1m"), mesh)
        expected = windowed_truth(truth.traffic_truth(traffic, mesh), ["namespace", "name"],
                                  frame["timestamp"].unique())
        keys = ["timestamp", "namespace", "name"]
        for column in ("success_count", "failure_count"):
            mine = by_key(frame, keys, column)
            np.testing.assert_array_equal(mine.to_numpy(), by_key(expected, keys, column).loc[mine.index].to_numpy())
        assert set(frame["name"]) == {"shop", "pay"}  # Consul's Envoy stats in the same Prometheus are not Kuma's
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
    # the dashboards' own error ratios on this server
    kuma = ml.Kuma(prom).traffic("service", start=start, end=end, step="1m")
    inbound = 'envoy_cluster_name=~"localhost_.*"'
    status = "sum by (kuma_io_service) (rate(envoy_cluster_external_upstream_rq_xx{{{}}}[1m]))"
    failed = status.format(f'{inbound},envoy_response_code_class="5"')
    errors = prom.query_range(f"{failed} / {status.format(inbound)}", start, end, "1m")
    keys = ["timestamp", "kuma_io_service"]
    assert_close(1 - by_key(kuma.rename(columns={"name": "kuma_io_service"}), keys, "success_rate"),
                 by_key(errors, keys, "value"))
    hubble = ml.Hubble(prom).traffic("deployment", start=start, end=end, step="1m")
    errors = prom.query_range('sum by (destination_workload) (rate(hubble_http_requests_total{reporter="server",'
                              'status=~"5.*"}[1m])) / sum by (destination_workload) (rate(hubble_http_requests_total'
                              '{reporter="server"}[1m]))', start, end, "1m")
    keys = ["timestamp", "destination_workload"]
    assert_close(1 - by_key(hubble.rename(columns={"name": "destination_workload"}), keys, "success_rate"),
                 by_key(errors, keys, "value"))


# -- the contract ------------------------------------------------------------------------------------

def test_detect_finds_exactly_kuma_and_hubble(run, errors_run, tmp_path):
    traffic, prom, _, _ = run
    found = ml.detect(prom)
    assert set(found) == {"kuma", "hubble"}
    first = pd.Timestamp(traffic.times_ms[0], unit="ms", tz="UTC")
    assert all(pd.Timedelta(0) <= since - first <= pd.Timedelta("1s") for since in found.values())
    assert set(ml.detect(errors_run[1])) == {"kuma", "hubble", "consul"}
    # Consul's Envoy stats alone, with the same metric names as Kuma's, are not Kuma
    short = simulate(scenario_from_dict({**ERRORS, "duration": "5m"}))
    files, _ = write_backfill(short, ("consul",), tmp_path)
    with LocalPrometheus(openmetrics=files) as server:
        assert len(server.client.query("envoy_cluster_upstream_rq_xx", time=short.times_ms[-1] / 1000)) > 0
        assert set(ml.detect(server.client)) == {"consul"}


def test_queries_do_not_grow_with_the_number_of_workloads(run, monkeypatch):
    _, prom, start, end = run
    calls = count_requests(prom, monkeypatch)
    frame = ml.Kuma(prom).traffic("service", start=start, end=end, step="1m")
    # success, failure, three quantiles, and the buckets their bounds come from
    assert frame["name"].nunique() == 3 and len(calls) == 2 + 3 + 1
    calls.clear()
    ml.Kuma(prom).edges("service", start=start, end=end, step="1m", quantiles=(0.95,))
    assert len(calls) == 2 + 4 + 1 + 1  # plus the series lookup for destination namespaces
    calls.clear()
    frame = ml.Hubble(prom).traffic("deployment", start=start, end=end, step="1m")
    assert frame["name"].nunique() == 3 and len(calls) == 2 + 3 + 1
    calls.clear()
    ml.Hubble(prom).edges("deployment", at=end, quantiles=(0.99,))  # one of the defaults
    assert len(calls) == 2 * (2 + 3 + 1)  # two sides


def test_promql_is_the_dashboards_and_escapes_user_values(run):
    _, prom, _, end = run
    hubble, kuma = ml.Hubble(prom), ml.Kuma(prom)
    assert hubble.promql("latency", quantile=0.5) == (
        'histogram_quantile(0.5, sum by (le, destination_namespace, destination_workload) '
        '(rate(hubble_http_request_duration_seconds_bucket{reporter="server"}[1m]))) * 1000')
    assert kuma.promql("failure_count", "service") == (
        'sum by (namespace, kuma_io_service) (increase(envoy_cluster_upstream_rq_xx{kuma_io_service!="",'
        'envoy_cluster_name=~"localhost_.*",envoy_response_code_class="5"}[1m]))')
    assert kuma.promql("latency", "service").startswith("histogram_quantile(0.99, sum by (le, namespace, kuma_io_se")
    assert not kuma.promql("latency", "service").endswith("1000")
    bad = 'front"} or up{x="'
    assert kuma.traffic("service", namespace=bad, at=end).empty
    assert hubble.edges("deployment", namespace=bad, at=end).empty
    assert 'destination_namespace="front\\"} or up{x=\\""' in hubble.promql("success_count", namespace=bad)


def test_registry_kinds_and_errors(run):
    _, prom, start, end = run
    assert {"kuma", "hubble"} <= set(ml.meshes.available())
    assert ml.Kuma is Kuma and ml.Hubble is Hubble and "Kuma" in ml.__all__ and "Hubble" in ml.__all__
    assert isinstance(ml.mesh("kuma", prom), Kuma) and isinstance(ml.mesh("hubble", prom), Hubble)
    with pytest.raises(InvalidArgument, match="kuma cannot name workloads by kind 'deployment'; supported kinds: "
                                              "namespace, workload, service, pod"):
        ml.Kuma(prom).traffic("deployment", at=end)
    with pytest.raises(InvalidArgument, match="kuma names edges by service or workload only, not by 'pod'"):
        ml.Kuma(prom).edges("pod", at=end)
    with pytest.raises(InvalidArgument, match="hubble cannot name workloads by kind 'pod'"):
        ml.Hubble(prom).traffic("pod", at=end)
    with pytest.raises(InvalidArgument, match="kuma has no 'server' side for edges; sides: client"):
        ml.Kuma(prom).edges("service", at=end, sides=("server",))
    # kinds namespace and pod group the same series
    by_namespace = ml.Hubble(prom).traffic("namespace", start=start, end=end, step="1m")
    by_workload = ml.Hubble(prom).traffic("deployment", start=start, end=end, step="1m")
    assert set(by_namespace["name"]) == {"front", "back"}
    total = by_workload.groupby(["timestamp", "namespace"], observed=True)["requests"].sum()
    np.testing.assert_array_equal(by_key(by_namespace, ["timestamp", "namespace"], "requests"), total.sort_index())
    pods = ml.Kuma(prom).traffic("pod", at=end)
    assert pods["name"].str.startswith(("web-", "api-", "idle-")).all() and len(pods) == 2 + 3 + 1
    namespaces = ml.Hubble(prom).edges("namespace", at=end)
    assert set(zip(namespaces["src_name"].astype(str), namespaces["dst_name"].astype(str), strict=True)) == {
        ("front", "back"), ("front", "front")}


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
    memory = prom.query('container_memory_working_set_bytes{container="kuma-sidecar"}', time=end)
    kuma = truth.proxies_truth(traffic, "kuma")
    now = kuma[kuma["timestamp"] == end].set_index("pod")["memory_bytes"]
    assert dict(zip(memory["pod"].astype(str), memory["value"], strict=True)) == now.to_dict()



# -- TCP and proxy cost through the adapters ------------------------------------------------------

def test_kuma_tcp_equals_the_truth_and_hubble_has_none(run):
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
    assert truth.tcp_truth(traffic, "hubble").empty
    with pytest.raises(InvalidArgument, match="hubble has no TCP metrics between workloads meshlab can read"):
        ml.Hubble(prom).tcp(at=end)
    with pytest.raises(InvalidArgument, match="hubble has no per-workload TCP metrics meshlab can read"):
        ml.Hubble(prom).tcp(at=end, per="workload")


@pytest.mark.parametrize("mesh", MESHES)
def test_proxy_cost_through_the_adapters_equals_the_truth(run, mesh):
    traffic, prom, start, end = run
    frame = ml.mesh(mesh, prom).proxies(start=start, end=end, step="1m")
    schema.validate(frame, "proxies")
    keys = ["timestamp", "namespace", "workload", "pod"]
    expected = windowed_proxy_truth(truth.proxies_truth(traffic, mesh), frame["timestamp"].unique())
    mine = by_key(frame, keys, "cpu_cores").dropna()
    theirs = by_key(expected, keys, "cpu_cores")
    assert mine.index.equals(theirs.index) and len(mine) > 50
    np.testing.assert_allclose(mine.to_numpy(), theirs.to_numpy(), rtol=1e-9)
    np.testing.assert_array_equal(by_key(frame, keys, "memory_bytes").loc[theirs.index].to_numpy(),
                                  by_key(expected, keys, "memory_bytes").to_numpy())
    # Kuma: one sidecar per meshed pod, named to its Kubernetes workload; Cilium: one Envoy per node
    assert set(frame["workload"].astype(str)) == ({"web", "api", "db", "idle"} if mesh == "kuma"
                                                  else {"cilium-envoy"})
