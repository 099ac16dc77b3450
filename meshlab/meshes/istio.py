"""Istio: golden signals from the Envoy sidecars' ``istio_requests_total`` and duration histogram.

- Workload traffic is what the destination reported (``reporter="destination"``), from
  every caller including unmeshed ones (``source_workload="unknown"``). Never summed
  with ``reporter="source"``: each request is counted once by each reporter.
- Failures are ``response_code=~"5.."``, as Istio's dashboards and Flagger count them.
  gRPC errors travel in HTTP 200 responses, so, as on those dashboards, they count as
  successes (Kiali alone also reads ``grpc_response_status``).
- Edges: ``reporter="source"`` is side ``client``, ``reporter="destination"`` side
  ``server``; calls from outside the mesh and to services outside it (``unknown``) are
  left out.
- Istio labels carry the workload's name, not its Kubernetes kind: ``deployment``,
  ``statefulset``, ``daemonset`` and ``job`` all read ``destination_workload``.
- TCP comes from ``istio_tcp_*``, which Istio emits for TCP-protocol traffic only, from
  both reporters. Istio has no open-connection gauge: open connections are opened minus
  closed, each summed per edge (a closed series appears only once a connection has
  closed, and its ``response_flags`` may differ). ``istio_tcp_received_bytes_total`` is what the client sent.
- Proxy cost is the ``istio-proxy`` container in cAdvisor; pods are named to workloads
  by the ``*_workload`` label each proxy reports about itself.
- Latency is ``istio_request_duration_milliseconds``. Where the dashboards use ``irate``,
  meshlab uses ``rate``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from ..prometheus.promql import NotEqual, NotRegex, Regex
from .base import WORKLOAD_KIND, WORKLOAD_KINDS, Identity, Mesh, Owners, Signal, TcpSignal, pod_rewrites
from .registry import register

__all__ = ["Istio"]



def requests(reporter: str) -> Signal:
    """``istio_requests_total`` and its duration histogram as one reporter saw them."""
    return Signal("istio_requests_total", {"reporter": reporter}, success={"response_code": NotRegex("5..")},
                  failure={"response_code": Regex("5..")}, latency="istio_request_duration_milliseconds_bucket")


def tcp(reporter: str) -> TcpSignal:
    """``istio_tcp_*`` as one reporter saw them; the byte counters are named for the request's direction."""
    return TcpSignal({"reporter": reporter}, opened="istio_tcp_connections_opened_total",
                     sent="istio_tcp_received_bytes_total", received="istio_tcp_sent_bytes_total",
                     closed="istio_tcp_connections_closed_total")


#: each reporting proxy's own workload: the destination's when it reports as destination, and so on
REPORTED = "istio_requests_total|istio_tcp_connections_opened_total"
MESHED_PEERS = {"source_workload": NotEqual("unknown"), "destination_workload": NotEqual("unknown")}


@register
class Istio(Mesh):
    """Istio standard metrics (Envoy sidecars with the istio_stats filter)."""

    name = "istio"
    description = "Istio: istio_requests_total / istio_request_duration_milliseconds"
    kinds = ("namespace", "workload", *WORKLOAD_KINDS, "pod", "service")
    marker = "istio_requests_total"
    workload_signal = requests("destination")
    edge_signals: ClassVar[Mapping[str, Signal]] = {"client": requests("source"), "server": requests("destination")}
    tcp_signals: ClassVar[Mapping[str, TcpSignal]] = {"client": tcp("source"), "server": tcp("destination")}
    tcp_workload_signal = tcp("destination")
    proxy_containers = ("istio-proxy",)
    owners = (Owners(REPORTED, {"reporter": "destination"}, ("destination_workload",)),
              Owners(REPORTED, {"reporter": "source"}, ("source_workload",)))

    @classmethod
    def workload_identity(cls, kind: str) -> Identity:
        if kind == "pod":
            return Identity("namespace", "pod")
        if kind == "service":
            return Identity("destination_service_namespace", "destination_service_name")
        if kind == "workload":  # the reporting (destination) pod's name says its kind
            return Identity("destination_workload_namespace", "destination_workload",
                            rewrites=pod_rewrites("pod", None, WORKLOAD_KIND), kind_label=WORKLOAD_KIND)
        return Identity("destination_workload_namespace", None if kind == "namespace" else "destination_workload")

    @classmethod
    def edge_identity(cls, kind: str, side: str) -> Identity:
        if kind in ("pod", "service"):
            from ..errors import InvalidArgument

            raise InvalidArgument(f"istio names edges by workload; kind {kind!r} has no source side in its labels")
        if kind == "namespace":
            return Identity("source_workload_namespace", None, "destination_workload_namespace", None, MESHED_PEERS)
        return Identity("source_workload_namespace", "source_workload", "destination_workload_namespace",
                        "destination_workload", MESHED_PEERS)
