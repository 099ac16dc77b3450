"""Kuma's Envoy cluster stats (``kuma_io_*`` labels, inbound ``localhost_*`` clusters) for a traffic run."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import numpy as np

from ..dist import Mixture
from ..render import Family
from ..scenario import Workload
from ..traffic import EdgeTraffic, Pod, Traffic
from ._common import (
    _PORT,
    ENVOY_UPSTREAM_CX,
    _code_class,
    _Context,
    _declare,
    _envoy,
    _grouped,
    _proxy_cost_families,
    _Sums,
)

KUMA_MESH = "default"
KUMA_ZONE = "zone-1"
#: Where Prometheus' own scrapes of a dataplane go through Envoy (a decoy: not application traffic).
KUMA_HIJACKER = "kuma_metrics_hijacker"


def _kuma_ports(traffic: Traffic, w: Workload) -> list[int]:
    return sorted({_PORT[et.edge.protocol] for et in traffic.edges if et.target.key == w.key}) or [_PORT["http"]]


def kuma_service(w: Workload, port: int) -> str:
    """Kuma's ``kuma.io/service`` tag for a Kubernetes Service port: ``<service>_<namespace>_svc_<port>``."""
    return f"{w.service_name}_{w.namespace}_svc_{port}"


def _kuma_pod_labels(traffic: Traffic, pod: Pod) -> dict[str, str]:
    w = pod.workload
    services = [kuma_service(w, port) for port in _kuma_ports(traffic, w)]
    return {"mesh": KUMA_MESH, "dataplane": f"{pod.name}.{w.namespace}", "kuma_io_service": services[0],
            "kuma_io_services": f",{','.join(services)},", "kuma_io_zone": KUMA_ZONE,
            "k8s_kuma_io_namespace": w.namespace, "k8s_kuma_io_name": pod.name,
            "namespace": w.namespace, "pod": pod.name, "job": "kuma-dataplanes", "instance": f"{pod.ip}:5670"}


