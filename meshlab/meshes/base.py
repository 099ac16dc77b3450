"""The mesh adapter contract, and the registry that finds adapters by name.

An adapter is data plus a little code: for each signal it knows the mesh's metric, the
matchers that select the right proxy's view, and which labels name a workload of each
kind. :class:`Mesh` turns that into PromQL (one query per signal for all workloads),
runs it, and assembles the tidy ``traffic``, ``edges``, ``tcp`` and ``proxies`` frames of
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
"""

from __future__ import annotations

import importlib.metadata
import re
import warnings
from abc import ABC
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import reduce
from typing import ClassVar

import numpy as np
import pandas as pd

from .. import schema
from ..errors import InvalidArgument, ShortWindowWarning
from ..prometheus.client import Prometheus
from ..prometheus.promql import MatchValue, NotEqual, OneOf, by, quote, selector
from ..timeutil import Duration, TimeLike, format_duration, to_timedelta, to_timestamp

__all__ = ["KINDS", "WORKLOAD_KINDS", "Identity", "Mesh", "Owners", "Signal", "TcpSignal", "as_prometheus", "available",
           "check_label_value", "detect", "earliest_sample", "get_mesh", "mesh", "register", "workload_of_pod"]

#: Every kind a mesh adapter may support; ``workload`` is every mesh's common key: each workload
#: once, under its own name, whatever its Kubernetes kind.
KINDS = ("namespace", "workload", "deployment", "statefulset", "daemonset", "pod", "job", "service")
#: Kinds a mesh naming workloads by their owner's name alone reads from the same labels.
WORKLOAD_KINDS = ("deployment", "statefulset", "daemonset", "job")
#: The signals of the ``tcp`` and ``proxies`` frames, as ``Mesh.promql`` names them.
TCP_SIGNALS = ("opened_connections", "open_connections", "sent_bytes_per_second", "received_bytes_per_second")
PROXY_SIGNALS = ("cpu_cores", "memory_bytes")
#: The TCP signals computed over the window (the others are gauges at the step).
WINDOWED_TCP = ("opened_connections", "sent_bytes_per_second", "received_bytes_per_second")
# Kubernetes' generated name suffixes use this alphabet (no vowels, no 0/1/3: k8s.io/apimachinery rand)
_K8S_ALNUM = "[bcdfghjklmnpqrstvwxz2456789]"
_POD_NAME = re.compile(rf"^(?P<deployment>.+)-{_K8S_ALNUM}{{6,10}}-{_K8S_ALNUM}{{5}}$"
                       rf"|^(?P<ordinal>.+)-\d+$|^(?P<generated>.+)-{_K8S_ALNUM}{{5}}$")
#: The labels kind "workload" writes with ``label_replace``: the workload's name and Kubernetes kind.
WORKLOAD, WORKLOAD_KIND = "meshlab_workload", "meshlab_workload_kind"
DST_WORKLOAD = "meshlab_dst_workload"


@dataclass(frozen=True)
class Signal:
    """One metric as a mesh exports it, and how to read it.

    Attributes
    ----------
    metric : str
        The counter (or histogram base name) to query.
    matchers : mapping
        Matchers that pick the right proxy's view (``direction="inbound"``...).
    success, failure : mapping
        Extra matchers for the successful and failed requests.
    latency : str, optional
        The histogram bucket metric, read with the same ``matchers``.
    latency_scale : float
        Milliseconds per unit of the histogram: the quantile is multiplied by it
        (1 for ``_ms`` histograms, 1000 for ``_seconds`` ones).
    """

    metric: str
    matchers: Mapping[str, MatchValue]
    success: Mapping[str, MatchValue]
    failure: Mapping[str, MatchValue]
    latency: str | None = None
    latency_scale: float = 1.0


@dataclass(frozen=True)
class TcpSignal:
    """A mesh's TCP connection metrics, as one side's proxies see them.

    Byte counters are named from the client's point of view, whichever proxy counts
    them: ``sent`` is what the client sent to the server.

    Attributes
    ----------
    matchers : mapping
        Matchers that pick this side's view (``direction="outbound"``, ``reporter="source"``...).
    opened : str
        Counter of connections opened.
    sent, received : str
        Byte counters: client to server, and server to client.
    open : str, optional
        Gauge of open connections. When the mesh has none, opened minus closed, per edge.
    closed : str, optional
        Counter of connections closed, used when there is no ``open`` gauge.
    """

    matchers: Mapping[str, MatchValue]
    opened: str
    sent: str
    received: str
    open: str | None = None
    closed: str | None = None


