"""``meshlab stat``, ``meshlab edges`` and ``meshlab top``: a mesh's golden signals now, as tables.

Every number comes from the mesh adapters (:mod:`meshlab.meshes`) at one instant, resolved once
(``--at``, now by default), so a table's rows and its ``-o json`` are one consistent reading.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

import click

from ..errors import MeshlabError
from .common import debug_option, output_option, prometheus
from .core import Command, duration_type, positive, time_type
from .output import Col, count, emit, ms, number, percent, text

if TYPE_CHECKING:
    import pandas as pd

    from ..meshes import Mesh
    from ..prometheus.client import Prometheus

MESH_CHOICES = "linkerd|istio|consul|kuma|hubble|auto"


def _source_options(f: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option("--prometheus", "url", envvar="MESHLAB_PROMETHEUS_URL", metavar="URL",
                     help="Prometheus base URL, e.g. http://127.0.0.1:9090 (or $MESHLAB_PROMETHEUS_URL)."),
        click.option("--mesh", default="auto", show_default=True, metavar=MESH_CHOICES,
                     help="Whose metrics to read; auto: every mesh with data in this Prometheus."),
        click.option("-n", "--namespace", default=None, help="Only this namespace (default: all)."),
        click.option("--kind", default=None,
                     help="How to name workloads: deployment, statefulset, service... (default: the mesh's own, "
                          "deployment for most)."),
        click.option("--window", type=duration_type("--window"), default="1m", show_default=True,
                     help="The window rates and quantiles are computed over."),
        click.option("--at", type=time_type("--at"), default="now", show_default=True,
                     help="The instant: now, -5m or an ISO time."),
        click.option("--timeout", type=positive(float, "seconds"), default=30.0, show_default=True,
                     help="Seconds per request."),
        output_option,
        debug_option,
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _adapters(prom: Prometheus, name: str) -> list[Mesh]:
    """The adapter named, or (``auto``) one per mesh with data in ``prom``."""
    from ..meshes import detect, get_mesh, mesh

    if name != "auto":
        get_mesh(name)  # an unknown name is refused with the list of known ones
        return [mesh(name, prom)]
    found = detect(prom)
    if not found:
        from ..meshes import available

        raise MeshlabError(f"no mesh's metrics found in Prometheus at {prom.url} (looked for: "
                           f"{', '.join(available())}); check the URL, or name one with --mesh")
    return [mesh(n, prom) for n in sorted(found)]


def _instant(at: str) -> pd.Timestamp:
    """The one instant every query of a command uses."""
    from ..timeutil import to_timestamp

    return to_timestamp(at, name="--at")


#: The built-in meshes, known without loading the adapters (and pandas) so that a refused local
#: server is reported at once; any other name is looked up in the registry (plugins included).
BUILT_IN = ("consul", "hubble", "istio", "kuma", "linkerd")


def _check_mesh_name(name: str) -> None:
    if name != "auto" and name not in BUILT_IN:
        from ..meshes import get_mesh

        get_mesh(name)


def stat_frame(prom: Prometheus, adapters: list[Mesh], kind: str | None, namespace: str | None,
               at: pd.Timestamp, window: str) -> pd.DataFrame:
    """One row per workload with inbound traffic or TCP connections: ``meshlab stat``'s raw values."""
    import pandas as pd

    from .progress import fetch_all

    jobs: list[tuple[str, Callable[[], pd.DataFrame]]] = []
    for adapter in adapters:
        jobs.append((f"{adapter.name} traffic", partial(adapter.traffic, kind, namespace=namespace, at=at,
                                                        window=window, quantiles=(0.95,))))
        if adapter.tcp_workload_signal is not None:
            jobs.append((f"{adapter.name} tcp", partial(adapter.tcp, kind, namespace=namespace, at=at, window=window,
                                                        per="workload")))
        jobs.append((f"{adapter.name} proxies", partial(adapter.proxies, namespace=namespace, at=at, window=window)))
    fetched = iter(fetch_all(jobs))
    parts = []
    for adapter in adapters:
        traffic = next(fetched)
        keys = ["namespace", "name"]
        frame = traffic[["timestamp", "mesh", "kind", *keys, "requests", "failure_count", "success_rate", "rps",
                         "latency_p50_ms", "latency_p90_ms", "latency_p95_ms", "latency_p99_ms"]].copy()
        for column in ("timestamp", "mesh", "kind", *keys):
            frame[column] = frame[column].astype(object)
        tcp_columns = ["tcp_open_connections", "tcp_opened_connections", "tcp_sent_bytes_per_second",
                       "tcp_received_bytes_per_second"]
        if adapter.tcp_workload_signal is not None:
            tcp = next(fetched)
            tcp = pd.DataFrame({
                "namespace": tcp["dst_namespace"].astype(object), "name": tcp["dst_name"].astype(object),
                "tcp_open_connections": tcp["open_connections"], "tcp_opened_connections": tcp["opened_connections"],
                "tcp_sent_bytes_per_second": tcp["sent_bytes_per_second"],
                "tcp_received_bytes_per_second": tcp["received_bytes_per_second"]})
            frame = frame.merge(tcp, on=keys, how="outer")
            # workloads with TCP but no HTTP traffic; assigned, not fillna(): pandas 2.2 warns that
            # fillna on object columns will stop downcasting
            named = adapter.resolve_kind(kind)
            for column, value in (("timestamp", at), ("mesh", adapter.name), ("kind", named)):
                frame.loc[frame[column].isna(), column] = value
        else:
            for column in tcp_columns:
                frame[column] = float("nan")
        # MESHED: the pods with this mesh's proxy container now (cAdvisor), by the pods' workload.
        proxies = next(fetched)
        pods = proxies.groupby([proxies["namespace"].astype(object), proxies["workload"].astype(object)])["pod"] \
            .nunique().rename("meshed_pods").reset_index().rename(columns={"workload": "name"})
        frame = frame.merge(pods, on=keys, how="left")
        parts.append(frame)
    columns = ["timestamp", "mesh", "kind", "namespace", "name", "meshed_pods", "success_rate", "rps",
               "latency_p50_ms", "latency_p90_ms", "latency_p95_ms", "latency_p99_ms", "requests", "failure_count",
               "tcp_open_connections", "tcp_opened_connections", "tcp_sent_bytes_per_second",
               "tcp_received_bytes_per_second"]
    out = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)
    out["timestamp"] = pd.to_datetime(out["timestamp"], utc=True)
    for column in columns[5:]:
        out[column] = out[column].astype("float64")
    return out[columns].sort_values(["mesh", "namespace", "name"], kind="stable").reset_index(drop=True)


