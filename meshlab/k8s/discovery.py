"""Which meshes run in a cluster, and where its Prometheus is."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from meshlab.errors import InvalidArgument

from . import _client
from .errors import PrometheusNotFound

__all__ = ["MESH_SIGNS", "MeshSigns", "PrometheusService", "detect_meshes", "find_prometheus"]


@dataclass(frozen=True)
class MeshSigns:
    """How a mesh shows in a cluster: its control plane, its API groups, its usual Prometheus."""

    #: (kind, name) of control-plane workloads; any one present means the mesh runs
    control_plane: tuple[tuple[str, str], ...]
    #: API groups its CRDs add (evidence only: CRDs can outlive an uninstall)
    groups: tuple[str, ...]
    #: (namespace, service) where its install guide puts a Prometheus
    prometheus: tuple[tuple[str, str], ...] = field(default=())


#: Keyed by meshlab's mesh names (``ml.meshes.available()``).
MESH_SIGNS: dict[str, MeshSigns] = {
    "linkerd": MeshSigns((("Deployment", "linkerd-destination"), ("Deployment", "linkerd-identity")),
                         ("linkerd.io", "policy.linkerd.io"), (("linkerd-viz", "prometheus"),)),
    "istio": MeshSigns((("Deployment", "istiod"),), ("networking.istio.io", "security.istio.io"),
                       (("istio-system", "prometheus"),)),
    "consul": MeshSigns((("Deployment", "consul-connect-injector"), ("Deployment", "consul-controller")),
                        ("consul.hashicorp.com",), (("consul", "prometheus-server"),)),
    "kuma": MeshSigns((("Deployment", "kuma-control-plane"),), ("kuma.io",),
                      (("mesh-observability", "prometheus-server"),)),
    "hubble": MeshSigns((("Deployment", "hubble-relay"), ("DaemonSet", "cilium")), ("cilium.io",),
                        (("cilium-monitoring", "prometheus"),)),
}

#: Services whose name holds "prometheus" but that are not a Prometheus you can query.
_NOT_PROMETHEUS = ("operator", "alertmanager", "node-exporter", "kube-state-metrics", "pushgateway", "adapter",
                   "blackbox", "exporter")
#: Label keys that name an application.
_APP_LABELS = ("app.kubernetes.io/name", "app", "k8s-app")
#: Port names and numbers a Prometheus (or VictoriaMetrics) web port has.
_WEB_PORT_NAMES = ("web", "http-web", "http", "admin-http", "http-prometheus")
_WEB_PORTS = (9090, 8428, 80)


@dataclass(frozen=True)
class PrometheusService:
    """A Prometheus found in the cluster: a Service and the port its HTTP API is on."""

    namespace: str
    name: str
    port: int  #: the Service port
    target_port: int | str  #: the pod port it maps to (a number or a container port name)
    selector: tuple[tuple[str, str], ...]  #: the Service's pod selector
    why: str  #: why it was picked (the mesh's usual place, its labels, its name)

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}:{self.port}"


def detect_meshes(context: str | None = None) -> dict[str, list[str]]:
    """Which meshes run in the cluster of ``context``, with the evidence.

    A mesh counts when one of its control-plane workloads (``linkerd-destination``,
    ``istiod``, ``consul-connect-injector``, ``kuma-control-plane``, Cilium's
    ``hubble-relay`` or ``cilium`` DaemonSet) exists in any namespace; the API groups its
    CRDs add are listed as evidence too (alone they prove nothing: CRDs outlive an uninstall).

    Parameters
    ----------
    context : str, optional
        A kubeconfig context; by default the current one (``$KUBECONFIG`` or ``~/.kube/config``),
        or the pod's service account inside a cluster.

    Returns
    -------
    dict
        Mesh name -> evidence such as ``"Deployment linkerd/linkerd-destination"``, ``"API group
        linkerd.io"``, in ``MESH_SIGNS`` order. Empty when no mesh runs.

    Raises
    ------
    KubeconfigError, Forbidden, KubernetesUnavailable
        No kubeconfig; RBAC refusing ``list`` on ``deployments``/``daemonsets`` (apps) at
        cluster scope (the error names the verb and resource); an unreachable apiserver.
    """
    cluster = _client.load(context)
    try:
        return _detect(cluster)
    finally:
        cluster.close()


def _detect(cluster: _client.Cluster) -> dict[str, list[str]]:
    from kubernetes import client

    apps = client.AppsV1Api(cluster.api)
    wanted = {kind for signs in MESH_SIGNS.values() for kind, _ in signs.control_plane}
    present: dict[tuple[str, str], list[str]] = {}
    for kind, fn, resource in (("Deployment", apps.list_deployment_for_all_namespaces, "deployments"),
                               ("DaemonSet", apps.list_daemon_set_for_all_namespaces, "daemonsets")):
        if kind not in wanted:
            continue
        for item in _client.list_all(cluster, fn, resource=resource, group="apps"):
            present.setdefault((kind, item.metadata.name), []).append(item.metadata.namespace)
    groups = _served_groups(cluster)
    found: dict[str, list[str]] = {}
    for mesh, signs in MESH_SIGNS.items():
        evidence = [f"{kind} {ns}/{name}" for kind, name in signs.control_plane
                    for ns in sorted(present.get((kind, name), []))]
        if evidence:
            found[mesh] = evidence + [f"API group {g}" for g in signs.groups if g in groups]
    return found


def _served_groups(cluster: _client.Cluster) -> set[str]:
    from kubernetes import client

    answer = _client.call(cluster, client.ApisApi(cluster.api).get_api_versions, verb="get", resource="/apis")
    return {g.name for g in answer.groups or []}


def find_prometheus(context: str | None = None, mesh: str | list[str] | None = None) -> list[PrometheusService]:
    """The Prometheus Services of the cluster of ``context``, the likeliest first.

    A Service counts when its name or its ``app.kubernetes.io/name``, ``app`` or ``k8s-app``
    label holds ``prometheus`` (or ``victoria-metrics``), it is not an operator, Alertmanager,
    exporter or adapter, and it selects pods. Its port is the one named ``web``/``http``
    (or numbered 9090, 8428, 80), else its first. Ranked: the place ``mesh``'s install guide
    puts one (``linkerd-viz/prometheus`` for Linkerd), then Services labelled as Prometheus,
    then by name.

    Parameters
    ----------
    context : str, optional
        A kubeconfig context; by default the current one.
    mesh : str or list of str, optional
        Mesh names (``detect_meshes``'s keys) whose usual Prometheus comes first.

    Raises
    ------
    PrometheusNotFound
        Nothing looks like a Prometheus; the message lists what was looked for.
    Forbidden
        RBAC refuses ``list`` on ``services`` at cluster scope.
    """
    cluster = _client.load(context)
    try:
        return _find(cluster, _mesh_names(mesh))
    finally:
        cluster.close()


def _mesh_names(mesh: str | list[str] | None) -> list[str]:
    names = [mesh] if isinstance(mesh, str) else list(mesh or [])
    for name in names:
        if name not in MESH_SIGNS:
            raise InvalidArgument(f"mesh {name!r} is not one meshlab knows in a cluster; use one of "
                                  f"{sorted(MESH_SIGNS)} or None")
    return names


def _find(cluster: _client.Cluster, meshes: list[str]) -> list[PrometheusService]:
    from kubernetes import client

    core = client.CoreV1Api(cluster.api)
    usual = {place: i for i, place in enumerate(p for m in meshes for p in MESH_SIGNS[m].prometheus)}
    ranked: list[tuple[tuple[int, int, str, str], PrometheusService]] = []
    for svc in _client.list_all(cluster, core.list_service_for_all_namespaces, resource="services"):
        found = _as_prometheus(svc, usual)
        if found is not None:
            ranked.append(found)
    if not ranked:
        places = ", ".join(f"{ns}/{name}" for m in meshes for ns, name in MESH_SIGNS[m].prometheus)
        raise PrometheusNotFound(
            f"no Prometheus found in context {cluster.context!r}: looked in every namespace for Services whose name "
            f"or app.kubernetes.io/name, app or k8s-app label holds 'prometheus' or 'victoria-metrics' (not an "
            f"operator, Alertmanager, exporter or adapter) and that select pods"
            + (f", first at {places}" if places else "")
            + "; install one (e.g. `linkerd viz install`, Istio's samples/addons/prometheus.yaml, the "
            "prometheus-community Helm chart), or pass prometheus='NAMESPACE/SERVICE:PORT'")
    return [svc for _, svc in sorted(ranked, key=lambda pair: pair[0])]


def _as_prometheus(svc: Any, usual: dict[tuple[str, str], int]
                   ) -> tuple[tuple[int, int, str, str], PrometheusService] | None:
    meta, spec = svc.metadata, svc.spec
    labels = meta.labels or {}
    app = " ".join(str(labels.get(k, "")) for k in _APP_LABELS).lower()
    name = meta.name.lower()
    looks = [text for text in (name, app) if "prometheus" in text or "victoria-metrics" in text]
    if not looks or any(bad in name for bad in _NOT_PROMETHEUS) or not (spec and spec.selector and spec.ports):
        return None
    port = _web_port(spec.ports)
    place = (meta.namespace, meta.name)
    if place in usual:
        rank, why = usual[place], "where its mesh's install puts it"
    elif any(str(labels.get(k, "")).lower() in ("prometheus", "victoria-metrics") for k in _APP_LABELS):
        rank, why = len(usual), "labelled as a Prometheus"
    else:
        rank, why = len(usual) + 1, "named like a Prometheus"
    target = port.target_port if port.target_port is not None else port.port
    found = PrometheusService(meta.namespace, meta.name, int(port.port), target,
                              tuple(sorted(spec.selector.items())), why)
    return (rank, 0 if port.name in _WEB_PORT_NAMES or port.port in _WEB_PORTS else 1, meta.namespace, meta.name), found


def _web_port(ports: list[Any]) -> Any:
    tcp = [p for p in ports if (p.protocol or "TCP") == "TCP"] or ports
    for p in tcp:
        if p.name in _WEB_PORT_NAMES:
            return p
    for p in tcp:
        if p.port in _WEB_PORTS:
            return p
    return tcp[0]