@dataclass(frozen=True)
class Owners:
    """Series whose labels say which workload each proxy's pod belongs to.

    cAdvisor knows pods, not workloads; the mesh's own series name both.

    Attributes
    ----------
    metric : str
        A metric name, or ``"a|b"`` for several.
    matchers : mapping
        Matchers that pick the series the mesh's proxies report about themselves.
    labels : tuple of str
        Labels holding the workload's name; the first non-empty one wins.
    """

    metric: str
    matchers: Mapping[str, MatchValue]
    labels: tuple[str, ...]


@dataclass(frozen=True)
class Identity:
    """Which labels name the workloads on each side, for one kind."""

    namespace: str
    name: str | None                       # None for kind "namespace"
    dst_namespace: str | None = None
    dst_name: str | None = None
    extra: Mapping[str, MatchValue] = field(default_factory=dict)  # e.g. exclude egress or unmeshed callers
    #: ``label_replace`` steps (target, replacement, source, regex) that write ``name``/``kind_label``
    rewrites: tuple[tuple[str, str, str, str], ...] = ()
    kind_label: str | None = None          # the label naming the workload's Kubernetes kind, if known

    def wrap(self, expr: str) -> str:
        """``expr`` with the ``rewrites`` applied, innermost first."""
        for target, replacement, source, regex in self.rewrites:
            expr = f"label_replace({expr}, {quote(target)}, {quote(replacement)}, {quote(source)}, {quote(regex)})"
        return expr

    def selection(self, matchers: Mapping[str, MatchValue], namespace: str | None, name: str | None
                  ) -> tuple[list[str], dict[str, MatchValue]]:
        """The labels to group by, and the matchers for a signal's ``matchers`` filtered to ``namespace``/``name``."""
        group = [label for label in (self.namespace, self.name, self.dst_namespace, self.dst_name, self.kind_label)
                 if label]
        filters = {self.namespace: namespace, **({self.name: name} if self.name and not self.rewritten else {})}
        return group, {**matchers, **self.extra, **{k: v for k, v in filters.items() if v is not None}}

    @property
    def rewritten(self) -> bool:
        """Whether ``name`` is written by ``rewrites`` rather than read from the series."""
        return any(target == self.name for target, *_ in self.rewrites)

    def only(self, expr: str, name: str | None) -> str:
        """``expr`` kept to workload ``name`` when the name is rewritten (no series matcher can say it)."""
        if name is None or not self.rewritten or self.name is None:
            return expr
        return f"({expr}) and on ({self.name}) label_replace(vector(1), {quote(self.name)}, {quote(name)}, \"\", \"\")"


def label_rewrites(labels: Mapping[str, str], target: str, kind_target: str | None = None
                   ) -> tuple[tuple[str, str, str, str], ...]:
    """Rewrites naming a workload by whichever of ``labels`` (label -> Kubernetes kind) a series has."""
    steps: list[tuple[str, str, str, str]] = []
    for label, kind in labels.items():
        steps.append((target, "$1", label, "(.+)"))
        if kind_target:
            steps.append((kind_target, kind, label, ".+"))
    return tuple(steps)


def pod_rewrites(pod: str, target: str | None, kind_target: str | None = None) -> tuple[tuple[str, str, str, str], ...]:
    """Rewrites naming a workload (and its kind) from a pod label, as :func:`workload_of_pod` does.

    Later steps win, so the most specific shape comes last; a DaemonSet's and a Job's pods
    look alike, and their kind stays unknown.
    """
    shapes = ((r"(.+)", None), (rf"(.+)-{_K8S_ALNUM}{{5}}", None), (r"(.+)-\d+", "statefulset"),
              (rf"(.+)-{_K8S_ALNUM}{{6,10}}-{_K8S_ALNUM}{{5}}", "deployment"))
    steps: list[tuple[str, str, str, str]] = []
    for regex, kind in shapes:
        if target:
            steps.append((target, "$1", pod, regex))
        if kind_target and kind:
            steps.append((kind_target, kind, pod, regex))
    return tuple(steps)


