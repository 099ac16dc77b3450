"""Serve a mesh's golden signals as the SMI Traffic Metrics API (``metrics.smi-spec.io``).

What the archived smi-metrics server did, from meshlab's adapters: ``kubectl get --raw
/apis/metrics.smi-spec.io/v1alpha1/namespaces/NS/deployments`` answered from Prometheus.
Plain HTTP on 127.0.0.1 by default; registering it as an APIService (which needs TLS) is
left to the deployment.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from meshlab.errors import InvalidArgument, MeshlabError, PrometheusUnavailable
from meshlab.timeutil import Duration, TimeLike

from .smi_api import GROUP

__all__ = ["SMIServer", "serve_smi"]

_KIND = {"namespaces": ("namespace", "Namespace"), "deployments": ("deployment", "Deployment"),
         "pods": ("pod", "Pod"), "daemonsets": ("daemonset", "DaemonSet"),
         "statefulsets": ("statefulset", "StatefulSet"), "jobs": ("job", "Job")}


class SMIServer:
    """An HTTP server answering the SMI Traffic Metrics API from one mesh adapter.

    Use :func:`serve_smi`. ``url`` is its base (``http://127.0.0.1:PORT``); close it, or use
    it as a context manager.
    """

    def __init__(self, mesh: Any, *, window: Duration, at: TimeLike | None, version: str, host: str, port: int):
        self.mesh, self.window, self.at, self.version = mesh, window, at, version
        self._httpd = ThreadingHTTPServer((host, port), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.smi = self  # type: ignore[attr-defined]
        self.url = f"http://{host}:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, name=f"meshlab SMI {self.url}",
                                        daemon=True)
        self._thread.start()

    def __repr__(self) -> str:
        return f"SMIServer({self.url!r}, mesh={self.mesh.name!r})"

    def __enter__(self) -> SMIServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop serving and free the port."""
        if self._thread.is_alive():
            self._httpd.shutdown()
            self._thread.join(5)
        self._httpd.server_close()

    def answer(self, path: str) -> tuple[int, dict[str, Any]]:
        """The status and JSON body for a GET of ``path``."""
        prefix = f"/apis/{GROUP}/{self.version}"
        path = path.rstrip("/")
        if path == "/apis":
            return 200, _group_list()
        if path == f"/apis/{GROUP}":
            return 200, {**_group_list()["groups"][0], "kind": "APIGroup", "apiVersion": "v1"}
        if path == prefix:
            return 200, self._resources()
        if not path.startswith(prefix + "/"):
            return _status(404, "NotFound", "the server could not find the requested resource")
        parts = path[len(prefix) + 1:].split("/")
        # namespaces[/NS[/PLURAL[/NAME[/edges]]]]
        if parts[0] != "namespaces" or len(parts) > 5 or (len(parts) == 5 and parts[4] != "edges"):
            return _status(404, "NotFound", "the server could not find the requested resource")
        if len(parts) <= 2:
            plural, namespace, name = "namespaces", None, (parts[1] if len(parts) == 2 else None)
        else:
            plural, namespace, name = parts[2], parts[1], (parts[3] if len(parts) >= 4 else None)
        if plural not in _KIND or _KIND[plural][0] not in self.mesh.kinds:
            return _status(404, "NotFound", f"the server could not find the requested resource ({plural} are "
                                            f"not served for {self.mesh.name}; served: {self._plurals()})")
        edges = len(parts) == 5
        kind = _KIND[plural][0]
        try:
            if edges:
                frame = self.mesh.edges(kind, namespace=namespace if kind != "namespace" else name, name=name,
                                        at=self.at, window=self.window)
            else:
                frame = self.mesh.traffic(kind, namespace=namespace if kind != "namespace" else name, name=name,
                                          at=self.at, window=self.window)
            from meshlab.smi import to_traffic_metrics

            body = to_traffic_metrics(frame, window=self.window, version=self.version)
        except InvalidArgument as exc:
            return _status(400, "BadRequest", str(exc))
        except PrometheusUnavailable as exc:
            return _status(503, "ServiceUnavailable", str(exc))
        except MeshlabError as exc:
            return _status(500, "InternalError", str(exc))
        if name is not None and not edges:
            if not body["items"]:
                return _status(404, "NotFound", f'{plural}.{GROUP} "{name}" not found',
                               {"name": name, "group": GROUP, "kind": plural})
            return 200, body["items"][0]
        return 200, body

    def _plurals(self) -> list[str]:
        return [p for p, (kind, _) in _KIND.items() if kind in self.mesh.kinds]

    def _resources(self) -> dict[str, Any]:
        return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": f"{GROUP}/{self.version}",
                "resources": [{"name": p, "singularName": "", "namespaced": p != "namespaces", "kind": "TrafficMetrics",
                               "verbs": ["get", "list"]} for p in self._plurals()]}


def _group_list() -> dict[str, Any]:
    versions = [{"groupVersion": f"{GROUP}/{v}", "version": v} for v in ("v1alpha1", "v1alpha2")]
    return {"kind": "APIGroupList", "apiVersion": "v1",
            "groups": [{"name": GROUP, "versions": versions, "preferredVersion": versions[0]}]}


def _status(code: int, reason: str, message: str, details: dict[str, Any] | None = None
            ) -> tuple[int, dict[str, Any]]:
    body: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                            "message": message, "reason": reason, "code": code}
    if details:
        body["details"] = details
    return code, body


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # the server is a library's; no stderr chatter
        pass

    def do_GET(self) -> None:
        code, body = self.server.smi.answer(urlsplit(self.path).path)  # type: ignore[attr-defined]
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def serve_smi(prom: Any, mesh: str, *, window: Duration = "30s", at: TimeLike | None = None,
              version: str = "v1alpha1", host: str = "127.0.0.1", port: int = 0) -> SMIServer:
    """Serve ``mesh``'s signals in ``prom`` as the SMI Traffic Metrics API, in a background thread.

    ``GET /apis/metrics.smi-spec.io/v1alpha1/namespaces/NS/deployments`` gives each
    deployment's inbound traffic as a ``TrafficMetricsList``; ``.../deployments/NAME`` one
    ``TrafficMetrics``; ``.../deployments/NAME/edges`` its outbound edges; also ``pods``,
    ``statefulsets``, ``daemonsets``, ``jobs`` and ``namespaces`` where the mesh names them.
    Errors are Kubernetes ``Status`` objects (404 for what is not served, 503 when
    Prometheus is unreachable).

    Parameters
    ----------
    prom : meshlab.Prometheus or str
        Where the mesh's metrics are.
    mesh : str
        A registered mesh name (``"linkerd"``).
    window : duration
        The window counts are taken over, as smi-metrics' (``"30s"``).
    at : time, optional
        Evaluate at this time instead of now (a recorded run, a test).
    version : {"v1alpha1", "v1alpha2"}
    host, port
        Where to listen; by default 127.0.0.1 and a free port.
    """
    from meshlab.meshes import mesh as get_mesh

    if version not in ("v1alpha1", "v1alpha2"):
        raise InvalidArgument(f"version must be 'v1alpha1' or 'v1alpha2', got {version!r}")
    if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port < 65536:
        raise InvalidArgument(f"port must be a port number (0 for any free one), got {port!r}")
    adapter = get_mesh(mesh, prom)
    return SMIServer(adapter, window=window, at=at, version=version, host=host, port=port)
