"""meshlab frames to SMI ``TrafficMetricsList`` objects (see :mod:`meshlab.smi`)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any, Literal

import numpy as np
import pandas as pd

from .. import schema
from ..errors import InvalidArgument, SchemaError
from ..timeutil import Duration, to_timedelta
from ._spec import (
    _CLUSTER_KINDS,
    _KINDS,
    _LABEL_VALUE,
    _LATENCY_COLUMN,
    _LATENCY_UNIT,
    _STANDARD_LATENCIES,
    API_GROUP,
    CLUSTER_LABEL,
    MESH_LABEL,
    VERSIONS,
)
from ._wire import _format_float, _format_time, format_go_duration

# -- frames to TrafficMetricsList --------------------------------------------------------------

def to_traffic_metrics(frame: pd.DataFrame, *, window: Duration | None = None,
                       direction: Literal["auto", "to", "from"] = "auto",
                       version: str = "v1alpha1") -> dict[str, Any]:
    """Write a ``traffic`` or ``edges`` frame as an SMI ``TrafficMetricsList``.

    Each row becomes one ``TrafficMetrics`` item (a time series becomes one item per
    workload and step). The result is a plain dict that ``json.dumps`` accepts as it is.

    Parameters
    ----------
    frame : pandas.DataFrame
        A ``traffic`` frame (``Mesh.traffic``): each item is the workload's inbound traffic,
        ``edge: {direction: "from", side: "server", resource: null}``. Or an ``edges`` frame
        (``Mesh.edges``): each item is one (source, destination, side). Extra
        ``latency_pNN_ms`` columns become ``pNN_response_latency`` metrics after the spec's three.
    window : duration, optional
        The window the counts were taken over (``"30s"``, a number of seconds, a timedelta).
        By default it is ``requests / rps``, which must agree across the rows that have
        requests; when given, it must agree with them too.
    direction : {"auto", "to", "from"}
        For edges: ``"to"`` puts the source in ``resource`` and the destination in
        ``edge.resource``; ``"from"`` the other way round. ``"auto"`` (the default) follows
        the spec's examples: ``resource`` is the workload whose proxy observed the traffic,
        so client-side rows are ``to`` and server-side rows ``from``.
    version : {"v1alpha1", "v1alpha2"}
        The ``apiVersion`` written. v1alpha1's Go types have no ``edge.side``; it is written
        anyway (the spec's v1alpha1 document shows it, and Go's JSON decoder ignores fields it
        does not know), because without it client and server rows of an edge are the same item.

    Returns
    -------
    dict
        ``{"kind": "TrafficMetricsList", "apiVersion": ..., "metadata": {"selfLink": ...},
        "resource": ..., "items": [...]}``. Items carry ``metadata.labels["meshlab/mesh"]``
        (and ``"meshlab/cluster"`` for a frame with a ``cluster`` column, which
        :func:`~meshlab.smi.from_traffic_metrics` reads back);
        their ``creationTimestamp`` is their ``timestamp``, so the output is deterministic.
        NaN values (latency without requests) are written as ``"value": null``.

    Raises
    ------
    InvalidArgument
        If the frame is neither kind, a kind SMI has no resource for, the window cannot be
        inferred, or a value cannot be a quantity (an infinite latency).
    """
    api_version = _api_version(version)
    if not isinstance(frame, pd.DataFrame):
        raise InvalidArgument(f"to_traffic_metrics needs a traffic or edges frame, got {type(frame).__name__}")
    is_edges = bool({"src_namespace", "src_name", "dst_namespace", "dst_name", "side"} & set(frame.columns))
    kind = "edges" if is_edges else "traffic"
    try:
        schema.validate(frame, kind)  # text labels (pandas.concat of several frames) are fine
    except SchemaError as error:
        raise InvalidArgument(
            f"to_traffic_metrics needs a traffic or edges frame (what Mesh.traffic() and Mesh.edges() return); "
            f"read as {'an edges' if is_edges else 'a traffic'} frame: {error}. "
            f"ml.schema.conform(frame, {kind!r}) fixes dtypes"
        ) from error
    if direction not in ("auto", "to", "from"):
        raise InvalidArgument(f"direction must be 'auto', 'to' or 'from', not {direction!r}")
    if not is_edges and direction != "auto":
        raise InvalidArgument(f"direction={direction!r} is for edges frames; a traffic row is always the "
                              "workload's inbound traffic (direction 'from')")
    window_td = _frame_window(frame, window)
    items = list(_items(frame, is_edges, direction, api_version, window_td))
    return {
        "kind": "TrafficMetricsList",
        "apiVersion": api_version,
        "metadata": {"selfLink": _list_link(items, is_edges, api_version)},
        "resource": _list_resource(items, is_edges),
        "items": items,
    }


def _api_version(version: str) -> str:
    short = version.removeprefix(f"{API_GROUP}/") if isinstance(version, str) else version
    if short not in VERSIONS:
        raise InvalidArgument(f"version must be one of {', '.join(VERSIONS)}, not {version!r}")
    return f"{API_GROUP}/{short}"


def _frame_window(frame: pd.DataFrame, window: Duration | None) -> pd.Timedelta | None:
    requests = frame["requests"].to_numpy(dtype="float64")
    rps = frame["rps"].to_numpy(dtype="float64")
    with np.errstate(divide="ignore", invalid="ignore"):
        usable = np.isfinite(requests) & np.isfinite(rps) & (requests > 0) & (rps > 0)
        implied = requests[usable] / rps[usable]
    if window is not None:
        td = to_timedelta(window, name="window")
        if td <= pd.Timedelta(0):
            raise InvalidArgument(f"window must be positive, got {window!r}")
        seconds = td.total_seconds()
        if len(implied) and not np.allclose(implied, seconds, rtol=1e-6, atol=0):
            far = implied[np.argmax(np.abs(implied - seconds))]
            raise InvalidArgument(f"window={window!r} disagrees with the frame: requests / rps is {far:g} s on "
                                  "some rows; pass the window the frame was computed with")
        return td
    if not len(frame):
        return None  # no items, nothing to say
    if not len(implied):
        raise InvalidArgument("cannot infer the window: no row has requests > 0 and rps > 0 to divide; "
                              "pass window= (e.g. window='30s', the window the frame was computed with)")
    low, high = implied.min(), implied.max()
    if not np.isclose(low, high, rtol=1e-6, atol=0):
        raise InvalidArgument(f"cannot infer one window: requests / rps ranges from {low:g} s to {high:g} s "
                              "across rows; split the frame by window, or pass window=")
    millis = round(float(np.median(implied)) * 1000)  # Prometheus windows are whole milliseconds
    if millis <= 0:
        raise InvalidArgument(f"cannot infer the window: requests / rps is {low:g} s; pass window=")
    return pd.Timedelta(millis, unit="ms")


def _ref(kind: str, namespace: str, name: str) -> dict[str, str]:
    """An ObjectReference as Go writes it: kind, namespace (only for namespaced kinds), name."""
    k8s_kind = _KINDS[kind][0]
    return {"kind": k8s_kind, "name": name} if kind in _CLUSTER_KINDS else \
        {"kind": k8s_kind, "namespace": namespace, "name": name}


def _self_link(api_version: str, ref: Mapping[str, str], edges: bool) -> str:
    plural = next(p for k8s_kind, p in _KINDS.values() if k8s_kind == ref["kind"])
    base = f"/apis/{api_version}"
    link = f"{base}/namespaces/{ref['namespace']}/{plural}/{ref['name']}" if "namespace" in ref \
        else f"{base}/{plural}/{ref['name']}"
    return link + "/edges" if edges else link


def _labels(frame: pd.DataFrame, column: str) -> list[str]:
    values = frame[column].astype(object).tolist()
    for row, value in enumerate(values):
        if not isinstance(value, str) or not value:
            raise InvalidArgument(f"row {row} has no {column} ({value!r}); every SMI item needs one")
    return values


def _metric_columns(frame: pd.DataFrame) -> list[tuple[str, str]]:
    """(column, SMI metric name) of every latency quantile: the spec's three first, then the extras."""
    extras = [c for c in frame.columns if _LATENCY_COLUMN.match(str(c)) and c not in _STANDARD_LATENCIES]
    return [(c, c.removeprefix("latency_").removesuffix("_ms") + "_response_latency")
            for c in (*_STANDARD_LATENCIES, *extras)]


