"""Kuma: golden signals from the Envoy cluster stats of each ``kuma-sidecar``.

- A service's own traffic is what its dataplanes' inbound clusters counted
  (``envoy_cluster_upstream_rq_xx{envoy_cluster_name=~"localhost_.*"}``: the sidecar
  forwarding to its own application), from every caller, meshed or not. Kind ``service``
  names it by ``kuma_io_service``, Kuma's own service name (``<service>_<namespace>_svc_<port>``
  on Kubernetes), in the Kubernetes ``namespace`` of its pods; kinds ``namespace`` and
  ``pod`` group the same series by those labels.
- Failures are ``envoy_response_code_class="5"``, as on Kuma's dashboards' status-code
  panels; gRPC statuses ride in HTTP 200 responses and are invisible to these stats.
- Latency is ``envoy_cluster_upstream_rq_time_bucket`` on the same clusters, in ms.
- Edges are the callers' outbound clusters (side ``client``): source ``kuma_io_service``,
  destination ``envoy_cluster_name`` (the callee's ``kuma.io/service``). Left out: inbound
  ``localhost_*`` clusters (the same requests again, at the callee) and Kuma's own clusters
  (``kuma_envoy_admin``, ``kuma_metrics_hijacker``, through which every Prometheus scrape
  of a dataplane goes, ``kuma_readiness``, ``ads_cluster``, ``access_log_sink``, and the
  TCP-only passthrough clusters). The inbound side cannot name callers, so there is no
  ``server`` side. An edge's ``dst_namespace`` is looked up from ``envoy_server_live``'s
  ``kuma_io_services`` (one more query, the series index) and is missing for
  ExternalServices, which have no dataplane.

TCP is the callers' outbound cluster connection stats (``envoy_cluster_upstream_cx_*``,
side ``client``), named like the edges; per workload, its inbound ``localhost_*``
clusters'. Envoy keeps them for every cluster, so HTTP's pooled connections are there
too. Proxy cost is the ``kuma-sidecar`` container in cAdvisor; each pod's workload comes
from its Kubernetes name (Kuma's labels name services).

Where meshlab differs from Kuma's own tooling (kumahq/kuma
app/kumactl/data/install/k8s/metrics/grafana/, the "Kuma Service", "Kuma Dataplane",
"Kuma Mesh" and "Kuma Service to Service" dashboards):

- The dashboards read ``rate``/``irate`` over ``$__rate_interval`` or 1m; meshlab uses
  ``increase``/``rate`` over the window you choose.
- Their latency panels take ``histogram_quantile`` per series and then ``max`` (or
  ``sum``) over dataplanes; meshlab sums the buckets of all a service's dataplanes by
  ``le`` first, which is the quantile of the service's requests.
- Newer dashboards count status codes in ``envoy_cluster_external_upstream_rq_xx``,
  Envoy's split of the same counter by request origin; meshlab reads the unsplit
  ``envoy_cluster_upstream_rq_xx``, which counts every origin.
- They select a service with ``kuma_io_services=~".*svc.*"`` (every service of a
  dataplane); meshlab groups by ``kuma_io_service``, so a dataplane with several
  inbounds is counted under its first service.
- Kuma 2.x can name clusters in the newer KRI and ``self_`` formats (kumahq/kuma
  docs/madr/decisions/077-*); this adapter reads the classic names the shipped
  dashboards read.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import pandas as pd

from ..errors import InvalidArgument
from ..prometheus.client import Prometheus
from ..prometheus.promql import NotEqual, NotRegex, Regex, selector
from .base import WORKLOAD, WORKLOAD_KIND, Identity, Mesh, Signal, TcpSignal, earliest_sample, pod_rewrites
from .envoy import FAILURE, SUCCESS
from .registry import register

__all__ = ["Kuma"]

#: the inbound clusters: the sidecar forwarding to its own application
INBOUND = Regex("localhost_.*")
#: clusters of Kuma's own and of plain-TCP passthrough, which carry no service-to-service requests
NOT_SERVICES = NotRegex("localhost_.*|kuma_envoy_admin|kuma_metrics_hijacker|kuma_readiness|ads_cluster"
                        "|access_log_sink|(in|out)bound_passthrough_ipv[46]")
KUMA_SERIES = {"kuma_io_service": NotEqual("")}


def clusters(selection: Regex | NotRegex) -> Signal:
    """``envoy_cluster_upstream_rq_xx`` and its time histogram on some of a dataplane's clusters."""
    return Signal("envoy_cluster_upstream_rq_xx", {**KUMA_SERIES, "envoy_cluster_name": selection}, SUCCESS, FAILURE,
                  latency="envoy_cluster_upstream_rq_time_bucket")


