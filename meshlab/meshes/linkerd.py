"""Linkerd 2: golden signals from linkerd2-proxy's ``response_total`` and ``response_latency_ms``.

- Workload traffic is what each workload's own proxy saw inbound (``direction="inbound"``),
  from every caller, meshed or not; ``classification`` says success or failure (Linkerd
  fails HTTP 5xx and gRPC statuses 2, 4, 13, 14 and 15).
- Edges are the callers' outbound view (``direction="outbound"``, side ``client``), named
  by the ``dst_*`` labels; egress without ``dst_*`` labels is left out.
- Where ``linkerd viz stat`` uses ``irate`` for latency and ``increase`` over a fixed 1m
  window for counts, meshlab uses ``rate``/``increase`` over any window you choose.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from ..prometheus.promql import NotEqual
from .base import Identity, Mesh, Signal, register

__all__ = ["Linkerd"]

#: kind -> the label Linkerd's scrape config gives the workload's name
KIND_LABELS = {"deployment": "deployment", "statefulset": "statefulset", "daemonset": "daemonset",
               "job": "k8s_job", "pod": "pod"}



def responses(direction: str) -> Signal:
    """``response_total`` and ``response_latency_ms`` as one direction of the proxies sees them."""
    return Signal("response_total", {"direction": direction}, success={"classification": "success"},
                  failure={"classification": "failure"}, latency="response_latency_ms_bucket")


@register
class Linkerd(Mesh):
    """Linkerd 2 (linkerd2-proxy), as scraped by linkerd-viz's Prometheus."""

    name = "linkerd"
    description = "Linkerd 2: linkerd2-proxy response_total / response_latency_ms"
    kinds = ("namespace", *KIND_LABELS)
    marker = "response_total"
    workload_signal = responses("inbound")
    edge_signals: ClassVar[Mapping[str, Signal]] = {"client": responses("outbound")}

    def workload_identity(self, kind: str) -> Identity:
        return Identity("namespace", KIND_LABELS.get(kind))

    def edge_identity(self, kind: str, side: str) -> Identity:
        if kind == "namespace":
            return Identity("namespace", None, "dst_namespace", None, {"dst_namespace": NotEqual("")})
        dst = f"dst_{KIND_LABELS[kind]}"
        return Identity("namespace", KIND_LABELS[kind], "dst_namespace", dst, {dst: NotEqual("")})
