"""Each mesh's own metrics for the same traffic: names, labels and buckets as its proxies emit them.

See ``../shared/reference/mesh-metrics.md`` for the facts these follow, and each
renderer's docstring for the sources of the meshes added later (Kuma, Hubble). Every
renderer returns a list of :class:`~meshlab.sim.render.Family`; nothing here samples or
formats.

Label sets are the ones the meshes' own tooling and dashboards read, plus the scrape's
``namespace``, ``pod``, ``job`` and ``instance``; labels no tool reads are left out to
keep a day of data small: Linkerd's ``target_addr``, ``srv_*``/``authz_*`` policy labels,
``pod_template_hash``, ``control_plane_ns``, ``dst_serviceaccount`` and
``dst_pod_template_hash``; Istio's ``*_app``, ``*_version``, ``*_canonical_revision`` and
``*_cluster``; Consul's ``consul_*_partition``, ``consul_destination_routing_type`` and
``consul_destination_trust_domain``; Kuma's copies of every other dataplane tag (pod
labels such as ``app``, ``kuma_io_protocol`` and their plural ``...s`` forms); Hubble's
``cluster`` (a multi-cluster scrape's; Cilium's dashboards match its absence); and the
scrape's copies of pod labels. Not modelled: per-route metrics,
Istio's ``*_bytes`` size histograms, Envoy stats beyond those the meshes' dashboards read,
and Hubble's flow, DNS, drop and TCP-flag metrics.

Every renderer also writes traffic the adapters must not count, as real scrapes have it:
Linkerd's outbound view of requests its inbound view counts; Istio's second reporter;
Consul's ``upstream`` listener and ``local_app`` cluster; Kuma's inbound ``localhost_*``
clusters next to the callers' outbound ones, its ``external`` split of the same counts and
the metrics hijacker cluster Prometheus' own scrapes go through; Hubble's ``client`` and
``server`` reporters of the same request; and everywhere unmeshed callers and egress,
which each mesh sees on one side only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, partial

import numpy as np

from .costs import MESH_COSTS
from .dist import Mixture
from .render import Family
from .scenario import Workload
from .traffic import EdgeTraffic, Pod, Traffic, _rng, _token

__all__ = ["ENVOY_BUCKETS_MS", "HUBBLE_BUCKETS_S", "LINKERD_BUCKETS_MS", "MESHES", "NodeProxy", "check_mesh",
           "kuma_service", "mesh_families", "node_proxies", "node_proxy_usage", "proxy_usage"]

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
        from ..errors import InvalidArgument

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


# -- Linkerd ---------------------------------------------------------------------------------

def _linkerd_identity(w: Workload) -> str:
    return f"{w.name}.{w.namespace}.serviceaccount.identity.linkerd.cluster.local"


def _linkerd_pod_labels(pod: Pod) -> dict[str, str]:
    w = pod.workload
    return {"namespace": w.namespace, "pod": pod.name, _LINKERD_KIND[w.kind]: w.name, "job": "linkerd-proxy",
            "instance": f"{pod.ip}:4191"}


def _linkerd_classify(et: EdgeTraffic, status: str) -> str:
    if et.is_grpc:
        return "failure" if et.grpc_code(status) in LINKERD_GRPC_FAILURES else "success"
    return "failure" if status.startswith("5") else "success"


def linkerd_families(traffic: Traffic) -> list[Family]:
    """Linkerd 2 (linkerd2-proxy) metrics, as scraped by linkerd-viz's Prometheus."""
    ctx = _Context(traffic, "linkerd")
    fam: dict[str, Family] = {}
    request = fam.setdefault("request_total", Family("request_total", "counter", "Total count of HTTP requests."))
    response = fam.setdefault("response_total", Family("response_total", "counter", "Total count of HTTP responses."))
    latency = fam.setdefault("response_latency_ms", Family(
        "response_latency_ms", "histogram",
        "Elapsed times between a request's headers being received and its response stream completing",
        le=LINKERD_BUCKETS_MS))
    tcp = {name: fam.setdefault(name, Family(name, kind, help_)) for name, kind, help_ in (
        ("tcp_open_total", "counter", "Total count of opened connections"),
        ("tcp_close_total", "counter", "Total count of closed connections"),
        ("tcp_open_connections", "gauge", "Number of currently-open connections"),
        ("tcp_read_bytes_total", "counter", "Total count of bytes read from peers"),
        ("tcp_write_bytes_total", "counter", "Total count of bytes written to peers"))}

    for et in traffic.edges:
        src, dst = et.source, et.target
        port = _PORT[et.edge.protocol]
        for dst_pod in traffic.pods[dst.key] if dst.meshed else []:
            j = dst_pod.index
            base = {"direction": "inbound"}
            base.update({"tls": "true", "client_id": _linkerd_identity(src)} if src.meshed
                        else {"tls": "no_identity", "no_tls_reason": "no_tls_from_remote"})
            base.update(_linkerd_pod_labels(dst_pod))
            exists, resets = ctx.pod_exists(dst_pod), ctx.pod_resets(dst_pod)
            _linkerd_tcp(tcp, {**base, "peer": "src"}, et, j, 2, exists, resets, read="sent", write="received")
            if et.is_tcp:
                continue
            request.counter(base, et.requests[:, :, j, :].sum(axis=(1, 2)), exists, resets)
            for status, counts in _grouped(et, 2, j, lambda s: s).items():
                response.counter(_linkerd_status_labels(base, et, status), counts, exists, resets)
            for code, counts in _grouped(et, 2, j, et.http_status).items():
                latency.histogram({**base, "status_code": code}, counts,
                                  partial(ctx.server_latency, dst), exists, resets)
        if not src.meshed:
            continue
        for src_pod in traffic.pods[src.key]:
            i = src_pod.index
            exists_src, resets = ctx.pod_exists(src_pod), ctx.pod_resets(src_pod)
            for dst_pod in traffic.pods[dst.key]:
                j = dst_pod.index
                base = {"direction": "outbound"}
                if dst.external:
                    base.update({"authority": f"{dst.service_name}:443", "tls": "no_identity",
                                 "no_tls_reason": "not_provided_by_service_discovery"})
                else:
                    base.update({"authority": f"{dst.service_name}.{dst.namespace}.svc.cluster.local:{port}",
                                 "tls": "true", "server_id": _linkerd_identity(dst), "dst_namespace": dst.namespace,
                                 "dst_service": dst.service_name, "dst_pod": dst_pod.name,
                                 f"dst_{_LINKERD_KIND[dst.kind]}": dst.name})
                base.update(_linkerd_pod_labels(src_pod))
                exists = exists_src & ctx.since(dst_pod)
                pair = et.requests[:, i, j, :] if not et.is_tcp else None
                _linkerd_tcp(tcp, {**base, "peer": "dst"}, et, (i, j), None, exists, resets,
                             read="received", write="sent")
                if pair is None:
                    continue
                request.counter(base, pair.sum(axis=1), exists, resets)
                by_http: dict[str, np.ndarray] = {}
                for s, status in enumerate(et.statuses):
                    response.counter(_linkerd_status_labels(base, et, status), pair[:, s], exists, resets)
                    code = et.http_status(status)
                    by_http[code] = by_http.get(code, np.zeros(len(pair), dtype=np.int64)) + pair[:, s]
                for code, counts in by_http.items():
                    latency.histogram({**base, "status_code": code}, counts,
                                      partial(ctx.client_latency, dst, src, et.edge.network_ms), exists, resets)
    meshed = [p for w in traffic.scenario.workloads if w.meshed for p in traffic.pods[w.key]]
    _proxy_cost_families(ctx, meshed, fam, proxy_job="linkerd-proxy")
    return list(fam.values())


