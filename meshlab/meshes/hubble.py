"""Cilium Hubble: golden signals from the ``httpV2`` metrics of each node's cilium-agent.

Cilium has no sidecars: an endpoint's HTTP goes through its node's Envoy (the
``cilium-envoy`` DaemonSet or the agent's embedded one) when L7 policy selects it, and
the agent's Hubble turns each response into ``hubble_http_requests_total`` and
``hubble_http_request_duration_seconds`` (cilium/cilium pkg/hubble/metrics/http/handler.go).
This adapter needs them enabled with workload context, e.g. ``httpV2:labelsContext=
source_namespace,source_workload,destination_namespace,destination_workload,traffic_direction``
(pkg/hubble/metrics/api/context.go).

- Workload traffic is what the destination's node reported (``reporter="server"``), from
  every caller; Hubble knows every pod's identity, so even callers without L7 policy are
  named. Never summed with ``reporter="client"``: a request between two L7-visible
  endpoints is counted once by each.
- Failures are ``status=~"5.*"``, as Cilium's "Hubble L7 HTTP Metrics by Workload"
  dashboard counts them (install/kubernetes/cilium/files/hubble/dashboards/
  hubble-l7-http-metrics-by-workload.json). gRPC errors ride in HTTP 200 responses and
  count as successes, as there.
- Latency is ``histogram_quantile`` over ``rate`` of ``hubble_http_request_duration_seconds_bucket``,
  as on that dashboard, multiplied by 1000: Hubble measures seconds, meshlab reports ms.
  Its buckets are client_golang's defaults (5 ms to 10 s), much coarser than Envoy's.
- Edges: ``reporter="client"`` is side ``client``, ``reporter="server"`` side ``server``.
  Peers outside the cluster (``reserved:world``: empty namespace and workload) are left
  out.
- Names come from ``source_workload``/``destination_workload``, the owning workload's
  name, not its Kubernetes kind: ``deployment``, ``statefulset``, ``daemonset`` and ``job``
  all read the same labels. The scrape's ``namespace`` and ``pod`` are the cilium-agent's
  and are not used.
- Cilium's dashboard uses ``rate`` over ``$__rate_interval``; meshlab uses ``increase``/``rate``
  over the window you choose. There is no ``irate`` to replace.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from ..prometheus.promql import NotEqual, NotRegex, Regex
from .base import WORKLOAD_KINDS, Identity, Mesh, Signal
from .registry import register

__all__ = ["Hubble"]



def flows(reporter: str) -> Signal:
    """``hubble_http_requests_total`` and its duration histogram (in seconds) as one reporter saw them."""
    return Signal("hubble_http_requests_total", {"reporter": reporter}, success={"status": NotRegex("5.*")},
                  failure={"status": Regex("5.*")}, latency="hubble_http_request_duration_seconds_bucket",
                  latency_scale=1000.0)


@register
class Hubble(Mesh):
    """Cilium Hubble ``httpV2`` metrics with workload ``labelsContext``."""

    name = "hubble"
    description = "Cilium Hubble: hubble_http_requests_total / hubble_http_request_duration_seconds (httpV2)"
    kinds = ("namespace", "workload", *WORKLOAD_KINDS)
    marker = "hubble_http_requests_total"
    workload_signal = flows("server")
    edge_signals: ClassVar[Mapping[str, Signal]] = {"client": flows("client"), "server": flows("server")}
    #: one shared Envoy per node, not a sidecar per pod: proxies() rows are the cilium-envoy pods
    proxy_containers = ("cilium-envoy",)

    @classmethod
    def workload_identity(cls, kind: str) -> Identity:
        return Identity("destination_namespace", None if kind == "namespace" else "destination_workload")

    @classmethod
    def edge_identity(cls, kind: str, side: str) -> Identity:
        if kind == "namespace":
            return Identity("source_namespace", None, "destination_namespace", None,
                            {"source_namespace": NotEqual(""), "destination_namespace": NotEqual("")})
        return Identity("source_namespace", "source_workload", "destination_namespace", "destination_workload",
                        {"source_workload": NotEqual(""), "destination_workload": NotEqual("")})
