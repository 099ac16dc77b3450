"""Cilium Hubble's ``httpV2`` metrics and the per-node cilium-envoy costs for a traffic run."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import numpy as np

from ..dist import Mixture
from ..pods import _token
from ..render import Family
from ..traffic import Pod, Traffic
from ._common import HUBBLE_BUCKETS_S, NODES, _Context, _grouped, _node, _node_proxy_cost_families, _Sums

#: (method, protocol) as Cilium's Envoy reports them for each edge protocol.
_HUBBLE_HTTP = {"http": ("GET", "HTTP/1.1"), "grpc": ("POST", "HTTP/2")}


def _hubble_agent(traffic: Traffic, node: str) -> dict[str, str]:
    """Scrape labels of the cilium-agent on ``node``, through the ``hubble-metrics`` Service."""
    i = NODES.index(node)
    return {"namespace": "kube-system", "pod": f"cilium-{_token(traffic.scenario.seed, f'cilium/{node}', 5)}",
            "job": "hubble-metrics", "instance": f"192.168.1.{10 + i}:9965"}


def hubble_families(traffic: Traffic) -> list[Family]:
    """Cilium Hubble's ``httpV2`` metrics, from the cilium-agent on each node.

    Sources (cilium/cilium):

    - pkg/hubble/metrics/http/handler.go (httpV2): on each HTTP *response* flow,
      ``hubble_http_requests_total{<context>, method, protocol, status, reporter}`` and
      ``hubble_http_request_duration_seconds{<context>, method, reporter}`` (no ``status``),
      with the request's source and destination (the response flow's labels inverted);
      ``reporter`` is ``client`` for flows seen at egress and ``server`` at ingress. The
      histogram sets no buckets: client_golang's DefBuckets, 0.005 s to 10 s.
    - pkg/hubble/metrics/api/context.go: ``labelsContext`` labels; we render
      ``source_namespace, source_workload, destination_namespace, destination_workload,
      traffic_direction`` (``ingress``/``egress``). Outside the cluster (``reserved:world``)
      namespace and workload are empty.
    - install/kubernetes/cilium/templates/hubble/metrics-service.yaml: agents serve the
      metrics on port 9965 through the headless ``hubble-metrics`` Service in
      ``kube-system``, so ``namespace`` and ``pod`` are the agent's, not the workload's.
    - install/kubernetes/cilium/files/hubble/dashboards/hubble-l7-http-metrics-by-workload.json:
      success is ``status!~"5.*"``; latency is ``histogram_quantile`` over ``rate`` of the
      buckets, in seconds.

    Cilium has no sidecars: an endpoint's HTTP goes through its node's Envoy only when L7
    policy selects it. Here a meshed workload is one with L7 policy both ways: its ingress
    is reported by ``server`` flows on its pods' nodes, its egress by ``client`` flows.
    Hubble knows every pod's identity, so unmeshed callers are named on the server side.

    Modelling choices: each agent's series exist from the first scrape (a real agent
    creates one on its first flow, and ``increase`` misses that first count); agents do
    not restart, so pod restarts reset nothing. gRPC errors ride on HTTP 200 and count as
    successes, as on Cilium's dashboards. TCP edges have no L7 flows and no ``http``
    metrics. Proxy cost is per node (cilium-envoy), see :mod:`meshlab.sim.costs`.
    """
    ctx = _Context(traffic, "hubble")
    fam: dict[str, Family] = {}
    requests = fam.setdefault("hubble_http_requests_total", Family(
        "hubble_http_requests_total", "counter", "Count of HTTP requests"))
    duration = fam.setdefault("hubble_http_request_duration_seconds", Family(
        "hubble_http_request_duration_seconds", "histogram", "Quantiles of HTTP request duration in seconds",
        le=HUBBLE_BUCKETS_S, unit_ms=1000.0))
    always = np.ones(traffic.n, dtype=bool)
    sums = _Sums()
    for et in traffic.edges:
        if et.is_tcp:
            continue
        src, dst = et.source, et.target
        method, protocol = _HUBBLE_HTTP[et.edge.protocol]
        peers = {"source_namespace": src.namespace, "source_workload": src.name,
                 "destination_namespace": "" if dst.external else dst.namespace,
                 "destination_workload": "" if dst.external else dst.name}
        sides: list[tuple[str, str, int, list[Pod], Callable[[], Mixture]]] = []
        if dst.meshed:
            sides.append(("server", "ingress", 2, traffic.pods[dst.key], partial(ctx.server_latency, dst)))
        if src.meshed:
            sides.append(("client", "egress", 1, traffic.pods[src.key],
                          partial(ctx.client_latency, dst, src, et.edge.network_ms)))
        for reporter, direction, axis, pods, latency in sides:
            for pod in pods:
                context = {**peers, "traffic_direction": direction}
                agent = _hubble_agent(traffic, _node(pod))
                by_status = _grouped(et, axis, pod.index, et.http_status)
                for status, counts in by_status.items():
                    sums.add(requests, {**context, "method": method, "protocol": protocol, "status": status,
                                        "reporter": reporter, **agent}, counts, always)
                sums.add(duration, {**context, "method": method, "reporter": reporter, **agent},
                         np.sum(list(by_status.values()), axis=0), always, None, latency)
    sums.write()
    _node_proxy_cost_families(ctx, fam)
    return list(fam.values())
