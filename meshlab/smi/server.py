"""Serve meshes' golden signals as the SMI Traffic Metrics API (``metrics.smi-spec.io``).

What the archived smi-metrics server did, from any meshlab adapter and several meshes at once:
``kubectl get --raw /apis/metrics.smi-spec.io/v1alpha1/namespaces/NS/deployments`` answered from
Prometheus, on starlette and uvicorn (imported only when a server starts).

It lives beside the SMI writer and reader (:mod:`meshlab.smi`) rather than in
:mod:`meshlab.k8s` because it needs neither the kubernetes client nor a cluster: it turns
adapter frames into the spec's documents with :func:`meshlab.smi.to_traffic_metrics`, and a
cluster only routes to it (an ``APIService``; see ``deploy/``). ``ml.k8s.serve_smi`` is the
same function.

Beyond the archived server: ``?mesh=`` picks among several meshes; a resource without
traffic is an item with null values and a ``meshlab/status`` annotation (and a ``Warning``
header), never a 500; a bad ``?t=`` is a 400 that says why; PromQL runs at most
``max_queries`` at a time; answers are cached per (window, mesh, kind, namespace) for
``cache_ttl`` seconds and identical concurrent misses share one computation; ``/healthz``,
``/readyz`` and ``/metrics`` (Prometheus text format) are served. Every name in a path is
checked as a Kubernetes DNS name before anything reaches PromQL.
"""
from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import InvalidArgument, MeshlabError
from ..timeutil import Duration, TimeLike
from ._routes import READY_TIMEOUT_S, _Reply, check_name, parse_window, route  # noqa: F401  (re-exported for tests)
from ._spec import API_GROUP
from .service import SMIService

if TYPE_CHECKING:
    from ..prometheus.client import Prometheus


__all__ = ["SMIServer", "SMIService", "create_app", "serve_smi"]


def create_app(service: SMIService) -> Any:
    """A starlette application serving ``service`` (see the module docstring for its paths)."""
    import orjson
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    def json(code: int, body: Any, headers: Mapping[str, str] | None = None) -> Response:
        return Response(orjson.dumps(body), status_code=code, media_type="application/json", headers=headers)

    async def handle(request: Request) -> Response:
        began = time.perf_counter()
        template = "other"  # hostile paths must not become label values
        try:
            path = request.url.path
            if path in ("/healthz", "/readyz", "/metrics"):
                template = path
            if request.method not in ("GET", "HEAD"):
                raise _Reply(405, "MethodNotAllowed", f"the server does not allow {request.method[:20]!r} here: "
                                                      "the SMI metrics API is read-only (GET)")
            if path == "/healthz":
                response = Response("ok\n", media_type="text/plain")
            elif path == "/readyz":
                try:  # a kubelet probe waits a second or so: do not make it wait for the client's retries
                    ok, said = await asyncio.wait_for(run_in_threadpool(service.ready), READY_TIMEOUT_S)
                except asyncio.TimeoutError:
                    ok, said = False, f"Prometheus at {service.prom.url} did not answer within {READY_TIMEOUT_S:g} s"
                response = Response(("ok: " if ok else "not ready: ") + said + "\n", status_code=200 if ok else 503,
                                    media_type="text/plain")
            elif path == "/metrics":
                from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

                response = Response(generate_latest(service.registry), media_type=CONTENT_TYPE_LATEST)
            else:
                found = route(path)
                if found == "apis":
                    template = "/apis"
                    group = service.group()
                    response = json(200, {"kind": "APIGroupList", "apiVersion": "v1",
                                          "groups": [{k: v for k, v in group.items() if k not in ("kind",
                                                                                                  "apiVersion")}]})
                elif found == "group":
                    template = f"/apis/{API_GROUP}"
                    response = json(200, service.group())
                elif isinstance(found, str):
                    template = f"/apis/{API_GROUP}/{{version}}"
                    response = json(200, service.resources(found.split(":", 1)[1]))
                else:
                    template = found.template
                    t = request.query_params.getlist("t")
                    if len(t) > 1:
                        raise _Reply(400, "BadRequest", "give the window t= once")
                    window_ns = parse_window(t[0]) if t else service.window_ns
                    meshes = service.pick_meshes(request.query_params.getlist("mesh"))
                    code, data, headers = await service.respond(found, window_ns, meshes)
                    response = Response(data, status_code=code, media_type="application/json", headers=headers)
        except _Reply as reply:
            response = json(reply.code, reply.body())
        except Exception as exc:  # a bug: still a Status, and counted
            response = json(500, _Reply(500, "InternalError", f"{type(exc).__name__}: {exc}").body())
        service.requests.labels(template, str(response.status_code)).inc()
        service.latency.labels(template).observe(time.perf_counter() - began)
        return response

    methods = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
    return Starlette(routes=[Route("/{path:path}", handle, methods=methods)])