def _linkerd_status_labels(base: dict[str, str], et: EdgeTraffic, status: str) -> dict[str, str]:
    labels = {**base, "status_code": et.http_status(status), "classification": _linkerd_classify(et, status)}
    if et.is_grpc:
        labels["grpc_status"] = et.grpc_code(status)
    return labels


def _closed(opened: np.ndarray, open_now: np.ndarray, resets: np.ndarray) -> np.ndarray:
    """Connections a proxy closed in each interval, as its own counter counts them.

    What opened and is no longer open. A restarted proxy starts with none open: the
    connections that died with the old one were closed by it, and its counters went too.
    """
    before = np.concatenate([[0], open_now[:-1]])
    before = np.where(resets, 0, before)
    return np.maximum(opened - (open_now - before), 0)


def _linkerd_tcp(tcp: dict[str, Family], labels: dict[str, str], et: EdgeTraffic, index: int | tuple[int, int],
                 axis: int | None, exists: np.ndarray, resets: np.ndarray, *, read: str, write: str) -> None:
    def pick(array: np.ndarray) -> np.ndarray:
        if isinstance(index, tuple):
            return array[:, index[0], index[1]]
        return array.take(index, axis=axis).sum(axis=1)

    opened, open_now = pick(et.opened), pick(et.open)
    closed = _closed(opened, open_now, resets)
    data = {"sent": pick(et.sent_bytes), "received": pick(et.received_bytes)}
    tcp["tcp_open_total"].counter(labels, opened, exists, resets)
    tcp["tcp_close_total"].counter({**labels, "errno": ""}, closed, exists, resets)
    tcp["tcp_open_connections"].gauge(labels, open_now, exists)
    tcp["tcp_read_bytes_total"].counter(labels, data[read], exists, resets)
    tcp["tcp_write_bytes_total"].counter(labels, data[write], exists, resets)