def kuma_families(traffic: Traffic) -> list[Family]:
    """Kuma: Envoy cluster stats from each ``kuma-sidecar``, as Kuma's own Prometheus scrape labels them.

    Sources (kumahq/kuma):

    - Metrics and clusters: the Grafana dashboards Kuma ships,
      app/kumactl/data/install/k8s/metrics/grafana/kuma-service.json, kuma-dataplane.json,
      kuma-mesh.json and kuma-service-to-service.json (and their jsonnet sources under
      grafana/jsonnet/). A service's own (incoming) traffic is its inbound clusters,
      ``envoy_cluster_name=~"localhost_.*"``; outgoing is every other cluster except Kuma's
      ``kuma_envoy_admin`` and ``kuma_metrics_hijacker``. They read
      ``envoy_cluster_upstream_rq_total``, ``envoy_cluster_upstream_rq_time_bucket`` and the
      status classes, as ``envoy_cluster_upstream_rq_xx`` (the service-to-service dashboard)
      and ``envoy_cluster_external_upstream_rq_xx`` (Envoy's external-origin split, newer
      dashboards), by ``envoy_response_code_class``.
    - Names in stats: Envoy turns ``:`` in a cluster's stat name into ``_``, so Kuma's
      ``localhost:8080``, ``kuma:metrics:hijacker`` and ``outbound:passthrough:ipv4`` clusters
      appear as ``localhost_8080``, ``kuma_metrics_hijacker`` and ``outbound_passthrough_ipv4``
      (docs/madr/decisions/070-resource-identifier.md, "Envoy stats"). Outbound clusters are
      named after the destination's ``kuma.io/service`` tag, ``<service>_<namespace>_svc_<port>``
      on Kubernetes (pkg/plugins/runtime/k8s/controllers/inbound_converter.go, ServiceTagFor).
      An external service is modelled as a Kuma ExternalService tagged with the workload's
      name (cluster ``partner``), which has request stats; without one, egress would go
      through the TCP-only passthrough cluster and be invisible at L7. Kuma 2.x's newer
      KRI/``self_`` names (MADR 077) are not modelled.
    - Scrape labels: ``kuma_sd`` plus the relabelling in
      app/kumactl/data/install/k8s/metrics/prometheus/server.yaml (job ``kuma-dataplanes``):
      ``mesh``, ``dataplane`` (``<pod>.<namespace>``), every dataplane tag as a label
      (``kuma_io_service``, ``kuma_io_zone``...), ``k8s_kuma_io_namespace``/``k8s_kuma_io_name``
      copied to ``namespace``/``pod``. MADS adds each tag's plural, ``kuma_io_services``
      = ``",a,b,"`` (pkg/mads/v1/generator/assignments_test.go). Metrics port 5670 (Kuma's
      default). Sidecar container ``kuma-sidecar`` (pkg/plugins/runtime/k8s/util/names.go).

    Decoys: every meshed request is counted twice, by the caller's outbound cluster and the
    callee's inbound ``localhost_<port>`` cluster, and twice more in the ``external`` split;
    each Prometheus scrape is one request through ``kuma_metrics_hijacker``; unmeshed
    callers appear only inbound, and egress only outbound, with no dataplane of its own.
    gRPC errors travel in HTTP 200 responses, so Envoy's code classes see them as ``2``.
    """
    ctx = _Context(traffic, "kuma")
    fam: dict[str, Family] = {}
    rq_total = _envoy(fam, "envoy_cluster_upstream_rq_total")
    rq_xx = _envoy(fam, "envoy_cluster_upstream_rq_xx")
    external_xx = _declare(fam, "envoy_cluster_external_upstream_rq_xx", "counter",
                           "External-origin upstream requests by response code class.")
    rq_time = _envoy(fam, "envoy_cluster_upstream_rq_time")
    cx = {n: _envoy(fam, n) for n in ENVOY_UPSTREAM_CX}
    live = _declare(fam, "envoy_server_live", "gauge", "1 if the server is not currently draining, 0 otherwise.")
    sums = _Sums()

    def requests(labels: dict[str, str], by_class: dict[str, np.ndarray], latency: Callable[[], Mixture] | None,
                 exists: np.ndarray, resets: np.ndarray) -> None:
        for code_class, counts in by_class.items():
            sums.add(rq_xx, {**labels, "envoy_response_code_class": code_class}, counts, exists, resets)
            sums.add(external_xx, {**labels, "envoy_response_code_class": code_class}, counts, exists, resets)
        total = np.sum(list(by_class.values()), axis=0)
        sums.add(rq_total, labels, total, exists, resets)
        if latency is not None:
            sums.add(rq_time, labels, total, exists, resets, latency)

    def connections(labels: dict[str, str], et: EdgeTraffic, pick: Callable[[np.ndarray], np.ndarray],
                    exists: np.ndarray, resets: np.ndarray) -> None:
        # Seen from the proxy, the upstream is the callee (outbound) or the local app (inbound):
        # either way it is sent what the client sent and answers what the client received.
        sums.add(cx["envoy_cluster_upstream_cx_total"], labels, pick(et.opened), exists, resets)
        sums.add(cx["envoy_cluster_upstream_cx_active"], labels, pick(et.open), exists)
        sums.add(cx["envoy_cluster_upstream_cx_tx_bytes_total"], labels, pick(et.sent_bytes), exists, resets)
        sums.add(cx["envoy_cluster_upstream_cx_rx_bytes_total"], labels, pick(et.received_bytes), exists, resets)

    for et in traffic.edges:
        src, dst = et.source, et.target
        port = _PORT[et.edge.protocol]
        for pod in traffic.pods[dst.key] if dst.meshed else []:
            labels = {**_kuma_pod_labels(traffic, pod), "envoy_cluster_name": f"localhost_{port}"}
            exists, resets = ctx.pod_exists(pod), ctx.pod_resets(pod)
            # Envoy keeps connection stats for every cluster, HTTP ones (pooled connections) too
            connections(labels, et, partial(_pick, index=pod.index, axis=2), exists, resets)
            if not et.is_tcp:
                requests(labels, _grouped(et, 2, pod.index, partial(_code_class, et)),
                         partial(ctx.server_latency, dst), exists, resets)
        if not src.meshed:
            continue
        cluster = dst.name if dst.external else kuma_service(dst, port)
        for pod in traffic.pods[src.key]:
            labels = {**_kuma_pod_labels(traffic, pod), "envoy_cluster_name": cluster}
            exists, resets = ctx.pod_exists(pod), ctx.pod_resets(pod)
            connections(labels, et, partial(_pick, index=pod.index, axis=1), exists, resets)
            if not et.is_tcp:
                requests(labels, _grouped(et, 1, pod.index, partial(_code_class, et)),
                         partial(ctx.client_latency, dst, src, et.edge.network_ms), exists, resets)
    meshed = [p for w in traffic.scenario.workloads if w.meshed for p in traffic.pods[w.key]]
    k = np.arange(traffic.n)
    for pod in meshed:
        labels = _kuma_pod_labels(traffic, pod)
        exists, resets = ctx.pod_exists(pod), ctx.pod_resets(pod)
        scrapes = (k > pod.first).astype(np.int64)  # one scrape per interval, through Envoy
        requests({**labels, "envoy_cluster_name": KUMA_HIJACKER}, {"2": scrapes}, None, exists, resets)
        sums.add(live, labels, np.ones(traffic.n, dtype=np.int64), exists)
    sums.write()
    _proxy_cost_families(ctx, meshed, fam, proxy_job=None)
    return list(fam.values())


def _pick(array: np.ndarray, index: int, axis: int) -> np.ndarray:
    """One pod's slice of an ``[interval, source pod, destination pod]`` array, summed over the other side."""
    return array.take(index, axis=axis).sum(axis=1)
