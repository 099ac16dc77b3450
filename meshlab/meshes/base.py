"""Mesh adapters' frames: the PromQL of :mod:`.queries` run and assembled into tidy frames.

An adapter is data plus a little code: for each signal it knows the mesh's metric, the
matchers that select the right proxy's view, and which labels name a workload of each
kind (:mod:`.spec`). :class:`Mesh` turns that into PromQL (:mod:`.queries`, one query per
signal for all workloads), runs it, and assembles the tidy ``traffic``, ``edges``, ``tcp`` and ``proxies`` frames of
:mod:`meshlab.schema`.

Semantics at each step T with window W, for every mesh:

- counts are ``sum by (...) (increase(counter{...}[W]))``;
- ``requests = success_count + failure_count``; ``rps = requests / W``;
- ``success_rate = success_count / requests``, NaN when there were no requests;
- a workload with traffic but no failure series has ``failure_count`` 0, not NaN;
- a workload whose counters exist but saw no traffic in a window is present with zero
  counts (and NaN rate and latency); one with no counters at all is absent;
- latency is ``histogram_quantile(q, sum by (le, ...) (rate(bucket{...}[W])))`` in ms;
- one rule for the first step, and any step whose window holds fewer than two samples of a
  series, in every frame (traffic, edges, tcp, proxies): no rate can be computed there, so
  there is no row, never a row of NaN rates or a gauge alone (an ``open_connections`` or
  ``memory_bytes`` without its window's rates).

meshlab uses ``rate``/``increase`` where the meshes' own CLIs and dashboards use
``irate``: ``irate`` looks only at the last two samples of the window.

Longer than 400 lines: most of them are the four frame methods' docstrings, and the methods
share the merge, naming and bucket-bound helpers below, which belong with them.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import reduce

import numpy as np
import pandas as pd

from .. import schema
from ..errors import InvalidArgument, ShortWindowWarning
from ..prometheus.client import Prometheus
from ..prometheus.promql import label_name, selector
from ..timeutil import Duration, TimeLike, format_duration, to_timedelta
from . import queries
from .pieces import read_in_pieces
from .spec import (
    DST_WORKLOAD,
    KINDS,
    TCP_SIGNALS,
    WINDOWED_TCP,
    WORKLOAD,
    WORKLOAD_KIND,
    WORKLOAD_KINDS,
    Identity,
    MeshSpec,
    Owners,
    Signal,
    Span,
    TcpSignal,
    check_label_value,
    check_labels,
    label_rewrites,
    pod_rewrites,
    workload_of_pod,
)

__all__ = ["DST_WORKLOAD", "KINDS", "WORKLOAD", "WORKLOAD_KIND", "WORKLOAD_KINDS", "Identity", "Mesh", "Owners",
           "Signal", "Span", "TcpSignal", "as_prometheus", "check_label_value", "earliest_sample", "label_rewrites",
           "pod_rewrites", "workload_of_pod"]


class Mesh(MeshSpec, abstract=True):
    """A service mesh's metrics, read into meshlab's tidy frames.

    Subclasses set the class attributes of :class:`~meshlab.meshes.spec.MeshSpec`; most need
    no methods of their own. ``Mesh`` itself, and any class declared ``abstract=True``,
    cannot be instantiated.
    """

    #: A range read of more steps than this is read in time pieces (:func:`.pieces.read_in_pieces`).
    piece_steps: int = 64
    #: About how many rows of a frame each time piece is sized for: what bounds memory while reading.
    piece_rows: int = 50_000

    def __init__(self, prom: Prometheus | str, *, scrape_interval: Duration = "15s"):
        if type(self).abstract:
            raise TypeError(f"{type(self).__name__} is an abstract mesh adapter: use a registered mesh "
                            "(ml.mesh('istio', prom)) or subclass it and set name, marker and workload_signal")
        self.prom = as_prometheus(prom, type(self).__name__)
        #: how often Prometheus scrapes the proxies: a window shorter than two scrapes gets a ShortWindowWarning
        self.scrape_interval = to_timedelta(scrape_interval, name="scrape_interval")
        if self.scrape_interval <= pd.Timedelta(0):
            raise InvalidArgument(f"scrape_interval must be positive, got {scrape_interval!r}")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.prom!r})"

    # -- PromQL --------------------------------------------------------------------------------

    @classmethod
    def promql(cls, signal: str, kind: str | None = None, namespace: str | None = None, name: str | None = None,
               window: Duration = "1m", *, side: str | None = None, quantile: float = 0.99,
               source: str = "cadvisor", by_labels: Sequence[str] = ()) -> str:
        """The exact PromQL meshlab runs for one signal, to inspect or reuse (no server needed).

        See :func:`meshlab.meshes.queries.promql` for the parameters.
        """
        return queries.promql(cls, signal, kind, namespace, name, window, side=side, quantile=quantile,
                              source=source, by_labels=by_labels)

    # -- frames --------------------------------------------------------------------------------

    def traffic(self, kind: str | None = None, namespace: str | None = None, name: str | None = None, *,
                start: TimeLike | None = None, end: TimeLike | None = None, step: Duration = "1m",
                window: Duration = "1m", at: TimeLike | None = None,
                quantiles: Sequence[float] = schema.QUANTILES, by_cluster: bool | str = False) -> pd.DataFrame:
        """Golden signals of each workload's inbound traffic, as its own proxies see them.

        Give ``start`` and ``end`` (and ``step``) for time series, or ``at`` for one
        instant (SMI-style). ``quantiles`` adds latency quantiles (each strictly between 0
        and 1, one query each) to the p50, p90 and p99 every frame has; the columns come
        sorted by quantile, named exactly (0.999 -> ``latency_p999_ms``, 0.0999 ->
        ``latency_p0999_ms``). Each estimate has its resolution: ``latency_pNN_low_ms`` and
        ``latency_pNN_high_ms`` bound the histogram bucket it fell in (one more query).
        See the module docstring for the semantics.

        ``by_cluster=True`` reads a store holding several clusters (one VictoriaMetrics fed
        by a ``vmagent`` per cluster, Thanos, Mimir): ``cluster`` joins every ``by`` clause,
        so each signal is still one query whatever the number of clusters, and the frame
        gets a categorical ``cluster`` column, as :func:`meshlab.concat_sources` gives. Pass
        the label's name (``by_cluster="k8s_cluster"``) when it is not ``cluster``. Every
        frame method takes it.

        Returns
        -------
        pandas.DataFrame
            A ``traffic`` frame, plus ``latency_pNN_ms`` for extra quantiles.
        """
        self._check_arguments(namespace=namespace, name=name, window=window)
        kind = self._kind(kind)
        identity = self.workload_identity(kind)
        columns = {identity.namespace: "namespace", **({identity.name: "name"} if identity.name else {}),
                   **({identity.kind_label: "workload_kind"} if identity.kind_label else {}),
                   **_cluster_columns(by_cluster)}
        quantiles = schema.check_quantiles(quantiles)
        span = Span(start, end, step, window, at)

        def read(piece: Span) -> pd.DataFrame:
            frame = self._golden(kind, namespace, name, None, columns, piece, quantiles, _cluster_columns(by_cluster))
            if identity.name is None:
                frame["name"] = frame["namespace"]
            if kind == "workload":
                frame = _named(frame, ["namespace", "name"])
                if "workload_kind" not in frame:
                    frame["workload_kind"] = pd.Series(pd.NA, index=frame.index, dtype="string")
            frame.insert(1, "mesh", self.name)
            frame.insert(2, "kind", kind)
            return schema.conform(frame, "traffic")

        return self._piecewise(span, read, "traffic")

    def edges(self, kind: str | None = None, namespace: str | None = None, name: str | None = None, *,
              start: TimeLike | None = None, end: TimeLike | None = None, step: Duration = "1m",
              window: Duration = "1m", at: TimeLike | None = None, sides: Sequence[str] | None = None,
              quantiles: Sequence[float] = schema.QUANTILES, by_cluster: bool | str = False) -> pd.DataFrame:
        """Golden signals per (source, destination), as the client's or the server's proxy sees them.

        ``namespace`` and ``name`` filter the source. Each mesh's docstring says which sides it has.
        ``quantiles`` and ``by_cluster`` work as in :meth:`traffic`.

        Returns
        -------
        pandas.DataFrame
            An ``edges`` frame.
        """
        self._check_arguments(namespace=namespace, name=name, window=window)
        kind = self._kind(kind)
        quantiles = schema.check_quantiles(quantiles)
        span = Span(start, end, step, window, at)
        views = queries.sides(type(self), sides, self.edge_signals, "edges")
        cluster = _cluster_columns(by_cluster)

        def read(piece: Span) -> pd.DataFrame:
            parts = []
            for side in views:
                identity = self.edge_identity(kind, side)
                part = self._golden(kind, namespace, name, side, {**self._edge_columns(identity), **cluster}, piece,
                                    quantiles, cluster)
                parts.append(_workload_edges(self._fill_edges(self._name_edges(part, identity, kind, side), kind,
                                                              side), kind))
            return schema.concat(parts, "edges")

        return self._piecewise(span, read, "edges", views)

    def tcp(self, kind: str | None = None, namespace: str | None = None, name: str | None = None, *,
            start: TimeLike | None = None, end: TimeLike | None = None, step: Duration = "1m",
            window: Duration = "1m", at: TimeLike | None = None, per: str = "edge",
            sides: Sequence[str] | None = None, by_cluster: bool | str = False) -> pd.DataFrame:
        """TCP connections and bytes, per (source, destination) or per workload.

        ``per="edge"`` names both ends, as :meth:`edges` does, from each side's proxies;
        ``namespace`` and ``name`` filter the source. ``per="workload"`` gives each
        workload's inbound connections from every caller, as its own proxies see them:
        the workload is the destination, the source columns are empty and ``side`` is
        ``server`` (SMI's edge with an empty resource); ``namespace`` and ``name`` filter
        the workload. At each step T with window W: ``opened_connections`` is the increase
        over W, ``open_connections`` the connections open at T (NaN where the mesh does not
        say), and the byte columns are ``rate`` over W from the client's point of view
        (``sent``: client to server). Each mesh's docstring says which connections it counts.

        Parameters
        ----------
        kind : str, optional
            How to name workloads; the mesh's ``default_kind`` if not given.
        namespace, name : str, optional
            Filter the source (``per="edge"``) or the workload (``per="workload"``).
        start, end : time, optional
            A range, evaluated every ``step``; or give ``at`` for one instant.
        step, window : duration
        at : time, optional
        per : {"edge", "workload"}
        sides : list of {"client", "server"}, optional
            For ``per="edge"``: which proxies' view; every side the mesh has by default.
        by_cluster : bool or str
            As in :meth:`traffic`.

        Returns
        -------
        pandas.DataFrame
            A ``tcp`` frame.
        """
        self._check_arguments(namespace=namespace, name=name, window=window)
        kind = self._kind(kind)
        if per not in ("edge", "workload"):
            raise InvalidArgument(f"per must be 'edge' or 'workload', got {per!r}")
        span = Span(start, end, step, window, at)
        if per == "workload" and sides is not None:
            raise InvalidArgument("per='workload' is the workloads' own (server-side) view; sides= is for per='edge'")
        views: Sequence[str | None] = ([None] if per == "workload" else
                                       queries.sides(type(self), sides, self.tcp_signals, "TCP"))
        cluster = _cluster_columns(by_cluster)
        return self._piecewise(span, lambda piece: self._tcp(kind, namespace, name, piece, views, cluster), "tcp",
                               ["server" if side is None else side for side in views])

    def _tcp(self, kind: str, namespace: str | None, name: str | None, span: Span, views: Sequence[str | None],
             cluster: Mapping[str, str]) -> pd.DataFrame:
        """The ``tcp`` frame of each view over ``span``: :meth:`tcp`, one time piece."""
        parts = []
        for side in views:
            identity, spec = queries.tcp_view(type(self), kind, side)
            renames = ({identity.namespace: "dst_namespace", **({identity.name: "dst_name"} if identity.name else {})}
                       if side is None else self._edge_columns(identity))
            renames = {**renames, **cluster}
            built = {column: queries.tcp_promql(column, spec, identity, namespace, name, span.window,
                                                tuple(cluster))
                     for column in TCP_SIGNALS}
            frame = self._merged(span, {c: q for c, q in built.items() if q is not None}, renames)
            frame = frame[frame[list(WINDOWED_TCP)].notna().any(axis=1)]  # one rule for every frame: see module
            frame = frame.sort_values(["timestamp", *renames.values()], kind="stable").reset_index(drop=True)
            if side is None:  # every caller: no source, seen by the workload's own (server-side) proxies
                if identity.name is None:  # kind "namespace"
                    frame["dst_name"] = frame["dst_namespace"]
                if kind == "workload":
                    frame = _named(frame, ["dst_namespace", "dst_name"])
                frame["src_namespace"] = frame["src_name"] = pd.Series(pd.NA, index=frame.index, dtype="string")
                frame = frame.reindex(columns=[*frame.columns, *[c for c in TCP_SIGNALS if c not in frame]])
                frame.insert(1, "mesh", self.name)
                frame.insert(2, "kind", kind)
                frame["side"] = "server"
                parts.append(frame)
            else:
                parts.append(_workload_edges(
                    self._fill_edges(self._name_edges(frame, identity, kind, side), kind, side), kind))
        return schema.concat(parts, "tcp")

    def proxies(self, *, namespace: str | None = None, workload: str | None = None,
                start: TimeLike | None = None, end: TimeLike | None = None, step: Duration = "1m",
                window: Duration = "1m", at: TimeLike | None = None, source: str = "cadvisor",
                by_cluster: bool | str = False) -> pd.DataFrame:
        """What each proxy costs: CPU cores (mean over the window) and working-set memory, per pod.

        ``source="cadvisor"`` (the default, the same for every mesh) reads
        ``container_cpu_usage_seconds_total`` and ``container_memory_working_set_bytes`` for
        the proxy container; ``source="proxy"`` reads the proxy's own process metrics where
        it exports them (Linkerd). cAdvisor does not know workloads: each pod's workload
        comes from the mesh's own series (one more query), else from the pod's name
        (``web-5d9c8b7f6-x2k9p`` and ``db-0`` give ``web`` and ``db``). A pod has no row at
        its first sample, where no CPU rate can be computed yet (the first-step rule).

        Parameters
        ----------
        namespace : str, optional
            Only the pods in this namespace.
        workload : str, optional
            Only this workload's pods.
        start, end : time, optional
            A range, evaluated every ``step``; or give ``at`` for one instant.
        step, window : duration
        at : time, optional
        source : {"cadvisor", "proxy"}
        by_cluster : bool or str
            As in :meth:`traffic`; pods are named to workloads within their own cluster.

        Returns
        -------
        pandas.DataFrame
            A ``proxies`` frame.
        """
        self._check_arguments(namespace=namespace, workload=workload, window=window)
        span = Span(start, end, step, window, at)
        cluster = _cluster_columns(by_cluster)
        owners = self._pod_owners(span, cluster)  # once, over the whole span, whatever the pieces
        return self._piecewise(span, lambda piece: self._proxies(namespace, workload, piece, source, cluster, owners),
                               "proxies")

    def _proxies(self, namespace: str | None, workload: str | None, span: Span, source: str,
                 cluster: Mapping[str, str], owners: Mapping[tuple[str, ...], str]) -> pd.DataFrame:
        """The ``proxies`` frame over ``span``: :meth:`proxies`, one time piece."""
        window = span.window
        keys = ["timestamp", "namespace", "pod"]
        cpu = span.run(self.prom, queries.proxy_promql(type(self), "cpu_cores", namespace, window, source=source,
                                                       by_labels=tuple(cluster)))
        memory = span.run(self.prom, queries.proxy_promql(type(self), "memory_bytes", namespace, window, source=source,
                                                          by_labels=tuple(cluster)))
        if source == "proxy":
            cpu["container"] = memory["container"] = self.proxy_containers[0]
        keys.append("container")
        renames = {**{k: k for k in keys[1:]}, **cluster}
        keys += cluster.values()
        cpu = self._labelled(cpu, renames)[[*keys, "value"]].rename(columns={"value": "cpu_cores"})
        memory = self._labelled(memory, renames)[[*keys, "value"]]
        frame = cpu.merge(memory.rename(columns={"value": "memory_bytes"}), on=keys, how="outer")
        frame = frame[frame["cpu_cores"].notna()]  # no rate over the window yet: no row (see the module docstring)
        where = frame[list(cluster.values())].astype(str) if cluster else pd.DataFrame(index=frame.index)
        pods = list(zip(*[where[c] for c in where], frame["namespace"].astype(str), frame["pod"].astype(str),
                        strict=True))
        frame["workload"] = [owners.get(key) or workload_of_pod(key[-1]) for key in pods]
        if workload is not None:
            frame = frame[frame["workload"] == workload]
        frame.insert(1, "mesh", self.name)
        return schema.conform(frame.sort_values(keys, kind="stable").reset_index(drop=True), "proxies")

    def _piecewise(self, span: Span, read: Callable[[Span], pd.DataFrame], kind: str,
                   sides: Sequence[str] = ()) -> pd.DataFrame:
        """``read(span)``, a long range read in time pieces: see :func:`.pieces.read_in_pieces`."""
        return read_in_pieces(span, read, kind, sides, piece_steps=self.piece_steps, piece_rows=self.piece_rows)

    def _pod_owners(self, span: Span, cluster: Mapping[str, str] | None = None) -> dict[tuple[str, ...], str]:
        """([cluster,] namespace, pod) -> workload, from the mesh's own series over the asked time (one query)."""
        if not self.owners:
            return {}
        lookback, when = span.lookback()
        found = self.prom.query(queries.owners_promql(self.owners, lookback, tuple(cluster or ())), time=when)
        lookup: dict[tuple[str, ...], str] = {}
        for label in dict.fromkeys(label for owner in self.owners for label in owner.labels):
            if label in found:
                named = found[found[label].notna()]
                where = [named[c].astype(str) if c in named else pd.Series("<NA>", index=named.index)
                         for c in (cluster or {})]
                for *key, workload in zip(*where, named["namespace"].astype(str), named["pod"].astype(str),
                                          named[label].astype(str), strict=True):
                    lookup.setdefault(tuple(key), workload)
        return lookup

    @staticmethod
    def _edge_columns(identity: Identity) -> dict[str, str]:
        return {identity.namespace: "src_namespace",
                **({identity.name: "src_name"} if identity.name else {}),
                **({identity.dst_namespace: "dst_namespace"} if identity.dst_namespace else {}),
                **({identity.dst_name: "dst_name"} if identity.dst_name else {})}

    def _name_edges(self, part: pd.DataFrame, identity: Identity, kind: str, side: str) -> pd.DataFrame:
        if identity.name is None:  # kind "namespace": the namespaces are the names
            part["src_name"], part["dst_name"] = part["src_namespace"], part["dst_namespace"]
        part.insert(1, "mesh", self.name)
        part.insert(2, "kind", kind)
        part["side"] = side
        return part

    @staticmethod
    def _labelled(result: pd.DataFrame, renames: Mapping[str, str]) -> pd.DataFrame:
        """``result`` with its labels renamed to frame columns, as strings; missing labels are NA."""
        result = result.rename(columns=dict(renames))
        for column in renames.values():
            if column not in result:
                result[column] = pd.Series(pd.NA, index=result.index, dtype="string")
        return result.astype({c: "string" for c in renames.values()})

    def _fill_edges(self, frame: pd.DataFrame, kind: str, side: str) -> pd.DataFrame:
        """Hook for meshes whose edge labels lack something (Consul's destination namespace)."""
        return frame

    def _dst_workloads_from_series(self, frame: pd.DataFrame, match: str,
                                   services: Callable[[Mapping[str, str]], Iterable[str]]) -> pd.DataFrame:
        """Name each destination service by its workload (one request): the workload of the pods whose
        series name the service among ``services(series)``, where that is one workload; else as it was."""
        found: dict[str, set[tuple[str, str]]] = {}
        if len(frame):
            for series in self.prom.get("series", {"match[]": match}):
                if "namespace" in series and "pod" in series:
                    for service in services(series):
                        found.setdefault(service, set()).add((series["namespace"], workload_of_pod(series["pod"])))
        lookup = {service: next(iter(owners)) for service, owners in found.items() if len(owners) == 1}
        names = frame["dst_name"].astype(str)
        frame["dst_namespace"] = pd.Series([lookup[n][0] if n in lookup else ns for n, ns in
                                            zip(names, frame["dst_namespace"], strict=True)],
                                           index=frame.index, dtype="string")
        frame["dst_name"] = pd.Series([lookup[n][1] if n in lookup else n for n in names], index=frame.index,
                                      dtype="string")
        return frame

    def _dst_namespaces_from_series(self, frame: pd.DataFrame, match: str,
                                    services: Callable[[Mapping[str, str]], Iterable[str]]) -> pd.DataFrame:
        """Fill ``dst_namespace`` from the series index (one request): the Kubernetes ``namespace``
        of the series naming each destination among ``services(series)``; missing where none does."""
        lookup: dict[str, str] = {}
        if len(frame):
            for series in self.prom.get("series", {"match[]": match}):
                if "namespace" in series:
                    for service in services(series):
                        lookup.setdefault(service, series["namespace"])
        frame["dst_namespace"] = pd.Series(frame["dst_name"].astype(str).map(lookup), index=frame.index,
                                           dtype="string")
        return frame

    def _golden(self, kind: str, namespace: str | None, name: str | None, side: str | None,
                columns: dict[str, str], span: Span, quantiles: Sequence[float],
                cluster: Mapping[str, str] | None = None) -> pd.DataFrame:
        """The golden-signal columns of one view (``side=None``: the workloads'), over ``span``."""
        keys = ["timestamp", *columns.values()]
        extra = tuple(cluster or ())
        built = {signal: self.promql(signal, kind, namespace, name, span.window, side=side, by_labels=extra)
                 for signal in ("success_count", "failure_count")}
        spec = self.workload_signal if side is None else self.edge_signals[side]
        for q in quantiles if spec.latency is not None else ():
            built[schema.quantile_column(q)] = self.promql("latency", kind, namespace, name, span.window, side=side,
                                                           quantile=q, by_labels=extra)
        if spec.latency is not None:
            built["le"] = self.promql("latency_buckets", kind, namespace, name, span.window, side=side,
                                      by_labels=extra)
        results = self._run_all(span, built)
        parts = _coded_parts(results, {**columns, **({"le": "le"} if spec.latency is not None else {})})
        buckets = parts.pop("le", None)
        frame = _outer_join(parts, keys)
        if buckets is not None:
            frame = _with_bucket_bounds(frame, buckets, keys, quantiles, spec.latency_scale)
        frame = _decoded(frame, list(columns.values()))
        counted = frame["success_count"].notna() | frame["failure_count"].notna()
        frame = frame[counted].copy()
        frame[["success_count", "failure_count"]] = frame[["success_count", "failure_count"]].fillna(0.0)
        frame["requests"] = frame["success_count"] + frame["failure_count"]
        with np.errstate(divide="ignore", invalid="ignore"):
            frame["success_rate"] = np.where(frame["requests"] > 0, frame["success_count"] / frame["requests"], np.nan)
        frame["rps"] = frame["requests"] / span.window_seconds
        for q in quantiles:  # a view with no latency histogram (none so far) still has the contract's columns
            for bound in (None, *schema.BOUNDS):
                if schema.quantile_column(q, bound) not in frame:
                    frame[schema.quantile_column(q, bound)] = np.nan
        return frame.sort_values(keys, kind="stable").reset_index(drop=True)

    def _merged(self, span: Span, built: Mapping[str, str], renames: Mapping[str, str]) -> pd.DataFrame:
        """Run each ``column: PromQL`` over ``span`` and join the results on the timestamp and the renamed labels."""
        keys = ["timestamp", *renames.values()]
        return _decoded(_outer_join(_coded_parts(self._run_all(span, built), renames), keys), list(renames.values()))

    def _run_all(self, span: Span, built: Mapping[str, str]) -> dict[str, pd.DataFrame]:
        """Each ``name: PromQL`` over ``span``, up to the client's ``max_workers`` at once.

        The server evaluates the next query while the last answer is parsed; the first failure is raised
        and the queries not yet sent are dropped.
        """
        workers = min(len(built), getattr(self.prom, "max_workers", 1))
        if workers <= 1:
            return {name: span.run(self.prom, query) for name, query in built.items()}
        with ThreadPoolExecutor(workers) as pool:
            futures = {name: pool.submit(span.run, self.prom, query) for name, query in built.items()}
            try:
                return {name: future.result() for name, future in futures.items()}
            finally:
                for future in futures.values():
                    future.cancel()

    def _check_arguments(self, *, window: Duration, **labels: object) -> None:
        """Refuse bad label values; warn when ``window`` cannot hold two scrapes (rate() needs two samples)."""
        check_labels(**labels)
        span = to_timedelta(window, name="window")
        if span < 2 * self.scrape_interval:
            warnings.warn(f"window={format_duration(span)} cannot hold two scrapes "
                          f"{format_duration(self.scrape_interval)} apart, so rate() and increase() have too few "
                          f"samples and rows will be missing; use window={format_duration(2 * self.scrape_interval)} "
                          f"or more, or give {type(self).__name__}(prom, scrape_interval=...) if it scrapes faster",
                          ShortWindowWarning, stacklevel=3)

    @classmethod
    def detect(cls, prom: Prometheus | str) -> pd.Timestamp | None:
        """When this mesh's data begins in ``prom`` (to the second), or None if it has none."""
        return earliest_sample(prom, selector(cls.marker))



def _cluster_columns(by_cluster: bool | str) -> dict[str, str]:
    """``by_cluster`` as ``{label: "cluster"}`` (empty when False), the label checked."""
    if by_cluster is False:
        return {}
    if by_cluster is True:
        return {"cluster": "cluster"}
    if isinstance(by_cluster, str) and by_cluster:
        try:
            return {label_name(by_cluster): "cluster"}
        except InvalidArgument as exc:
            raise InvalidArgument(f"by_cluster: {exc}") from None
    raise InvalidArgument(f"by_cluster must be True, False or the name of the cluster label (e.g. 'cluster'), "
                          f"got {by_cluster!r}")


def _named(frame: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """The rows whose ``columns`` all name something: kind "workload" keeps only workloads."""
    keep = np.ones(len(frame), dtype=bool)
    for column in columns:
        keep &= (frame[column].notna() & (frame[column].astype("string") != "")).to_numpy(dtype=bool)
    return frame[keep].reset_index(drop=True)


def _workload_edges(frame: pd.DataFrame, kind: str) -> pd.DataFrame:
    """Kind "workload" joins workloads in the cluster: egress (no destination namespace) is left out."""
    return _named(frame, ["src_namespace", "src_name", "dst_namespace", "dst_name"]) if kind == "workload" else frame


def _coded_parts(results: Mapping[str, pd.DataFrame], renames: Mapping[str, str]) -> dict[str, pd.DataFrame]:
    """Query results with labels renamed to frame columns, each column one categorical dtype across all parts.

    Joining on categoricals of one dtype compares integer codes; joining on text (what
    :meth:`Mesh._labelled` gives) cost most of a long read's time. A label a result lacks is
    all missing. The categories are sorted, so sorting by them sorts by the text.
    """
    parts = {key: result.rename(columns=dict(renames)) for key, result in results.items()}
    for column in renames.values():
        categories: set[str] = set()
        for part in parts.values():
            if column in part:
                values = part[column]
                categories.update(values.cat.categories if isinstance(values.dtype, pd.CategoricalDtype)
                                  else values.dropna().astype(str).unique())
        dtype = pd.CategoricalDtype(pd.Index(sorted(categories), dtype=object))
        for part in parts.values():
            if column not in part:
                part[column] = pd.Categorical.from_codes(np.full(len(part), -1, dtype=np.int32), dtype=dtype,
                                                         validate=False)
            elif isinstance(part[column].dtype, pd.CategoricalDtype):
                part[column] = part[column].cat.set_categories(dtype.categories)
            else:
                part[column] = part[column].astype(str).astype(dtype)
    return parts


def _outer_join(parts: Mapping[str, pd.DataFrame], keys: list[str]) -> pd.DataFrame:
    """Each part's ``value`` as a column named by its key, the parts joined on ``keys`` (coded labels)."""
    return reduce(lambda a, b: a.merge(b, on=keys, how="outer"),
                  [part[[*keys, "value"]].rename(columns={"value": column}) for column, part in parts.items()])


def _decoded(frame: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """``frame`` with the categorical ``columns`` as text (``string``), as :meth:`Mesh._labelled` gives them."""
    for column in columns:
        values = frame[column].array
        assert isinstance(values, pd.Categorical)
        text = pd.array(np.asarray(values.categories, dtype=object), dtype="string")
        frame[column] = pd.Series(text.take(values.codes.astype(np.intp), allow_fill=True), index=frame.index)
    return frame


def _with_bucket_bounds(frame: pd.DataFrame, buckets: pd.DataFrame, keys: list[str], quantiles: Sequence[float],
                        scale: float) -> pd.DataFrame:
    """``frame`` with ``latency_pNN_low_ms``/``_high_ms``: the bucket each quantile's rank falls in.

    ``buckets`` is the per-``le`` rate ``histogram_quantile`` reads. The bucket is found as
    Prometheus finds it: cumulative counts made monotonic, the first bucket whose count
    reaches ``q * total``; the first bucket starts at 0, and a rank in the ``+Inf`` bucket
    gives ``[highest finite bound, inf]`` (where ``histogram_quantile`` returns that bound).
    """
    out = frame
    if not len(buckets) or not len(frame):
        for q in quantiles:
            for bound in schema.BOUNDS:
                out[schema.quantile_column(q, bound)] = np.nan
        return out
    le = buckets["le"].array
    if isinstance(le, pd.Categorical):  # each bound's text read once, not once per row
        bounds_of = pd.to_numeric(pd.Series(np.asarray(le.categories, dtype=object)), errors="coerce").to_numpy()
        numeric = np.where(le.codes >= 0, np.append(bounds_of, np.nan)[le.codes], np.nan)
    else:
        numeric = pd.to_numeric(buckets["le"].astype(str), errors="coerce").to_numpy()
    buckets = buckets.assign(le=numeric)
    wide = buckets.dropna(subset=["le"]).groupby([*keys, "le"], dropna=False, observed=True)["value"].sum()
    wide = wide.unstack("le")
    wide = wide.reindex(columns=sorted(wide.columns))
    edges = wide.columns.to_numpy(dtype=np.float64)
    counts = wide.to_numpy(dtype=np.float64)
    cumulative = np.fmax.accumulate(np.where(np.isnan(counts), -np.inf, counts), axis=1)  # as Prometheus: monotonic
    total = cumulative[:, -1]
    usable = (len(edges) >= 2) & np.isposinf(edges[-1]) & (total > 0) & np.isfinite(total)
    starts = np.concatenate([[0.0 if edges[0] > 0 else -np.inf], edges[:-1]])
    bounds: dict[str, np.ndarray] = {}
    for q in quantiles:
        reached = cumulative >= (q * total)[:, None]
        b = np.where(reached.any(axis=1), reached.argmax(axis=1), len(edges) - 1)
        bounds[schema.quantile_column(q, "low")] = np.where(usable, starts[b] * scale, np.nan)
        bounds[schema.quantile_column(q, "high")] = np.where(usable, edges[b] * scale, np.nan)
    found = pd.DataFrame(bounds, index=wide.index).reset_index()
    found = found.astype({k: frame[k].dtype for k in keys})
    out = frame.merge(found, on=keys, how="left")
    for q in quantiles:  # no estimate (no requests), no bounds
        estimate = out[schema.quantile_column(q)]
        for bound in schema.BOUNDS:
            out.loc[estimate.isna(), schema.quantile_column(q, bound)] = np.nan
    return out


def as_prometheus(source: object, what: str = "source") -> Prometheus:
    """``source`` as a :class:`~meshlab.Prometheus`: a client as it is, a URL string as a new client.

    Raises
    ------
    InvalidArgument
        Naming ``what`` and what it takes, for anything else.
    """
    if isinstance(source, Prometheus):
        return source
    if isinstance(source, str):
        return Prometheus(source)
    client = getattr(source, "client", None)
    hint = f" (its .client is one: pass {what}(x.client))" if isinstance(client, Prometheus) else ""
    raise InvalidArgument(f"{what} needs a meshlab.Prometheus or a URL string such as 'http://127.0.0.1:9090', "
                          f"got {type(source).__name__}{hint}")



def earliest_sample(prom: Prometheus | str, series: str, *, resolution_s: float = 1.0) -> pd.Timestamp | None:
    """The time of the earliest sample of ``series`` (to the millisecond), or None: see
    :func:`meshlab.meshes.detection.earliest_sample`, five cheap requests where bisection took about 40."""
    from .detection import earliest_sample as cheap

    return cheap(prom, series, resolution_s=resolution_s)