# -- Istio -----------------------------------------------------------------------------------

def _istio_peer(w: Workload, side: str) -> dict[str, str]:
    if w.external or not w.meshed:
        unknown = {f"{side}_{k}": "unknown" for k in ("workload", "workload_namespace", "principal",
                                                      "canonical_service")}
        if side == "destination":
            unknown.update({"destination_service": w.service_name if w.external else "unknown",
                            "destination_service_name": w.service_name if w.external else "unknown",
                            "destination_service_namespace": "unknown"})
        return unknown
    labels = {f"{side}_workload": w.name, f"{side}_workload_namespace": w.namespace,
              f"{side}_principal": f"spiffe://cluster.local/ns/{w.namespace}/sa/{w.name}",
              f"{side}_canonical_service": w.name}
    if side == "destination":
        labels.update({"destination_service": f"{w.service_name}.{w.namespace}.svc.cluster.local",
                       "destination_service_name": w.service_name, "destination_service_namespace": w.namespace})
    return labels


def _istio_pod_labels(pod: Pod) -> dict[str, str]:
    w = pod.workload
    return {"namespace": w.namespace, "pod": pod.name, "instance": f"{pod.ip}:15020", "job": "kubernetes-pods"}


def istio_families(traffic: Traffic) -> list[Family]:
    """Istio standard metrics from Envoy sidecars, reported by both source and destination."""
    ctx = _Context(traffic, "istio")
    fam: dict[str, Family] = {}
    requests = fam.setdefault("istio_requests_total", Family("istio_requests_total", "counter",
                                                             "Total requests."))
    duration = fam.setdefault("istio_request_duration_milliseconds", Family(
        "istio_request_duration_milliseconds", "histogram", "Request duration in milliseconds.", le=ENVOY_BUCKETS_MS))
    tcp = {name: fam.setdefault(name, Family(name, "counter", help_)) for name, help_ in (
        ("istio_tcp_sent_bytes_total", "Total bytes sent during response in case of a TCP connection."),
        ("istio_tcp_received_bytes_total", "Total bytes received during request in case of a TCP connection."),
        ("istio_tcp_connections_opened_total", "Total connections opened."),
        ("istio_tcp_connections_closed_total", "Total connections closed."))}

    for et in traffic.edges:
        src, dst = et.source, et.target
        protocol = et.edge.protocol
        peers = {**_istio_peer(src, "source"), **_istio_peer(dst, "destination")}
        mtls = src.meshed and dst.meshed and not dst.external
        sides = []
        if dst.meshed:
            sides += [("destination", p, 2, "mutual_tls" if mtls else "none") for p in traffic.pods[dst.key]]
        if src.meshed:
            sides += [("source", p, 1, "unknown") for p in traffic.pods[src.key]]
        for reporter, pod, axis, policy in sides:
            exists, resets = ctx.pod_exists(pod), ctx.pod_resets(pod)
            base = {"reporter": reporter, **peers, "request_protocol": protocol, "response_flags": "-",
                    "connection_security_policy": policy, **_istio_pod_labels(pod)}
            if et.is_tcp:
                def pick(array: np.ndarray, pod: Pod = pod, axis: int = axis) -> np.ndarray:
                    return array.take(pod.index, axis=axis).sum(axis=1)
                opened, open_now = pick(et.opened), pick(et.open)
                closed = _closed(opened, open_now, resets)
                tcp["istio_tcp_sent_bytes_total"].counter(base, pick(et.received_bytes), exists, resets)
                tcp["istio_tcp_received_bytes_total"].counter(base, pick(et.sent_bytes), exists, resets)
                tcp["istio_tcp_connections_opened_total"].counter(base, opened, exists, resets)
                tcp["istio_tcp_connections_closed_total"].counter(base, closed, exists, resets)
                continue
            latency: Callable[[], Mixture] = (
                partial(ctx.server_latency, dst) if reporter == "destination"
                else partial(ctx.client_latency, dst, src, et.edge.network_ms))
            for status, counts in _grouped(et, axis, pod.index, lambda s: s).items():
                labels = {**base, "response_code": et.http_status(status),
                          "grpc_response_status": et.grpc_code(status)}
                requests.counter(labels, counts, exists, resets)
                duration.histogram(labels, counts, latency, exists, resets)
    meshed = [p for w in traffic.scenario.workloads if w.meshed for p in traffic.pods[w.key]]
    _proxy_cost_families(ctx, meshed, fam, proxy_job=None)
    return list(fam.values())


