"""The mesh adapter contract, and the registry that finds adapters by name.

An adapter is data plus a little code: for each signal it knows the mesh's metric, the
matchers that select the right proxy's view, and which labels name a workload of each
kind. :class:`Mesh` turns that into PromQL (one query per signal for all workloads),
runs it, and assembles the tidy ``traffic`` and ``edges`` frames of :mod:`meshlab.schema`.

Semantics at each step T with window W, for every mesh:

- counts are ``sum by (...) (increase(counter{...}[W]))``;
- ``requests = success_count + failure_count``; ``rps = requests / W``;
- ``success_rate = success_count / requests``, NaN when there were no requests;
- a workload with traffic but no failure series has ``failure_count`` 0, not NaN;
- a workload whose counters exist but saw no traffic in a window is present with zero
  counts (and NaN rate and latency); one with no counters at all is absent;
- latency is ``histogram_quantile(q, sum by (le, ...) (rate(bucket{...}[W])))`` in ms.

meshlab uses ``rate``/``increase`` where the meshes' own CLIs and dashboards use
``irate``: ``irate`` looks only at the last two samples of the window.
"""

from __future__ import annotations

import importlib.metadata
from abc import ABC
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import reduce
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from .. import schema
from ..errors import InvalidArgument
from ..prometheus.client import Prometheus
from ..prometheus.promql import MatchValue, by, selector
from ..timeutil import Duration, TimeLike, format_duration, to_timedelta

__all__ = ["KINDS", "Mesh", "Signal", "available", "detect", "earliest_sample", "get_mesh", "mesh", "register"]

