"""``ml.connect()``: a Prometheus client for a cluster's Prometheus, through a port-forward."""

from __future__ import annotations

import re
from typing import Any

from meshlab.errors import InvalidArgument, MeshlabError
from meshlab.prometheus.client import Prometheus

from . import _client
from .discovery import PrometheusService, _detect, _find, _mesh_names
from .errors import Forbidden, KubernetesError, PortForwardError
from .portforward import PortForward

__all__ = ["ForwardedPrometheus", "connect"]


class ForwardedPrometheus(Prometheus):
    """A :class:`~meshlab.Prometheus` reaching a cluster's Prometheus through a port-forward.

    Closing it (or leaving its ``with`` block) closes the tunnel too.

    Attributes
    ----------
    tunnel : PortForward
        The port-forward (``tunnel.local_port``, ``tunnel.pod``).
    service : PrometheusService
        The Service forwarded to.
    meshes : list of str
        The meshes found in the cluster (or the one named), for ``ml.mesh(prom.meshes[0], prom)``.
    context : str
        The kubeconfig context.
    """

    tunnel: PortForward
    service: PrometheusService
    meshes: list[str]
    context: str

    def __repr__(self) -> str:
        return f"ForwardedPrometheus({self.url!r} -> {self.service} in context {self.context!r})"

    def close(self) -> None:
        """Close the HTTP session, the port-forward and the apiserver client."""
        super().close()
        tunnel = getattr(self, "tunnel", None)
        if tunnel is not None:
            tunnel.close()
            tunnel.cluster.close()


def connect(context: str | None = None, mesh: str | None = "auto", prometheus: str | None = None, *,
            local_port: int = 0, timeout: float | str = 30.0, **client_options: Any) -> ForwardedPrometheus:
    """A Prometheus client for the cluster of ``context``, through a port-forward to its Prometheus.

    ``with ml.connect() as prom: ml.mesh(prom.meshes[0], prom).traffic(...)``

    Parameters
    ----------
    context : str, optional
        A kubeconfig context; by default the current one (``$KUBECONFIG`` or ``~/.kube/config``),
        or the pod's service account inside a cluster.
    mesh : str or None
        ``"auto"`` finds the meshes running (:func:`detect_meshes`; needs ``list`` on
        deployments and daemonsets); a mesh name skips that and looks first where that mesh's
        install puts its Prometheus; None looks nowhere first.
    prometheus : str, optional
        ``"NAMESPACE/SERVICE"`` or ``"NAMESPACE/SERVICE:PORT"``; by default the first of
        :func:`find_prometheus`.
    local_port : int
        The local port to listen on (127.0.0.1 only); 0 picks a free one.
    timeout : float or duration
        The Prometheus client's timeout, and the longest wait for the apiserver to open a
        port-forward stream.
    **client_options
        Passed to :class:`~meshlab.Prometheus` (``retries``, ``deadline``, ...).

    Returns
    -------
    ForwardedPrometheus
        Usable as a context manager; closing it closes the tunnel.

    Raises
    ------
    KubeconfigError, Forbidden, PrometheusNotFound, PortForwardError, KubernetesUnavailable
        No kubeconfig; RBAC refusing a verb on a resource (named); no Prometheus Service
        (the message lists what was looked for); the port-forward refused, or the pod's port
        not answering.
    """
    if not isinstance(local_port, int) or isinstance(local_port, bool) or not 0 <= local_port < 65536:
        raise InvalidArgument(f"local_port must be a port number (0 for any free one), got {local_port!r}")
    from meshlab.prometheus.client import _seconds

    wait = _seconds(timeout, "timeout")
    if mesh is not None and mesh != "auto":
        _mesh_names(mesh)
    target = _parse_target(prometheus) if prometheus is not None else None
    cluster = _client.load(context)
    tunnel: PortForward | None = None
    try:
        if mesh == "auto":
            try:
                meshes = list(_detect(cluster))
            except Forbidden as exc:
                raise Forbidden(f"{exc}. Or skip mesh detection: connect(mesh='linkerd') or connect(mesh=None)",
                                verb=exc.verb, resource=exc.resource, group=exc.group,
                                namespace=exc.namespace) from None
        else:
            meshes = [mesh] if mesh else []
        service = _service(cluster, target) if target else _find(cluster, meshes)[0]
        pod, port = _pod_and_port(cluster, service)
        tunnel = PortForward(cluster, service.namespace, pod, port, local_port=local_port, timeout=wait)
        prom = ForwardedPrometheus(f"http://127.0.0.1:{tunnel.local_port}", timeout=wait, **client_options)
        prom.tunnel, prom.service, prom.meshes, prom.context = tunnel, service, meshes, cluster.context
        try:
            prom.get("status/buildinfo")
        except MeshlabError as exc:
            said = "; ".join(dict.fromkeys(tunnel.errors)) or str(exc)
            prom.close()
            tunnel = None
            raise PortForwardError(
                f"the port-forward to {service} (pod {service.namespace}/{pod} port {port}) opened, but no "
                f"Prometheus answered through it: {said}; check the pod's port with `kubectl --context "
                f"{cluster.context} -n {service.namespace} port-forward pod/{pod} {port}`, or pass "
                "prometheus='NAMESPACE/SERVICE:PORT'") from None
        return prom
    except BaseException:
        if tunnel is not None:
            tunnel.close()
        cluster.close()
        raise