# -- Consul Connect --------------------------------------------------------------------------

def _consul_source(w: Workload) -> dict[str, str]:
    return {"local_cluster": w.service_name, "consul_source_service": w.service_name,
            "consul_source_namespace": "default", "consul_source_datacenter": "dc1"}


def _consul_destination(w: Workload) -> dict[str, str]:
    return {"consul_destination_service": w.name, "consul_destination_namespace": "default",
            "consul_destination_datacenter": "dc1", "consul_destination_target": f"{w.name}.default.dc1",
            "envoy_cluster_name": w.name}


def _consul_pod_labels(pod: Pod) -> dict[str, str]:
    w = pod.workload
    return {"namespace": w.namespace, "pod": pod.name, "instance": f"{pod.ip}:20200", "job": "kubernetes-pods"}


def _code_class(et: EdgeTraffic, status: str) -> str:
    """Envoy's ``envoy_response_code_class`` of a status: the HTTP code's first digit."""
    return et.http_status(status)[0]


def consul_families(traffic: Traffic) -> list[Family]:
    """Consul Connect: Envoy stats with consul tags, as consul-k8s' Prometheus scrape sees them."""
    ctx = _Context(traffic, "consul")
    fam: dict[str, Family] = {}
    down_xx = _declare(fam, "envoy_http_downstream_rq_xx", "counter", "Downstream requests by response code class.")
    down_done = _declare(fam, "envoy_http_downstream_rq_completed", "counter", "Completed downstream requests.")
    down_time = _declare(fam, "envoy_http_downstream_rq_time", "histogram", "Downstream request time.",
                         ENVOY_BUCKETS_MS)
    listener_xx = _declare(fam, "envoy_listener_http_downstream_rq_xx", "counter", "Listener requests by code class.")
    up_xx = _envoy(fam, "envoy_cluster_upstream_rq_xx")
    up_total = _envoy(fam, "envoy_cluster_upstream_rq_total")
    up_time = _envoy(fam, "envoy_cluster_upstream_rq_time")
    tcp_down = {n: _declare(fam, n, "counter", h) for n, h in (
        ("envoy_tcp_downstream_cx_total", "Total connections."),
        ("envoy_tcp_downstream_cx_rx_bytes_total", "Bytes received."),
        ("envoy_tcp_downstream_cx_tx_bytes_total", "Bytes sent."))}
    tcp_up = {n: _envoy(fam, n) for n in ENVOY_UPSTREAM_CX}

    def http_side(et: EdgeTraffic, pod: Pod, axis: int, labels: dict[str, str], xx: Family, total: Family,
                  time: Family, latency: Callable[[], Mixture], extra_xx: Family | None = None) -> None:
        exists, resets = ctx.pod_exists(pod), ctx.pod_resets(pod)
        by_class = _grouped(et, axis, pod.index, lambda s: _code_class(et, s))
        for code_class, counts in by_class.items():
            xx.counter({**labels, "envoy_response_code_class": code_class}, counts, exists, resets)
            if extra_xx is not None:
                extra_xx.counter({**labels, "envoy_response_code_class": code_class}, counts, exists, resets)
        all_counts = np.sum(list(by_class.values()), axis=0)
        total.counter(labels, all_counts, exists, resets)
        time.histogram(labels, all_counts, latency, exists, resets)

    for et in traffic.edges:
        src, dst = et.source, et.target
        if dst.meshed:
            for pod in traffic.pods[dst.key]:
                pod_labels = {**_consul_source(dst), **_consul_pod_labels(pod)}
                if et.is_tcp:
                    _consul_tcp(ctx, tcp_down, {**pod_labels, "envoy_tcp_prefix": "public_listener"}, et, pod, 2,
                                rx="sent", tx="received", active=None)
                    continue
                server = partial(ctx.server_latency, dst)
                http_side(et, pod, 2, {**pod_labels, "envoy_http_conn_manager_prefix": "public_listener"},
                          down_xx, down_done, down_time, server, extra_xx=listener_xx)
                # The same requests again, as the proxy forwards them to its own application.
                http_side(et, pod, 2, {**pod_labels, "envoy_cluster_name": "local_app"},
                          up_xx, up_total, up_time, server)
        if not src.meshed:
            continue
        for pod in traffic.pods[src.key]:
            labels = {**_consul_source(src), **_consul_destination(dst), **_consul_pod_labels(pod)}
            # Envoy keeps connection stats for every upstream cluster, HTTP ones (pooled connections) too
            _consul_tcp(ctx, tcp_up, labels, et, pod, 1, rx="received", tx="sent", active=True)
            if et.is_tcp:
                continue
            client = partial(ctx.client_latency, dst, src, et.edge.network_ms)
            http_side(et, pod, 1, labels, up_xx, up_total, up_time, client)
            # The caller's upstream listener counts the same outbound requests once more.
            upstream = {**_consul_source(src), "consul_upstream_service": dst.name,
                        "consul_upstream_namespace": "default", "consul_upstream_datacenter": "dc1",
                        "envoy_http_conn_manager_prefix": "upstream", **_consul_pod_labels(pod)}
            http_side(et, pod, 1, upstream, down_xx, down_done, down_time, client)
    meshed = [p for w in traffic.scenario.workloads if w.meshed for p in traffic.pods[w.key]]
    _proxy_cost_families(ctx, meshed, fam, proxy_job=None)
    return list(fam.values())