def _where(namespace: str | None, many_meshes: bool, fmt: str) -> list[Col]:
    wide = fmt == "wide"
    return [
        *([Col("MESH", "mesh", right=False)] if many_meshes or wide else []),
        *([Col("NAMESPACE", "namespace", right=False)] if namespace is None or wide else []),
    ]


_STAT_HELP = """Golden signals of each workload now, as `linkerd viz stat` shows them.

\b
NAME         the workload, named by --kind
MESHED       pods running this mesh's proxy now (from cAdvisor's proxy containers; pods without
             a proxy are not in Prometheus, so this is not a "2/3" of all pods)
SUCCESS      success rate over the window, as the mesh classifies failures
RPS          requests per second over the window
LATENCY_PNN  latency quantiles (ms) over the window, from the proxies' histograms
TCP_CONN     inbound TCP connections open now ("-" where the mesh does not say)

Workloads with no inbound traffic and no TCP connections in the window are not listed.

\b
  meshlab stat --prometheus http://127.0.0.1:9090 --mesh linkerd -n shop
  meshlab stat --prometheus URL --mesh auto -o json
"""


@click.command(cls=Command, help=_STAT_HELP, needs=("url",), short_help="Golden signals per workload now.")
@_source_options
def stat(url: str, mesh: str, namespace: str | None, kind: str | None, window: str, at: str, timeout: float,
         fmt: str) -> int:
    _check_mesh_name(mesh)
    prom = prometheus(url, timeout)  # --at is checked already; it is read after this, with pandas
    when = _instant(at)
    adapters = _adapters(prom, mesh)
    frame = stat_frame(prom, adapters, kind, namespace, when, window)
    cols = [*_where(namespace, len(adapters) > 1, fmt),
            Col("NAME", "name", right=False), Col("MESHED", "meshed_pods", count),
            Col("SUCCESS", "success_rate", percent),
            Col("RPS", "rps", number(2)), Col("LATENCY_P50", "latency_p50_ms", ms),
            Col("LATENCY_P90", "latency_p90_ms", ms, wide=True), Col("LATENCY_P95", "latency_p95_ms", ms),
            Col("LATENCY_P99", "latency_p99_ms", ms), Col("TCP_CONN", "tcp_open_connections", count),
            Col("REQUESTS", "requests", count, wide=True), Col("FAILURES", "failure_count", count, wide=True),
            Col("TCP_OPENED", "tcp_opened_connections", count, wide=True),
            Col("TCP_SENT_BPS", "tcp_sent_bytes_per_second", number(0), wide=True),
            Col("TCP_RECV_BPS", "tcp_received_bytes_per_second", number(0), wide=True)]
    if fmt in ("json", "csv"):
        cols = [Col(c, c) for c in frame.columns]
    emit(frame, fmt, cols)
    _note_empty(frame, "workload", when)
    return 0


def _note_empty(frame: pd.DataFrame, what: str, when: pd.Timestamp) -> None:
    if not len(frame):
        import sys

        print(f"meshlab: note: no {what} had traffic in the window ending {when:%Y-%m-%d %H:%M:%S} UTC; check "
              "-n, --kind and --at (data may be older: try --at -1h)", file=sys.stderr)


