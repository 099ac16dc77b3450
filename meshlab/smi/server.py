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
import copy
import re
import socket
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import InvalidArgument, MeshlabError, PrometheusUnavailable
from ..timeutil import Duration, TimeLike
from ._spec import _CLUSTER_KINDS, _KINDS, API_GROUP, MESH_LABEL, VERSIONS

if TYPE_CHECKING:
    import pandas as pd

    from ..meshes import Mesh
    from ..prometheus.client import Prometheus

__all__ = ["SMIServer", "SMIService", "create_app", "serve_smi"]

#: the longest ``?t=`` accepted: a day of rate() per request is already a heavy query
MAX_WINDOW_S = 86400.0
#: the shortest: rate() needs two samples, and Prometheus scrapes every few seconds at best
MIN_WINDOW_S = 1.0
#: how long /readyz waits for Prometheus
READY_TIMEOUT_S = 5.0
_NS = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")  # DNS-1123 label: a namespace
_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")  # DNS-1123 subdomain
_PLURAL_KIND = {plural: kind for kind, (_, plural) in _KINDS.items()}
_STATUS_ANNOTATION = "meshlab/status"
_MESSAGE_ANNOTATION = "meshlab/message"


def _short(value: str, limit: int = 60) -> str:
    """A name for a message: hostile input may be kilobytes long."""
    return repr(value if len(value) <= limit else value[:limit] + "...") + (
        f" ({len(value)} characters)" if len(value) > limit else "")


class _Reply(Exception):
    """A Kubernetes ``Status`` answer, raised from anywhere in a request."""

    def __init__(self, code: int, reason: str, message: str, details: Mapping[str, Any] | None = None):
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                                "message": self.message, "reason": self.reason, "code": self.code}
        if self.details:
            body["details"] = dict(self.details)
        return body


def check_name(value: str, what: str, *, namespace: bool = False) -> str:
    """``value`` if it is a Kubernetes name (a DNS-1123 label for a namespace, else a subdomain); else a 400."""
    limit, pattern = (63, _NS) if namespace else (253, _SUBDOMAIN)
    if len(value) > limit or not pattern.match(value):
        rule = ("a DNS-1123 label: at most 63 lower-case letters, digits and '-', alphanumeric at both ends"
                if namespace else "a DNS-1123 subdomain: at most 253 lower-case letters, digits, '-' and '.', "
                                  "alphanumeric at both ends of each dot-separated part")
        raise _Reply(400, "BadRequest", f"invalid {what} {_short(value)}: a Kubernetes {what} is {rule}")
    return value


def parse_window(text: str) -> int:
    """Nanoseconds of a ``?t=`` window (Go ``1m30s`` or Prometheus ``5m``, ``1h``); else a 400 saying why."""
    from ..timeutil import to_timedelta
    from ._wire import parse_go_duration

    shown = _short(text, 40)
    nanos = parse_go_duration(text) if len(text) <= 40 else None
    if nanos is None and len(text) <= 40:
        try:
            nanos = to_timedelta(text, name="t").value
        except (InvalidArgument, ValueError, OverflowError):
            nanos = None
    if nanos is None:
        raise _Reply(400, "BadRequest", f"invalid window t={shown}: give a duration such as 30s, 1m30s or 5m "
                                        "(Go or Prometheus syntax)")
    if not MIN_WINDOW_S * 1e9 <= nanos <= MAX_WINDOW_S * 1e9:
        raise _Reply(400, "BadRequest", f"invalid window t={shown}: it must be between {MIN_WINDOW_S:g}s and "
                                        f"{MAX_WINDOW_S / 3600:g}h")
    if nanos % 1_000_000:
        raise _Reply(400, "BadRequest", f"invalid window t={shown}: Prometheus ranges are whole milliseconds")
    return nanos


@dataclass(frozen=True)
class _Request:
    version: str
    plural: str
    namespace: str | None  # the path's namespace (for kind "namespace": None)
    name: str | None
    edges: bool
    template: str