#: Every kind a mesh adapter may support.
KINDS = ("namespace", "deployment", "statefulset", "daemonset", "pod", "job", "service")


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
class Identity:
    """Which labels name the workloads on each side, for one kind."""

    namespace: str
    name: str | None                       # None for kind "namespace"
    dst_namespace: str | None = None
    dst_name: str | None = None
    extra: Mapping[str, MatchValue] = field(default_factory=dict)  # e.g. exclude egress or unmeshed callers


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
    workload_signal : Signal
        The server-side view of each workload's inbound traffic.
    edge_signals : dict of str to Signal
        Edge views by side (``"client"``, ``"server"``).
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""
    kinds: ClassVar[tuple[str, ...]] = ()
    workload_signal: ClassVar[Signal]
    edge_signals: ClassVar[Mapping[str, Signal]] = {}
    #: the metric whose presence says this mesh has data in a Prometheus
    marker: ClassVar[str]

    def __init__(self, prom: Prometheus):
        if not isinstance(prom, Prometheus):
            raise InvalidArgument(f"{type(self).__name__} needs a meshlab.Prometheus, got {type(prom).__name__}")
        self.prom = prom

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.prom!r})"

    # -- what subclasses describe ------------------------------------------------------------

    def workload_identity(self, kind: str) -> Identity:
        """The labels naming a workload of ``kind`` in the workload signal."""
        raise NotImplementedError

    def edge_identity(self, kind: str, side: str) -> Identity:
        """The labels naming the source and destination of an edge seen from ``side``."""
        raise NotImplementedError

    def _check_kind(self, kind: str) -> None:
        if kind not in self.kinds:
            raise InvalidArgument(f"{self.name} cannot name workloads by kind {kind!r}; "
                                  f"supported kinds: {', '.join(self.kinds)}")

    # -- PromQL --------------------------------------------------------------------------------

    def promql(self, signal: str, kind: str = "deployment", namespace: str | None = None, name: str | None = None,
               window: Duration = "1m", *, side: str | None = None, quantile: float = 0.99) -> str:
        """The exact PromQL meshlab runs for one signal, to inspect or reuse.

        Parameters
        ----------
        signal : {"success_count", "failure_count", "latency"}
        kind, namespace, name : str
            Which workloads; ``None`` means all.
        window : duration
        side : {"client", "server"}, optional
            For edges; ``None`` is the workload (server-side) view.
        quantile : float
            For ``latency``.
        """
        self._check_kind(kind)
        if side is None:
            identity, spec = self.workload_identity(kind), self.workload_signal
        elif side in self.edge_signals:
            identity, spec = self.edge_identity(kind, side), self.edge_signals[side]
        else:
            raise InvalidArgument(f"{self.name} has no {side!r} side for edges; sides: {', '.join(self.edge_signals)}")
        group = [label for label in (identity.namespace, identity.name, identity.dst_namespace, identity.dst_name)
                 if label]
        filters = {identity.namespace: namespace, **({identity.name: name} if identity.name else {})}
        window_text = format_duration(window)
        base = {**spec.matchers, **identity.extra, **{k: v for k, v in filters.items() if v is not None}}
        if signal in ("success_count", "failure_count"):
            outcome = spec.success if signal == "success_count" else spec.failure
            return f"sum {by(*group)} (increase({selector(spec.metric, {**base, **outcome})}[{window_text}]))"
        if signal == "latency":
            if spec.latency is None:
                raise InvalidArgument(f"{self.name} has no latency histogram for this view")
            inner = f"sum {by('le', *group)} (rate({selector(spec.latency, base)}[{window_text}]))"
            scale = "" if spec.latency_scale == 1 else f" * {spec.latency_scale:g}"
            return f"histogram_quantile({quantile:g}, {inner}){scale}"
        raise InvalidArgument(f"unknown signal {signal!r}; must be one of: success_count, failure_count, latency")

    # -- frames --------------------------------------------------------------------------------

    def traffic(self, kind: str = "deployment", namespace: str | None = None, name: str | None = None, *,
                start: TimeLike | None = None, end: TimeLike | None = None, step: Duration = "1m",
                window: Duration = "1m", at: TimeLike | None = None,
                quantiles: Sequence[float] = schema.QUANTILES) -> pd.DataFrame:
        """Golden signals of each workload's inbound traffic, as its own proxies see them.

        Give ``start`` and ``end`` (and ``step``) for time series, or ``at`` for one
        instant (SMI-style). ``quantiles`` chooses the latency quantiles to compute, one
        query each; the p50, p90 and p99 columns are always present, NaN when not asked
        for. See the module docstring for the semantics.

        Returns
        -------
        pandas.DataFrame
            A ``traffic`` frame, plus ``latency_pNN_ms`` for extra quantiles.
        """
        self._check_kind(kind)
        identity = self.workload_identity(kind)
        columns = {identity.namespace: "namespace", **({identity.name: "name"} if identity.name else {})}
        frame = self._golden(kind, namespace, name, None, columns, start, end, step, window, at, quantiles)
        if identity.name is None:
            frame["name"] = frame["namespace"]
        frame.insert(1, "mesh", self.name)
        frame.insert(2, "kind", kind)
        return schema.conform(frame, "traffic")

    def edges(self, kind: str = "deployment", namespace: str | None = None, name: str | None = None, *,
              start: TimeLike | None = None, end: TimeLike | None = None, step: Duration = "1m",
              window: Duration = "1m", at: TimeLike | None = None, sides: Sequence[str] | None = None,
              quantiles: Sequence[float] = schema.QUANTILES) -> pd.DataFrame:
        """Golden signals per (source, destination), as the client's or the server's proxy sees them.

        ``namespace`` and ``name`` filter the source. Each mesh's docstring says which sides it has.

        Returns
        -------
        pandas.DataFrame
            An ``edges`` frame.
        """
        self._check_kind(kind)
        parts = []
        for side in sides or tuple(self.edge_signals):
            identity = self.edge_identity(kind, side)
            columns = {identity.namespace: "src_namespace",
                       **({identity.name: "src_name"} if identity.name else {}),
                       **({identity.dst_namespace: "dst_namespace"} if identity.dst_namespace else {}),
                       **({identity.dst_name: "dst_name"} if identity.dst_name else {})}
            part = self._golden(kind, namespace, name, side, columns, start, end, step, window, at, quantiles)
            if identity.name is None:  # kind "namespace": the namespaces are the names
                part["src_name"], part["dst_name"] = part["src_namespace"], part["dst_namespace"]
            part.insert(1, "mesh", self.name)
            part.insert(2, "kind", kind)
            part["side"] = side
            parts.append(self._fill_edges(part, kind, side))
        return schema.concat(parts, "edges")

    def _fill_edges(self, frame: pd.DataFrame, kind: str, side: str) -> pd.DataFrame:
        """Hook for meshes whose edge labels lack something (Consul's destination namespace)."""
        return frame

    def _golden(self, kind: str, namespace: str | None, name: str | None, side: str | None,
                columns: dict[str, str], start: TimeLike | None, end: TimeLike | None, step: Duration,
                window: Duration, at: TimeLike | None, quantiles: Sequence[float]) -> pd.DataFrame:
        window_s = to_timedelta(window, name="window").total_seconds()
        run = self._runner(start, end, step, at)
        keys = ["timestamp", *columns.values()]

        def fetch(signal: str, value: str, **extra: Any) -> pd.DataFrame:
            result = run(self.promql(signal, kind, namespace, name, window, side=side, **extra))
            result = result.rename(columns=columns)
            for column in columns.values():
                if column not in result:
                    result[column] = pd.Series(pd.NA, index=result.index, dtype="string")
            result = result[[*keys, "value"]].astype({c: "string" for c in columns.values()})
            return result.rename(columns={"value": value})

        parts = [fetch("success_count", "success_count"), fetch("failure_count", "failure_count")]
        has_latency = (self.workload_signal if side is None else self.edge_signals[side]).latency is not None
        for q in quantiles if has_latency else ():
            parts.append(fetch("latency", schema.quantile_column(q), quantile=q))
        frame = reduce(lambda a, b: a.merge(b, on=keys, how="outer"), parts)
        counted = frame["success_count"].notna() | frame["failure_count"].notna()
        frame = frame[counted].copy()
        frame[["success_count", "failure_count"]] = frame[["success_count", "failure_count"]].fillna(0.0)
        frame["requests"] = frame["success_count"] + frame["failure_count"]
        with np.errstate(divide="ignore", invalid="ignore"):
            frame["success_rate"] = np.where(frame["requests"] > 0, frame["success_count"] / frame["requests"], np.nan)
        frame["rps"] = frame["requests"] / window_s
        for q in (*schema.QUANTILES, *quantiles):  # the contract's p50/p90/p99 columns are always there
            column = schema.quantile_column(q)
            if column not in frame:
                frame[column] = np.nan
        return frame.sort_values(keys, kind="stable").reset_index(drop=True)

    def _runner(self, start: TimeLike | None, end: TimeLike | None, step: Duration,
                at: TimeLike | None) -> Callable[[str], pd.DataFrame]:
        if at is not None:
            if start is not None or end is not None:
                raise InvalidArgument("give either at= (one instant) or start= and end= (a range), not both")
            return lambda q: self.prom.query(q, time=at)
        if start is None or end is None:
            raise InvalidArgument("give start= and end= for a range, or at= for one instant (e.g. at='now')")
        return lambda q: self.prom.query_range(q, start, end, step)

    @classmethod
    def detect(cls, prom: Prometheus) -> pd.Timestamp | None:
        """When this mesh's data begins in ``prom`` (to the second), or None if it has none."""
        return earliest_sample(prom, selector(cls.marker))


