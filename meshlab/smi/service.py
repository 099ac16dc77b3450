"""The SMI Traffic Metrics API over mesh adapters: answers, cache, PromQL concurrency, metrics (no HTTP here).

The HTTP application and server around it are in :mod:`meshlab.smi.server`.
"""

from __future__ import annotations

import asyncio
import copy
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..errors import InvalidArgument, MeshlabError, PrometheusUnavailable
from ..timeutil import Duration, TimeLike
from ._spec import _CLUSTER_KINDS, _KINDS, API_GROUP, MESH_LABEL, VERSIONS

if TYPE_CHECKING:
    import pandas as pd

    from ..meshes import Mesh
    from ..prometheus.client import Prometheus

from ._routes import (
    _MESSAGE_ANNOTATION,
    _PLURAL_KIND,
    _STATUS_ANNOTATION,
    MAX_WINDOW_S,
    MIN_WINDOW_S,
    _Reply,
    _Request,
    _short,
    _warning,
)

__all__ = ["SMIService"]


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