_TARGET = re.compile(r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?)/([a-z0-9]([-a-z0-9]*[a-z0-9])?)(:(\d{1,5}))?$")


def _parse_target(prometheus: object) -> tuple[str, str, int | None]:
    if isinstance(prometheus, PrometheusService):
        return prometheus.namespace, prometheus.name, prometheus.port
    match = _TARGET.match(prometheus) if isinstance(prometheus, str) else None
    if match is None:
        hint = (" (for a URL, use ml.Prometheus(url) directly)"
                if isinstance(prometheus, str) and "://" in prometheus else "")
        raise InvalidArgument(f"prometheus must be 'NAMESPACE/SERVICE' or 'NAMESPACE/SERVICE:PORT', "
                              f"got {prometheus!r}{hint}")
    port = int(match.group(6)) if match.group(6) else None
    if port is not None and not 0 < port < 65536:
        raise InvalidArgument(f"prometheus has port {port}, not between 1 and 65535")
    return match.group(1), match.group(3), port


def _service(cluster: _client.Cluster, target: tuple[str, str, int | None]) -> PrometheusService:
    from kubernetes import client

    namespace, name, port = target
    svc = _client.call(cluster, client.CoreV1Api(cluster.api).read_namespaced_service, name, namespace,
                       verb="get", resource="services", namespace=namespace)
    ports = svc.spec.ports or []
    chosen = next((p for p in ports if p.port == port), None) if port else (ports[0] if ports else None)
    if chosen is None:
        raise InvalidArgument(f"Service {namespace}/{name} has no port {port}; its ports are "
                              f"{[p.port for p in ports]}")
    if not svc.spec.selector:
        raise KubernetesError(f"Service {namespace}/{name} selects no pods (no selector), so there is no pod to "
                              "port-forward to; pass prometheus= a Service with a selector")
    target_port = chosen.target_port if chosen.target_port is not None else chosen.port
    return PrometheusService(namespace, name, int(chosen.port), target_port,
                             tuple(sorted(svc.spec.selector.items())), "named by prometheus=")


def _pod_and_port(cluster: _client.Cluster, service: PrometheusService) -> tuple[str, int]:
    """A running, ready pod behind ``service``, and the pod port its Service port maps to."""
    from kubernetes import client

    selector = ",".join(f"{k}={v}" for k, v in service.selector)
    pods = list(_client.list_all(cluster, client.CoreV1Api(cluster.api).list_namespaced_pod, service.namespace,
                                 resource="pods", namespace=service.namespace, label_selector=selector))
    ready = [p for p in pods if p.status and p.status.phase == "Running"
             and any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])]
    if not ready:
        raise PortForwardError(
            f"no running, ready pod behind Service {service} (selector {selector}; {len(pods)} pod(s) match, none "
            f"ready); check with `kubectl --context {cluster.context} -n {service.namespace} get pods -l {selector}`")
    pod = sorted(ready, key=lambda p: p.metadata.name)[0]
    port = service.target_port
    if isinstance(port, str) and not port.isdigit():
        named = [cp.container_port for c in pod.spec.containers for cp in c.ports or [] if cp.name == port]
        if not named:
            raise PortForwardError(f"pod {service.namespace}/{pod.metadata.name} has no container port named "
                                   f"{port!r}, which Service {service} targets")
        port = named[0]
    return pod.metadata.name, int(port)

