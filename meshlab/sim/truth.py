"""Ground truth: what really happened in a simulated run, as tidy frames.

Each row covers one scrape interval and is stamped with the scrape that ends it, so a
query with ``window`` = the interval, evaluated at the scrapes, should see exactly these
counts. Latency quantiles are exact quantiles of the distribution each interval's
requests were drawn from (not of the drawn sample), as that mesh's proxies would
observe them; Prometheus' ``histogram_quantile`` estimates them within bucket resolution.

Success and failure follow each mesh's own classification (``classify``): Linkerd fails
HTTP 5xx and gRPC statuses 2, 4, 13, 14 and 15; Istio (as its dashboards do), Consul,
Kuma (``envoy_response_code_class="5"``, as its dashboards' status panels) and Hubble
(``status=~"5.*"``, as Cilium's dashboards) fail HTTP 5xx only, so gRPC errors, which
travel in HTTP 200 responses, count as successes there; ``none`` (the application's
view) fails HTTP 5xx and the same gRPC statuses as Linkerd.

Sides: a meshed caller's proxy sees the client side of an edge and a meshed callee's
proxy the server side, for every mesh. Under Hubble "meshed" means the workload has L7
policy, so its node's Envoy proxies (and Hubble reports) its traffic; Hubble names even
unmeshed callers on the server side, sidecar meshes do not. Whether an adapter can tell
callers apart on a side is the adapter's business, not the truth's.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from .. import schema
from .costs import MESH_COSTS
from .meshes import LINKERD_GRPC_FAILURES, node_proxies, node_proxy_usage, proxy_usage
from .scenario import GRPC_CODES
from .traffic import EdgeTraffic, Traffic

__all__ = ["TCP_COUNTED", "classify", "edges_truth", "proxies_truth", "status_truth", "tcp_truth", "traffic_truth"]

def classify(mesh: str, et: EdgeTraffic, status: str) -> bool:
    """Whether ``mesh`` counts a request that ended with ``status`` on this edge as a failure.

    Only Linkerd and the application itself see gRPC statuses; every other mesh (Istio,
    Consul, Kuma, Hubble) fails HTTP 5xx only.
    """
    if et.is_grpc:
        return mesh in ("linkerd", "none") and str(GRPC_CODES[status]) in LINKERD_GRPC_FAILURES
    return status.startswith("5")


def _golden(success: np.ndarray, failure: np.ndarray, interval_s: float, latency: dict[float, np.ndarray]
            ) -> dict[str, np.ndarray]:
    requests = success + failure
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = np.where(requests > 0, success / np.where(requests > 0, requests, 1), np.nan)
    out = {"success_count": success, "failure_count": failure, "requests": requests, "success_rate": rate,
           "rps": requests / interval_s}
    for q, values in latency.items():
        out[schema.quantile_column(q)] = np.where(requests > 0, values, np.nan)
    return out


def _with_defaults(quantiles: Sequence[float]) -> list[float]:
    # the contract's p50/p90/p99 columns are always there
    return list(dict.fromkeys((*schema.QUANTILES, *quantiles)))


def traffic_truth(traffic: Traffic, mesh: str, quantiles: Sequence[float] = schema.QUANTILES) -> pd.DataFrame:
    """Per workload and interval: inbound requests, success/failure as ``mesh`` classifies them,
    and exact latency quantiles as the workload's own (server-side) proxy observes them.

    Workloads with no inbound traffic in an interval appear with zero counts and NaN
    rates and latencies. External services have no rows (no proxy observes them).
    """
    times = traffic.timestamps()[1:]
    parts = []
    for w in traffic.scenario.workloads:
        incoming = [et for et in traffic.edges if et.target.key == w.key and not et.is_tcp]
        if not incoming or w.external:
            continue
        success = np.zeros(traffic.n)
        failure = np.zeros(traffic.n)
        for et in incoming:
            for s, status in enumerate(et.statuses):
                if classify(mesh, et, status):
                    failure += et.per_status[:, s]
                else:
                    success += et.per_status[:, s]
        mixture = traffic.latency(w, mesh, "server")
        latency = {q: mixture.quantile(q) for q in _with_defaults(quantiles)}
        golden = _golden(success, failure, traffic.interval_s, latency)
        parts.append(pd.DataFrame({"timestamp": times, "mesh": mesh, "kind": w.kind, "namespace": w.namespace,
                                   "name": w.name, **{k: v[1:] for k, v in golden.items()}}))
    return schema.concat(parts, "traffic")


def edges_truth(traffic: Traffic, mesh: str, quantiles: Sequence[float] = schema.QUANTILES) -> pd.DataFrame:
    """Per edge, observing side and interval: requests, success/failure and latency quantiles.

    ``side="client"`` is the caller's proxy (latency includes the network and both
    proxies); ``side="server"`` is the callee's. Unmeshed callers have only a server side,
    external callees only a client side. ``mesh="none"`` gives the application's view
    (client side: service time plus network).
    """
    times = traffic.timestamps()[1:]
    parts = []
    for et in traffic.edges:
        if et.is_tcp:
            continue
        failed = np.array([classify(mesh, et, s) for s in et.statuses])
        failure = et.per_status[:, failed].sum(axis=1).astype(float)
        success = et.per_status[:, ~failed].sum(axis=1).astype(float)
        sides = []
        if et.source.meshed or mesh == "none":
            sides.append(("client", traffic.latency(et.target, mesh, "client", caller=et.source,
                                                    network_ms=et.edge.network_ms)))
        if not et.target.external and (et.target.meshed or mesh == "none"):
            sides.append(("server", traffic.latency(et.target, mesh, "server")))
        for side, mixture in sides:
            golden = _golden(success, failure, traffic.interval_s,
                             {q: mixture.quantile(q) for q in _with_defaults(quantiles)})
            parts.append(pd.DataFrame({
                "timestamp": times, "mesh": mesh, "kind": et.target.kind,
                "src_namespace": et.source.namespace, "src_name": et.source.name,
                "dst_namespace": et.target.namespace, "dst_name": et.target.name, "side": side,
                **{k: v[1:] for k, v in golden.items()}}))
    return schema.concat(parts, "edges")


def status_truth(traffic: Traffic) -> pd.DataFrame:
    """Per edge, status and interval: how many requests ended that way (HTTP and gRPC edges)."""
    times = traffic.timestamps()[1:]
    parts = []
    for et in traffic.edges:
        if et.is_tcp:
            continue
        for s, status in enumerate(et.statuses):
            parts.append(pd.DataFrame({
                "timestamp": times, "src_namespace": et.source.namespace, "src_name": et.source.name,
                "dst_namespace": et.target.namespace, "dst_name": et.target.name,
                "protocol": et.edge.protocol, "status": status, "requests": et.per_status[1:, s]}))
    return schema.concat(parts, "status_counts")


#: Which connections each mesh's TCP stats count, by observing side: "all" (HTTP ones too),
#: "tcp" (TCP-protocol traffic only; HTTP has its own stats) or None (no TCP stats).
TCP_COUNTED: dict[str, dict[str, str | None]] = {
    "linkerd": {"client": "all", "server": "all"},     # every connection the proxy handles
    "istio": {"client": "tcp", "server": "tcp"},       # istio_tcp_* for TCP-protocol traffic
    "consul": {"client": "all", "server": "tcp"},      # upstream cluster cx stats; tcp_proxy downstream stats
    "kuma": {"client": "all", "server": "all"},        # cluster cx stats, outbound and inbound (localhost_*)
    "hubble": {"client": None, "server": None},        # L7 flows only
    "none": {"client": "all", "server": "all"},
}


def tcp_truth(traffic: Traffic, mesh: str) -> pd.DataFrame:
    """Per edge, observing side and interval: connections and bytes, from the client's point of view.

    Each mesh's proxies count the connections :data:`TCP_COUNTED` says: Envoy's cluster
    stats (Consul's client side, Kuma) and Linkerd count every connection, HTTP ones
    included; Istio's ``istio_tcp_*`` and Envoy's TCP proxy stats count TCP-protocol
    traffic only; Hubble has no TCP stats. ``mesh="none"`` gives every connection.
    """
    times = traffic.timestamps()[1:]
    counted = TCP_COUNTED[mesh]
    parts = []
    for et in traffic.edges:
        sides = ["client"] if et.source.meshed or mesh == "none" else []
        if not et.target.external and (et.target.meshed or mesh == "none"):
            sides.append("server")
        for side in sides:
            if counted[side] is None or (counted[side] == "tcp" and not et.is_tcp):
                continue
            parts.append(pd.DataFrame({
                "timestamp": times, "mesh": mesh, "kind": et.target.kind,
                "src_namespace": et.source.namespace, "src_name": et.source.name,
                "dst_namespace": et.target.namespace, "dst_name": et.target.name, "side": side,
                "opened_connections": et.opened.sum(axis=(1, 2))[1:],
                "open_connections": et.open.sum(axis=(1, 2))[1:],
                "sent_bytes_per_second": et.sent_bytes.sum(axis=(1, 2))[1:] / traffic.interval_s,
                "received_bytes_per_second": et.received_bytes.sum(axis=(1, 2))[1:] / traffic.interval_s}))
    return schema.concat(parts, "tcp")


def proxies_truth(traffic: Traffic, mesh: str) -> pd.DataFrame:
    """Per proxy and interval: the proxy's mean CPU cores and its working set at the scrape.

    One proxy per meshed pod, or, for meshes with a proxy per node (Hubble's cilium-envoy),
    one per node, in ``kube-system``, for the whole run.
    """
    times = traffic.timestamps()
    parts = []
    if mesh != "none" and MESH_COSTS[mesh].per_node:
        keep = np.arange(traffic.n) > 0
        for proxy in node_proxies(traffic):
            cpu_seconds, memory = node_proxy_usage(traffic, mesh, proxy.node)
            parts.append(pd.DataFrame({
                "timestamp": times[keep], "mesh": mesh, "namespace": "kube-system", "workload": "cilium-envoy",
                "pod": proxy.name, "container": MESH_COSTS[mesh].container,
                "cpu_cores": cpu_seconds[keep] / traffic.interval_s, "memory_bytes": memory[keep]}))
        return schema.concat(parts, "proxies")
    for w in traffic.scenario.workloads:
        if not w.meshed or mesh == "none":
            continue
        for pod in traffic.pods[w.key]:
            cpu_seconds, memory = proxy_usage(traffic, mesh, pod)
            alive = np.arange(traffic.n)
            keep = (alive > pod.first) & (alive <= pod.last)
            parts.append(pd.DataFrame({
                "timestamp": times[keep], "mesh": mesh, "namespace": w.namespace, "workload": w.name,
                "pod": pod.name, "container": MESH_COSTS[mesh].container,
                "cpu_cores": cpu_seconds[keep] / traffic.interval_s, "memory_bytes": memory[keep]}))
    return schema.concat(parts, "proxies")
