"""SMI ``TrafficMetricsList`` objects, from meshlab or any SMI metrics server, to meshlab frames."""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
import pandas as pd

from .. import schema
from ..errors import InvalidArgument
from ._spec import (
    _CLUSTER_KINDS,
    _KINDS,
    _LATENCY_METRIC,
    _STANDARD_LATENCIES,
    API_GROUP,
    CLUSTER_LABEL,
    MESH_LABEL,
    VERSIONS,
)
from ._wire import _read_time, _read_window, _show, parse_quantity

# -- TrafficMetricsList to frames --------------------------------------------------------------

_MAPPINGS = (dict, Mapping)  # dict first: what JSON gives, and much faster to check than the ABC


def from_traffic_metrics(obj: Mapping[str, Any] | str | bytes, *, mesh: str | None = None,
                         side: Literal["client", "server"] | None = None) -> pd.DataFrame:
    """Read an SMI ``TrafficMetricsList`` (or one ``TrafficMetrics``) into a frame.

    Items whose edge has no resource (``null`` or ``{}``, direction ``from``) are a workload's
    own inbound traffic and give a ``traffic`` frame; items whose ``edge.resource`` names a
    workload give an ``edges`` frame (``to``: ``resource`` is the source; ``from``: it is the
    destination). An object that mixes both is refused: a frame holds one kind.

    ``requests`` is ``success_count + failure_count``, ``success_rate`` is NaN without
    requests, ``rps`` is ``requests`` over the item's window, and a ``null`` or missing
    count or latency is NaN. Metrics other than the counts and ``pNN_response_latency`` are
    ignored. Negative counts and latencies, infinite sums, impossible times and windows, and
    JSON nested too deeply are refused with the path of the field.

    Parameters
    ----------
    obj : dict, str or bytes
        The object, or its JSON text (``kubectl get --raw /apis/metrics.smi-spec.io/...``).
    mesh : str, optional
        The mesh for the ``mesh`` column. By default each item's ``meshlab/mesh`` label,
        which meshlab writes and other servers do not; when given, it is used for every item.
    side : {"client", "server"}, optional
        For edge items without ``edge.side`` (every v1alpha1 server, and smi-metrics even in
        v1alpha2): whose proxy observed them. smi-metrics' Linkerd edges are ``"client"``.

    Returns
    -------
    pandas.DataFrame
        A ``traffic`` or ``edges`` frame (with ``latency_pNN_ms`` columns for extra
        quantiles), rows in item order, following :mod:`meshlab.schema`.

    Raises
    ------
    InvalidArgument
        Naming the item and field: wrong ``apiVersion`` or ``kind``, a missing field, a bad
        quantity, time or window, an unknown resource kind, or a mix of workload and edge items.
    """
    if isinstance(obj, (str, bytes, bytearray)):
        try:
            obj = json.loads(obj)
        except ValueError as error:
            raise InvalidArgument(f"from_traffic_metrics: the text is not JSON ({error})") from None
        except RecursionError:
            raise InvalidArgument("from_traffic_metrics: the JSON text is nested too deeply to be a "
                                  "TrafficMetricsList") from None
    if not isinstance(obj, _MAPPINGS):
        raise InvalidArgument(f"from_traffic_metrics needs a TrafficMetricsList or TrafficMetrics object "
                              f"(a dict or its JSON text), got {type(obj).__name__}")
    if side not in (None, "client", "server"):
        raise InvalidArgument(f"side must be 'client' or 'server', not {_show(side)}")
    if mesh is not None and (not isinstance(mesh, str) or not mesh):
        raise InvalidArgument(f"mesh must be a mesh name such as 'linkerd', not {_show(mesh)}")
    top_kind = obj.get("kind")
    _check_api_version(obj, "the object")
    if top_kind == "TrafficMetricsList":
        items = obj.get("items")
        if items is None:
            items = []
        if not isinstance(items, list):
            raise InvalidArgument(f"items must be a list, not {type(items).__name__}")
        where = [f"items[{i}]" for i in range(len(items))]
        metadata = obj.get("metadata")
        link = metadata.get("selfLink") if isinstance(metadata, _MAPPINGS) else None
        empty_kind = "edges" if isinstance(link, str) and link.endswith("/edges") else "traffic"
    elif top_kind == "TrafficMetrics":
        items, where, empty_kind = [obj], ["the item"], "traffic"
    else:
        raise InvalidArgument(f"kind must be 'TrafficMetricsList' or 'TrafficMetrics', not {_show(top_kind)}")
    rows = [_read_item(item, at, mesh, side) for item, at in zip(items, where, strict=True)]
    kinds = {kind for kind, _ in rows}
    if len(kinds) > 1:
        n_edges = sum(kind == "edges" for kind, _ in rows)
        raise InvalidArgument(f"the object mixes {len(rows) - n_edges} workload items (no edge resource) and "
                              f"{n_edges} edge items; a frame holds one kind, so filter the items first")
    kind = kinds.pop() if kinds else empty_kind
    if not rows:
        return schema.empty(kind)
    return _frame([row for _, row in rows], kind)


