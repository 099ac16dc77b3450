"""What each mesh's proxy costs: CPU, memory and added latency, as functions of load.

Every proxy follows the same linear model, with per-mesh parameters::

    cpu_cores   = cpu_idle + cpu_per_krps * krps
    memory_mib  = memory_idle_mib + memory_per_endpoint_kib * endpoints / 1024 + memory_per_krps_mib * krps
    latency_ms  = latency_idle_ms + latency_per_krps_ms * krps          (added once per proxy a request crosses)

``krps`` is thousands of requests per second through that proxy (in and out); ``endpoints``
is how many destination pods it knows. The parameters come from published measurements:

Istio (Envoy sidecar)
    - CPU: a least-squares fit to Istio's own ``perf/benchmark`` results
      (``istio/tools`` perf/benchmark/graph_plotter/example_plot/benchmark.csv, 2020-08-12,
      mode ``v2-stats-nullvm_both``, 16 connections, 10 to 3000 qps): client sidecar
      43.7 + 189.2 millicores per 1000 qps, server sidecar 44.2 + 211.0. We use 0.044 cores
      idle and 0.200 cores per 1000 rps. (Istio's "Performance and Scalability" page quotes
      0.35 vCPU per 1000 rps in a 1000-service mesh: https://istio.io/v1.16/docs/ops/deployment/performance-and-scalability/)
    - Memory: the same CSV: 64-71 MiB per sidecar at low load, server sidecars growing to
      about 116 MiB at 3000 qps (16 MiB per 1000 rps). Per-endpoint configuration memory
      (40 KiB per endpoint) is an assumption, not a measurement.
    - Latency: the same CSV, ``v2-stats-nullvm_both`` minus ``none_mtls_baseline`` at the
      same load: +1.32 ms at p50 for the client and server sidecars together at 10 qps,
      +2.06 ms at 1000 qps, +2.68 ms at 3000 qps; per proxy 0.66 ms + 0.23 ms per 1000 rps.
      Istio's page quotes +2.65 ms at p90 for both proxies at 1000 rps.
    - Latency under load (scenarios with ``proxy_latency: fitted``): per quantile,
      ``added_ms = a + b * krps + c * log2(connections)`` per proxy at p50, p90 and p99
      (:data:`ENVOY_ADDED_LATENCY`), fitted to the same CSV (mode ``v2-stats-nullvm`` minus
      the ``*_baseline`` runs at the same qps and connections, halved for two sidecars) by
      ``meshlab/sim/latency_fit.py`` (``fit_added_latency``; the model and its R² are
      explained there). Connections are held inside the CSV's 2 to 64.

Linkerd (linkerd2-proxy)
    - Memory: 17.8 MB resident for a nearly idle proxy (the linkerd2 ``prommatch`` sample
      scrape); 26.3 MB max at 2000 rps against Istio's 156.2 MB
      (https://linkerd.io/2021/11/29/linkerd-vs-istio-benchmarks-2021/): 17 MiB idle plus
      4.65 MiB per 1000 rps; 8 KiB per endpoint is an assumption.
    - CPU: the same post measured 36 ms against Istio's 67 ms of max proxy CPU at 2000 rps;
      we scale Istio's per-request cost by 36/67 (0.107 cores per 1000 rps), idle 0.002 cores.
    - Latency: the same post measured p50 +6 to +8 ms for Linkerd against +17 to +20 ms
      for Istio across the whole test application; we scale Istio's per-proxy figures by 0.4,
      the fitted latency under load too (a published latency ratio, so not the CPU ratio 36/67).

Consul Connect (Envoy via consul-dataplane)
    - No per-load measurements are published. HashiCorp's ECS guidance reports Envoy using
      at most 55 MB on a minimal task (https://developer.hashicorp.com/consul/docs/v1.11.x/ecs/task-resource-usage).
      Consul runs the same Envoy as Istio, so CPU and latency reuse Istio's Envoy figures and
      memory starts from 55 MiB. This is stated in every dataset card that uses it.

Kuma (Envoy in the ``kuma-sidecar`` container, with kuma-dp)
    - No per-load measurements are published that we could find. Kuma's sidecar is Envoy
      plus a Go agent (kuma-dp), as Istio's ``istio-proxy`` is Envoy plus pilot-agent, so
      Kuma reuses Istio's Envoy figures above, including the 66 MiB idle working set.
    - Endpoints: "by default, when transparent proxying is used, every data plane proxy
      follows every other data plane proxy in the mesh" (Kuma's "Performance fine-tuning"
      page, https://kuma.io/docs/2.1.x/documentation/fine-tuning/), so, as with Istio, each
      sidecar knows every meshed pod.

Cilium / Hubble (Envoy per node: the ``cilium-envoy`` DaemonSet)
    - Cilium has no sidecars. Its L7 proxy is one Envoy per node, in the ``cilium-envoy``
      DaemonSet (container ``cilium-envoy``; cilium/cilium
      install/kubernetes/cilium/templates/cilium-envoy/daemonset.yaml) or embedded in the
      cilium-agent, and only traffic to or from endpoints with L7 policy goes through it. So
      the cost is per node (``per_node``): the load is every L7 request proxied on that node,
      in and out, and there is no per-pod proxy cost at all.
    - We found no published per-load CPU, memory or latency figures for cilium-envoy.
      CPU and added latency reuse Istio's Envoy figures (the same Envoy doing the same HTTP
      proxying); the 55 MiB idle working set is HashiCorp's minimal-Envoy figure above;
      memory per endpoint counts the L7 endpoints on the node. All three are assumptions,
      not measurements of Cilium.
    - The latency a proxy adds is computed from the request rate of the workload's pods
      (as for sidecars), not from the whole node's rate; at 0.23 ms per 1000 rps the
      difference is well below a bucket's width.

All the data meshlab generates from this model is simulated, and says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypedDict

import numpy as np

__all__ = ["CONNECTIONS_RANGE", "ENVOY_ADDED_LATENCY", "MESH_COSTS", "ProxyCost"]

#: The latency one Envoy sidecar adds under load, per quantile: ``(quantile, a, b, c)`` for
#: ``added_ms = a + b * krps + c * log2(connections)``. Fitted by
#: ``meshlab/sim/latency_fit.py:fit_added_latency`` to ``istio-tools-benchmark.csv``
#: (istio/tools perf/benchmark, mode ``v2-stats-nullvm``); tests/test_sweep.py refits them.
ENVOY_ADDED_LATENCY: tuple[tuple[float, float, float, float], ...] = (
    (0.5, 0.2154, 0.2945, 0.0904),
    (0.9, 0.0960, 0.3216, 0.1925),
    (0.99, 0.0034, 0.2924, 0.2905),
)
#: The connection counts the fit saw; the model holds connections inside them.
CONNECTIONS_RANGE = (2.0, 64.0)


@dataclass(frozen=True)
class ProxyCost:
    """The linear cost model of one mesh's proxy; see the module docstring for sources."""

    container: str
    cpu_idle: float
    cpu_per_krps: float
    memory_idle_mib: float
    memory_per_endpoint_kib: float
    memory_per_krps_mib: float
    latency_idle_ms: float
    latency_per_krps_ms: float
    #: one proxy per node (Cilium's cilium-envoy) instead of one per meshed pod
    per_node: bool = False
    #: the fitted latency under load, ``(quantile, a, b, c)`` (see :data:`ENVOY_ADDED_LATENCY`)
    added_latency: tuple[tuple[float, float, float, float], ...] = ENVOY_ADDED_LATENCY
    #: this mesh's proxy latency as a share of Envoy's
    added_latency_scale: float = 1.0

    def cpu_cores(self, rps: np.ndarray) -> np.ndarray:
        """CPU cores used at a request rate."""
        return self.cpu_idle + self.cpu_per_krps * np.asarray(rps, dtype=np.float64) / 1000

    def memory_bytes(self, rps: np.ndarray, endpoints: float) -> np.ndarray:
        """Working-set bytes at a request rate with a number of known endpoints."""
        mib = (self.memory_idle_mib + self.memory_per_endpoint_kib * endpoints / 1024
               + self.memory_per_krps_mib * np.asarray(rps, dtype=np.float64) / 1000)
        return mib * 1024 * 1024

    def latency_ms(self, rps: np.ndarray) -> np.ndarray:
        """Latency one proxy adds to a request at a request rate through it."""
        return self.latency_idle_ms + self.latency_per_krps_ms * np.asarray(rps, dtype=np.float64) / 1000

    @property
    def added_quantiles(self) -> tuple[float, ...]:
        """The quantiles :meth:`added_latency_ms` gives, ascending."""
        return tuple(q for q, *_ in self.added_latency)

    def added_latency_ms(self, rps: np.ndarray, connections: np.ndarray) -> np.ndarray:
        """Latency one proxy adds at each of :attr:`added_quantiles`, under load (the fitted model).

        Returns an array with a trailing axis of quantiles, never negative and never
        smaller at a higher quantile (a fit's residuals could say otherwise at idle).
        """
        krps = np.asarray(rps, dtype=np.float64)[..., None] / 1000
        doublings = np.log2(np.clip(np.asarray(connections, dtype=np.float64), *CONNECTIONS_RANGE))[..., None]
        a, b, c = (np.array([row[i] for row in self.added_latency]) for i in (1, 2, 3))
        added = (a + b * krps + c * doublings).clip(min=0.0) * self.added_latency_scale
        return np.maximum.accumulate(added, axis=-1)