class Mesh(ABC):
    """A service mesh's metrics, read into meshlab's tidy frames.

    Subclasses set the class attributes below; most need no methods of their own.

    Attributes
    ----------
    name : str
        The registry name (``"linkerd"``).
    description : str
    kinds : tuple of str
        The kinds this mesh can name workloads by.
    default_kind : str
        The kind used when none is given (``deployment``; ``service`` for Consul and Kuma).
    workload_signal : Signal
        The server-side view of each workload's inbound traffic.
    edge_signals : dict of str to Signal
        Edge views by side (``"client"``, ``"server"``).
    tcp_signals : dict of str to TcpSignal
        TCP views by side, named by the same labels as the edges.
    tcp_workload_signal : TcpSignal, optional
        Each workload's inbound connections from every caller, named like ``workload_signal``.
    proxy_containers : tuple of str
        The proxy's container names, for cAdvisor.
    proxy_process : tuple of (matchers, CPU counter, memory gauge), optional
        The proxy's own process metrics, where it exports them.
    owners : tuple of Owners
        Series that name each proxy pod's workload.
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""
    kinds: ClassVar[tuple[str, ...]] = ()
    #: the kind used when none is given: how the mesh's own tooling names workloads
    default_kind: ClassVar[str] = "deployment"
    workload_signal: ClassVar[Signal]
    edge_signals: ClassVar[Mapping[str, Signal]] = {}
    tcp_signals: ClassVar[Mapping[str, TcpSignal]] = {}
    tcp_workload_signal: ClassVar[TcpSignal | None] = None
    proxy_containers: ClassVar[tuple[str, ...]] = ()
    proxy_process: ClassVar[tuple[Mapping[str, MatchValue], str, str] | None] = None
    owners: ClassVar[tuple[Owners, ...]] = ()
    #: the metric whose presence says this mesh has data in a Prometheus
    marker: ClassVar[str]

    def __init__(self, prom: Prometheus | str, *, scrape_interval: Duration = "15s"):
        self.prom = as_prometheus(prom, type(self).__name__)
        #: how often Prometheus scrapes the proxies: a window shorter than two scrapes gets a ShortWindowWarning
        self.scrape_interval = to_timedelta(scrape_interval, name="scrape_interval")
        if self.scrape_interval <= pd.Timedelta(0):
            raise InvalidArgument(f"scrape_interval must be positive, got {scrape_interval!r}")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.prom!r})"

    # -- what subclasses describe ------------------------------------------------------------

    def workload_identity(self, kind: str) -> Identity:
        """The labels naming a workload of ``kind`` in the workload signal."""
        raise NotImplementedError

    def edge_identity(self, kind: str, side: str) -> Identity:
        """The labels naming the source and destination of an edge seen from ``side``."""
        raise NotImplementedError

    def _kind(self, kind: str | None) -> str:
        """``kind``, or this mesh's default; an error names the kinds it supports."""
        if kind is None:
            return self.default_kind
        if kind not in self.kinds:
            raise InvalidArgument(f"{self.name} cannot name workloads by kind {kind!r}; "
                                  f"supported kinds: {', '.join(self.kinds)}")
        return kind

    # -- PromQL --------------------------------------------------------------------------------

    def promql(self, signal: str, kind: str | None = None, namespace: str | None = None, name: str | None = None,
               window: Duration = "1m", *, side: str | None = None, quantile: float = 0.99,
               source: str = "cadvisor") -> str:
        """The exact PromQL meshlab runs for one signal, to inspect or reuse.

        Parameters
        ----------
        signal : str
            ``"success_count"``, ``"failure_count"`` or ``"latency"`` (traffic and edges);
            ``"opened_connections"``, ``"open_connections"``, ``"sent_bytes_per_second"`` or
            ``"received_bytes_per_second"`` (TCP); ``"cpu_cores"`` or ``"memory_bytes"``
            (proxies, from cAdvisor).
        kind, namespace, name : str
            Which workloads; ``None`` means all. Proxies take only ``namespace``.
        window : duration
        side : {"client", "server"}, optional
            For edges; ``None`` is the workload (server-side) view.
        quantile : float
            For ``latency``: strictly between 0 and 1, written into the PromQL exactly.
        source : {"cadvisor", "proxy"}
            For the proxy signals: cAdvisor's container metrics, or the proxy's own.

        ``"latency_buckets"`` is the per-``le`` bucket rate that ``latency`` takes the quantile
        of, which meshlab also reads to give each estimate its bucket bounds.
        """
        _check_labels(namespace=namespace, name=name)
        if signal in PROXY_SIGNALS:
            if kind is not None or name is not None:
                raise InvalidArgument("proxy signals are per pod: give namespace= only (cAdvisor knows no workloads)")
            return self._proxy_promql(signal, namespace, window, source=source)
        kind = self._kind(kind)
        if signal in TCP_SIGNALS:
            identity, tcp = self._tcp_view(kind, side)
            query = self._tcp_promql(signal, tcp, identity, namespace, name, window)
            if query is None:
                raise InvalidArgument(f"{self.name} has no open-connection metric for this view")
            return query
        if side is None:
            identity, spec = self.workload_identity(kind), self.workload_signal
        elif side in self.edge_signals:
            identity, spec = self.edge_identity(kind, side), self.edge_signals[side]
        else:
            raise InvalidArgument(f"{self.name} has no {side!r} side for edges; sides: {', '.join(self.edge_signals)}")
        group, base = identity.selection(spec.matchers, namespace, name)
        window_text = format_duration(window, name="window")
        if signal in ("success_count", "failure_count"):
            outcome = spec.success if signal == "success_count" else spec.failure
            counts = identity.wrap(f"increase({selector(spec.metric, {**base, **outcome})}[{window_text}])")
            return identity.only(f"sum {by(*group)} ({counts})", name)
        if signal in ("latency", "latency_buckets"):
            if spec.latency is None:
                raise InvalidArgument(f"{self.name} has no latency histogram for this view")
            rates = identity.wrap(f"rate({selector(spec.latency, base)}[{window_text}])")
            inner = identity.only(f"sum {by('le', *group)} ({rates})", name)
            if signal == "latency_buckets":
                return inner
            scale = "" if spec.latency_scale == 1 else f" * {spec.latency_scale:g}"
            return f"histogram_quantile({schema.quantile_text(schema.check_quantile(quantile))}, {inner}){scale}"
        raise InvalidArgument(f"unknown signal {signal!r}; must be one of: success_count, failure_count, latency, "
                              "latency_buckets, "
                              f"{', '.join(TCP_SIGNALS)}, {', '.join(PROXY_SIGNALS)}")

    def _tcp_view(self, kind: str, side: str | None) -> tuple[Identity, TcpSignal]:
        """The labels and metrics of one TCP view: a side of the edges, or (``None``) the workloads'."""
        if side is None:
            if self.tcp_workload_signal is None:
                raise InvalidArgument(f"{self.name} has no per-workload TCP metrics meshlab can read")
            return self.workload_identity(kind), self.tcp_workload_signal
        (side,) = self._sides([side], self.tcp_signals, "TCP")
        return self.edge_identity(kind, side), self.tcp_signals[side]

    def _tcp_promql(self, signal: str, spec: TcpSignal, identity: Identity, namespace: str | None,
                    name: str | None, window: Duration) -> str | None:
        labels, base = identity.selection(spec.matchers, namespace, name)
        group = by(*labels)
        window_text = format_duration(window, name="window")
        wrap = identity.wrap
        if signal == "opened_connections":
            query = f"sum {group} ({wrap(f'increase({selector(spec.opened, base)}[{window_text}])')})"
        elif signal == "open_connections":
            if spec.open is not None:
                query = f"sum {group} ({wrap(selector(spec.open, base))})"
            elif spec.closed is None:
                return None  # the mesh does not say: the column is NaN
            else:
                # Opened minus closed, the raw counters (never increase()), summed per edge: per
                # proxy, both restart at zero with it, and so do its connections, so the difference
                # is right across restarts. A closed series appears only once a connection has
                # closed, and may carry other labels (response_flags).
                opened = f"sum {group} ({wrap(selector(spec.opened, base))})"
                query = f"{opened} - (sum {group} ({wrap(selector(spec.closed, base))}) or {opened} * 0)"
        else:
            counter = spec.sent if signal == "sent_bytes_per_second" else spec.received
            query = f"sum {group} ({wrap(f'rate({selector(counter, base)}[{window_text}])')})"
        return identity.only(query, name)

    def _proxy_promql(self, signal: str, namespace: str | None, window: Duration, *,
                      source: str = "cadvisor") -> str:
        group = by("namespace", "pod", "container")
        if source == "proxy":
            if self.proxy_process is None:
                raise InvalidArgument(f"{self.name}'s proxies export no process metrics; use source='cadvisor'")
            matchers, cpu, memory = self.proxy_process
            base = {**matchers, "namespace": namespace}
            group = by("namespace", "pod")
        elif source == "cadvisor":
            if not self.proxy_containers:
                raise InvalidArgument(f"{self.name} has no proxy container to read from cAdvisor")
            # container!="POD" and image!="" drop cAdvisor's pause-container and pod-total series
            base = {"container": OneOf(self.proxy_containers), "image": NotEqual(""), "namespace": namespace}
            cpu, memory = "container_cpu_usage_seconds_total", "container_memory_working_set_bytes"
        else:
            raise InvalidArgument(f"unknown proxy source {source!r}; must be one of: cadvisor, proxy")
        if signal == "cpu_cores":
            return f"sum {group} (rate({selector(cpu, base)}[{format_duration(window, name='window')}]))"
        return f"sum {group} ({selector(memory, base)})"

    # -- frames --------------------------------------------------------------------------------

    def traffic(self, kind: str | None = None, namespace: str | None = None, name: str | None = None, *,
                start: TimeLike | None = None, end: TimeLike | None = None, step: Duration = "1m",
                window: Duration = "1m", at: TimeLike | None = None,
                quantiles: Sequence[float] = schema.QUANTILES) -> pd.DataFrame:
        """Golden signals of each workload's inbound traffic, as its own proxies see them.

        Give ``start`` and ``end`` (and ``step``) for time series, or ``at`` for one
        instant (SMI-style). ``quantiles`` adds latency quantiles (each strictly between 0
        and 1, one query each) to the p50, p90 and p99 every frame has; the columns come
        sorted by quantile, named exactly (0.999 -> ``latency_p999_ms``, 0.0999 ->
        ``latency_p0999_ms``). Each estimate has its resolution: ``latency_pNN_low_ms`` and
        ``latency_pNN_high_ms`` bound the histogram bucket it fell in (one more query).
        See the module docstring for the semantics.

        Returns
        -------
        pandas.DataFrame
            A ``traffic`` frame, plus ``latency_pNN_ms`` for extra quantiles.
        """
        self._check_arguments(namespace=namespace, name=name, window=window)
        kind = self._kind(kind)
        identity = self.workload_identity(kind)
        columns = {identity.namespace: "namespace", **({identity.name: "name"} if identity.name else {}),
                   **({identity.kind_label: "workload_kind"} if identity.kind_label else {})}
        frame = self._golden(kind, namespace, name, None, columns, start, end, step, window, at, quantiles)
        if identity.name is None:
            frame["name"] = frame["namespace"]
        if kind == "workload":
            frame = _named(frame, ["namespace", "name"])
            if "workload_kind" not in frame:
                frame["workload_kind"] = pd.Series(pd.NA, index=frame.index, dtype="string")
        frame.insert(1, "mesh", self.name)
        frame.insert(2, "kind", kind)
        return schema.conform(frame, "traffic")

    def edges(self, kind: str | None = None, namespace: str | None = None, name: str | None = None, *,
              start: TimeLike | None = None, end: TimeLike | None = None, step: Duration = "1m",
              window: Duration = "1m", at: TimeLike | None = None, sides: Sequence[str] | None = None,
              quantiles: Sequence[float] = schema.QUANTILES) -> pd.DataFrame:
        """Golden signals per (source, destination), as the client's or the server's proxy sees them.

        ``namespace`` and ``name`` filter the source. Each mesh's docstring says which sides it has.
        ``quantiles`` works as in :meth:`traffic`.

        Returns
        -------
        pandas.DataFrame
            An ``edges`` frame.
        """
        self._check_arguments(namespace=namespace, name=name, window=window)
        kind = self._kind(kind)
        parts = []
        for side in self._sides(sides, self.edge_signals, "edges"):
            identity = self.edge_identity(kind, side)
            part = self._golden(kind, namespace, name, side, self._edge_columns(identity), start, end, step,
                                window, at, quantiles)
            parts.append(_workload_edges(self._fill_edges(self._name_edges(part, identity, kind, side), kind, side),
                                         kind))
        return schema.concat(parts, "edges")

    def tcp(self, kind: str | None = None, namespace: str | None = None, name: str | None = None, *,
            start: TimeLike | None = None, end: TimeLike | None = None, step: Duration = "1m",
            window: Duration = "1m", at: TimeLike | None = None, per: str = "edge",
            sides: Sequence[str] | None = None) -> pd.DataFrame:
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

        Returns
        -------
        pandas.DataFrame
            A ``tcp`` frame.
        """
        self._check_arguments(namespace=namespace, name=name, window=window)
        kind = self._kind(kind)
        if per not in ("edge", "workload"):
            raise InvalidArgument(f"per must be 'edge' or 'workload', got {per!r}")
        run = self._runner(start, end, step, at)
        if per == "workload" and sides is not None:
            raise InvalidArgument("per='workload' is the workloads' own (server-side) view; sides= is for per='edge'")
        views: Sequence[str | None] = [None] if per == "workload" else self._sides(sides, self.tcp_signals, "TCP")
        parts = []
        for side in views:
            identity, spec = self._tcp_view(kind, side)
            renames = ({identity.namespace: "dst_namespace", **({identity.name: "dst_name"} if identity.name else {})}
                       if side is None else self._edge_columns(identity))
            queries = {column: self._tcp_promql(column, spec, identity, namespace, name, window)
                       for column in TCP_SIGNALS}
            frame = self._merged(run, {c: q for c, q in queries.items() if q is not None}, renames)
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
                window: Duration = "1m", at: TimeLike | None = None, source: str = "cadvisor") -> pd.DataFrame:
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

        Returns
        -------
        pandas.DataFrame
            A ``proxies`` frame.
        """
        self._check_arguments(namespace=namespace, workload=workload, window=window)
        run = self._runner(start, end, step, at)
        keys = ["timestamp", "namespace", "pod"]
        cpu = run(self._proxy_promql("cpu_cores", namespace, window, source=source))
        memory = run(self._proxy_promql("memory_bytes", namespace, window, source=source))
        if source == "proxy":
            cpu["container"] = memory["container"] = self.proxy_containers[0]
        keys.append("container")
        cpu = self._labelled(cpu, {k: k for k in keys[1:]})[[*keys, "value"]].rename(columns={"value": "cpu_cores"})
        memory = self._labelled(memory, {k: k for k in keys[1:]})[[*keys, "value"]]
        frame = cpu.merge(memory.rename(columns={"value": "memory_bytes"}), on=keys, how="outer")
        frame = frame[frame["cpu_cores"].notna()]  # no rate over the window yet: no row (see the module docstring)
        owners = self._pod_owners(start, end, window, at)
        pods = list(zip(frame["namespace"].astype(str), frame["pod"].astype(str), strict=True))
        frame["workload"] = [owners.get(key) or workload_of_pod(key[1]) for key in pods]
        if workload is not None:
            frame = frame[frame["workload"] == workload]
        frame.insert(1, "mesh", self.name)
        return schema.conform(frame.sort_values(keys, kind="stable").reset_index(drop=True), "proxies")

    def _pod_owners(self, start: TimeLike | None, end: TimeLike | None, window: Duration,
                    at: TimeLike | None) -> dict[tuple[str, str], str]:
        """(namespace, pod) -> workload, from the mesh's own series over the asked time (one query)."""
        if not self.owners:
            return {}
        if at is not None:
            lookback, when = to_timedelta(window, name="window"), at
        else:
            assert start is not None and end is not None
            lookback = to_timestamp(end) - to_timestamp(start) + to_timedelta(window, name="window")
            when = end
        span = format_duration(max(lookback, pd.Timedelta(seconds=1)))
        parts = []
        for owner in self.owners:
            metric = {"__name__": OneOf(owner.metric.split("|"))}
            parts.append(f"group {by('namespace', 'pod', *owner.labels)} "
                         f"(last_over_time({selector(None, {**metric, **owner.matchers})}[{span}]))")
        found = self.prom.query(" or ".join(parts), time=when)
        lookup: dict[tuple[str, str], str] = {}
        for label in dict.fromkeys(label for owner in self.owners for label in owner.labels):
            if label in found:
                named = found[found[label].notna()]
                for namespace, pod, workload in zip(named["namespace"].astype(str), named["pod"].astype(str),
                                                    named[label].astype(str), strict=True):
                    lookup.setdefault((namespace, pod), workload)
        return lookup

    def _sides(self, sides: Sequence[str] | None, signals: Mapping[str, object], what: str) -> tuple[str, ...]:
        """The sides asked for (all by default), each one the mesh has."""
        if not signals:
            raise InvalidArgument(f"{self.name} has no {what} metrics between workloads meshlab can read")
        if sides is None:
            return tuple(signals)
        if isinstance(sides, str) or not sides:
            raise InvalidArgument(f"sides must be a non-empty list such as ['client'], got {sides!r}")
        for side in sides:
            if side not in signals:
                raise InvalidArgument(f"{self.name} has no {side!r} side for {what}; sides: {', '.join(signals)}")
        return tuple(sides)

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
                columns: dict[str, str], start: TimeLike | None, end: TimeLike | None, step: Duration,
                window: Duration, at: TimeLike | None, quantiles: Sequence[float]) -> pd.DataFrame:
        window_s = to_timedelta(window, name="window").total_seconds()
        quantiles = schema.check_quantiles(quantiles)
        keys = ["timestamp", *columns.values()]
        queries = {signal: self.promql(signal, kind, namespace, name, window, side=side)
                   for signal in ("success_count", "failure_count")}
        spec = self.workload_signal if side is None else self.edge_signals[side]
        for q in quantiles if spec.latency is not None else ():
            queries[schema.quantile_column(q)] = self.promql("latency", kind, namespace, name, window, side=side,
                                                             quantile=q)
        run = self._runner(start, end, step, at)
        frame = self._merged(run, queries, columns)
        if spec.latency is not None:
            buckets = self._labelled(run(self.promql("latency_buckets", kind, namespace, name, window, side=side)),
                                     columns)
            frame = _with_bucket_bounds(frame, buckets, keys, quantiles, spec.latency_scale)
        counted = frame["success_count"].notna() | frame["failure_count"].notna()
        frame = frame[counted].copy()
        frame[["success_count", "failure_count"]] = frame[["success_count", "failure_count"]].fillna(0.0)
        frame["requests"] = frame["success_count"] + frame["failure_count"]
        with np.errstate(divide="ignore", invalid="ignore"):
            frame["success_rate"] = np.where(frame["requests"] > 0, frame["success_count"] / frame["requests"], np.nan)
        frame["rps"] = frame["requests"] / window_s
        for q in quantiles:  # a view with no latency histogram (none so far) still has the contract's columns
            for bound in (None, *schema.BOUNDS):
                if schema.quantile_column(q, bound) not in frame:
                    frame[schema.quantile_column(q, bound)] = np.nan
        return frame.sort_values(keys, kind="stable").reset_index(drop=True)

    def _merged(self, run: Callable[[str], pd.DataFrame], queries: Mapping[str, str],
                renames: Mapping[str, str]) -> pd.DataFrame:
        """Run each ``column: PromQL`` and join the results on the timestamp and the renamed labels."""
        keys = ["timestamp", *renames.values()]
        parts = [self._labelled(run(query), renames)[[*keys, "value"]].rename(columns={"value": column})
                 for column, query in queries.items()]
        return reduce(lambda a, b: a.merge(b, on=keys, how="outer"), parts)

    def _runner(self, start: TimeLike | None, end: TimeLike | None, step: Duration,
                at: TimeLike | None) -> Callable[[str], pd.DataFrame]:
        if at is not None:
            if start is not None or end is not None:
                raise InvalidArgument("give either at= (one instant) or start= and end= (a range), not both")
            return lambda q: self.prom.query(q, time=at)
        if start is None or end is None:
            raise InvalidArgument("give start= and end= for a range, or at= for one instant (e.g. at='now')")
        return lambda q: self.prom.query_range(q, start, end, step)

    def _check_arguments(self, *, window: Duration, **labels: object) -> None:
        """Refuse bad label values; warn when ``window`` cannot hold two scrapes (rate() needs two samples)."""
        _check_labels(**labels)
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


