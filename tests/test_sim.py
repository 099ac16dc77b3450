"""The simulator without a server: scenarios, traffic, each mesh's rendering, the exporter text."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families

from meshlab.errors import InvalidArgument
from meshlab.sim.exporter import SimExporter
from meshlab.sim.meshes import ENVOY_BUCKETS_MS, LINKERD_BUCKETS_MS, mesh_families
from meshlab.sim.output import format_le
from meshlab.sim.scenario import load_scenario, scenario_from_dict
from meshlab.sim.traffic import simulate

from .conftest import require_binary, upstream_fixture

HERE = Path(__file__).parent
INCIDENTS = HERE / "scenarios" / "incidents.yaml"


@pytest.fixture(scope="module")
def traffic():
    return simulate(load_scenario(INCIDENTS))


# -- scenarios -------------------------------------------------------------------------------

def test_builtin_yaml_and_toml_scenarios_load(tmp_path):
    shop = load_scenario("shop")
    assert shop.workload("frontend").replicas == 2 and len(shop.edges) == 8 and shop.seed == 20240304
    toml = tmp_path / "s.toml"
    toml.write_text('name = "t"\ninterval = "30s"\n[[workloads]]\nname = "a"\nnamespace = "x"\n'
                    '[[workloads]]\nname = "b"\nnamespace = "x"\n[[edges]]\nfrom = "a"\nto = "b"\nrate = 5\n')
    loaded = load_scenario(toml)
    assert loaded.interval_s == 30 and loaded.edges[0].rate.rps == 5
    assert load_scenario(loaded.to_dict()) == loaded  # plain data round-trips


@pytest.mark.parametrize(("text", "message"), [
    ("name: x\nworkloads: []\n", "has no workloads"),
    ("name: x\nworkloads:\n  - {name: a, namespace: n, replica: 2}\n",
     r"workloads\[0\]: unknown key 'replica'; did you mean 'replicas'\? \(allowed: .*replicas"),
    ("name: x\nworkloads: [{name: a, namespace: n}]\nedges: [{from: a, to: zz, rate: 1}]\n",
     "unknown workload 'zz'; known: n/a"),
    ("name: x\nworkloads: [{name: a, namespace: n}, {name: b, namespace: n}]\nedges: [{from: a, to: b}]\n",
     "give exactly one of rate and per_request"),
    ("name: x\nworkloads: [{name: a, namespace: n}, {name: b, namespace: n}]\n"
     "edges: [{from: a, to: b, rate: 1, errors: {'200': 0.1}}]\n", "not an HTTP error status"),
    ("name: x\nworkloads: [{name: a, namespace: n}, {name: b, namespace: n}]\n"
     "edges: [{from: a, to: b, protocol: grpc, rate: 1, errors: {OOPS: 0.1}}]\n", "not a gRPC error status"),
    ("name: x\nworkloads: [{name: a, namespace: n}, {name: b, namespace: n}]\n"
     "edges: [{from: a, to: b, per_request: 1}, {from: b, to: a, per_request: 1}]\n", "form a cycle"),
    ("name: x\ninterval: 15 seconds\nworkloads: [{name: a, namespace: n}]\n", "is not a duration"),
    ("name: x\nworkloads: [{name: a, namespace: n}]\nincidents: [{kind: meteor, workload: a, start: 1m}]\n",
     "unknown incident kind 'meteor'"),
    ("name: x\nworkloads: [{name: a, namespace: n}]\nincidents: [{kind: error_burst, workload: a, start: 1m}]\n",
     "give errors"),
    ("name: [unclosed\n", "is not valid YAML"),
    ("name: x\nworkload: []\n", "unknown key 'workload'; did you mean 'workloads'"),
])
def test_bad_scenario_files_get_clear_errors(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(InvalidArgument, match=message):
        load_scenario(path)


def test_unknown_scenario_name_and_missing_file(tmp_path):
    with pytest.raises(InvalidArgument, match="unknown scenario 'shoop'; built-in scenarios: shop"):
        load_scenario("shoop")
    with pytest.raises(FileNotFoundError):
        load_scenario(tmp_path / "nope.yaml")
    (tmp_path / "s.json").write_text("{}")
    with pytest.raises(InvalidArgument, match=r"use a \.yaml, \.yml or \.toml"):
        load_scenario(tmp_path / "s.json")


def test_same_seed_same_traffic_other_seed_other_traffic():
    scenario = load_scenario(INCIDENTS)
    a, b = simulate(scenario), simulate(scenario)
    assert all((x.requests == y.requests).all() for x, y in zip(a.edges, b.edges, strict=True))
    other = scenario_from_dict({**scenario.to_dict(), "seed": 12})
    assert not (simulate(other).edges[0].requests == a.edges[0].requests).all()


# -- traffic ---------------------------------------------------------------------------------

def test_incidents_shape_the_traffic(traffic):
    offsets = np.arange(traffic.n) * traffic.interval_s
    web_api = traffic.edges[1]
    internal = web_api.statuses.index("INTERNAL")
    per_status = web_api.requests.sum(axis=(1, 2))
    burst = (offsets > 600) & (offsets <= 900)
    share = per_status[burst, internal].sum() / per_status[burst].sum()
    assert share == pytest.approx(0.3, abs=0.03)
    assert per_status[~burst, internal].sum() == 0
    # the latency spike multiplies api's service time by 6 between 20 and 25 minutes
    factor = traffic.latency_factor["back/api"]
    assert set(factor[(offsets > 1200) & (offsets <= 1500)]) == {6.0} and factor[offsets <= 1200].max() == 1.0
    # the restart and the scale
    web0 = traffic.pods["front/web"][0]
    assert web0.restarts == [120]
    api_pods = traffic.pods["back/api"]
    assert len(api_pods) == 3 and api_pods[2].first == 160
    assert web_api.requests[161:, :, 2].sum() > 0 and web_api.requests[:161, :, 2].sum() == 0
    # bursts double the offered load every 20 minutes for 5 minutes
    client_web = traffic.edges[0].requests.sum(axis=(1, 2, 3))
    in_burst = np.mod(offsets - 7.5, 1200) < 300
    assert client_web[1:][in_burst[1:]].mean() / client_web[1:][~in_burst[1:]].mean() == pytest.approx(2, rel=0.05)


def test_a_workload_with_no_traffic_has_zero_counts(traffic):
    assert traffic.edges[4].requests.sum() == 0


# -- renderings against the reference ---------------------------------------------------------

def _family(families, name):
    return next(f for f in families if f.name == name)


def test_linkerd_names_labels_and_buckets(traffic):
    families = mesh_families(traffic, "linkerd")
    names = {f.name for f in families}
    assert {"request_total", "response_total", "response_latency_ms", "tcp_open_total", "tcp_close_total",
            "tcp_open_connections", "tcp_read_bytes_total", "tcp_write_bytes_total", "process_cpu_seconds_total",
            "process_resident_memory_bytes", "container_cpu_usage_seconds_total",
            "container_memory_working_set_bytes"} <= names
    latency = _family(families, "response_latency_ms")
    # The bucket bounds are exactly those of the real proxy scrape in the shared fixtures.
    scrape = upstream_fixture("linkerd-proxy-scrape.txt").read_text()
    real_le = list(dict.fromkeys(re.findall(r'^response_latency_ms_bucket\{.*le="([^"]+)"\}', scrape, re.M)))
    assert [format_le(b) for b in latency.le] == real_le == [format_le(b) for b in LINKERD_BUCKETS_MS]
    assert all("classification" not in s.labels for s in latency.series)
    responses = _family(families, "response_total").series
    assert {s.labels["direction"] for s in responses} == {"inbound", "outbound"}
    assert {s.labels["classification"] for s in responses} == {"success", "failure"}
    grpc = [s.labels for s in responses if "grpc_status" in s.labels]
    # gRPC 14 (UNAVAILABLE) and 13 (INTERNAL) are failures, 5 (NOT_FOUND) is a success, as in linkerd2-proxy.
    assert {(g["grpc_status"], g["classification"]) for g in grpc} == {
        ("0", "success"), ("14", "failure"), ("13", "failure"), ("5", "success")}
    outbound = [s.labels for s in responses if s.labels["direction"] == "outbound"]
    internal = [o for o in outbound if o.get("dst_namespace")]
    assert internal and all({"dst_deployment", "dst_pod", "dst_service", "server_id", "authority"} <= set(o)
                            for o in internal)
    egress = [o for o in outbound if "dst_namespace" not in o]
    assert egress and all(o["authority"] == "partner.example.com:443" and o["tls"] == "no_identity" for o in egress)
    inbound = [s.labels for s in responses if s.labels["direction"] == "inbound"]
    unmeshed = [i for i in inbound if i["deployment"] == "web"]
    assert unmeshed and all(i["tls"] == "no_identity" and "client_id" not in i for i in unmeshed)
    assert all(s.labels["job"] == "linkerd-proxy" for s in responses)
    assert {s.labels.get("peer") for s in _family(families, "tcp_open_total").series} == {"src", "dst"}
    # scrape labels of the real proxy scrape are a subset of ours... and ours are real label names
    real_names = set(re.findall(r"([a-z_]+)=\"", scrape))
    ours = {name for s in responses for name in s.labels}
    scrape_added = {"namespace", "pod", "deployment", "statefulset", "job", "instance", "authority", "server_id",
                    "client_id", "dst_namespace", "dst_service", "dst_pod", "dst_deployment", "dst_statefulset",
                    "grpc_status"}
    assert ours - real_names <= scrape_added


def test_istio_names_labels_and_buckets(traffic):
    families = mesh_families(traffic, "istio")
    requests = _family(families, "istio_requests_total").series
    duration = _family(families, "istio_request_duration_milliseconds")
    assert [format_le(b) for b in duration.le] == ["0.5", "1", "5", "10", "25", "50", "100", "250", "500", "1000",
                                                   "2500", "5000", "10000", "30000", "60000", "300000", "600000",
                                                   "1800000", "3600000", "+Inf"]
    assert duration.le == ENVOY_BUCKETS_MS
    assert {s.labels["reporter"] for s in requests} == {"source", "destination"}
    assert {s.labels["request_protocol"] for s in requests} == {"http", "grpc"}
    grpc = {(s.labels["response_code"], s.labels["grpc_response_status"]) for s in requests
            if s.labels["request_protocol"] == "grpc"}
    assert grpc == {("200", "0"), ("200", "14"), ("200", "5"), ("200", "13")}
    unknown = [s.labels for s in requests if s.labels["source_workload"] == "unknown"]
    assert unknown and all(u["reporter"] == "destination" and u["connection_security_policy"] == "none"
                           for u in unknown)
    egress = [s.labels for s in requests if s.labels["destination_service"] == "partner.example.com"]
    assert egress and all(e["reporter"] == "source" and e["destination_workload"] == "unknown" for e in egress)
    tcp = _family(families, "istio_tcp_sent_bytes_total").series
    assert tcp and all(s.labels["request_protocol"] == "tcp" and "response_code" not in s.labels for s in tcp)


def test_consul_names_labels_and_buckets(traffic):
    families = mesh_families(traffic, "consul")
    down = _family(families, "envoy_http_downstream_rq_xx").series
    assert {s.labels["envoy_http_conn_manager_prefix"] for s in down} == {"public_listener", "upstream"}
    public = [s.labels for s in down if s.labels["envoy_http_conn_manager_prefix"] == "public_listener"]
    assert all(p["consul_source_service"] == p["local_cluster"] for p in public)
    # gRPC errors ride in HTTP 200 responses, so Envoy's code classes never see them
    assert {p["envoy_response_code_class"] for p in public} == {"2"}
    up = _family(families, "envoy_cluster_upstream_rq_xx").series
    assert {s.labels["envoy_cluster_name"] for s in up} >= {"local_app", "api", "partner"}
    assert {s.labels["envoy_response_code_class"] for s in up if s.labels["envoy_cluster_name"] == "partner"} == {
        "2", "5"}
    routed = [s.labels for s in up if s.labels["envoy_cluster_name"] != "local_app"]
    assert all(r["consul_destination_service"] == r["envoy_cluster_name"] and r["consul_destination_namespace"]
               == "default" for r in routed)
    assert _family(families, "envoy_cluster_upstream_rq_time").le == ENVOY_BUCKETS_MS
    assert _family(families, "envoy_tcp_downstream_cx_total").series[0].labels["envoy_tcp_prefix"] == "public_listener"
    assert {s.labels["container"] for s in _family(families, "container_cpu_usage_seconds_total").series} == {
        "consul-dataplane"}


def test_no_mesh_renders_no_proxy_metrics(traffic):
    assert mesh_families(traffic, "none") == []
    with pytest.raises(InvalidArgument,
                       match="unknown mesh 'osm'; available: linkerd, istio, consul, kuma, hubble, none"):
        mesh_families(traffic, "osm")


# -- the live exporter's text ----------------------------------------------------------------

# Naming lint that the real proxies' own metrics trip as well (the names are theirs).
KNOWN_LINT = re.compile(r'^(response_latency_ms metric names should not contain abbreviated units|'
                        r'istio_request_duration_milliseconds use base unit "seconds" instead of "milliseconds"|'
                        r'envoy_\w+ counter metrics should have "_total" suffix)$')


@pytest.mark.parametrize("mesh", ["linkerd", "istio", "consul", "kuma", "hubble"])
def test_exporter_text_passes_promtool_and_prometheus_client(traffic, mesh):
    require_binary("promtool")
    text = SimExporter(traffic, [mesh]).render(130)
    result = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
    problems = (result.stdout + result.stderr).splitlines()
    assert result.returncode in (0, 3), problems  # 3: lint only
    assert all(KNOWN_LINT.match(p) for p in problems)
    assert problems or mesh == "hubble"  # the others' own names trip promtool's naming lint
    families = list(text_string_to_metric_families(text))
    assert sum(len(f.samples) for f in families) == sum(1 for line in text.splitlines() if not line.startswith("#"))


# -- a short run is the start of a longer one ----------------------------------------------------

def _timed(kind: str, start: str) -> dict:
    incident = {"error_burst": {"kind": "error_burst", "workload": "payments", "duration": "10m",
                                "errors": {"503": 0.25}},
                "latency_spike": {"kind": "latency_spike", "workload": "catalog", "duration": "15m", "factor": 5},
                "pod_restart": {"kind": "pod_restart", "workload": "cart", "pod": 0},
                "scale_up": {"kind": "scale", "workload": "frontend", "replicas": 3},
                "scale_down": {"kind": "scale", "workload": "catalog", "replicas": 1}}[kind]
    return {**incident, "start": start}


INCIDENT_KINDS = ("error_burst", "latency_spike", "pod_restart", "scale_up", "scale_down")


def _plain(frame):
    # categories differ when the longer run has more pods; compare the values
    out = frame.astype({c: str for c in frame.columns if str(frame[c].dtype) == "category"})
    return out.sort_values([c for c in out.columns if out[c].dtype == object] + ["timestamp"]).reset_index(drop=True)


def test_every_incident_kind_is_in_the_scenario_list():
    from meshlab.sim.scenario import INCIDENTS as KINDS

    assert {k.removesuffix("_up").removesuffix("_down") for k in INCIDENT_KINDS} == set(KINDS)


@pytest.mark.parametrize("starts", [("2h",), ("2h7s", "5h")], ids=["at-the-end", "after-the-end"])
def test_a_short_run_is_exactly_the_start_of_a_longer_one(starts):
    from meshlab.sim import truth

    shop = load_scenario("shop").to_dict()
    scenario = scenario_from_dict({**shop, "incidents": [_timed(k, s) for s in starts for k in INCIDENT_KINDS]})
    short, long = simulate(scenario, hours=2), simulate(scenario, hours=6)
    n = short.n
    assert n == 481 and (short.times_ms == long.times_ms[:n]).all()
    # pods and their restarts: the longer run's, cut at the short run's last scrape
    for key, pods in long.pods.items():
        expected = [(p.name, p.ip, p.first, min(p.last, n - 1), [r for r in p.restarts if r < n])
                    for p in pods if p.first < n]
        assert [(p.name, p.ip, p.first, p.last, p.restarts) for p in short.pods[key]] == expected, key
    for key, factor in long.latency_factor.items():
        assert (short.latency_factor[key] == factor[:n]).all(), key
    for a, b in zip(short.edges, long.edges, strict=True):
        assert a.statuses == b.statuses
        n_src, n_dst = a.opened.shape[1:]
        assert not b.opened[:n, n_src:].any() and not b.opened[:n, :, n_dst:].any()  # later pods, no traffic yet
        for name in ("requests", "opened", "open", "sent_bytes", "received_bytes"):
            assert (getattr(a, name) == getattr(b, name)[:n, :n_src, :n_dst]).all(), (a.edge, name)
    # and every ground-truth frame, for every mesh
    end = short.timestamps()[-1]
    frames = [("status", lambda t: truth.status_truth(t))]
    for mesh in ("linkerd", "istio"):  # the two classifications; other meshes differ only in latency costs
        frames += [(f"{mesh} traffic", lambda t, m=mesh: truth.traffic_truth(t, m)),
                   (f"{mesh} edges", lambda t, m=mesh: truth.edges_truth(t, m)),
                   (f"{mesh} tcp", lambda t, m=mesh: truth.tcp_truth(t, m))]
    for label, make in frames:
        theirs = make(long)
        pd.testing.assert_frame_equal(_plain(make(short)), _plain(theirs[theirs["timestamp"] <= end]), obj=label)
    ours, theirs = truth.proxies_truth(short, "linkerd"), truth.proxies_truth(long, "linkerd")
    theirs = _plain(theirs[theirs["timestamp"] <= end])
    pd.testing.assert_series_equal(_plain(ours)["cpu_cores"], theirs["cpu_cores"])


def test_a_short_runs_proxy_memory_is_the_start_of_a_longer_ones():
    from meshlab.sim import truth

    scenario = load_scenario("shop")
    short, long = truth.proxies_truth(simulate(scenario, hours=2), "linkerd"), truth.proxies_truth(
        simulate(scenario, hours=6), "linkerd")
    theirs = _plain(long[long["timestamp"] <= short["timestamp"].max()])
    pd.testing.assert_series_equal(_plain(short)["memory_bytes"], theirs["memory_bytes"])


@pytest.mark.parametrize("kind", INCIDENT_KINDS)
def test_incidents_after_the_end_of_a_run_do_not_happen_in_it(kind):
    shop = load_scenario("shop").to_dict()
    plain = simulate(scenario_from_dict({**shop, "incidents": []}), hours=2)
    later = simulate(scenario_from_dict({**shop, "incidents": [_timed(kind, "2h1s")]}), hours=2)
    assert {k: [(p.name, p.first, p.last, p.restarts) for p in v] for k, v in later.pods.items()} == {
        k: [(p.name, p.first, p.last, p.restarts) for p in v] for k, v in plain.pods.items()}
    assert all((later.latency_factor[k] == 1).all() for k in later.latency_factor)
    for a, b in zip(later.edges, plain.edges, strict=True):
        assert (a.per_status.sum(axis=1) == b.per_status.sum(axis=1)).all()
        assert all(a.per_status[:, a.statuses.index(s)].sum() == 0 for s in a.statuses if s not in b.statuses)


def test_a_pod_restart_names_a_pod_running_at_that_time():
    shop = load_scenario("shop").to_dict()
    with pytest.raises(InvalidArgument, match=r"there is no pod 2 at that time \(pods running: \[0, 1\]\)"):
        scenario_from_dict({**shop, "incidents": [{"kind": "pod_restart", "workload": "frontend", "pod": 2,
                                                    "start": "1h"},
                                                   {"kind": "scale", "workload": "frontend", "replicas": 3,
                                                    "start": "2h"}]})


# -- runs too large to simulate are refused up front -------------------------------------------

TINY = {"name": "tiny", "workloads": [{"name": "a", "namespace": "n"}, {"name": "b", "namespace": "n"}],
        "edges": [{"from": "a", "to": "b", "rate": 1}]}


def test_a_run_too_large_is_refused_before_simulating_with_its_size_and_how_to_raise_the_limit():
    import time

    from meshlab.sim.traffic import MAX_SAMPLES

    scenario = scenario_from_dict({**TINY, "interval": "1s", "duration": "100y"})
    n = 100 * 365 * 86400 + 1
    per_scrape = 2 * 2 + 1 * 1 * (1 + 4)  # two pods' CPU and memory; one pod pair: one status, conns and bytes
    started = time.perf_counter()
    with pytest.raises(InvalidArgument) as caught:
        simulate(scenario)
    assert time.perf_counter() - started < 1
    message = str(caught.value)
    assert f"about {per_scrape * n:,} simulated values ({n:,} scrapes)" in message
    assert f"max_samples={MAX_SAMPLES:,}" in message and "simulate(..., max_samples=N)" in message
    # the limit is a keyword argument, and the estimate is what the limit compares
    small = scenario_from_dict(TINY)
    n = 3600 // 15 + 1
    with pytest.raises(InvalidArgument, match=f"about {per_scrape * n:,} simulated values"):
        simulate(small, hours=1, max_samples=per_scrape * n - 1)
    assert simulate(small, hours=1, max_samples=per_scrape * n).n == n


def test_replicas_beyond_the_limit_are_refused_in_python_too():
    from meshlab.sim.scenario import MAX_REPLICAS, Workload

    with pytest.raises(InvalidArgument, match=f"replicas must be from 1 to {MAX_REPLICAS}"):
        Workload("a", "n", replicas=10_000_000)


@pytest.mark.parametrize("hours", [0, -1, float("nan"), float("inf"), True, "2"])
def test_bad_hours_are_refused(hours):
    with pytest.raises(InvalidArgument, match="hours must be a number > 0"):
        simulate(scenario_from_dict(TINY), hours=hours)


def test_a_run_past_pandas_last_time_is_refused():
    scenario = scenario_from_dict({**TINY, "start": "2199-12-31T00:00:00Z", "interval": "1h"})
    with pytest.raises(InvalidArgument, match="after 2262-04-11"):
        simulate(scenario, hours=100 * 365 * 24)


def test_simulating_a_generated_fleet_app_costs_workload_lookups_in_proportion_to_its_size(monkeypatch):
    # Ordering the edges scanned every workload for every edge of every round: a 250-workload
    # day took 8 minutes, a 50-workload one 4 s. Count the lookups, not the seconds.
    from meshlab.sim.generate import layered_scenario
    from meshlab.sim.scenario import Workload

    looked_up = 0
    key = Workload.key.fget

    def counting(self):  # type: ignore[no-untyped-def]
        nonlocal looked_up
        looked_up += 1
        return key(self)

    monkeypatch.setattr(Workload, "key", property(counting))
    counts = {}
    for workloads in (100, 400):
        looked_up = 0
        simulate(layered_scenario(workloads, hours=0.25, interval=60.0))
        counts[workloads] = looked_up
    assert counts[400] / counts[100] < 6, counts  # linear: about 4; one scan per lookup gave about 16