def route(path: str) -> _Request | str:
    """What an API path asks for, or the name of a fixed endpoint (``"apis"``, ``"group"``, ``"resources:V"``)."""
    parts = path.strip("/").split("/")
    if parts == ["apis"]:
        return "apis"
    if parts[:2] != ["apis", API_GROUP]:
        raise _Reply(404, "NotFound", "the server could not find the requested resource")
    if len(parts) == 2:
        return "group"
    version = parts[2]
    if version not in VERSIONS:
        raise _Reply(404, "NotFound", f"the server could not find the requested resource: {API_GROUP} "
                                      f"version {_short(version, 20)} is not served (served: {', '.join(VERSIONS)})")
    rest, base = parts[3:], f"/apis/{API_GROUP}/{{version}}"
    if not rest:
        return f"resources:{version}"
    if rest[0] != "namespaces" or len(rest) > 5:
        raise _Reply(404, "NotFound", "the server could not find the requested resource: paths are "
                                      "namespaces[/NS[/edges]] and namespaces/NS/KIND[/NAME[/edges]]")
    if len(rest) == 1:
        return _Request(version, "namespaces", None, None, False, f"{base}/namespaces")
    ns = check_name(rest[1], "namespace", namespace=True)
    if len(rest) == 2:
        return _Request(version, "namespaces", None, ns, False, f"{base}/namespaces/{{name}}")
    if len(rest) == 3 and rest[2] == "edges":
        return _Request(version, "namespaces", None, ns, True, f"{base}/namespaces/{{name}}/edges")
    plural = rest[2]
    if plural not in _PLURAL_KIND or plural == "namespaces":
        raise _Reply(404, "NotFound", f"the server could not find the requested resource: no kind "
                                      f"{_short(plural, 40)} in {API_GROUP} (kinds: "
                                      f"{', '.join(p for p in _PLURAL_KIND if p != 'namespaces')})")
    if len(rest) == 3:
        return _Request(version, plural, ns, None, False, f"{base}/namespaces/{{namespace}}/{{kind}}")
    name = check_name(rest[3], "name")
    if len(rest) == 4:
        return _Request(version, plural, ns, name, False, f"{base}/namespaces/{{namespace}}/{{kind}}/{{name}}")
    if rest[4] != "edges":
        raise _Reply(404, "NotFound", "the server could not find the requested resource: after a name only "
                                      "/edges is served")
    return _Request(version, plural, ns, name, True, f"{base}/namespaces/{{namespace}}/{{kind}}/{{name}}/edges")


