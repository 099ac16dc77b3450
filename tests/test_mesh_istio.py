"""Istio's adapter against its own PromQL (the Istio dashboards, Kiali), on the Prometheus holding every mesh.

See ``test_mesh_linkerd.py`` for what the per-mesh files check; the contract every mesh
keeps is in ``test_mesh_contract.py``.
"""

from __future__ import annotations

import numpy as np
import pytest

import meshlab as ml
from meshlab.errors import InvalidArgument
from meshlab.prometheus.local import LocalPrometheus
from meshlab.prometheus.promql import by

from .adapter_support import TCP_KEYS, by_key, count_requests
from .conftest import require_binary
from .mesh_truths import check_edge_counts, check_latency, check_tcp, check_tcp_per_workload, check_workload_counts


@pytest.fixture(scope="module")
def run(mesh_run):
    """``(traffic, client, start, end)`` of the Prometheus holding every mesh (conftest.py)."""
    return mesh_run[:4]


# -- Istio's own PromQL ---------------------------------------------------------------------------

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


def test_tcp_equals_kialis_promql(run):
    _, prom, start, end = run
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


def test_istio_proxies_have_no_process_metrics(run):
    _, prom, _, end = run
    with pytest.raises(InvalidArgument, match="istio's proxies export no process metrics; use source='cadvisor'"):
        ml.Istio(prom).proxies(at=end, source="proxy")
    with pytest.raises(InvalidArgument, match="unknown proxy source 'kubelet'; must be one of: cadvisor, proxy"):
        ml.Istio(prom).proxies(at=end, source="kubelet")


def test_edge_queries_do_not_grow_with_the_number_of_workloads(run, monkeypatch):
    _, prom, start, end = run
    calls = count_requests(prom, monkeypatch)
    ml.Istio(prom).edges("deployment", start=start, end=end, step="1m", quantiles=(0.99,))
    assert len(calls) == 2 * (2 + 3 + 1)  # two sides; 0.99 is one of the defaults


def test_tcp_and_proxy_queries_do_not_grow_with_the_workloads(run, monkeypatch):
    _, prom, start, end = run
    calls = count_requests(prom, monkeypatch)
    ml.Istio(prom).tcp("deployment", start=start, end=end, step="1m")
    assert len(calls) == 4 * 2  # four signals, two sides
    calls.clear()
    frame = ml.Istio(prom).proxies(start=start, end=end, step="1m")
    assert frame["pod"].nunique() == 7 and len(calls) == 3  # CPU, memory, and the pods' owners


def test_one_instant_smi_style(run):
    _, prom, _, end = run
    frame = ml.Istio(prom).traffic("deployment", namespace="back", at=end, window="30s")
    assert frame["timestamp"].unique().tolist() == [end] and set(frame["namespace"]) == {"back"}
    assert set(frame["name"]) == {"api", "idle"}
    assert (frame["rps"] == frame["requests"] / 30).all()


def test_sides_and_kinds_are_checked(run):
    _, prom, _, end = run
    istio = ml.Istio(prom)
    with pytest.raises(InvalidArgument, match="sides must be a non-empty list such as \\['client'\\], got \\[\\]"):
        istio.edges(at=end, sides=[])
    with pytest.raises(InvalidArgument, match="istio has no 'middle' side for TCP; sides: client, server"):
        istio.tcp(at=end, sides=["middle"])
    with pytest.raises(InvalidArgument, match="per='workload' is the workloads' own"):
        istio.tcp(at=end, per="workload", sides=["client"])


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


# -- the ground truth, by this mesh's names -------------------------------------------------------

def test_workload_counts_equal_the_truth(run):
    check_workload_counts(run, "istio")


def test_edge_counts_equal_the_truth(run):
    check_edge_counts(run, "istio")


def test_latency_within_bucket_resolution_of_the_truth(run):
    check_latency(run, "istio")


def test_tcp_equals_the_truth(run):
    check_tcp(run, "istio")


def test_tcp_per_workload_equals_the_truth(run):
    check_tcp_per_workload(run, "istio")
