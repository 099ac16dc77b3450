"""Each mesh's own metrics for the same traffic: names, labels and buckets as its proxies emit them.

See ``../shared/reference/mesh-metrics.md`` for the facts these follow. Every renderer
returns a list of :class:`~meshlab.sim.render.Family`; nothing here samples or formats.

Label sets are the ones the meshes' own tooling and dashboards read, plus the scrape's
``namespace``, ``pod``, ``job`` and ``instance``; labels no tool reads are left out to
keep a day of data small: Linkerd's ``target_addr``, ``srv_*``/``authz_*`` policy labels,
``pod_template_hash``, ``control_plane_ns``, ``dst_serviceaccount`` and
``dst_pod_template_hash``; Istio's ``*_app``, ``*_version``, ``*_canonical_revision`` and
``*_cluster``; Consul's ``consul_*_partition``, ``consul_destination_routing_type`` and
``consul_destination_trust_domain``; and the scrape's copies of pod labels. Not modelled:
per-route metrics, Istio's ``*_bytes`` size histograms, and Envoy stats beyond those
the meshes' dashboards read.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache, partial

import numpy as np

from .costs import MESH_COSTS
from .dist import Mixture
from .render import Family
from .scenario import Workload
from .traffic import EdgeTraffic, Pod, Traffic, _rng

__all__ = ["ENVOY_BUCKETS_MS", "LINKERD_BUCKETS_MS", "MESHES", "check_mesh", "mesh_families", "proxy_usage"]

LINKERD_BUCKETS_MS = (1, 2, 3, 4, 5, 10, 20, 30, 40, 50, 100, 200, 300, 400, 500, 1000, 2000, 3000, 4000, 5000,
                      10000, 20000, 30000, 40000, 50000, float("inf"))
ENVOY_BUCKETS_MS = (0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000,
                    1800000, 3600000, float("inf"))
#: Linkerd counts these gRPC status codes as failures (linkerd2-proxy classify.rs); the rest succeed.
LINKERD_GRPC_FAILURES = frozenset({"2", "4", "13", "14", "15"})

_LINKERD_KIND = {"deployment": "deployment", "statefulset": "statefulset", "daemonset": "daemonset", "job": "k8s_job"}
_PORT = {"http": 8080, "grpc": 9090, "tcp": 6379}
NODES = ("node-a", "node-b", "node-c")


def _node(pod: Pod) -> str:
    return NODES[(pod.index + len(pod.workload.name)) % len(NODES)]


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
    """A proxy's CPU seconds used in each interval and its working-set bytes at each scrape.

    From the mesh's cost model at the pod's request rate (in plus out), with seeded noise
    (5% on CPU, 2% on memory). Istio pushes every endpoint in the mesh to every sidecar;
    Linkerd and Consul proxies know only the endpoints of their own destinations.
    """
    w = pod.workload
    cost = MESH_COSTS[mesh]
    rps = (traffic.inbound_requests(w) + traffic.outbound_requests(w))[:, pod.index] / traffic.interval_s
    if mesh == "istio":
        endpoints = sum(len(p) for key, p in traffic.pods.items() if traffic.scenario.workload(key).meshed)
    else:
        endpoints = sum(len(traffic.pods[et.target.key]) for et in traffic.edges if et.source.key == w.key)
    rng = _rng(traffic.scenario.seed, mesh, "cost", pod.name)
    seconds = cost.cpu_cores(rps) * rng.lognormal(0.0, 0.05, traffic.n) * traffic.interval_s
    seconds[0] = 0.0
    working_set = np.rint(cost.memory_bytes(rps, endpoints) * rng.lognormal(0.0, 0.02, traffic.n))
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


def _image(mesh: str) -> str:
    return {"linkerd": "cr.l5d.io/linkerd/proxy:stable-2.14.10", "istio": "docker.io/istio/proxyv2:1.20.3",
            "consul": "hashicorp/consul-dataplane:1.4.1"}[mesh]


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


def _linkerd_tcp(tcp: dict[str, Family], labels: dict[str, str], et: EdgeTraffic, index: int | tuple[int, int],
                 axis: int | None, exists: np.ndarray, resets: np.ndarray, *, read: str, write: str) -> None:
    def pick(array: np.ndarray) -> np.ndarray:
        if isinstance(index, tuple):
            return array[:, index[0], index[1]]
        return array.take(index, axis=axis).sum(axis=1)

    opened, open_now = pick(et.opened), pick(et.open)
    closed = np.maximum(opened - np.diff(open_now, prepend=0), 0)
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
                closed = np.maximum(opened - np.diff(open_now, prepend=0), 0)
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
    return et.http_status(status)[0]


def consul_families(traffic: Traffic) -> list[Family]:
    """Consul Connect: Envoy stats with consul tags, as consul-k8s' Prometheus scrape sees them."""
    ctx = _Context(traffic, "consul")
    fam: dict[str, Family] = {}

    def family(name: str, kind: str, help_: str, le: tuple[float, ...] = ()) -> Family:
        return fam.setdefault(name, Family(name, kind, help_, le=le))

    down_xx = family("envoy_http_downstream_rq_xx", "counter", "Downstream requests by response code class.")
    down_done = family("envoy_http_downstream_rq_completed", "counter", "Completed downstream requests.")
    down_time = family("envoy_http_downstream_rq_time", "histogram", "Downstream request time.", ENVOY_BUCKETS_MS)
    listener_xx = family("envoy_listener_http_downstream_rq_xx", "counter", "Listener requests by code class.")
    up_xx = family("envoy_cluster_upstream_rq_xx", "counter", "Upstream requests by response code class.")
    up_total = family("envoy_cluster_upstream_rq_total", "counter", "Total upstream requests.")
    up_time = family("envoy_cluster_upstream_rq_time", "histogram", "Upstream request time.", ENVOY_BUCKETS_MS)
    tcp_down = {n: family(n, "counter", h) for n, h in (
        ("envoy_tcp_downstream_cx_total", "Total connections."),
        ("envoy_tcp_downstream_cx_rx_bytes_total", "Bytes received."),
        ("envoy_tcp_downstream_cx_tx_bytes_total", "Bytes sent."))}
    tcp_up = {n: family(n, kind, h) for n, kind, h in (
        ("envoy_cluster_upstream_cx_total", "counter", "Total upstream connections."),
        ("envoy_cluster_upstream_cx_active", "gauge", "Active upstream connections."),
        ("envoy_cluster_upstream_cx_rx_bytes_total", "counter", "Bytes received from upstream."),
        ("envoy_cluster_upstream_cx_tx_bytes_total", "counter", "Bytes sent to upstream."))}

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
            if et.is_tcp:
                _consul_tcp(ctx, tcp_up, labels, et, pod, 1, rx="received", tx="sent", active=True)
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


#: Mesh name -> renderer. "none" renders no proxy metrics at all: its truth is the application's.
MESHES: dict[str, Callable[[Traffic], list[Family]]] = {
    "linkerd": linkerd_families,
    "istio": istio_families,
    "consul": consul_families,
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