class SMIService:
    """The SMI Traffic Metrics API over mesh adapters: routing, cache, concurrency and metrics.

    :func:`create_app` wraps it in a starlette application; :func:`serve_smi` serves that.
    The adapters' client is a copy of ``prom`` whose every request to Prometheus is counted
    (``meshlab_smi_promql_queries_total``) and waits for one of ``max_queries`` slots.
    """

    def __init__(self, prom: Prometheus | str, meshes: str | Sequence[str] = "auto", *,
                 window: Duration = "30s", at: TimeLike | None = None, version: str = "v1alpha1",
                 max_queries: int = 4, cache_ttl: float = 5.0, cache_size: int = 1024):
        _require_serve()
        from prometheus_client import CollectorRegistry, Counter, Histogram

        from ..meshes import base
        from ..meshes import mesh as make_mesh
        from ..timeutil import to_timedelta, to_timestamp

        if version not in VERSIONS:
            raise InvalidArgument(f"version must be one of {', '.join(VERSIONS)} (the preferred one; both are "
                                  f"served), got {version!r}")
        if not isinstance(max_queries, int) or isinstance(max_queries, bool) or max_queries < 1:
            raise InvalidArgument(f"max_queries must be a whole number of concurrent PromQL queries, at least 1; "
                                  f"got {max_queries!r}")
        if isinstance(cache_ttl, bool) or not isinstance(cache_ttl, (int, float)) or not 0 <= cache_ttl <= 3600:
            raise InvalidArgument(f"cache_ttl must be seconds between 0 and 3600, got {cache_ttl!r}")
        if not isinstance(cache_size, int) or isinstance(cache_size, bool) or cache_size < 1:
            raise InvalidArgument(f"cache_size must be a whole number of entries, at least 1; got {cache_size!r}")
        self.window_ns = to_timedelta(window, name="window").value
        if not MIN_WINDOW_S * 1e9 <= self.window_ns <= MAX_WINDOW_S * 1e9:
            raise InvalidArgument(f"window must be between {MIN_WINDOW_S:g}s and {MAX_WINDOW_S / 3600:g}h, "
                                  f"got {window!r}")
        self.at = None if at is None else to_timestamp(at, name="at")
        self.version, self.cache_ttl, self.cache_size = version, float(cache_ttl), cache_size
        self.registry = CollectorRegistry()
        self.requests = Counter("meshlab_smi_requests", "HTTP requests answered, by path template and status code.",
                                ["path", "code"], registry=self.registry)
        self.latency = Histogram("meshlab_smi_request_duration_seconds", "Time to answer an HTTP request.",
                                 ["path"], registry=self.registry,
                                 buckets=(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30))
        self.queries = Counter("meshlab_smi_promql_queries", "Requests sent to Prometheus, by API endpoint.",
                               ["endpoint"], registry=self.registry)
        self.cache_lookups = Counter("meshlab_smi_cache_lookups", "Frame lookups: hit, shared (waited for the same "
                                     "computation in flight) or miss.", ["result"], registry=self.registry)
        self._slots = threading.BoundedSemaphore(max_queries)
        self.max_queries = max_queries
        self.prom = self._metered(base.as_prometheus(prom, "serve_smi"))
        names = [meshes] if isinstance(meshes, str) else list(meshes)
        if not names or not all(isinstance(n, str) and n for n in names):
            raise InvalidArgument(f"meshes must be mesh names such as 'linkerd' (or 'auto'), got {meshes!r}")
        if names == ["auto"]:
            from ..meshes import detect

            names = sorted(detect(self.prom))
            if not names:
                raise MeshlabError(f"no mesh's metrics found in Prometheus at {self.prom.url}; name the meshes "
                                   "to serve")
        self.adapters: dict[str, Mesh] = {}
        for n in names:
            if n not in self.adapters:
                self.adapters[n] = make_mesh(n, self.prom)
        self._cache: dict[tuple[Any, ...], tuple[float, Any]] = {}
        self._inflight: dict[tuple[Any, ...], asyncio.Future[Any]] = {}

    # -- Prometheus ----------------------------------------------------------------------------

    def _metered(self, prom: Prometheus) -> Prometheus:
        """A copy of ``prom`` (same session, auth and settings) that counts and bounds its requests."""
        metered = copy.copy(prom)
        send = prom._send
        slots, counter = self._slots, self.queries

        def bounded_send(endpoint: str, params: dict[str, str], promql: str) -> tuple[bytearray, int]:
            counter.labels(endpoint.strip("/")).inc()
            with slots:
                return send(endpoint, params, promql)

        metered._send = bounded_send  # type: ignore[method-assign]
        metered._owns_session = False  # the caller's client keeps its session
        return metered

    def promql_queries(self, endpoints: Sequence[str] = ("query", "query_range", "series")) -> int:
        """How many requests to Prometheus's query endpoints the server has sent."""
        total = 0.0
        for metric in self.queries.collect():
            for sample in metric.samples:
                if sample.name.endswith("_total") and sample.labels.get("endpoint") in endpoints:
                    total += sample.value
        return int(total)

    def ready(self) -> tuple[bool, str]:
        """Whether Prometheus answers (its build information), and what it said."""
        try:
            info = self.prom.get("status/buildinfo")
        except MeshlabError as exc:
            return False, str(exc)
        version = info.get("version", "?") if isinstance(info, dict) else "?"
        return True, f"Prometheus at {self.prom.url} answers (version {version})"

    # -- frames --------------------------------------------------------------------------------

    def served_plurals(self, meshes: Sequence[str] | None = None) -> list[str]:
        """The resource plurals some of ``meshes`` (default: all) can name, in the spec's order."""
        kinds = {k for n in (meshes or self.adapters) for k in self.adapters[n].kinds}
        return [plural for kind, (_, plural) in _KINDS.items() if kind in kinds]

    async def frame(self, what: str, mesh: str, kind: str, namespace: str | None, window_ns: int
                    ) -> tuple[pd.DataFrame, pd.Timestamp]:
        """One mesh's ``traffic`` or ``edges`` frame (and its instant), cached and computed once at a time."""
        key = (what, window_ns, mesh, kind, namespace)
        loop = asyncio.get_running_loop()
        hit = self._cache.get(key)
        if hit is not None and hit[0] > loop.time():
            self.cache_lookups.labels("hit").inc()
            return hit[1]
        pending = self._inflight.get(key)
        if pending is not None:
            self.cache_lookups.labels("shared").inc()
            return await asyncio.shield(pending)
        self.cache_lookups.labels("miss").inc()
        from starlette.concurrency import run_in_threadpool

        task = asyncio.ensure_future(run_in_threadpool(self._compute, what, mesh, kind, namespace, window_ns))
        self._inflight[key] = task

        def settle(done: asyncio.Future[Any]) -> None:
            self._inflight.pop(key, None)
            if not done.cancelled() and done.exception() is None:
                self._store(key, loop.time() + self.cache_ttl, done.result())

        task.add_done_callback(settle)
        return await asyncio.shield(task)

    def _store(self, key: tuple[Any, ...], expires: float, value: Any) -> None:
        if self.cache_ttl <= 0:
            return
        if len(self._cache) >= self.cache_size:
            now = expires - self.cache_ttl
            for old in [k for k, (until, _) in self._cache.items() if until <= now]:
                del self._cache[old]
            while len(self._cache) >= self.cache_size:
                del self._cache[next(iter(self._cache))]  # the oldest entry
        self._cache[key] = (expires, value)

    def _compute(self, what: str, mesh: str, kind: str, namespace: str | None, window_ns: int
                 ) -> tuple[pd.DataFrame, pd.Timestamp]:
        import pandas as pd

        from ..timeutil import utc_now

        at = self.at if self.at is not None else utc_now().floor("ms")
        window = pd.Timedelta(window_ns, unit="ns")
        adapter = self.adapters[mesh]
        if what == "edges":
            return adapter.edges(kind, namespace=namespace, at=at, window=window), at
        return adapter.traffic(kind, namespace=namespace, at=at, window=window), at

    # -- answers -------------------------------------------------------------------------------

    def group(self) -> dict[str, Any]:
        versions = [{"groupVersion": f"{API_GROUP}/{v}", "version": v} for v in VERSIONS]
        preferred = next(v for v in versions if v["version"] == self.version)
        return {"kind": "APIGroup", "apiVersion": "v1", "name": API_GROUP, "versions": versions,
                "preferredVersion": preferred}

    def resources(self, version: str) -> dict[str, Any]:
        return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": f"{API_GROUP}/{version}",
                "resources": [{"name": p, "singularName": "", "namespaced": p != "namespaces",
                               "kind": "TrafficMetrics", "verbs": ["get", "list"]} for p in self.served_plurals()]}

    def pick_meshes(self, values: Sequence[str]) -> list[str]:
        """The meshes ``?mesh=`` names (repeated or comma-separated), or every one served."""
        names = [n.strip() for v in values for n in v.split(",") if n.strip()]
        if not values:
            return list(self.adapters)
        unknown = [n for n in names if n not in self.adapters]
        if unknown or not names:
            raise _Reply(400, "BadRequest", f"invalid mesh {_short(unknown[0] if unknown else '')}: this server "
                                            f"serves {', '.join(self.adapters)} (?mesh=NAME, repeated or "
                                            "comma-separated)")
        return list(dict.fromkeys(names))

    async def respond(self, req: _Request, window_ns: int, meshes: list[str]) -> tuple[int, bytes, dict[str, str]]:
        """:meth:`answer` as JSON, reused for ``cache_ttl`` seconds: a hit costs no pandas at all."""
        import orjson

        key = ("answer", req, window_ns, tuple(meshes))
        now = asyncio.get_running_loop().time()
        hit = self._cache.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        code, body, headers = await self.answer(req, window_ns, meshes)
        answer = (code, orjson.dumps(body), headers)
        self._store(key, asyncio.get_running_loop().time() + self.cache_ttl, answer)
        return answer

    async def answer(self, req: _Request, window_ns: int, meshes: list[str]
                     ) -> tuple[int, dict[str, Any], dict[str, str]]:
        """The status, body and extra headers for one resource request."""
        import pandas as pd

        from .. import schema
        from ._wire import _format_time, format_go_duration
        from .write import _ref, _self_link, to_traffic_metrics

        kind = _PLURAL_KIND[req.plural]
        able = [m for m in meshes if kind in self.adapters[m].kinds]
        if not able:
            raise _Reply(404, "NotFound", f"the server could not find the requested resource: {req.plural} are "
                                          f"not served for {', '.join(meshes)} (served: "
                                          f"{', '.join(self.served_plurals(meshes))})")
        what = "edges" if req.edges else "traffic"
        scope = req.name if kind in _CLUSTER_KINDS and req.edges else req.namespace
        got = await asyncio.gather(*(self.frame(what, m, kind, scope, window_ns) for m in able),
                                   return_exceptions=True)
        for error in got:
            if isinstance(error, PrometheusUnavailable):
                raise _Reply(503, "ServiceUnavailable", f"Prometheus is unavailable: {error}")
            if isinstance(error, MeshlabError) and not isinstance(error, InvalidArgument):
                raise _Reply(502, "BadGateway", f"Prometheus could not answer: {error}")
            if isinstance(error, BaseException) and not isinstance(error, InvalidArgument):
                raise error
        # a mesh that cannot name this view (Consul has no namespace edges) is left out, not an error
        results = [r for r in got if not isinstance(r, BaseException)]
        if not results:
            refusals = "; ".join(str(e) for e in got)
            raise _Reply(404, "NotFound", f"the server could not find the requested resource: {refusals}")
        able = [m for m, r in zip(able, got, strict=True) if not isinstance(r, BaseException)]
        at = results[0][1]
        frames = [f for f, _ in results]
        frame = schema.concat(frames, what) if len(frames) > 1 else frames[0]
        if req.name is not None:
            column = "src_name" if req.edges else "name"
            frame = frame[frame[column].astype(object) == req.name].reset_index(drop=True)
        window = pd.Timedelta(window_ns, unit="ns")
        api_version = f"{API_GROUP}/{req.version}"
        body = to_traffic_metrics(frame, window=window, version=req.version)
        ref = _ref(kind, req.namespace or "", req.name) if req.name is not None else \
            ({"kind": _KINDS[kind][0]} if req.namespace is None else
             {"kind": _KINDS[kind][0], "namespace": req.namespace})
        if req.name is not None and not req.edges:
            if len(body["items"]) > 1:
                seen = sorted({item["metadata"]["labels"][MESH_LABEL] for item in body["items"]})
                raise _Reply(409, "Conflict", f"{req.plural} {_short(req.name)} has traffic in several meshes "
                                              f"({', '.join(seen)}); choose one with ?mesh=NAME")
            if body["items"]:
                return 200, body["items"][0], {}
            message = (f"no traffic to {ref['kind']} {'/'.join(filter(None, (req.namespace, req.name)))} in "
                       f"{', '.join(able)} over the {format_go_duration(window_ns)} window ending "
                       f"{_format_time(at)}: it has no meshed inbound requests, or does not exist")
            stamp = _format_time(at)
            item = {"kind": "TrafficMetrics", "apiVersion": api_version,
                    "metadata": {**({"namespace": ref["namespace"]} if "namespace" in ref else {}),
                                 "name": req.name, "selfLink": _self_link(api_version, ref, False),
                                 "creationTimestamp": stamp,
                                 "annotations": {_STATUS_ANNOTATION: "NoTraffic", _MESSAGE_ANNOTATION: message}},
                    "timestamp": stamp, "window": format_go_duration(window_ns), "resource": ref,
                    "edge": {"direction": "from", "side": "server", "resource": None},
                    "metrics": [*({"name": f"p{q}_response_latency", "unit": "ms", "value": None}
                                  for q in (99, 90, 50)),
                                {"name": "success_count", "value": None}, {"name": "failure_count", "value": None}]}
            return 200, item, {"Warning": _warning(message)}
        body["resource"] = ref
        body["metadata"]["selfLink"] = _self_link(api_version, ref, True) if req.edges else \
            f"/apis/{api_version}/namespaces" + (f"/{req.namespace}/{req.plural}" if req.namespace else "")
        return 200, body, {}


def _require_serve() -> None:
    """Fail with what to install when the server's optional packages are missing."""
    import importlib.util

    missing = [p for p in ("starlette", "uvicorn", "prometheus_client") if importlib.util.find_spec(p) is None]
    if missing:
        raise MeshlabError(f"the SMI server needs {', '.join(missing)}: pip install 'meshlab[serve]'")


def _warning(message: str) -> str:
    """An RFC 7234 ``Warning`` header (299), which kubectl and client-go show to the user."""
    text = message.encode("ascii", "replace").decode().replace("\\", "\\\\").replace('"', '\\"')
    return f'299 - "{text}"'


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

