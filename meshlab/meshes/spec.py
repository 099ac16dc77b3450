"""What a mesh adapter declares: its signals, identities and kinds, and the time span asked for.

Nothing here talks to a server: :mod:`.queries` turns these declarations into PromQL and
:mod:`.base` runs it and builds the frames. Longer than 400 lines: the declarations and the
class-creation checks that name a missing one belong together, and most lines are docstrings.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import FunctionType
from typing import TYPE_CHECKING, Any, ClassVar

import pandas as pd

from ..errors import InvalidArgument
from ..prometheus.promql import MatchValue, quote
from ..timeutil import Duration, TimeLike, format_duration, to_timedelta, to_timestamp

if TYPE_CHECKING:
    from ..prometheus.client import Prometheus

__all__ = ["KINDS", "PROXY_SIGNALS", "TCP_SIGNALS", "WORKLOAD_KINDS", "Identity", "MeshSpec", "Owners", "Signal",
           "Span", "TcpSignal", "check_label_value", "check_labels", "label_rewrites", "pod_rewrites",
           "workload_of_pod"]

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


def check_labels(**values: object) -> None:
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


@dataclass(frozen=True)
class Span:
    """When to evaluate: a range (``start`` to ``end`` every ``step``) or one instant (``at``), each over ``window``.

    Built once per call from the frame methods' time arguments and checked then: exactly one
    of a range or an instant, and a ``window`` that reads as a duration. Times are kept as
    given (``"now"`` is resolved by the client when it queries).
    """

    start: TimeLike | None = None
    end: TimeLike | None = None
    step: Duration = "1m"
    window: Duration = "1m"
    at: TimeLike | None = None

    def __post_init__(self) -> None:
        to_timedelta(self.window, name="window")
        if self.at is not None:
            if self.start is not None or self.end is not None:
                raise InvalidArgument("give either at= (one instant) or start= and end= (a range), not both")
        elif self.start is None or self.end is None:
            raise InvalidArgument("give start= and end= for a range, or at= for one instant (e.g. at='now')")

    @property
    def window_seconds(self) -> float:
        """The window in seconds: what a count over it is divided by to give a rate."""
        return float(to_timedelta(self.window, name="window").total_seconds())

    def lookback(self) -> tuple[str, TimeLike]:
        """A duration covering every window of the span, and the time to look back from."""
        window = to_timedelta(self.window, name="window")
        if self.at is not None:
            lookback, when = window, self.at
        else:
            assert self.start is not None and self.end is not None
            lookback, when = to_timestamp(self.end) - to_timestamp(self.start) + window, self.end
        return format_duration(max(lookback, pd.Timedelta(seconds=1))), when

    def run(self, prom: Prometheus, query: str) -> pd.DataFrame:
        """``query`` evaluated over this span by ``prom``: at the instant, or over the range."""
        if self.at is not None:
            return prom.query(query, time=self.at)
        assert self.start is not None and self.end is not None
        return prom.query_range(query, self.start, self.end, self.step)


#: What every concrete adapter must set; a subclass missing one fails when it is defined.
REQUIRED: tuple[str, ...] = ("name", "marker", "workload_signal")


class MeshSpec:
    """A mesh's metrics, declared: which series hold each signal and which labels name workloads.

    Subclasses set the class attributes below; most need no methods of their own. A
    subclass is checked when it is defined: it must set ``name``, ``marker`` and
    ``workload_signal``, have ``kinds`` including its ``default_kind``, and define
    ``workload_identity`` (and ``edge_identity`` when it has edge or TCP sides). Pass
    ``abstract=True`` in the class statement for a base meant to be subclassed
    (``class EnvoyMesh(Mesh, abstract=True)``).

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
    marker : str
        The metric whose presence says this mesh has data in a Prometheus.
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
    #: set by ``abstract=True`` in the class statement: a base for adapters, not one itself
    abstract: ClassVar[bool] = True

    def __init_subclass__(cls, *, abstract: bool = False, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.abstract = abstract
        for method in ("workload_identity", "edge_identity"):
            if isinstance(vars(cls).get(method), FunctionType):  # written as an instance method, as adapters once were
                setattr(cls, method, classmethod(vars(cls)[method]))  # they describe the class: no instance needed
        if not abstract:
            check_spec(cls)

    # -- what subclasses describe ------------------------------------------------------------

    @classmethod
    def workload_identity(cls, kind: str) -> Identity:
        """The labels naming a workload of ``kind`` in the workload signal."""
        raise NotImplementedError

    @classmethod
    def edge_identity(cls, kind: str, side: str) -> Identity:
        """The labels naming the source and destination of an edge seen from ``side``."""
        raise NotImplementedError

    @classmethod
    def resolve_kind(cls, kind: str | None) -> str:
        """The workload kind a query with ``kind`` names workloads by: ``kind`` itself, or this mesh's default.

        Raises
        ------
        InvalidArgument
            If this mesh cannot name workloads by ``kind``; the message lists the kinds it can.
        """
        return cls._kind(kind)

    @classmethod
    def _kind(cls, kind: str | None) -> str:
        """``kind``, or this mesh's default; an error names the kinds it supports."""
        if kind is None:
            return cls.default_kind
        if kind not in cls.kinds:
            raise InvalidArgument(f"{cls.name} cannot name workloads by kind {kind!r}; "
                                  f"supported kinds: {', '.join(cls.kinds)}")
        return kind


def check_spec(cls: type[MeshSpec]) -> None:
    """Refuse an adapter class that lacks what every adapter needs, naming what is missing.

    Raises
    ------
    TypeError
        When ``cls`` is defined (as a missing abstract method would be, but at class creation).
    """
    where = f"{cls.__module__}.{cls.__qualname__}"
    missing = [attribute for attribute in REQUIRED if not getattr(cls, attribute, None)]
    if missing:
        raise TypeError(f"mesh adapter {where} must set class attribute(s) {', '.join(missing)} "
                        "(or be declared with abstract=True)")
    if not isinstance(cls.name, str) or not isinstance(cls.marker, str):
        raise TypeError(f"mesh adapter {where}: name and marker must be strings")
    if not isinstance(cls.workload_signal, Signal):
        raise TypeError(f"mesh adapter {where}: workload_signal must be a meshlab.meshes.Signal")
    if cls.default_kind not in cls.kinds:
        raise TypeError(f"mesh adapter {where}: default_kind {cls.default_kind!r} is not among its kinds "
                        f"{cls.kinds!r}")
    methods = ["workload_identity", *(["edge_identity"] if cls.edge_signals or cls.tcp_signals else [])]
    for method in methods:
        if not any(method in vars(k) for k in cls.__mro__ if k is not MeshSpec):
            raise TypeError(f"mesh adapter {where} must define the classmethod {method}()")

