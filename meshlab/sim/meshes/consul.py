"""Consul Connect's Envoy stats (``consul_*`` labels, ``upstream`` and ``public_listener``) for a traffic run."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import numpy as np

from ..dist import Mixture
from ..render import Family
from ..scenario import Workload
from ..traffic import EdgeTraffic, Pod, Traffic
from ._common import (
    ENVOY_BUCKETS_MS,
    ENVOY_UPSTREAM_CX,
    _code_class,
    _Context,
    _declare,
    _envoy,
    _grouped,
    _proxy_cost_families,
)


def _consul_source(w: Workload) -> dict[str, str]:
    return {"local_cluster": w.service_name, "consul_source_service": w.service_name,
            "consul_source_namespace": "default", "consul_source_datacenter": "dc1"}


def _consul_destination(w: Workload) -> dict[str, str]:
    return {"consul_destination_service": w.name, "consul_destination_namespace": "default",
            "consul_destination_datacenter": "dc1", "consul_destination_target": f"{w.name}.default.dc1",
            "envoy_cluster_name": w.name}


def _consul_pod_labels(pod: Pod) -> dict[str, str]:
    w = pod.workload
    return {"namespace": w.namespace, "pod": pod.name, "instance": f"{pod.ip}:20200", "job": "kubernetes-pods"}


def consul_families(traffic: Traffic) -> list[Family]:
    """Consul Connect: Envoy stats with consul tags, as consul-k8s' Prometheus scrape sees them."""
    ctx = _Context(traffic, "consul")
    fam: dict[str, Family] = {}
    down_xx = _declare(fam, "envoy_http_downstream_rq_xx", "counter", "Downstream requests by response code class.")
    down_done = _declare(fam, "envoy_http_downstream_rq_completed", "counter", "Completed downstream requests.")
    down_time = _declare(fam, "envoy_http_downstream_rq_time", "histogram", "Downstream request time.",
                         ENVOY_BUCKETS_MS)
    listener_xx = _declare(fam, "envoy_listener_http_downstream_rq_xx", "counter", "Listener requests by code class.")
    up_xx = _envoy(fam, "envoy_cluster_upstream_rq_xx")
    up_total = _envoy(fam, "envoy_cluster_upstream_rq_total")
    up_time = _envoy(fam, "envoy_cluster_upstream_rq_time")
    tcp_down = {n: _declare(fam, n, "counter", h) for n, h in (
        ("envoy_tcp_downstream_cx_total", "Total connections."),
        ("envoy_tcp_downstream_cx_rx_bytes_total", "Bytes received."),
        ("envoy_tcp_downstream_cx_tx_bytes_total", "Bytes sent."))}
    tcp_up = {n: _envoy(fam, n) for n in ENVOY_UPSTREAM_CX}

    def http_side(et: EdgeTraffic, pod: Pod, axis: int, labels: dict[str, str], xx: Family, total: Family,
                  time: Family, latency: Callable[[], Mixture], extra_xx: Family | None = None) -> None:
        exists, resets = ctx.pod_exists(pod), ctx.pod_resets(pod)
        by_class = _grouped(et, axis, pod.index, lambda s: _code_class(et, s))
        for code_class, counts in by_class.items():
            xx.counter({**labels, "envoy_response_code_class": code_class}, counts, exists, resets)
            if extra_xx is not None:
                extra_xx.counter({**labels, "envoy_response_code_class": code_class}, counts, exists, resets)
        all_counts = np.sum(list(by_class.values()), axis=0)
        total.counter(labels, all_counts, exists, resets)
        time.histogram(labels, all_counts, latency, exists, resets)

    for et in traffic.edges:
        src, dst = et.source, et.target
        if dst.meshed:
            for pod in traffic.pods[dst.key]:
                pod_labels = {**_consul_source(dst), **_consul_pod_labels(pod)}
                if et.is_tcp:
                    _consul_tcp(ctx, tcp_down, {**pod_labels, "envoy_tcp_prefix": "public_listener"}, et, pod, 2,
                                rx="sent", tx="received", active=None)
                    continue
                server = partial(ctx.server_latency, dst)
                http_side(et, pod, 2, {**pod_labels, "envoy_http_conn_manager_prefix": "public_listener"},
                          down_xx, down_done, down_time, server, extra_xx=listener_xx)
                # The same requests again, as the proxy forwards them to its own application.
                http_side(et, pod, 2, {**pod_labels, "envoy_cluster_name": "local_app"},
                          up_xx, up_total, up_time, server)
        if not src.meshed:
            continue
        for pod in traffic.pods[src.key]:
            labels = {**_consul_source(src), **_consul_destination(dst), **_consul_pod_labels(pod)}
            # Envoy keeps connection stats for every upstream cluster, HTTP ones (pooled connections) too
            _consul_tcp(ctx, tcp_up, labels, et, pod, 1, rx="received", tx="sent", active=True)
            if et.is_tcp:
                continue
            client = partial(ctx.client_latency, dst, src, et.edge.network_ms)
            http_side(et, pod, 1, labels, up_xx, up_total, up_time, client)
            # The caller's upstream listener counts the same outbound requests once more.
            upstream = {**_consul_source(src), "consul_upstream_service": dst.name,
                        "consul_upstream_namespace": "default", "consul_upstream_datacenter": "dc1",
                        "envoy_http_conn_manager_prefix": "upstream", **_consul_pod_labels(pod)}
            http_side(et, pod, 1, upstream, down_xx, down_done, down_time, client)
    meshed = [p for w in traffic.scenario.workloads if w.meshed for p in traffic.pods[w.key]]
    _proxy_cost_families(ctx, meshed, fam, proxy_job=None)
    return list(fam.values())


def _consul_tcp(ctx: _Context, families: dict[str, Family], labels: dict[str, str], et: EdgeTraffic, pod: Pod,
                axis: int, *, rx: str, tx: str, active: bool | None) -> None:
    exists, resets = ctx.pod_exists(pod), ctx.pod_resets(pod)

    def pick(array: np.ndarray) -> np.ndarray:
        return array.take(pod.index, axis=axis).sum(axis=1)

    data = {"sent": pick(et.sent_bytes), "received": pick(et.received_bytes)}
    prefix = "envoy_cluster_upstream_cx" if active else "envoy_tcp_downstream_cx"
    families[f"{prefix}_total"].counter(labels, pick(et.opened), exists, resets)
    families[f"{prefix}_rx_bytes_total"].counter(labels, data[rx], exists, resets)
    families[f"{prefix}_tx_bytes_total"].counter(labels, data[tx], exists, resets)
    if active:
        families[f"{prefix}_active"].gauge(labels, pick(et.open), exists)
