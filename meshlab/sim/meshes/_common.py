"""What the simulator's mesh renderers share: buckets, Envoy stats, proxy costs, the render context."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import numpy as np

from ..costs import MESH_COSTS
from ..dist import Mixture
from ..pods import _token
from ..render import Family
from ..scenario import Workload
from ..traffic import EdgeTraffic, Pod, Traffic, _rng

LINKERD_BUCKETS_MS = (1, 2, 3, 4, 5, 10, 20, 30, 40, 50, 100, 200, 300, 400, 500, 1000, 2000, 3000, 4000, 5000,
                      10000, 20000, 30000, 40000, 50000, float("inf"))
ENVOY_BUCKETS_MS = (0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000,
                    1800000, 3600000, float("inf"))
#: Hubble's ``hubble_http_request_duration_seconds`` sets no buckets, so it has client_golang's
#: ``prometheus.DefBuckets``, in seconds (cilium/cilium pkg/hubble/metrics/http/handler.go).
HUBBLE_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, float("inf"))
#: Linkerd counts these gRPC status codes as failures (linkerd2-proxy classify.rs); the rest succeed.
LINKERD_GRPC_FAILURES = frozenset({"2", "4", "13", "14", "15"})

_LINKERD_KIND = {"deployment": "deployment", "statefulset": "statefulset", "daemonset": "daemonset", "job": "k8s_job"}
_PORT = {"http": 8080, "grpc": 9090, "tcp": 6379}
NODES = ("node-a", "node-b", "node-c")


def _node(pod: Pod) -> str:
    return NODES[(pod.index + len(pod.workload.name)) % len(NODES)]


#: Envoy's stats that both Consul's and Kuma's dataplanes expose: name -> (type, HELP, bucket bounds).
ENVOY_STATS: dict[str, tuple[str, str, tuple[float, ...]]] = {
    "envoy_cluster_upstream_rq_total": ("counter", "Total upstream requests.", ()),
    "envoy_cluster_upstream_rq_xx": ("counter", "Upstream requests by response code class.", ()),
    "envoy_cluster_upstream_rq_time": ("histogram", "Upstream request time.", ENVOY_BUCKETS_MS),
    "envoy_cluster_upstream_cx_total": ("counter", "Total upstream connections.", ()),
    "envoy_cluster_upstream_cx_active": ("gauge", "Active upstream connections.", ()),
    "envoy_cluster_upstream_cx_rx_bytes_total": ("counter", "Bytes received from upstream.", ()),
    "envoy_cluster_upstream_cx_tx_bytes_total": ("counter", "Bytes sent to upstream.", ()),
}
ENVOY_UPSTREAM_CX = tuple(name for name in ENVOY_STATS if name.startswith("envoy_cluster_upstream_cx_"))


def _declare(families: dict[str, Family], name: str, kind: str, help_: str, le: tuple[float, ...] = ()) -> Family:
    """The family ``name`` of a renderer's ``families``, added on first use."""
    return families.setdefault(name, Family(name, kind, help_, le=le))


def _envoy(families: dict[str, Family], name: str) -> Family:
    """One of :data:`ENVOY_STATS`, declared in ``families``."""
    kind, help_, le = ENVOY_STATS[name]
    return _declare(families, name, kind, help_, le)


class _Context:
    """Shared views of a traffic run: pod existence, resets and per-pod load, computed once."""

    def __init__(self, traffic: Traffic, mesh: str):
        self.traffic = traffic
        self.mesh = mesh
        self.n = traffic.n
        self.exists = {w.key: traffic.exists(w) for w in traffic.scenario.workloads}
        self.resets = {w.key: traffic.resets(w) for w in traffic.scenario.workloads}

    def pod_exists(self, pod: Pod) -> np.ndarray:
        return self.exists[pod.workload.key][:, pod.index]

    def pod_resets(self, pod: Pod) -> np.ndarray:
        return self.resets[pod.workload.key][:, pod.index]

    def since(self, pod: Pod) -> np.ndarray:
        k = np.arange(self.n)
        return k >= pod.first

    @cache  # noqa: B019 - one context per render; the cache dies with it
    def server_latency(self, target: Workload) -> Mixture:
        return self.traffic.latency(target, self.mesh, "server")

    @cache  # noqa: B019
    def client_latency(self, target: Workload, caller: Workload, network_ms: float) -> Mixture:
        return self.traffic.latency(target, self.mesh, "client", caller=caller, network_ms=network_ms)