def _check_api_version(obj: Mapping[str, Any], where: str, *, required: bool = True) -> None:
    version = obj.get("apiVersion")
    if version is None and not required:
        return
    if version not in [f"{API_GROUP}/{v}" for v in VERSIONS]:
        raise InvalidArgument(f"{where} has apiVersion {_show(version)}; expected "
                              f"{' or '.join(f'{API_GROUP}/{v}' for v in VERSIONS)}")


def _read_ref(value: Any, where: str) -> tuple[str, str, str]:
    """(meshlab kind, namespace, name) of an ObjectReference; a namespace's namespace is its name."""
    if not isinstance(value, _MAPPINGS):
        raise InvalidArgument(f"{where} must be an object reference {{kind, namespace, name}}, not {_show(value)}")
    k8s_kind, name, namespace = value.get("kind"), value.get("name"), value.get("namespace")
    if not isinstance(k8s_kind, str) or not k8s_kind:
        raise InvalidArgument(f"{where} has no kind")
    # Case-insensitive: smi-metrics wrote 'Daemonset' and 'Statefulset' (smi-sdk-go's spelling).
    kind = k8s_kind.lower()
    if kind not in _KINDS:
        raise InvalidArgument(f"{where}.kind {_show(k8s_kind)} is not a kind meshlab reads; "
                              f"kinds: {', '.join(k for k, _ in _KINDS.values())}")
    if not isinstance(name, str) or not name:
        raise InvalidArgument(f"{where} has no name")
    if kind in _CLUSTER_KINDS:
        return kind, name, name
    if not isinstance(namespace, str) or not namespace:
        raise InvalidArgument(f"{where} ({k8s_kind} {name!r}) has no namespace")
    return kind, namespace, name


def _read_value(value: Any, where: str) -> float:
    if value is None:
        return math.nan
    if isinstance(value, str):
        try:
            number = _quantity_float(value)
        except InvalidArgument as error:
            raise InvalidArgument(f"{where}: {error}") from None
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            number = float(value)  # the spec's YAML examples write plain numbers (value: 100)
        except OverflowError:
            number = math.inf
    else:
        raise InvalidArgument(f"{where} must be a quantity string such as '296875m', not {_show(value)}")
    if not math.isfinite(number):
        raise InvalidArgument(f"{where} {_show(value)} is out of range")
    return number


@functools.lru_cache(maxsize=65536)  # counts repeat ("0", "1"...)
def _quantity_float(text: str) -> float:
    # Go's Quantity.UnmarshalJSON trims spaces inside the quotes before parsing.
    return float(parse_quantity(text.strip()))


