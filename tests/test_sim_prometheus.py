"""The simulator through a real Prometheus: backfill, exporter and ground truth agree.

One hour of tests/scenarios/incidents.yaml (an error burst, a latency spike, a pod
restart that resets counters, a scale-up, an unmeshed caller, an egress call, a TCP
edge and an idle workload) is rendered for Linkerd, Istio and Consul, backfilled with
promtool and queried with each mesh's own PromQL. Counts must equal the ground truth
exactly; latency quantiles must fall within bucket resolution of the exact ones.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families

from meshlab.prometheus.local import LocalPrometheus
from meshlab.sim import truth
from meshlab.sim.dist import weighted_quantile
from meshlab.sim.exporter import SimExporter
from meshlab.sim.meshes import ENVOY_BUCKETS_MS, LINKERD_BUCKETS_MS
from meshlab.sim.scenario import load_scenario
from meshlab.sim.traffic import simulate

from .conftest import SIM_MESHES, require_binary
from .samples import stored_samples
from .test_sim import INCIDENTS


@pytest.fixture(scope="module")
def run(sim_run):
    return sim_run


def scrape_times(traffic, every: int, first: int):
    """Scrape-aligned evaluation times: every `every`-th scrape from scrape `first`."""
    return traffic.timestamps()[first::every]


def windowed(frame: pd.DataFrame, keys: list[str], value: str, intervals: int, times) -> pd.DataFrame:
    """Truth summed over the `intervals` intervals ending at each time."""
    out = []
    for t in times:
        lo = t - pd.Timedelta(seconds=15 * intervals)
        part = frame[(frame["timestamp"] > lo) & (frame["timestamp"] <= t)]
        summed = part.groupby(keys, observed=True)[value].sum().reset_index()
        summed["timestamp"] = t
        out.append(summed)
    return pd.concat(out, ignore_index=True)


def compare(prom_frame: pd.DataFrame, prom_keys: dict[str, str], expected: pd.DataFrame, value: str) -> None:
    """Every (time, key) on either side must match; a row only one side has must be zero."""
    keys = ["timestamp", *prom_keys.values()]
    got = prom_frame.rename(columns=prom_keys)[[*keys, "value"]]
    merged = expected.astype({k: str for k in prom_keys.values()}).merge(
        got.astype({k: str for k in prom_keys.values()}), on=keys, how="outer")
    assert (merged[value] > 0).sum() > 10
    np.testing.assert_allclose(merged["value"].fillna(0.0), merged[value].fillna(0.0), rtol=1e-9)


def test_the_backfill_holds_every_sample(run):
    traffic, prom, samples = run
    assert stored_samples(prom, traffic.times_ms[-1] / 1000) == samples > 400_000


@pytest.mark.parametrize(("mesh", "promql", "keys"), [
    ("linkerd", 'sum by (namespace, deployment, classification) (increase(response_total{direction="inbound"}[1m]))',
     {"namespace": "namespace", "deployment": "name", "classification": "outcome"}),
    ("istio", "sum by (destination_workload_namespace, destination_workload, ok) (label_replace(increase("
              'istio_requests_total{reporter="destination"}[1m]), "ok", "failure", "response_code", "5.."))',
     {"destination_workload_namespace": "namespace", "destination_workload": "name", "ok": "outcome"}),
    ("consul", "sum by (namespace, consul_source_service, envoy_response_code_class) (increase("
               'envoy_http_downstream_rq_xx{envoy_http_conn_manager_prefix="public_listener"}[1m]))',
     {"namespace": "namespace", "consul_source_service": "name", "envoy_response_code_class": "outcome"}),
])
def test_request_counts_equal_the_truth(run, mesh, promql, keys):
    traffic, prom, _ = run
    times = scrape_times(traffic, 4, 4)
    got = prom.query_range(promql, times[0], times[-1], "1m")
    expected_truth = truth.traffic_truth(traffic, mesh)
    long = expected_truth.melt(id_vars=["timestamp", "namespace", "name"],
                               value_vars=["success_count", "failure_count"], var_name="outcome")
    if mesh == "linkerd":
        long["outcome"] = long["outcome"].map({"success_count": "success", "failure_count": "failure"})
    elif mesh == "istio":
        got["ok"] = got["ok"].cat.add_categories("success").fillna("success") if "ok" in got else "success"
        long["outcome"] = long["outcome"].map({"success_count": "success", "failure_count": "failure"})
    else:  # consul: the truth's failures are class 5; everything else here is class 2
        long["outcome"] = long["outcome"].map({"success_count": "2", "failure_count": "5"})
    long = long.astype({"namespace": str, "name": str})
    expected = windowed(long, ["namespace", "name", "outcome"], "value", 4, times)
    compare(got, keys, expected.rename(columns={"value": "truth"}), "truth")
    # the web pod restarted at 30 minutes: its counter reset is inside the compared range
    assert traffic.pods["front/web"][0].restarts == [120]


def test_edge_status_counts_equal_the_truth(run):
    traffic, prom, _ = run
    times = scrape_times(traffic, 4, 4)
    got = prom.query_range('sum by (deployment, dst_deployment, grpc_status) (increase(response_total{'
                           'direction="outbound", dst_deployment!=""}[1m]))', times[0], times[-1], "1m")
    status = truth.status_truth(traffic)
    status = status[status["dst_name"] == "api"].astype({"src_name": str, "dst_name": str, "status": str})
    from meshlab.sim.scenario import GRPC_CODES

    status["grpc_status"] = status["status"].map(lambda s: str(GRPC_CODES[s]))
    expected = windowed(status, ["src_name", "dst_name", "grpc_status"], "requests", 4, times)
    compare(got, {"deployment": "src_name", "dst_deployment": "dst_name", "grpc_status": "grpc_status"},
            expected, "requests")


def bucket_index(bounds, value: float) -> int:
    return int(np.searchsorted(np.asarray(bounds), value, side="left"))


@pytest.mark.parametrize(("mesh", "promql", "bounds"), [
    ("linkerd", 'histogram_quantile({q}, sum by (le, deployment) (increase(response_latency_ms_bucket{{'
                'direction="inbound"}}[5m])))', LINKERD_BUCKETS_MS),
    ("istio", 'histogram_quantile({q}, sum by (le, destination_workload) (increase('
              'istio_request_duration_milliseconds_bucket{{reporter="destination"}}[5m])))', ENVOY_BUCKETS_MS),
    ("consul", 'histogram_quantile({q}, sum by (le, consul_source_service) (increase(envoy_http_downstream_rq_time_'
               'bucket{{envoy_http_conn_manager_prefix="public_listener"}}[5m])))', ENVOY_BUCKETS_MS),
])
@pytest.mark.parametrize("q", [0.5, 0.9, 0.99])
def test_latency_quantiles_within_bucket_resolution(run, mesh, promql, bounds, q):
    traffic, prom, _ = run
    times = scrape_times(traffic, 20, 20)
    got = prom.query_range(promql.format(q=q), times[0], times[-1], "5m")
    name_column = next(c for c in got.columns if c not in ("timestamp", "value"))
    checked = 0
    for workload in ("web", "api"):
        w = traffic.scenario.workload(workload)
        mixture = traffic.latency(w, mesh, "server")
        counts = traffic.inbound_requests(w).sum(axis=1)
        for t in times:
            k = int(np.searchsorted(traffic.times_ms, t.value // 1_000_000))
            window = slice(k - 19, k + 1)
            part = mixture.select(window, traffic.n)
            exact = weighted_quantile(part, counts[window], q)
            estimate = got[(got[name_column] == workload) & (got["timestamp"] == t)]["value"].item()
            # Same bucket as the exact quantile; a neighbour only if the exact value sits within 3% of a bound.
            lo, hi = bucket_index(bounds, exact * 0.97), bucket_index(bounds, exact * 1.03)
            assert lo <= bucket_index(bounds, estimate) <= hi, (workload, t, exact, estimate)
            checked += 1
    assert checked == 2 * len(times)


def test_tcp_and_proxy_costs_equal_the_truth(run):
    traffic, prom, _ = run
    times = scrape_times(traffic, 4, 4)
    got = prom.query_range('sum(increase(tcp_read_bytes_total{direction="inbound", peer="src", statefulset="db"}[1m]))',
                           times[0], times[-1], "1m")
    tcp = truth.tcp_truth(traffic, "linkerd")
    tcp = tcp[(tcp["dst_name"] == "db") & (tcp["side"] == "server")].copy()
    tcp["sent"] = tcp["sent_bytes_per_second"] * 15
    expected = windowed(tcp.astype({"dst_name": str}), ["dst_name"], "sent", 4, times)
    np.testing.assert_allclose(got["value"].to_numpy(), expected["sent"].to_numpy(), rtol=1e-9)

    cpu = prom.query_range('sum by (pod) (increase(container_cpu_usage_seconds_total{container="istio-proxy"}[1m]))',
                           times[0], times[-1], "1m")
    proxies = truth.proxies_truth(traffic, "istio")
    proxies["cpu_seconds"] = proxies["cpu_cores"] * 15
    expected = windowed(proxies.astype({"pod": str}), ["pod"], "cpu_seconds", 4, times)
    compare(cpu, {"pod": "pod"}, expected, "cpu_seconds")
    at = times[-1]
    memory = prom.query('container_memory_working_set_bytes{container="linkerd-proxy"}', time=at)
    linkerd = truth.proxies_truth(traffic, "linkerd")
    now = linkerd[linkerd["timestamp"] == at].set_index("pod")["memory_bytes"]
    assert dict(zip(memory["pod"].astype(str), memory["value"], strict=True)) == now.to_dict()


def parse_exposition(text: str) -> dict[tuple, float]:
    """Samples by (name, labels); empty label values dropped, as Prometheus stores them."""
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = tuple(sorted((k, v) for k, v in sample.labels.items() if v != ""))
            out[(sample.name, labels)] = sample.value
    return out


def test_exporter_agrees_with_the_backfill(run):
    traffic, prom, _ = run
    exporter = SimExporter(traffic, SIM_MESHES)
    for k in (1, 119, 120, 161, traffic.n - 1):  # around the restart and the scale-up
        served = parse_exposition(exporter.render(k))
        stored = prom.query('{__name__=~"request_total|istio_requests_total|envoy_cluster_upstream_rq_total|'
                            'response_latency_ms_bucket|container_memory_working_set_bytes"}',
                            time=traffic.times_ms[k] / 1000)
        assert len(stored) > 100
        for row in stored.to_dict("records"):
            labels = tuple(sorted((key, str(v)) for key, v in row.items()
                                  if key not in ("timestamp", "value", "__name__") and isinstance(v, str)))
            assert served[(row["__name__"], labels)] == row["value"]


def test_exporter_under_a_real_scrape(tmp_path):
    require_binary("prometheus")
    traffic = simulate(load_scenario(INCIDENTS))
    with SimExporter(traffic, ["linkerd"], speed=15.0) as exporter:
        # honor_labels keeps the proxies' own job and instance labels, as Istio's scrape config does
        config = ("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n"
                  f"  - job_name: sim\n    honor_labels: true\n    static_configs:\n"
                  f"      - targets: ['{exporter.address}']\n")
        with LocalPrometheus(config=config) as server:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                up = server.client.query('up{job="sim"}')
                if len(up) and up["value"].item() == 1 and exporter.index() >= 4:
                    break
                time.sleep(0.5)
            series = server.client.query("request_total")
            assert len(series) > 0
            served = [parse_exposition(exporter.render(k)) for k in range(exporter.index() + 1)]
            for row in series.to_dict("records")[:10]:
                key = ("request_total", tuple(sorted((k, str(v)) for k, v in row.items()
                                                     if k not in ("timestamp", "value", "__name__")
                                                     and isinstance(v, str))))
                # the scraped value is the value of some simulated scrape so far
                assert any(s.get(key) == row["value"] for s in served)