def _grouped(et: EdgeTraffic, axis_sum: int, index: int, key: Callable[[str], str]) -> dict[str, np.ndarray]:
    """Per-interval counts at one pod, summed over the other side's pods and over statuses sharing a key."""
    counts = et.requests.take(index, axis=axis_sum)  # [interval, other pods, status]
    per_status = counts.sum(axis=1)
    out: dict[str, np.ndarray] = {}
    for s, status in enumerate(et.statuses):
        k = key(status)
        out[k] = out.get(k, np.zeros(len(per_status), dtype=np.int64)) + per_status[:, s]
    return out


def proxy_usage(traffic: Traffic, mesh: str, pod: Pod) -> tuple[np.ndarray, np.ndarray]:
    """A sidecar's CPU seconds used in each interval and its working-set bytes at each scrape.

    From the mesh's cost model at the pod's request rate (in plus out), with seeded noise
    (5% on CPU, 2% on memory). Istio and Kuma push every endpoint in the mesh to every
    sidecar; Linkerd and Consul proxies know only the endpoints of their own destinations.
    Meshes with one proxy per node (Hubble's cilium-envoy) have :func:`node_proxy_usage`.
    """
    w = pod.workload
    cost = MESH_COSTS[mesh]
    if cost.per_node:
        from ...errors import InvalidArgument

        raise InvalidArgument(f"{mesh} runs one proxy per node, not per pod; use node_proxy_usage()")
    rps = (traffic.inbound_requests(w) + traffic.outbound_requests(w))[:, pod.index] / traffic.interval_s
    if mesh in ("istio", "kuma"):
        endpoints = sum(len(p) for key, p in traffic.pods.items() if traffic.scenario.workload(key).meshed)
    else:
        endpoints = sum(len(traffic.pods[et.target.key]) for et in traffic.edges if et.source.key == w.key)
    # one stream each: drawing memory after CPU from one stream made memory depend on the run's length
    cpu_noise = _rng(traffic.scenario.seed, mesh, "cost", pod.name).lognormal(0.0, 0.05, traffic.n)
    memory_noise = _rng(traffic.scenario.seed, mesh, "memory", pod.name).lognormal(0.0, 0.02, traffic.n)
    seconds = cost.cpu_cores(rps) * cpu_noise * traffic.interval_s
    seconds[0] = 0.0
    working_set = np.rint(cost.memory_bytes(rps, endpoints) * memory_noise)
    return seconds, working_set


def _proxy_cost_families(ctx: _Context, pods: list[Pod], families: dict[str, Family], proxy_job: str | None) -> None:
    """cAdvisor CPU and memory for every meshed pod's proxy container (and the proxy's own process metrics)."""
    cost = MESH_COSTS[ctx.mesh]
    cpu = families.setdefault("container_cpu_usage_seconds_total", Family(
        "container_cpu_usage_seconds_total", "counter", "Cumulative cpu time consumed in seconds."))
    memory = families.setdefault("container_memory_working_set_bytes", Family(
        "container_memory_working_set_bytes", "gauge", "Current working set in bytes."))
    for pod in pods:
        seconds, working_set = proxy_usage(ctx.traffic, ctx.mesh, pod)
        exists, resets = ctx.pod_exists(pod), ctx.pod_resets(pod)
        labels = {"namespace": pod.workload.namespace, "pod": pod.name, "container": cost.container,
                  "image": _image(ctx.mesh), "node": _node(pod), "job": "kubelet",
                  "metrics_path": "/metrics/cadvisor", "instance": _node(pod)}
        cpu.counter(labels, seconds, exists, resets)
        memory.gauge(labels, working_set, exists)
        if proxy_job:
            own = _linkerd_pod_labels(pod)
            families.setdefault("process_cpu_seconds_total", Family(
                "process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.")
            ).counter(own, seconds, exists, resets)
            families.setdefault("process_resident_memory_bytes", Family(
                "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.")
            ).gauge(own, np.rint(working_set * 0.92), exists)


@dataclass(frozen=True)
class NodeProxy:
    """One node's shared proxy (Cilium's ``cilium-envoy`` DaemonSet pod)."""

    node: str
    name: str
    ip: str


def node_proxies(traffic: Traffic) -> list[NodeProxy]:
    """The per-node proxy pods, one on each of the simulated nodes."""
    return [NodeProxy(node, f"cilium-envoy-{_token(traffic.scenario.seed, f'cilium-envoy/{node}', 5)}",
                      f"192.168.1.{10 + i}") for i, node in enumerate(NODES)]


