"""Linkerd's proxy metrics (``response_total``, ``response_latency_ms``, ``tcp_*``) for a traffic run."""

from __future__ import annotations

from functools import partial

import numpy as np

from ..render import Family
from ..scenario import Workload
from ..traffic import EdgeTraffic, Traffic
from ._common import (
    _LINKERD_KIND,
    _PORT,
    LINKERD_BUCKETS_MS,
    LINKERD_GRPC_FAILURES,
    _closed,
    _Context,
    _grouped,
    _linkerd_pod_labels,
    _proxy_cost_families,
)


def _linkerd_identity(w: Workload) -> str:
    return f"{w.name}.{w.namespace}.serviceaccount.identity.linkerd.cluster.local"


def _linkerd_classify(et: EdgeTraffic, status: str) -> str:
    if et.is_grpc:
        return "failure" if et.grpc_code(status) in LINKERD_GRPC_FAILURES else "success"
    return "failure" if status.startswith("5") else "success"


def linkerd_families(traffic: Traffic) -> list[Family]:
    """Linkerd 2 (linkerd2-proxy) metrics, as scraped by linkerd-viz's Prometheus."""
    ctx = _Context(traffic, "linkerd")
    fam: dict[str, Family] = {}
    request = fam.setdefault("request_total", Family("request_total", "counter", "Total count of HTTP requests."))
    response = fam.setdefault("response_total", Family("response_total", "counter", "Total count of HTTP responses."))
    latency = fam.setdefault("response_latency_ms", Family(
        "response_latency_ms", "histogram",
        "Elapsed times between a request's headers being received and its response stream completing",
        le=LINKERD_BUCKETS_MS))
    tcp = {name: fam.setdefault(name, Family(name, kind, help_)) for name, kind, help_ in (
        ("tcp_open_total", "counter", "Total count of opened connections"),
        ("tcp_close_total", "counter", "Total count of closed connections"),
        ("tcp_open_connections", "gauge", "Number of currently-open connections"),
        ("tcp_read_bytes_total", "counter", "Total count of bytes read from peers"),
        ("tcp_write_bytes_total", "counter", "Total count of bytes written to peers"))}

    for et in traffic.edges:
        src, dst = et.source, et.target
        port = _PORT[et.edge.protocol]
        for dst_pod in traffic.pods[dst.key] if dst.meshed else []:
            j = dst_pod.index
            base = {"direction": "inbound"}
            base.update({"tls": "true", "client_id": _linkerd_identity(src)} if src.meshed
                        else {"tls": "no_identity", "no_tls_reason": "no_tls_from_remote"})
            base.update(_linkerd_pod_labels(dst_pod))
            exists, resets = ctx.pod_exists(dst_pod), ctx.pod_resets(dst_pod)
            _linkerd_tcp(tcp, {**base, "peer": "src"}, et, j, 2, exists, resets, read="sent", write="received")
            if et.is_tcp:
                continue
            request.counter(base, et.requests[:, :, j, :].sum(axis=(1, 2)), exists, resets)
            for status, counts in _grouped(et, 2, j, lambda s: s).items():
                response.counter(_linkerd_status_labels(base, et, status), counts, exists, resets)
            for code, counts in _grouped(et, 2, j, et.http_status).items():
                latency.histogram({**base, "status_code": code}, counts,
                                  partial(ctx.server_latency, dst), exists, resets)
        if not src.meshed:
            continue
        for src_pod in traffic.pods[src.key]:
            i = src_pod.index
            exists_src, resets = ctx.pod_exists(src_pod), ctx.pod_resets(src_pod)
            for dst_pod in traffic.pods[dst.key]:
                j = dst_pod.index
                base = {"direction": "outbound"}
                if dst.external:
                    base.update({"authority": f"{dst.service_name}:443", "tls": "no_identity",
                                 "no_tls_reason": "not_provided_by_service_discovery"})
                else:
                    base.update({"authority": f"{dst.service_name}.{dst.namespace}.svc.cluster.local:{port}",
                                 "tls": "true", "server_id": _linkerd_identity(dst), "dst_namespace": dst.namespace,
                                 "dst_service": dst.service_name, "dst_pod": dst_pod.name,
                                 f"dst_{_LINKERD_KIND[dst.kind]}": dst.name})
                base.update(_linkerd_pod_labels(src_pod))
                exists = exists_src & ctx.since(dst_pod)
                pair = et.requests[:, i, j, :] if not et.is_tcp else None
                _linkerd_tcp(tcp, {**base, "peer": "dst"}, et, (i, j), None, exists, resets,
                             read="received", write="sent")
                if pair is None:
                    continue
                request.counter(base, pair.sum(axis=1), exists, resets)
                by_http: dict[str, np.ndarray] = {}
                for s, status in enumerate(et.statuses):
                    response.counter(_linkerd_status_labels(base, et, status), pair[:, s], exists, resets)
                    code = et.http_status(status)
                    by_http[code] = by_http.get(code, np.zeros(len(pair), dtype=np.int64)) + pair[:, s]
                for code, counts in by_http.items():
                    latency.histogram({**base, "status_code": code}, counts,
                                      partial(ctx.client_latency, dst, src, et.edge.network_ms), exists, resets)
    meshed = [p for w in traffic.scenario.workloads if w.meshed for p in traffic.pods[w.key]]
    _proxy_cost_families(ctx, meshed, fam, proxy_job="linkerd-proxy")
    return list(fam.values())


def _linkerd_status_labels(base: dict[str, str], et: EdgeTraffic, status: str) -> dict[str, str]:
    labels = {**base, "status_code": et.http_status(status), "classification": _linkerd_classify(et, status)}
    if et.is_grpc:
        labels["grpc_status"] = et.grpc_code(status)
    return labels


def _linkerd_tcp(tcp: dict[str, Family], labels: dict[str, str], et: EdgeTraffic, index: int | tuple[int, int],
                 axis: int | None, exists: np.ndarray, resets: np.ndarray, *, read: str, write: str) -> None:
    def pick(array: np.ndarray) -> np.ndarray:
        if isinstance(index, tuple):
            return array[:, index[0], index[1]]
        return array.take(index, axis=axis).sum(axis=1)

    opened, open_now = pick(et.opened), pick(et.open)
    closed = _closed(opened, open_now, resets)
    data = {"sent": pick(et.sent_bytes), "received": pick(et.received_bytes)}
    tcp["tcp_open_total"].counter(labels, opened, exists, resets)
    tcp["tcp_close_total"].counter({**labels, "errno": ""}, closed, exists, resets)
    tcp["tcp_open_connections"].gauge(labels, open_now, exists)
    tcp["tcp_read_bytes_total"].counter(labels, data[read], exists, resets)
    tcp["tcp_write_bytes_total"].counter(labels, data[write], exists, resets)