def _quantities(frame: pd.DataFrame, column: str) -> list[str | None]:
    values = frame[column].to_numpy(dtype="float64")
    infinite = np.flatnonzero(np.isinf(values))
    if len(infinite):
        raise InvalidArgument(f"{column} is {values[infinite[0]]} on row {infinite[0]}: a Kubernetes quantity "
                              "cannot express infinity; replace it first (e.g. with NaN, written as null)")
    return [None if math.isnan(v) else _format_float(v) for v in values.tolist()]


def _items(frame: pd.DataFrame, is_edges: bool, direction: str, api_version: str,
           window: pd.Timedelta | None) -> Iterable[dict[str, Any]]:
    if not len(frame):
        return
    assert window is not None
    window_text = format_go_duration(window.value)
    kinds = _labels(frame, "kind")
    unknown = sorted(set(kinds) - set(_KINDS))
    if unknown:
        raise InvalidArgument(f"SMI Traffic Metrics has no resource for kind {', '.join(map(repr, unknown))}; "
                              f"it covers: {', '.join(_KINDS)}")
    meshes = _labels(frame, "mesh")
    clusters = _labels(frame, "cluster") if "cluster" in frame else None
    for column, values in (("mesh", meshes), ("cluster", clusters or [])):
        for value in set(values):
            if not _LABEL_VALUE.match(value):
                raise InvalidArgument(f"{column} {value!r} cannot be a Kubernetes label value (63 characters at "
                                      "most: letters, digits, '-', '_', '.'; alphanumeric at both ends)")
    codes, instants = pd.factorize(frame["timestamp"])
    if (codes < 0).any():
        raise InvalidArgument(f"row {int(np.argmax(codes < 0))} has no timestamp (NaT)")
    texts = [_format_time(ts) for ts in instants]
    stamps = [texts[code] for code in codes.tolist()]
    latencies = [(name, _quantities(frame, column)) for column, name in _metric_columns(frame)]
    successes, failures = _quantities(frame, "success_count"), _quantities(frame, "failure_count")
    if is_edges:
        src = zip(_labels(frame, "src_namespace"), _labels(frame, "src_name"), strict=True)
        dst = zip(_labels(frame, "dst_namespace"), _labels(frame, "dst_name"), strict=True)
        sides = _labels(frame, "side")
        bad = sorted(set(sides) - {"client", "server"})
        if bad:
            raise InvalidArgument(f"side must be 'client' or 'server', found {', '.join(map(repr, bad))}")
        pairs: Iterable[tuple[tuple[str, str], tuple[str, str] | None, str]] = zip(src, dst, sides, strict=True)
    else:
        names = zip(_labels(frame, "namespace"), _labels(frame, "name"), strict=True)
        pairs = ((ns_name, None, "server") for ns_name in names)
    for row, (first, second, side) in enumerate(pairs):
        kind = kinds[row]
        if second is None:
            resource, edge_resource, way = _ref(kind, *first), None, "from"
        else:
            way = direction if direction != "auto" else ("to" if side == "client" else "from")
            source, destination = _ref(kind, *first), _ref(kind, *second)
            resource, edge_resource = (source, destination) if way == "to" else (destination, source)
        metadata = {"name": resource["name"]}
        if "namespace" in resource:
            metadata["namespace"] = resource["namespace"]
        metrics: list[dict[str, Any]] = [{"name": name, "unit": _LATENCY_UNIT, "value": values[row]}
                                         for name, values in latencies]
        metrics.append({"name": "success_count", "value": successes[row]})
        metrics.append({"name": "failure_count", "value": failures[row]})
        yield {
            "kind": "TrafficMetrics",
            "apiVersion": api_version,
            "metadata": {**metadata, "selfLink": _self_link(api_version, resource, is_edges),
                         "creationTimestamp": stamps[row],
                         "labels": {MESH_LABEL: meshes[row], **({CLUSTER_LABEL: clusters[row]} if clusters else {})}},
            "timestamp": stamps[row],
            "window": window_text,
            "resource": resource,
            "edge": {"direction": way, "side": side, "resource": edge_resource},
            "metrics": metrics,
        }


def _common(items: list[dict[str, Any]]) -> dict[str, str]:
    """The ObjectReference fields every item's resource shares."""
    if not items:
        return {}
    first = items[0]["resource"]
    return {k: v for k, v in first.items() if all(item["resource"].get(k) == v for item in items)}


def _list_resource(items: list[dict[str, Any]], is_edges: bool) -> dict[str, str]:
    # As the server would answer the request that lists these items: the edges of one
    # resource (its full reference), or every resource of a kind (kind, and the namespace
    # when they share one).
    common = _common(items)
    if "kind" not in common:
        return {}
    if is_edges and "name" in common:
        return common
    return {k: v for k, v in common.items() if k != "name"}


def _list_link(items: list[dict[str, Any]], is_edges: bool, api_version: str) -> str:
    resource = _list_resource(items, is_edges)
    base = f"/apis/{api_version}"
    if "kind" not in resource:
        return base
    if "name" in resource:
        return _self_link(api_version, resource, edges=True)
    plural = next(p for k8s_kind, p in _KINDS.values() if k8s_kind == resource["kind"])
    return f"{base}/namespaces/{resource['namespace']}/{plural}" if "namespace" in resource else f"{base}/{plural}"