def node_proxy_usage(traffic: Traffic, mesh: str, node: str) -> tuple[np.ndarray, np.ndarray]:
    """A per-node proxy's CPU seconds in each interval and working-set bytes at each scrape.

    Its load is every request it proxies: in to and out of the meshed (L7-policy) pods on
    its node. It knows those pods' endpoints. Noise as in :func:`proxy_usage`.
    """
    cost = MESH_COSTS[mesh]
    requests = np.zeros(traffic.n)
    endpoints = 0
    for w in traffic.scenario.workloads:
        on_node = [p.index for p in traffic.pods[w.key] if w.meshed and _node(p) == node]
        if on_node:
            endpoints += len(on_node)
            requests += (traffic.inbound_requests(w) + traffic.outbound_requests(w))[:, on_node].sum(axis=1)
    rps = requests / traffic.interval_s
    cpu_noise = _rng(traffic.scenario.seed, mesh, "cost", node).lognormal(0.0, 0.05, traffic.n)
    memory_noise = _rng(traffic.scenario.seed, mesh, "memory", node).lognormal(0.0, 0.02, traffic.n)
    seconds = cost.cpu_cores(rps) * cpu_noise * traffic.interval_s
    seconds[0] = 0.0
    working_set = np.rint(cost.memory_bytes(rps, endpoints) * memory_noise)
    return seconds, working_set


def _node_proxy_cost_families(ctx: _Context, families: dict[str, Family]) -> None:
    """cAdvisor CPU and memory for each node's proxy pod, which runs for the whole run."""
    cost = MESH_COSTS[ctx.mesh]
    cpu = families.setdefault("container_cpu_usage_seconds_total", Family(
        "container_cpu_usage_seconds_total", "counter", "Cumulative cpu time consumed in seconds."))
    memory = families.setdefault("container_memory_working_set_bytes", Family(
        "container_memory_working_set_bytes", "gauge", "Current working set in bytes."))
    always = np.ones(ctx.n, dtype=bool)
    for proxy in node_proxies(ctx.traffic):
        seconds, working_set = node_proxy_usage(ctx.traffic, ctx.mesh, proxy.node)
        labels = {"namespace": "kube-system", "pod": proxy.name, "container": cost.container,
                  "image": _image(ctx.mesh), "node": proxy.node, "job": "kubelet",
                  "metrics_path": "/metrics/cadvisor", "instance": proxy.node}
        cpu.counter(labels, seconds, always)
        memory.gauge(labels, working_set, always)


def _image(mesh: str) -> str:
    return {"linkerd": "cr.l5d.io/linkerd/proxy:stable-2.14.10", "istio": "docker.io/istio/proxyv2:1.20.3",
            "consul": "hashicorp/consul-dataplane:1.4.1", "kuma": "docker.io/kumahq/kuma-dp:2.9.3",
            "hubble": "quay.io/cilium/cilium-envoy:v1.30.8"}[mesh]


class _Sums:
    """Series summed per label set, each written once.

    Several edges or pods can feed one series (two callers of one inbound cluster; one
    Hubble agent seeing every pod of a workload on its node): a series must appear once.
    Series merged here share their pod's existence and resets and their latency model.
    """

    def __init__(self) -> None:
        self.items: dict[tuple[str, tuple[tuple[str, str], ...]], list] = {}

    def add(self, family: Family, labels: dict[str, str], values: np.ndarray, exists: np.ndarray,
            resets: np.ndarray | None = None, mixture: Callable[[], Mixture] | None = None) -> None:
        key = (family.name, tuple(sorted(labels.items())))
        item = self.items.get(key)
        if item is None:
            self.items[key] = [family, labels, np.array(values), exists, resets, mixture]
        else:
            item[2] = item[2] + values
            item[3] = item[3] | exists

    def write(self) -> None:
        for family, labels, values, exists, resets, mixture in self.items.values():
            if family.type == "histogram":
                family.histogram(labels, values, mixture, exists, resets)
            elif family.type == "gauge":
                family.gauge(labels, values, exists)
            else:
                family.counter(labels, values, exists, resets)


def _linkerd_pod_labels(pod: Pod) -> dict[str, str]:
    w = pod.workload
    return {"namespace": w.namespace, "pod": pod.name, _LINKERD_KIND[w.kind]: w.name, "job": "linkerd-proxy",
            "instance": f"{pod.ip}:4191"}


def _closed(opened: np.ndarray, open_now: np.ndarray, resets: np.ndarray) -> np.ndarray:
    """Connections a proxy closed in each interval, as its own counter counts them.

    What opened and is no longer open. A restarted proxy starts with none open: the
    connections that died with the old one were closed by it, and its counters went too.
    """
    before = np.concatenate([[0], open_now[:-1]])
    before = np.where(resets, 0, before)
    return np.maximum(opened - (open_now - before), 0)


def _code_class(et: EdgeTraffic, status: str) -> str:
    """Envoy's ``envoy_response_code_class`` of a status: the HTTP code's first digit."""
    return et.http_status(status)[0]