def _consul_tcp(ctx: _Context, families: dict[str, Family], labels: dict[str, str], et: EdgeTraffic, pod: Pod,
                axis: int, *, rx: str, tx: str, active: bool | None) -> None:
    exists, resets = ctx.pod_exists(pod), ctx.pod_resets(pod)

    def pick(array: np.ndarray) -> np.ndarray:
        return array.take(pod.index, axis=axis).sum(axis=1)

    data = {"sent": pick(et.sent_bytes), "received": pick(et.received_bytes)}
    prefix = "envoy_cluster_upstream_cx" if active else "envoy_tcp_downstream_cx"
    families[f"{prefix}_total"].counter(labels, pick(et.opened), exists, resets)
    families[f"{prefix}_rx_bytes_total"].counter(labels, data[rx], exists, resets)
    families[f"{prefix}_tx_bytes_total"].counter(labels, data[tx], exists, resets)
    if active:
        families[f"{prefix}_active"].gauge(labels, pick(et.open), exists)


# -- Kuma -------------------------------------------------------------------------------------

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


# -- Cilium Hubble -----------------------------------------------------------------------------

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


#: Mesh name -> renderer. "none" renders no proxy metrics at all: its truth is the application's.
MESHES: dict[str, Callable[[Traffic], list[Family]]] = {
    "linkerd": linkerd_families,
    "istio": istio_families,
    "consul": consul_families,
    "kuma": kuma_families,
    "hubble": hubble_families,
    "none": lambda traffic: [],
}


def check_mesh(mesh: str) -> str:
    """Return ``mesh`` if the simulator can render it, else raise ``unknown mesh ...; available: ...``."""
    if mesh not in MESHES:
        from ..errors import InvalidArgument

        raise InvalidArgument(f"unknown mesh {mesh!r}; available: {', '.join(MESHES)}")
    return mesh


def mesh_families(traffic: Traffic, mesh: str) -> list[Family]:
    """The metric families one mesh emits for a traffic run.

    Raises
    ------
    InvalidArgument
        For an unknown mesh name.
    """
    return MESHES[check_mesh(mesh)](traffic)