class SMIServer:
    """A running SMI metrics server (uvicorn in a background thread); see :func:`serve_smi`.

    ``url`` is its base (``http://127.0.0.1:PORT``, ``https://`` with TLS); ``service`` is
    its :class:`SMIService` (``service.promql_queries()`` counts what reached Prometheus).
    Close it, or use it as a context manager.
    """

    def __init__(self, service: SMIService, *, host: str = "127.0.0.1", port: int = 0,
                 tls_cert: str | Path | None = None, tls_key: str | Path | None = None):
        import uvicorn

        self.service = service
        config = uvicorn.Config(create_app(service), host=host, port=port, log_level="warning", access_log=False,
                                lifespan="off", timeout_keep_alive=5, timeout_graceful_shutdown=5,
                                ssl_certfile=str(tls_cert) if tls_cert else None,
                                ssl_keyfile=str(tls_key) if tls_key else None)
        config.load()  # reads the certificate now, so a bad one is an error here, not in the thread
        self._server = uvicorn.Server(config)
        self._socket = _bind(host, port)
        bound = self._socket.getsockname()
        shown = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
        self.url = f"{'https' if tls_cert else 'http'}://{shown}:{bound[1]}"
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._socket]},
                                        name=f"meshlab SMI {self.url}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 15
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.close()
                raise MeshlabError(f"the SMI server at {self.url} did not start")
            time.sleep(0.01)

    def __repr__(self) -> str:
        return f"SMIServer({self.url!r}, meshes={list(self.service.adapters)!r})"

    def __enter__(self) -> SMIServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop serving and free the port."""
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(10)
        self._socket.close()


def _bind(host: str, port: int) -> socket.socket:
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(512)
    except OSError as exc:
        raise InvalidArgument(f"cannot listen on {host}:{port}: {exc.strerror or exc}; pick another port, or a "
                              "local address such as 127.0.0.1") from None
    sock.set_inheritable(True)
    return sock


def _check_listen_arguments(host: object, port: object, tls_cert: object, tls_key: object) -> None:
    if not isinstance(host, str) or not host:
        raise InvalidArgument(f"host must be an address to listen on, such as '127.0.0.1'; got {host!r}")
    if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port < 65536:
        raise InvalidArgument(f"port must be a port number (0 for any free one), got {port!r}")
    if (tls_cert is None) != (tls_key is None):
        raise InvalidArgument("tls_cert and tls_key go together: give both (PEM files) or neither")
    for arg, value in (("tls_cert", tls_cert), ("tls_key", tls_key)):
        if value is not None and not Path(str(value)).is_file():
            raise InvalidArgument(f"{arg} {str(value)!r} is not a readable file; give a PEM file")


def serve_smi(prom: Prometheus | str, mesh: str | Sequence[str] = "auto", *, window: Duration = "30s",
              at: TimeLike | None = None, version: str = "v1alpha1", host: str = "127.0.0.1", port: int = 0,
              tls_cert: str | Path | None = None, tls_key: str | Path | None = None, max_queries: int = 4,
              cache_ttl: float = 5.0) -> SMIServer:
    """Serve meshes' signals in ``prom`` as the SMI Traffic Metrics API, in a background thread.

    ``GET /apis/metrics.smi-spec.io/v1alpha1/namespaces/NS/deployments`` gives each
    deployment's inbound traffic as a ``TrafficMetricsList``; ``.../deployments/NAME`` one
    ``TrafficMetrics``; ``.../deployments/NAME/edges`` the edges it is the source of; also
    ``namespaces[/NS[/edges]]`` and every kind a served mesh names workloads by. ``v1alpha2``
    paths too. ``?t=`` sets the window (``30s``, ``1m30s``, ``5m``; 1 s to 24 h) and ``?mesh=``
    the meshes (all served ones by default; items carry a ``meshlab/mesh`` label). Errors are
    Kubernetes ``Status`` objects: 400 for a bad name, window or mesh, 404 for what is not
    served, 409 when one resource has traffic in several meshes, 503 when Prometheus is down.

    Parameters
    ----------
    prom : meshlab.Prometheus or str
        Where the meshes' metrics are.
    mesh : str or sequence of str
        Registered mesh names (``"linkerd"``, ``["linkerd", "istio"]``), or ``"auto"``: every
        mesh with data in ``prom``.
    window : duration
        The window when a request gives no ``?t=`` (smi-metrics' 30 s).
    at : time, optional
        Evaluate at this time instead of now (a recorded run, a test).
    version : {"v1alpha1", "v1alpha2"}
        The preferred version in the API group's discovery document; both are served.
    host, port
        Where to listen; by default 127.0.0.1 and a free port.
    tls_cert, tls_key : path, optional
        PEM certificate (chain) and key: serve HTTPS, as an APIService's backend must.
    max_queries : int
        At most this many PromQL requests in flight at once.
    cache_ttl : float
        Seconds an answer is reused for an identical (window, mesh, kind, namespace).

    Returns
    -------
    SMIServer
        ``.url``, ``.close()``, a context manager.
    """
    _check_listen_arguments(host, port, tls_cert, tls_key)
    service = SMIService(prom, mesh, window=window, at=at, version=version, max_queries=max_queries,
                         cache_ttl=cache_ttl)
    return SMIServer(service, host=host, port=port, tls_cert=tls_cert, tls_key=tls_key)
