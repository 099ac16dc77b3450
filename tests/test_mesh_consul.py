"""Consul's adapter against its own PromQL (the Consul UI's), on the Prometheus holding every mesh.

See ``test_mesh_linkerd.py`` for what the per-mesh files check; the contract every mesh
keeps is in ``test_mesh_contract.py``.
"""

from __future__ import annotations

import numpy as np
import pytest

import meshlab as ml

from .adapter_support import by_key, count_requests
from .mesh_truths import check_edge_counts, check_latency, check_tcp, check_tcp_per_workload, check_workload_counts


@pytest.fixture(scope="module")
def run(mesh_run):
    """``(traffic, client, start, end)`` of the Prometheus holding every mesh (conftest.py)."""
    return mesh_run[:4]


# -- the Consul UI's own PromQL ---------------------------------------------------------------------

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


def test_edge_queries_do_not_grow_with_the_number_of_workloads(run, monkeypatch):
    _, prom, _, end = run
    calls = count_requests(prom, monkeypatch)
    ml.Consul(prom).edges("service", at=end, quantiles=(0.95,))
    assert len(calls) == 2 + 4 + 1 + 1  # plus the series lookup for destination namespaces


def test_consul_names_workloads_by_service_by_default(run):
    _, prom, _, end = run
    assert set(ml.Consul(prom).traffic(at=end)["kind"]) == {"service"}  # Consul's default kind


# -- the ground truth, by this mesh's names -------------------------------------------------------

def test_workload_counts_equal_the_truth(run):
    check_workload_counts(run, "consul")


def test_edge_counts_equal_the_truth(run):
    check_edge_counts(run, "consul")


def test_latency_within_bucket_resolution_of_the_truth(run):
    check_latency(run, "consul")


def test_tcp_equals_the_truth(run):
    check_tcp(run, "consul")


def test_tcp_per_workload_equals_the_truth(run):
    check_tcp_per_workload(run, "consul")
