"""Istio's standard metrics (``istio_requests_total`` and friends, both reporters) for a traffic run."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import numpy as np

from ..dist import Mixture
from ..render import Family
from ..scenario import Workload
from ..traffic import Pod, Traffic
from ._common import ENVOY_BUCKETS_MS, _closed, _Context, _grouped, _proxy_cost_families


def _istio_peer(w: Workload, side: str) -> dict[str, str]:
    if w.external or not w.meshed:
        unknown = {f"{side}_{k}": "unknown" for k in ("workload", "workload_namespace", "principal",
                                                      "canonical_service")}
        if side == "destination":
            unknown.update({"destination_service": w.service_name if w.external else "unknown",
                            "destination_service_name": w.service_name if w.external else "unknown",
                            "destination_service_namespace": "unknown"})
        return unknown
    labels = {f"{side}_workload": w.name, f"{side}_workload_namespace": w.namespace,
              f"{side}_principal": f"spiffe://cluster.local/ns/{w.namespace}/sa/{w.name}",
              f"{side}_canonical_service": w.name}
    if side == "destination":
        labels.update({"destination_service": f"{w.service_name}.{w.namespace}.svc.cluster.local",
                       "destination_service_name": w.service_name, "destination_service_namespace": w.namespace})
    return labels


def _istio_pod_labels(pod: Pod) -> dict[str, str]:
    w = pod.workload
    return {"namespace": w.namespace, "pod": pod.name, "instance": f"{pod.ip}:15020", "job": "kubernetes-pods"}


def istio_families(traffic: Traffic) -> list[Family]:
    """Istio standard metrics from Envoy sidecars, reported by both source and destination."""
    ctx = _Context(traffic, "istio")
    fam: dict[str, Family] = {}
    requests = fam.setdefault("istio_requests_total", Family("istio_requests_total", "counter",
                                                             "Total requests."))
    duration = fam.setdefault("istio_request_duration_milliseconds", Family(
        "istio_request_duration_milliseconds", "histogram", "Request duration in milliseconds.", le=ENVOY_BUCKETS_MS))
    tcp = {name: fam.setdefault(name, Family(name, "counter", help_)) for name, help_ in (
        ("istio_tcp_sent_bytes_total", "Total bytes sent during response in case of a TCP connection."),
        ("istio_tcp_received_bytes_total", "Total bytes received during request in case of a TCP connection."),
        ("istio_tcp_connections_opened_total", "Total connections opened."),
        ("istio_tcp_connections_closed_total", "Total connections closed."))}

    for et in traffic.edges:
        src, dst = et.source, et.target
        protocol = et.edge.protocol
        peers = {**_istio_peer(src, "source"), **_istio_peer(dst, "destination")}
        mtls = src.meshed and dst.meshed and not dst.external
        sides = []
        if dst.meshed:
            sides += [("destination", p, 2, "mutual_tls" if mtls else "none") for p in traffic.pods[dst.key]]
        if src.meshed:
            sides += [("source", p, 1, "unknown") for p in traffic.pods[src.key]]
        for reporter, pod, axis, policy in sides:
            exists, resets = ctx.pod_exists(pod), ctx.pod_resets(pod)
            base = {"reporter": reporter, **peers, "request_protocol": protocol, "response_flags": "-",
                    "connection_security_policy": policy, **_istio_pod_labels(pod)}
            if et.is_tcp:
                def pick(array: np.ndarray, pod: Pod = pod, axis: int = axis) -> np.ndarray:
                    return array.take(pod.index, axis=axis).sum(axis=1)
                opened, open_now = pick(et.opened), pick(et.open)
                closed = _closed(opened, open_now, resets)
                tcp["istio_tcp_sent_bytes_total"].counter(base, pick(et.received_bytes), exists, resets)
                tcp["istio_tcp_received_bytes_total"].counter(base, pick(et.sent_bytes), exists, resets)
                tcp["istio_tcp_connections_opened_total"].counter(base, opened, exists, resets)
                tcp["istio_tcp_connections_closed_total"].counter(base, closed, exists, resets)
                continue
            latency: Callable[[], Mixture] = (
                partial(ctx.server_latency, dst) if reporter == "destination"
                else partial(ctx.client_latency, dst, src, et.edge.network_ms))
            for status, counts in _grouped(et, axis, pod.index, lambda s: s).items():
                labels = {**base, "response_code": et.http_status(status),
                          "grpc_response_status": et.grpc_code(status)}
                requests.counter(labels, counts, exists, resets)
                duration.histogram(labels, counts, latency, exists, resets)
    meshed = [p for w in traffic.scenario.workloads if w.meshed for p in traffic.pods[w.key]]
    _proxy_cost_families(ctx, meshed, fam, proxy_job=None)
    return list(fam.values())