@register
class Kuma(Mesh):
    """Kuma (Envoy sidecars, ``kuma-sidecar``), scraped through ``kuma_sd`` as Kuma's own install does."""

    name = "kuma"
    description = "Kuma: Envoy inbound (localhost_*) and outbound cluster stats with kuma_io_* labels"
    kinds = ("namespace", "workload", "service", "pod")
    default_kind = "service"
    marker = "envoy_cluster_upstream_rq_xx"
    workload_signal = clusters(INBOUND)
    edge_signals: ClassVar[Mapping[str, Signal]] = {"client": clusters(NOT_SERVICES)}
    tcp_signals: ClassVar[Mapping[str, TcpSignal]] = {"client": TcpSignal(
        {**KUMA_SERIES, "envoy_cluster_name": NOT_SERVICES}, opened="envoy_cluster_upstream_cx_total",
        sent="envoy_cluster_upstream_cx_tx_bytes_total", received="envoy_cluster_upstream_cx_rx_bytes_total",
        open="envoy_cluster_upstream_cx_active")}
    tcp_workload_signal = TcpSignal(
        {**KUMA_SERIES, "envoy_cluster_name": INBOUND}, opened="envoy_cluster_upstream_cx_total",
        sent="envoy_cluster_upstream_cx_tx_bytes_total", received="envoy_cluster_upstream_cx_rx_bytes_total",
        open="envoy_cluster_upstream_cx_active")
    proxy_containers = ("kuma-sidecar",)

    @classmethod
    def workload_identity(cls, kind: str) -> Identity:
        if kind == "workload":  # the dataplane's own pod names its workload
            return Identity("namespace", WORKLOAD, rewrites=pod_rewrites("pod", WORKLOAD, WORKLOAD_KIND),
                            kind_label=WORKLOAD_KIND)
        return Identity("namespace", {"service": "kuma_io_service", "pod": "pod"}.get(kind))

    @classmethod
    def edge_identity(cls, kind: str, side: str) -> Identity:
        if kind == "workload":  # the caller's pod; the destination service's workload from its dataplanes
            return Identity("namespace", WORKLOAD, None, "envoy_cluster_name", rewrites=pod_rewrites("pod", WORKLOAD))
        if kind != "service":
            raise InvalidArgument(f"kuma names edges by service or workload only, not by {kind!r}")
        return Identity("namespace", "kuma_io_service", None, "envoy_cluster_name")

    def _fill_edges(self, frame: pd.DataFrame, kind: str, side: str) -> pd.DataFrame:
        # each dataplane's envoy_server_live names its services (",svc,") and its pods' namespace
        fill = self._dst_workloads_from_series if kind == "workload" else self._dst_namespaces_from_series
        if kind == "workload":
            frame["dst_namespace"] = pd.Series(pd.NA, index=frame.index, dtype="string")
        return fill(frame, selector("envoy_server_live", KUMA_SERIES),
                    lambda series: [s for s in series.get("kuma_io_services", "").split(",") if s])

    @classmethod
    def detect(cls, prom: Prometheus | str) -> pd.Timestamp | None:
        # Envoy stats alone could be any Envoy mesh's (Consul's have the same names): Kuma's carry kuma_io_service.
        return earliest_sample(prom, selector(cls.marker, KUMA_SERIES))