def _read_metrics(value: Any, where: str) -> dict[str, float]:
    if not isinstance(value, list):
        raise InvalidArgument(f"{where}.metrics must be a list of {{name, unit, value}}, not {_show(value)}")
    out: dict[str, float] = {}
    seen: set[str] = set()
    for i, metric in enumerate(value):
        at = f"{where}.metrics[{i}]"
        if not isinstance(metric, _MAPPINGS) or not isinstance(metric.get("name"), str):
            raise InvalidArgument(f"{at} must be an object with a name, not {_show(metric)}")
        name = metric["name"]
        latency = _LATENCY_METRIC.match(name)
        if not latency and name not in ("success_count", "failure_count"):
            continue  # not one meshlab has a column for
        if name in seen:
            raise InvalidArgument(f"{at}: {name} appears twice")
        seen.add(name)
        if "value" not in metric:
            raise InvalidArgument(f"{at} ({name}) has no value")
        number = _read_value(metric["value"], f"{at}.value")
        if number < 0:  # NaN compares False: null stays a missing value
            what = "a latency" if latency else "a count"
            raise InvalidArgument(f"{at}.value ({name}) is {_show(metric['value'])}: {what} cannot be negative")
        unit = metric.get("unit") or ""
        if not isinstance(unit, str):
            raise InvalidArgument(f"{at}.unit ({name}) must be a string such as 'ms', not {_show(unit)}")
        if latency:
            scale = {"": 1.0, "ms": 1.0, "s": 1000.0, "seconds": 1000.0}.get(unit)
            if scale is None:  # '' is the SDK's unit (ms) left out; the spec's YAML examples say seconds
                raise InvalidArgument(f"{at} ({name}) has unit {unit!r}; latency units read: ms, s, seconds")
            # pN is N percent: p5 is the 5th percentile (meshlab's latency_p05_ms), p999 is 99.9 %
            digits = latency[1] if len(latency[1]) > 1 else "0" + latency[1]
            if not 0 < float("0." + digits) < 1:
                raise InvalidArgument(f"{at} ({name}) names no percentile between 0 and 100")
            out[f"latency_p{digits}_ms"] = number * scale
        else:
            if unit:
                raise InvalidArgument(f"{at} ({name}) has unit {unit!r}; a count has none")
            out[name] = number
    for name in ("success_count", "failure_count"):
        out.setdefault(name, math.nan)  # a missing count is unknown, as a null one is
    total = out["success_count"] + out["failure_count"]
    if math.isinf(total):
        raise InvalidArgument(f"{where}.metrics: success_count + failure_count is out of range "
                              f"({out['success_count']:g} + {out['failure_count']:g})")
    return out