def earliest_sample(prom: Prometheus, series: str, *, resolution_s: float = 1.0) -> pd.Timestamp | None:
    """The time of the earliest sample of ``series``, to ``resolution_s``, by bisection.

    Each step asks whether any sample lies in ``(lo, mid]`` with
    ``count(last_over_time(series[mid - lo]))`` at ``mid``: about 30 small queries.
    """
    hi_ms = int(pd.Timestamp.now(tz="UTC").value // 1_000_000)
    lo_ms = 0

    def any_in(lo: int, hi: int) -> bool:
        return len(prom.query(f"count(last_over_time({series}[{hi - lo}ms]))", time=hi / 1000)) > 0

    if not any_in(lo_ms, hi_ms):
        return None
    while hi_ms - lo_ms > max(int(resolution_s * 1000), 1):
        mid = (lo_ms + hi_ms) // 2
        if any_in(lo_ms, mid):
            hi_ms = mid
        else:
            lo_ms = mid
    return pd.Timestamp(hi_ms, unit="ms", tz="UTC").as_unit("ns")


def detect(prom: Prometheus) -> dict[str, pd.Timestamp]:
    """Which registered meshes have data in ``prom``, and since when (to the second)."""
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


def mesh(name: str, prom: Prometheus) -> Mesh:
    """An adapter for mesh ``name`` reading from ``prom``: ``ml.mesh("istio", prom)``."""
    return get_mesh(name)(prom)
