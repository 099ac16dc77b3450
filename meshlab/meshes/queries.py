"""PromQL for each signal of a mesh, built from its declarations alone: no client, no server.

>>> from meshlab.meshes import Istio, queries
>>> queries.promql(Istio, "success_count", "deployment", window="30s")    # doctest: +SKIP
>>> Istio.promql("success_count", "deployment", window="30s")  # the same, a classmethod  # doctest: +SKIP

Each builder takes the adapter class (a :class:`~meshlab.meshes.spec.MeshSpec`) as its first
argument.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from .. import schema
from ..errors import InvalidArgument
from ..prometheus.promql import NotEqual, OneOf, by, selector
from ..timeutil import Duration, format_duration
from .spec import PROXY_SIGNALS, TCP_SIGNALS, Identity, MeshSpec, Owners, TcpSignal, check_labels

__all__ = ["owners_promql", "promql", "proxy_promql", "sides", "tcp_promql", "tcp_view"]

Mesh = type[MeshSpec]


def promql(mesh: Mesh, signal: str, kind: str | None = None, namespace: str | None = None, name: str | None = None,
           window: Duration = "1m", *, side: str | None = None, quantile: float = 0.99,
           source: str = "cadvisor", by_labels: Sequence[str] = ()) -> str:
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
    by_labels : sequence of str
        More labels to keep in every ``by`` clause, such as ``("cluster",)`` for a store
        holding several clusters (``by_cluster=True`` in the frame methods).

    ``"latency_buckets"`` is the per-``le`` bucket rate that ``latency`` takes the quantile
    of, which meshlab also reads to give each estimate its bucket bounds.
    """
    check_labels(namespace=namespace, name=name)
    if signal in PROXY_SIGNALS:
        if kind is not None or name is not None:
            raise InvalidArgument("proxy signals are per pod: give namespace= only (cAdvisor knows no workloads)")
        return proxy_promql(mesh, signal, namespace, window, source=source, by_labels=by_labels)
    kind = mesh._kind(kind)
    if signal in TCP_SIGNALS:
        identity, tcp = tcp_view(mesh, kind, side)
        query = tcp_promql(signal, tcp, identity, namespace, name, window, by_labels)
        if query is None:
            raise InvalidArgument(f"{mesh.name} has no open-connection metric for this view")
        return query
    if side is None:
        identity, spec = mesh.workload_identity(kind), mesh.workload_signal
    elif side in mesh.edge_signals:
        identity, spec = mesh.edge_identity(kind, side), mesh.edge_signals[side]
    else:
        raise InvalidArgument(f"{mesh.name} has no {side!r} side for edges; sides: {', '.join(mesh.edge_signals)}")
    group, base = identity.selection(spec.matchers, namespace, name)
    group = [*group, *by_labels]
    window_text = format_duration(window, name="window")
    if signal in ("success_count", "failure_count"):
        outcome = spec.success if signal == "success_count" else spec.failure
        counts = identity.wrap(f"increase({selector(spec.metric, {**base, **outcome})}[{window_text}])")
        return identity.only(f"sum {by(*group)} ({counts})", name)
    if signal in ("latency", "latency_buckets"):
        if spec.latency is None:
            raise InvalidArgument(f"{mesh.name} has no latency histogram for this view")
        rates = identity.wrap(f"rate({selector(spec.latency, base)}[{window_text}])")
        inner = identity.only(f"sum {by('le', *group)} ({rates})", name)
        if signal == "latency_buckets":
            return inner
        scale = "" if spec.latency_scale == 1 else f" * {spec.latency_scale:g}"
        return f"histogram_quantile({schema.quantile_text(schema.check_quantile(quantile))}, {inner}){scale}"
    raise InvalidArgument(f"unknown signal {signal!r}; must be one of: success_count, failure_count, latency, "
                          "latency_buckets, "
                          f"{', '.join(TCP_SIGNALS)}, {', '.join(PROXY_SIGNALS)}")

def tcp_view(mesh: Mesh, kind: str, side: str | None) -> tuple[Identity, TcpSignal]:
    """The labels and metrics of one TCP view: a side of the edges, or (``None``) the workloads'."""
    if side is None:
        if mesh.tcp_workload_signal is None:
            raise InvalidArgument(f"{mesh.name} has no per-workload TCP metrics meshlab can read")
        return mesh.workload_identity(kind), mesh.tcp_workload_signal
    (side,) = sides(mesh, [side], mesh.tcp_signals, "TCP")
    return mesh.edge_identity(kind, side), mesh.tcp_signals[side]

def tcp_promql(signal: str, spec: TcpSignal, identity: Identity, namespace: str | None,
               name: str | None, window: Duration, by_labels: Sequence[str] = ()) -> str | None:
    labels, base = identity.selection(spec.matchers, namespace, name)
    group = by(*labels, *by_labels)
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

def proxy_promql(mesh: Mesh, signal: str, namespace: str | None, window: Duration, *,
                 source: str = "cadvisor", by_labels: Sequence[str] = ()) -> str:
    group = by("namespace", "pod", "container", *by_labels)
    if source == "proxy":
        if mesh.proxy_process is None:
            raise InvalidArgument(f"{mesh.name}'s proxies export no process metrics; use source='cadvisor'")
        matchers, cpu, memory = mesh.proxy_process
        base = {**matchers, "namespace": namespace}
        group = by("namespace", "pod", *by_labels)
    elif source == "cadvisor":
        if not mesh.proxy_containers:
            raise InvalidArgument(f"{mesh.name} has no proxy container to read from cAdvisor")
        # container!="POD" and image!="" drop cAdvisor's pause-container and pod-total series
        base = {"container": OneOf(mesh.proxy_containers), "image": NotEqual(""), "namespace": namespace}
        cpu, memory = "container_cpu_usage_seconds_total", "container_memory_working_set_bytes"
    else:
        raise InvalidArgument(f"unknown proxy source {source!r}; must be one of: cadvisor, proxy")
    if signal == "cpu_cores":
        return f"sum {group} (rate({selector(cpu, base)}[{format_duration(window, name='window')}]))"
    return f"sum {group} ({selector(memory, base)})"


def sides(mesh: Mesh, asked: Sequence[str] | None, signals: Mapping[str, object], what: str) -> tuple[str, ...]:
    """The sides asked for (all by default), each one the mesh has."""
    if not signals:
        raise InvalidArgument(f"{mesh.name} has no {what} metrics between workloads meshlab can read")
    if asked is None:
        return tuple(signals)
    if isinstance(asked, str) or not asked:
        raise InvalidArgument(f"sides must be a non-empty list such as ['client'], got {asked!r}")
    for side in asked:
        if side not in signals:
            raise InvalidArgument(f"{mesh.name} has no {side!r} side for {what}; sides: {', '.join(signals)}")
    return tuple(asked)


def owners_promql(owners: Sequence[Owners], lookback: str, by_labels: Sequence[str] = ()) -> str:
    """One instant query for which workload each pod belongs to, from ``owners`` seen over ``lookback``."""
    parts = []
    for owner in owners:
        metric = {"__name__": OneOf(owner.metric.split("|"))}
        parts.append(f"group {by('namespace', 'pod', *owner.labels, *by_labels)} "
                     f"(last_over_time({selector(None, {**metric, **owner.matchers})}[{lookback}]))")
    return " or ".join(parts)