def _read_item(item: Any, where: str, mesh: str | None, side: str | None) -> tuple[str, dict[str, Any]]:
    if not isinstance(item, _MAPPINGS):
        raise InvalidArgument(f"{where} must be a TrafficMetrics object, not {type(item).__name__}")
    if item.get("kind", "TrafficMetrics") != "TrafficMetrics":
        raise InvalidArgument(f"{where} has kind {_show(item.get('kind'))}; expected 'TrafficMetrics'")
    _check_api_version(item, where, required=False)
    metadata = item.get("metadata")
    labels = metadata.get("labels") if isinstance(metadata, _MAPPINGS) else None
    item_mesh = mesh if mesh is not None else labels.get(MESH_LABEL) if isinstance(labels, _MAPPINGS) else None
    if not isinstance(item_mesh, str) or not item_mesh:
        raise InvalidArgument(f"{where} does not say which mesh observed it (no metadata.labels[{MESH_LABEL!r}], "
                              "which only meshlab writes); pass mesh=, e.g. mesh='linkerd'")
    if "resource" not in item:
        raise InvalidArgument(f"{where} has no resource")
    kind, namespace, name = _read_ref(item["resource"], f"{where}.resource")
    row: dict[str, Any] = {
        "timestamp": _read_time(item.get("timestamp"), where),
        "mesh": item_mesh,
        "kind": kind,
    }
    if isinstance(labels, _MAPPINGS) and isinstance(labels.get(CLUSTER_LABEL), str):
        row["cluster"] = labels[CLUSTER_LABEL]
    window = _read_window(item.get("window"), where)
    edge = item.get("edge")
    if edge is not None and not isinstance(edge, _MAPPINGS):
        raise InvalidArgument(f"{where}.edge must be an object {{direction, side, resource}}, not {_show(edge)}")
    edge = edge or {}
    way, edge_side, other = edge.get("direction"), edge.get("side") or None, edge.get("resource")
    if way not in (None, "from", "to"):
        raise InvalidArgument(f"{where}.edge.direction must be 'from' or 'to', not {_show(way)}")
    if edge_side not in (None, "client", "server"):
        raise InvalidArgument(f"{where}.edge.side must be 'client' or 'server', not {_show(edge_side)}")
    if not other:  # null or {}: all the traffic of the resource
        if way == "to":
            raise InvalidArgument(f"{where} is all the traffic its resource sent (direction 'to', no edge "
                                  "resource); meshlab's traffic frames hold received traffic ('from')")
        if edge_side == "client":
            raise InvalidArgument(f"{where} is received traffic seen by the clients (side 'client'); "
                                  "meshlab's traffic frames hold what the workload's own proxies saw ('server')")
        row.update(namespace=namespace, name=name)
        frame_kind = "traffic"
    else:
        if way is None:
            raise InvalidArgument(f"{where}.edge has a resource but no direction ('from' or 'to')")
        if isinstance(other, _MAPPINGS) and "kind" not in other:
            other = {**other, "kind": item["resource"].get("kind")}  # a kind left out means the same kind
        if isinstance(other, _MAPPINGS) and not other.get("name"):
            raise InvalidArgument(f"{where}.edge.resource selects traffic without naming a workload ({_show(other)}); "
                                  "meshlab's edges frames are workload to workload")
        other_kind, other_namespace, other_name = _read_ref(other, f"{where}.edge.resource")
        if other_kind != kind:
            raise InvalidArgument(f"{where}: resource is a {kind} but edge.resource a {other_kind}; "
                                  "an edges frame has one kind per row")
        observed = edge_side or side
        if observed is None:
            raise InvalidArgument(f"{where}.edge has no side (v1alpha1 servers and smi-metrics never wrote it); "
                                  "pass side='client' or side='server' to say whose proxy observed the edges")
        here, there = (namespace, name), (other_namespace, other_name)
        (src_ns, src), (dst_ns, dst) = (here, there) if way == "to" else (there, here)
        row.update(src_namespace=src_ns, src_name=src, dst_namespace=dst_ns, dst_name=dst, side=observed)
        frame_kind = "edges"
    row.update(_read_metrics(item.get("metrics"), where))
    row["_window_s"] = window.value / 1e9  # exact to the nanosecond (pandas 2.2's total_seconds() rounds to µs)
    if math.isinf((row["success_count"] + row["failure_count"]) / row["_window_s"]):
        raise InvalidArgument(f"{where}: requests per second over the {window} window are out of range")
    return frame_kind, row


def _frame(rows: list[dict[str, Any]], kind: str) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    frame["requests"] = frame["success_count"] + frame["failure_count"]
    requests = frame["requests"].to_numpy(dtype="float64")
    with np.errstate(divide="ignore", invalid="ignore"):
        frame["success_rate"] = np.where(requests > 0, frame["success_count"].to_numpy() / requests, np.nan)
    frame["rps"] = frame["requests"] / frame.pop("_window_s")
    for column in _STANDARD_LATENCIES:
        if column not in frame:
            frame[column] = np.nan
    return schema.conform(frame, kind)  # the contract's columns first, extra quantiles in the items' order