_EDGES_HELP = """Golden signals per edge (source -> destination) now, from each side's proxies.

SIDE says whose proxy saw the edge: the client's or the server's. -n filters the source.

\b
  meshlab edges --prometheus http://127.0.0.1:9090 --mesh istio -n shop
"""


@click.command(cls=Command, help=_EDGES_HELP, needs=("url",), short_help="Golden signals per edge now.")
@_source_options
@click.option("--side", type=click.Choice(["client", "server", "all"]), default="all", show_default=True,
              help="Whose proxies' view.")
def edges(url: str, mesh: str, namespace: str | None, kind: str | None, window: str, at: str, timeout: float,
          fmt: str, side: str) -> int:
    from ..schema import concat
    from .progress import fetch_all

    _check_mesh_name(mesh)
    prom = prometheus(url, timeout)  # --at is checked already; it is read after this, with pandas
    when = _instant(at)
    adapters = _adapters(prom, mesh)
    sides = None if side == "all" else [side]
    parts = fetch_all([(f"{a.name} edges", partial(a.edges, kind, namespace=namespace, at=when, window=window,
                                                   sides=sides, quantiles=(0.95,)))
                       for a in adapters if not sides or side in a.edge_signals])
    columns = ["timestamp", "mesh", "kind", "src_namespace", "src_name", "dst_namespace", "dst_name", "side",
               "success_rate", "rps", "latency_p50_ms", "latency_p90_ms", "latency_p95_ms", "latency_p99_ms",
               "requests", "failure_count"]
    # ml.concat keeps the edges contract across meshes (categories unioned); rows sort by the label text
    frame = concat(parts, kind="edges")[columns]
    frame = frame.sort_values(["mesh", "src_namespace", "src_name", "dst_namespace", "dst_name", "side"],
                              key=lambda c: c.astype(object), kind="stable").reset_index(drop=True)
    cols = [*([Col("MESH", "mesh", right=False)] if len(adapters) > 1 or fmt == "wide" else []),
            Col("SRC_NS", "src_namespace", text, wide=True, right=False), Col("SRC", "src_name", text, right=False),
            Col("DST_NS", "dst_namespace", text, wide=True, right=False), Col("DST", "dst_name", text, right=False),
            Col("SIDE", "side", right=False), Col("SUCCESS", "success_rate", percent), Col("RPS", "rps", number(2)),
            Col("LATENCY_P50", "latency_p50_ms", ms), Col("LATENCY_P90", "latency_p90_ms", ms, wide=True),
            Col("LATENCY_P95", "latency_p95_ms", ms), Col("LATENCY_P99", "latency_p99_ms", ms),
            Col("REQUESTS", "requests", count, wide=True), Col("FAILURES", "failure_count", count, wide=True)]
    if fmt in ("json", "csv"):
        cols = [Col(c, c) for c in frame.columns]
    emit(frame, fmt, cols)
    _note_empty(frame, "edge", when)
    return 0


_TOP_HELP = """The worst workloads now: lowest success rate first, then the busiest.

Only workloads that received requests in the window are ranked.

\b
  meshlab top --prometheus http://127.0.0.1:9090 --limit 5
"""


@click.command(cls=Command, help=_TOP_HELP, needs=("url",), short_help="The worst workloads now.")
@_source_options
@click.option("--limit", type=positive(int, "rows"), default=10, show_default=True, help="How many workloads.")
def top(url: str, mesh: str, namespace: str | None, kind: str | None, window: str, at: str, timeout: float,
        fmt: str, limit: int) -> int:
    _check_mesh_name(mesh)
    prom = prometheus(url, timeout)  # --at is checked already; it is read after this, with pandas
    when = _instant(at)
    adapters = _adapters(prom, mesh)
    frame = stat_frame(prom, adapters, kind, namespace, when, window)
    frame = frame[frame["requests"] > 0]
    frame = frame.sort_values(["success_rate", "rps", "mesh", "namespace", "name"],
                              ascending=[True, False, True, True, True], kind="stable").head(limit)
    frame = frame.reset_index(drop=True)
    cols = [*_where(namespace, len(adapters) > 1, fmt), Col("NAME", "name", right=False),
            Col("SUCCESS", "success_rate", percent), Col("RPS", "rps", number(2)),
            Col("FAILURES", "failure_count", count), Col("LATENCY_P50", "latency_p50_ms", ms, wide=True),
            Col("LATENCY_P95", "latency_p95_ms", ms, wide=True), Col("LATENCY_P99", "latency_p99_ms", ms),
            Col("REQUESTS", "requests", count, wide=True)]
    if fmt in ("json", "csv"):
        columns = ["timestamp", "mesh", "kind", "namespace", "name", "success_rate", "rps", "failure_count",
                   "requests", "latency_p50_ms", "latency_p95_ms", "latency_p99_ms"]
        frame, cols = frame[columns], [Col(c, c) for c in columns]
    emit(frame, fmt, cols)
    _note_empty(frame, "workload", when)
    return 0


