"""Linkerd 2: golden signals from linkerd2-proxy's ``response_total`` and ``response_latency_ms``.

- Workload traffic is what each workload's own proxy saw inbound (``direction="inbound"``),
  from every caller, meshed or not; ``classification`` says success or failure (Linkerd
  fails HTTP 5xx and gRPC statuses 2, 4, 13, 14 and 15).
- Edges are the callers' outbound view (``direction="outbound"``, side ``client``), named
  by the ``dst_*`` labels; egress without ``dst_*`` labels is left out.
- TCP is the callers' outbound view too (``peer="dst"``), for every connection, HTTP
  ones included, with the proxy's own open-connection gauge; per workload, the inbound
  view (``peer="src"``), from every caller. Edges and TCP join
  workloads of one kind, as ``linkerd viz edges`` does.
- Proxy cost is the ``linkerd-proxy`` container in cAdvisor, or with ``source="proxy"``
  the proxy's own ``process_*`` metrics (``job="linkerd-proxy"``), as Linkerd's Grafana
  dashboards read it.
- Where ``linkerd viz stat`` uses ``irate`` for latency and ``increase`` over a fixed 1m
  window for counts, meshlab uses ``rate``/``increase`` over any window you choose.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from ..prometheus.promql import NotEqual
from .base import (
    DST_WORKLOAD,
    WORKLOAD,
    WORKLOAD_KIND,
    Identity,
    Mesh,
    Owners,
    Signal,
    TcpSignal,
    label_rewrites,
)
from .registry import register

__all__ = ["Linkerd"]

#: kind -> the label Linkerd's scrape config gives the workload's name
KIND_LABELS = {"deployment": "deployment", "statefulset": "statefulset", "daemonset": "daemonset",
               "job": "k8s_job", "pod": "pod"}
#: label -> Kubernetes kind, for kind "workload": every series has one of them
OWNER_LABELS = {label: kind for kind, label in KIND_LABELS.items() if kind != "pod"}



def responses(direction: str) -> Signal:
    """``response_total`` and ``response_latency_ms`` as one direction of the proxies sees them."""
    return Signal("response_total", {"direction": direction}, success={"classification": "success"},
                  failure={"classification": "failure"}, latency="response_latency_ms_bucket")


@register
class Linkerd(Mesh):
    """Linkerd 2 (linkerd2-proxy), as scraped by linkerd-viz's Prometheus."""

    name = "linkerd"
    description = "Linkerd 2: linkerd2-proxy response_total / response_latency_ms"
    kinds = ("namespace", "workload", *KIND_LABELS)
    marker = "response_total"
    workload_signal = responses("inbound")
    edge_signals: ClassVar[Mapping[str, Signal]] = {"client": responses("outbound")}
    tcp_signals: ClassVar[Mapping[str, TcpSignal]] = {"client": TcpSignal(
        {"direction": "outbound", "peer": "dst"}, opened="tcp_open_total", sent="tcp_write_bytes_total",
        received="tcp_read_bytes_total", open="tcp_open_connections")}
    tcp_workload_signal = TcpSignal({"direction": "inbound", "peer": "src"}, opened="tcp_open_total",
                                    sent="tcp_read_bytes_total", received="tcp_write_bytes_total",
                                    open="tcp_open_connections")
    proxy_containers = ("linkerd-proxy",)
    proxy_process = ({"job": "linkerd-proxy"}, "process_cpu_seconds_total", "process_resident_memory_bytes")
    owners = (Owners("process_cpu_seconds_total", {"job": "linkerd-proxy"},
                     ("deployment", "statefulset", "daemonset", "k8s_job")),)

    @classmethod
    def workload_identity(cls, kind: str) -> Identity:
        if kind == "workload":  # whichever owner label the series has
            return Identity("namespace", WORKLOAD, rewrites=label_rewrites(OWNER_LABELS, WORKLOAD, WORKLOAD_KIND),
                            kind_label=WORKLOAD_KIND)
        label = KIND_LABELS.get(kind)
        # a statefulset's series have no deployment label: never group them as an unnamed deployment
        return Identity("namespace", label, extra={label: NotEqual("")} if label else {})

    @classmethod
    def edge_identity(cls, kind: str, side: str) -> Identity:
        if kind == "namespace":
            return Identity("namespace", None, "dst_namespace", None, {"dst_namespace": NotEqual("")})
        if kind == "workload":  # any kind to any kind
            rewrites = (label_rewrites(OWNER_LABELS, WORKLOAD)
                        + label_rewrites({f"dst_{label}": k for label, k in OWNER_LABELS.items()}, DST_WORKLOAD))
            return Identity("namespace", WORKLOAD, "dst_namespace", DST_WORKLOAD, {"dst_namespace": NotEqual("")},
                            rewrites=rewrites)
        src, dst = KIND_LABELS[kind], f"dst_{KIND_LABELS[kind]}"
        return Identity("namespace", src, "dst_namespace", dst, {src: NotEqual(""), dst: NotEqual("")})