class _EnvoyFigures(TypedDict):
    cpu_idle: float
    cpu_per_krps: float
    memory_per_endpoint_kib: float
    memory_per_krps_mib: float
    latency_idle_ms: float
    latency_per_krps_ms: float


#: Envoy's figures from Istio's benchmark, shared by every Envoy-based mesh (see above).
_ENVOY: _EnvoyFigures = {"cpu_idle": 0.044, "cpu_per_krps": 0.200, "memory_per_endpoint_kib": 40.0,
                         "memory_per_krps_mib": 16.0, "latency_idle_ms": 0.66, "latency_per_krps_ms": 0.23}

#: Proxy cost models by mesh name.
MESH_COSTS: dict[str, ProxyCost] = {
    "istio": ProxyCost(container="istio-proxy", memory_idle_mib=66.0, **_ENVOY),
    "consul": ProxyCost(container="consul-dataplane", memory_idle_mib=55.0, **_ENVOY),
    "linkerd": ProxyCost(container="linkerd-proxy", cpu_idle=0.002, cpu_per_krps=0.200 * 36 / 67,
                         memory_idle_mib=17.0, memory_per_endpoint_kib=8.0, memory_per_krps_mib=4.65,
                         latency_idle_ms=0.66 * 0.4, latency_per_krps_ms=0.23 * 0.4, added_latency_scale=0.4),
    "kuma": ProxyCost(container="kuma-sidecar", memory_idle_mib=66.0, **_ENVOY),
    "hubble": ProxyCost(container="cilium-envoy", memory_idle_mib=55.0, per_node=True, **_ENVOY),
}