def _named(frame: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """The rows whose ``columns`` all name something: kind "workload" keeps only workloads."""
    keep = np.ones(len(frame), dtype=bool)
    for column in columns:
        keep &= (frame[column].notna() & (frame[column].astype("string") != "")).to_numpy(dtype=bool)
    return frame[keep].reset_index(drop=True)


def _workload_edges(frame: pd.DataFrame, kind: str) -> pd.DataFrame:
    """Kind "workload" joins workloads in the cluster: egress (no destination namespace) is left out."""
    return _named(frame, ["src_namespace", "src_name", "dst_namespace", "dst_name"]) if kind == "workload" else frame


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
    buckets = buckets.assign(le=pd.to_numeric(buckets["le"].astype(str), errors="coerce"))
    wide = buckets.dropna(subset=["le"]).groupby([*keys, "le"], dropna=False)["value"].sum().unstack("le")
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


def check_label_value(value: object, argument: str) -> str | None:
    """``value`` if it can be a label matcher's value (None passes: no filter).

    Raises
    ------
    InvalidArgument
        Naming ``argument``: not a string, empty (which would match series *without* the
        label), or not encodable as UTF-8 (a lone surrogate).
    """
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidArgument(f"{argument} must be a string (a label value), got {value!r} ({type(value).__name__})")
    if not value:
        raise InvalidArgument(f"{argument} must not be empty: an empty label value matches series that lack the "
                              f"label; leave {argument} out (None) to select all")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidArgument(f"{argument}={value!r} is not valid UTF-8 text (character {exc.start} is a lone "
                              "surrogate); label values are UTF-8") from None
    return value


def _check_labels(**values: object) -> None:
    for argument, value in values.items():
        check_label_value(value, argument)


def workload_of_pod(pod: str) -> str:
    """The workload a pod's name says it belongs to, by Kubernetes' naming rules.

    ``web-5d9c8b7f6-x2k9p`` (a Deployment's) gives ``web``, ``db-0`` (a StatefulSet's)
    gives ``db``, ``agent-x2k9p`` (a DaemonSet's or Job's) gives ``agent``; any other
    name is its own workload.
    """
    match = _POD_NAME.match(pod)
    if match is None:
        return pod
    return next(group for group in match.groups() if group is not None)


def earliest_sample(prom: Prometheus | str, series: str, *, resolution_s: float = 1.0) -> pd.Timestamp | None:
    """The time of the earliest sample of ``series`` (to the millisecond), or None: see
    :func:`meshlab.meshes.detection.earliest_sample`, five cheap requests where bisection took about 40."""
    from .detection import earliest_sample as cheap

    return cheap(prom, series, resolution_s=resolution_s)


def detect(prom: Prometheus | str) -> dict[str, pd.Timestamp]:
    """Which registered meshes have data in ``prom`` (a client or a URL), and since when (their first sample)."""
    prom = as_prometheus(prom, "detect")
    found = {}
    for name in available():
        since = get_mesh(name).detect(prom)
        if since is not None:
            found[name] = since
    return found


# -- the registry ------------------------------------------------------------------------------

_REGISTRY: dict[str, type[Mesh]] = {}
_ENTRY_POINTS_LOADED = False


def register(cls: type[Mesh]) -> type[Mesh]:
    """Register a :class:`Mesh` subclass under ``cls.name`` (usable as a decorator)."""
    if not (isinstance(cls, type) and issubclass(cls, Mesh)) or not getattr(cls, "name", None):
        raise InvalidArgument(f"{cls!r} is not a Mesh subclass with a name")
    _REGISTRY[cls.name] = cls
    return cls


def _load_entry_points() -> None:
    # Third parties add meshes through the "meshlab.meshes" entry-point group.
    global _ENTRY_POINTS_LOADED
    if _ENTRY_POINTS_LOADED:
        return
    _ENTRY_POINTS_LOADED = True
    for point in importlib.metadata.entry_points(group="meshlab.meshes"):
        register(point.load())


def available() -> list[str]:
    """The names of every registered mesh, built-in and from plugins."""
    _load_entry_points()
    return sorted(_REGISTRY)


def get_mesh(name: str) -> type[Mesh]:
    """The adapter class registered as ``name``.

    Raises
    ------
    InvalidArgument
        ``unknown mesh 'x'; available: ...``
    """
    _load_entry_points()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise InvalidArgument(f"unknown mesh {name!r}; available: {', '.join(available())}") from None


def mesh(name: str, prom: Prometheus | str, *, scrape_interval: Duration = "15s") -> Mesh:
    """An adapter for mesh ``name`` reading from ``prom`` (a client or a URL): ``ml.mesh("istio", prom)``."""
    return get_mesh(name)(prom, scrape_interval=scrape_interval)
