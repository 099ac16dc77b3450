"""Consul Connect: golden signals from Envoy's stats with Consul's tags.

- A service's own traffic is its public listener's downstream stats
  (``envoy_http_downstream_rq_*{envoy_http_conn_manager_prefix="public_listener"}``), kind
  ``service``, named by ``consul_source_service`` (the service whose proxy it is), in the
  Kubernetes ``namespace`` of its pods. Failures are ``envoy_response_code_class="5"``,
  as in the Consul UI; gRPC statuses are not visible in these stats.
- Edges are the caller's upstream cluster stats (``envoy_cluster_upstream_rq_*``, side
  ``client``). The ``local_app`` cluster (the proxy forwarding to its own application) and
  the ``upstream`` listener count the same requests again and are left out.
- Consul's labels carry Consul namespaces, not Kubernetes ones: an edge's
  ``dst_namespace`` is looked up from the destination service's own proxy series (one
  more query), and is missing for services with no proxy (external ones).
- TCP is the caller's upstream cluster connection stats (``envoy_cluster_upstream_cx_*``,
  side ``client``), with Envoy's active-connection gauge; Envoy keeps them for every
  upstream, so HTTP upstreams' pooled connections are there too. Per workload, the public
  listener's TCP proxy stats (``envoy_tcp_downstream_cx_*``), which do not name callers
  and have no open-connection gauge (``open_connections`` is NaN).
- Proxy cost is the ``consul-dataplane`` (or older ``envoy-sidecar``) container in
  cAdvisor; pods are named to services by ``consul_source_service``.
- The Consul UI uses ``rate`` over 15m windows; meshlab lets you choose the window.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import pandas as pd

from ..prometheus.client import Prometheus
from ..prometheus.promql import NotEqual, OneOf, selector
from .base import (
    WORKLOAD,
    WORKLOAD_KIND,
    Identity,
    Mesh,
    Owners,
    Signal,
    TcpSignal,
    earliest_sample,
    pod_rewrites,
)
from .envoy import FAILURE, SUCCESS
from .registry import register

__all__ = ["Consul"]

PUBLIC = {"envoy_http_conn_manager_prefix": "public_listener"}
UPSTREAMS = {"envoy_cluster_name": NotEqual("local_app"), "consul_destination_service": NotEqual("")}
#: series every Consul proxy exports, labelled with its own service and Kubernetes namespace
OWN_SERIES = ("envoy_http_downstream_rq_completed", "envoy_tcp_downstream_cx_total")


@register
class Consul(Mesh):
    """Consul Connect with Envoy sidecars (consul-dataplane or envoy-sidecar)."""

    name = "consul"
    description = "Consul Connect: Envoy public_listener and upstream cluster stats"
    kinds = ("namespace", "workload", "service", "pod")
    default_kind = "service"
    marker = "envoy_http_downstream_rq_xx"
    workload_signal = Signal("envoy_http_downstream_rq_xx", PUBLIC, SUCCESS, FAILURE,
                             latency="envoy_http_downstream_rq_time_bucket")
    edge_signals: ClassVar[Mapping[str, Signal]] = {"client": Signal(
        "envoy_cluster_upstream_rq_xx", UPSTREAMS, SUCCESS, FAILURE, latency="envoy_cluster_upstream_rq_time_bucket")}
    tcp_signals: ClassVar[Mapping[str, TcpSignal]] = {"client": TcpSignal(
        UPSTREAMS, opened="envoy_cluster_upstream_cx_total", sent="envoy_cluster_upstream_cx_tx_bytes_total",
        received="envoy_cluster_upstream_cx_rx_bytes_total", open="envoy_cluster_upstream_cx_active")}
    # Envoy's TCP proxy stats have no open-connection gauge of their own
    tcp_workload_signal = TcpSignal({"envoy_tcp_prefix": "public_listener"}, opened="envoy_tcp_downstream_cx_total",
                                    sent="envoy_tcp_downstream_cx_rx_bytes_total",
                                    received="envoy_tcp_downstream_cx_tx_bytes_total")
    proxy_containers = ("consul-dataplane", "envoy-sidecar")
    owners = (Owners("|".join(OWN_SERIES), {}, ("consul_source_service",)),)

    @classmethod
    def workload_identity(cls, kind: str) -> Identity:
        if kind == "workload":  # the proxy's own pod names its workload
            return Identity("namespace", WORKLOAD, rewrites=pod_rewrites("pod", WORKLOAD, WORKLOAD_KIND),
                            kind_label=WORKLOAD_KIND)
        return Identity("namespace", {"service": "consul_source_service", "pod": "pod"}.get(kind))

    @classmethod
    def edge_identity(cls, kind: str, side: str) -> Identity:
        if kind == "workload":  # the caller's pod; the destination service's workload from its own proxies
            return Identity("namespace", WORKLOAD, "consul_destination_namespace", "consul_destination_service",
                            rewrites=pod_rewrites("pod", WORKLOAD))
        if kind != "service":
            from ..errors import InvalidArgument

            raise InvalidArgument(f"consul names edges by service or workload only, not by {kind!r}")
        return Identity("namespace", "consul_source_service", "consul_destination_namespace",
                        "consul_destination_service")

    def _fill_edges(self, frame: pd.DataFrame, kind: str, side: str) -> pd.DataFrame:
        # every proxy's own series carry its service and the Kubernetes namespace of its pods
        match = selector(None, {"__name__": OneOf(OWN_SERIES)})
        fill = self._dst_workloads_from_series if kind == "workload" else self._dst_namespaces_from_series
        if kind == "workload":
            frame["dst_namespace"] = pd.Series(pd.NA, index=frame.index, dtype="string")
        return fill(frame, match,
                    lambda series: [series["consul_source_service"]] if "consul_source_service" in series else [])

    @classmethod
    def detect(cls, prom: Prometheus | str) -> pd.Timestamp | None:
        # Any Envoy (Kuma's, a gateway's) has downstream stats: Consul's carry consul_source_service.
        return earliest_sample(prom, selector(cls.marker, {"consul_source_service": NotEqual("")}))
