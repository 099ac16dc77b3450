"""SMI Traffic Metrics (``metrics.smi-spec.io``): meshlab frames to and from ``TrafficMetricsList``.

:func:`to_traffic_metrics` writes a ``traffic`` or ``edges`` frame as the SMI metrics API
serves it, one ``TrafficMetrics`` item per row; :func:`from_traffic_metrics` reads a list
or a single item, from meshlab or from any SMI metrics server, back into a frame.

The wire format is the spec's (servicemeshinterface/smi-spec,
``apis/traffic-metrics/v1alpha1/traffic-metrics.md``), as its Go types
(servicemeshinterface/smi-sdk-go, ``pkg/apis/metrics/v1alpha1`` and ``v1alpha2``) encode it
and as the reference server, servicemeshinterface/smi-metrics, returned it:

- ``resource`` and ``edge.resource`` are Kubernetes ObjectReferences: ``kind`` as Kubernetes
  spells it (``Deployment``, ``StatefulSet``), ``namespace`` (absent for a ``Namespace``), ``name``;
- ``timestamp`` is RFC 3339 in UTC; ``window`` is a Go duration (``30s``, ``1m0s``), which is
  how ``metav1.Duration`` writes it;
- metric values are Kubernetes quantity strings (``"296875m"`` is 296.875); the latency
  quantiles have ``unit: "ms"``, the counts no unit;
- a workload's own traffic (a ``traffic`` row) is ``edge: {direction: "from", side:
  "server", resource: null}``: everything it received, as its own proxies saw it.

What the archived smi-metrics server got wrong, and what meshlab does instead:

- it answered for one instant with one fixed window (30 s unless ``?t=``); meshlab writes
  whole time series, any window, one item per row and step;
- it served one mesh per install; a meshlab frame can hold several, and each item names
  its mesh in the ``meshlab/mesh`` metadata label;
- its Istio queries counted only ``response_code="200"`` as success and read
  ``istio_request_duration_seconds`` while labelling the values ``ms`` (1000 times too
  small); meshlab's adapters classify as each mesh does and read millisecond histograms.
  Consul was never implemented there;
- it truncated every value to milli-units (``int64(v * 1000)``), so NaN became whatever
  integer the platform makes of it and a missing series ``"0"``; meshlab writes exact
  canonical quantities (to the nano-unit, the finest a quantity keeps) and ``null`` where
  there is no value.
"""

from __future__ import annotations

import functools
import json
import math
import re
import reprlib
from collections.abc import Iterable, Mapping
from decimal import ROUND_HALF_EVEN, Context, Decimal, DecimalException
from typing import Any, Literal

import numpy as np
import pandas as pd

from . import schema
from .errors import InvalidArgument, SchemaError
from .timeutil import Duration, to_timedelta

__all__ = [
    "API_GROUP",
    "CLUSTER_LABEL",
    "MESH_LABEL",
    "VERSIONS",
    "format_quantity",
    "from_traffic_metrics",
    "parse_quantity",
    "to_traffic_metrics",
]

API_GROUP = "metrics.smi-spec.io"
#: The API versions written and read. v1alpha2 is v1alpha1 plus ``edge.side`` (and traffic
#: split ``backend``, which meshlab does not use).
VERSIONS = ("v1alpha1", "v1alpha2")
#: The metadata label that names the mesh whose proxies observed an item's traffic.
MESH_LABEL = "meshlab/mesh"
#: The metadata label naming the cluster (source) of an item, for frames from ``concat_sources``.
CLUSTER_LABEL = "meshlab/cluster"

# meshlab kind -> (Kubernetes kind, the resource's plural in the API path). The spec's
# resource list is namespaces, nodes, pods, replicationcontrollers, services, daemonsets,
# deployments, replicasets, statefulsets, jobs and trafficsplits. Nodes have no namespace
# for meshlab's namespace column, and a traffic split's items are per backend, which no
# meshlab frame holds: both are left out.
_KINDS: Mapping[str, tuple[str, str]] = {
    "namespace": ("Namespace", "namespaces"),
    "pod": ("Pod", "pods"),
    "replicationcontroller": ("ReplicationController", "replicationcontrollers"),
    "service": ("Service", "services"),
    "daemonset": ("DaemonSet", "daemonsets"),
    "deployment": ("Deployment", "deployments"),
    "replicaset": ("ReplicaSet", "replicasets"),
    "statefulset": ("StatefulSet", "statefulsets"),
    "job": ("Job", "jobs"),
}
# Kinds that are not namespaced: their ObjectReference has no namespace (meshlab's is the name).
_CLUSTER_KINDS = ("namespace",)

_LATENCY_UNIT = "ms"
_STANDARD_LATENCIES = ("latency_p99_ms", "latency_p90_ms", "latency_p50_ms")  # the spec's order
_LATENCY_COLUMN = re.compile(r"^latency_p(\d+)_ms$")
_LATENCY_METRIC = re.compile(r"^p(\d+)_response_latency$")
_LABEL_VALUE = re.compile(r"^(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)$")

# -- Kubernetes quantities ---------------------------------------------------------------------
#
# kubernetes.utils.quantity would do for parsing, but importing it loads the whole Kubernetes
# client (about half a second), it accepts strings the Go parser rejects ("1K", " 1", "nan"),
# and its format_quantity needs the suffix chosen by the caller rather than writing the
# canonical form. Both directions are a few lines of exact Decimal arithmetic.

_DECIMAL_SUFFIXES = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_BINARY_SUFFIXES = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_SUFFIX_OF_EXPONENT = {exponent: suffix for suffix, exponent in _DECIMAL_SUFFIXES.items()}
# apimachinery's grammar: a signed decimal number, then a binary or decimal SI suffix or an exponent.
_QUANTITY = re.compile(r"([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))(Ki|Mi|Gi|Ti|Pi|Ei|[eE][+-]?[0-9]+|[numkMGTPE])?")
_NANO = Decimal("1e-9")
_EXACT = Context(prec=400)  # enough digits for any float, so no step below rounds by accident


def format_quantity(value: float | int | Decimal) -> str:
    """Write a number as a canonical Kubernetes quantity (the form ``resource.Quantity`` emits).

    The mantissa is an integer and the suffix the largest power of 1000 that keeps it one:
    integers are plain (or ``k``, ``M``...), fractions use ``m``, ``u`` or ``n``. A quantity
    keeps nothing finer than the nano-unit, so a float is first rounded to it (half to even).
    A float is read as the shortest decimal that round-trips (``repr``), so 0.1 is ``100m``.

    Parameters
    ----------
    value : float, int or decimal.Decimal
        A finite number.

    Returns
    -------
    str

    Raises
    ------
    InvalidArgument
        For NaN, infinities and non-numbers: a quantity cannot express them.

    Examples
    --------
    >>> format_quantity(296.875), format_quantity(1008.1), format_quantity(368.0), format_quantity(0)
    ('296875m', '1008100m', '368', '0')
    >>> format_quantity(1500), format_quantity(2000), format_quantity(0.000_002_5)
    ('1500', '2k', '2500n')
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal, np.integer, np.floating)):
        raise InvalidArgument(f"a quantity must be a number, not {value!r} ({type(value).__name__})")
    if isinstance(value, (int, np.integer)):
        return _canonical(Decimal(int(value)))
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise InvalidArgument(f"a Kubernetes quantity cannot express {value}")
        return _canonical(value)
    number = float(value)
    if not math.isfinite(number):
        raise InvalidArgument(f"a Kubernetes quantity cannot express {number}")
    return _format_float(number)


def _format_float(number: float) -> str:
    """:func:`format_quantity` of a finite float, with fast paths for what frames hold."""
    if number.is_integer() and abs(number) < 2**53:  # counts
        return _scaled(int(number), 0)
    if abs(number) < 1e15:  # in nano-units the value is an integer of at most 24 digits
        nanos = Decimal(repr(number)).scaleb(9).to_integral_value(rounding=ROUND_HALF_EVEN)
        return _scaled(int(nanos), -9)
    return _canonical(Decimal(repr(number)))


def _scaled(mantissa: int, exponent: int) -> str:
    """Canonical form of ``mantissa * 10**exponent`` (``exponent`` a multiple of 3, at least -9)."""
    if mantissa == 0:
        return "0"
    while mantissa % 1000 == 0 and exponent < 18:
        mantissa //= 1000
        exponent += 3
    return f"{mantissa}{_SUFFIX_OF_EXPONENT[exponent]}"


def _canonical(value: Decimal) -> str:
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int)  # the value is finite
    if exponent < -9:
        value = value.quantize(_NANO, rounding=ROUND_HALF_EVEN, context=_EXACT)
    if value.is_zero():
        return "0"
    sign, digits, exponent = value.normalize(_EXACT).as_tuple()
    mantissa = int("".join(map(str, digits)))
    assert isinstance(exponent, int)
    while exponent % 3:
        mantissa *= 10
        exponent -= 1
    if exponent > 18:  # past exa there is no suffix: a longer mantissa in E
        mantissa, exponent = mantissa * 10 ** (exponent - 18), 18
    return f"{'-' if sign else ''}{mantissa}{_SUFFIX_OF_EXPONENT[exponent]}"


def parse_quantity(text: str) -> Decimal:
    """Read a Kubernetes quantity string exactly.

    Accepts everything apimachinery's ``ParseQuantity`` does: an optional sign, a decimal
    number (``1``, ``1.5``, ``.5``, ``1.``), then a decimal SI suffix (``n u m k M G T P E``),
    a binary one (``Ki Mi Gi Ti Pi Ei``) or an exponent (``e3``, ``E-6``). The value is
    exact: Kubernetes would round anything finer than ``1n`` up to it.

    Parameters
    ----------
    text : str

    Returns
    -------
    decimal.Decimal

    Raises
    ------
    InvalidArgument
        If ``text`` is not a quantity.

    Examples
    --------
    >>> parse_quantity("296875m"), parse_quantity("1Ki"), parse_quantity("1.5e3")
    (Decimal('296.875'), Decimal('1024'), Decimal('1.5E+3'))
    """
    if not isinstance(text, str):
        raise InvalidArgument(f"a quantity must be a string such as '296875m', not {text!r}")
    match = _QUANTITY.fullmatch(text)
    if match is None:
        raise InvalidArgument(
            f"{text!r} is not a Kubernetes quantity: a number with an optional suffix "
            "(n, u, m, k, M, G, T, P, E, Ki, Mi, Gi, Ti, Pi, Ei) or exponent (e3), such as '296875m'"
        )
    number, suffix = Decimal(match[1]), match[2] or ""
    context = _EXACT if len(text) < 300 else Context(prec=len(text) + 40)
    try:
        if suffix in _BINARY_SUFFIXES:
            return context.multiply(number, Decimal(2 ** _BINARY_SUFFIXES[suffix]))
        if suffix[:1] in ("e", "E") and len(suffix) > 1:
            return number.scaleb(int(suffix[1:]), context)
        return number.scaleb(_DECIMAL_SUFFIXES[suffix], context)
    except DecimalException:
        raise InvalidArgument(f"the quantity {text!r} is out of range") from None


_SHOW = reprlib.Repr()
_SHOW.maxstring = _SHOW.maxother = 80
_SHOW.maxlevel = 3


def _show(value: Any) -> str:
    """A short repr for messages: input can be huge or nested thousands deep."""
    return _SHOW.repr(value)


# -- Go durations and RFC 3339 times -----------------------------------------------------------

_GO_UNITS = {"ns": 1, "us": 10**3, "µs": 10**3, "μs": 10**3, "ms": 10**6, "s": 10**9, "m": 60 * 10**9,
             "h": 3600 * 10**9}
_GO_TERM = re.compile(r"([0-9]*(?:\.[0-9]*)?)([^0-9.]+)")
_MAX_NANOS = 2**63 - 1
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:\d{2})")


def _format_go_duration(nanos: int) -> str:
    """What Go's ``time.Duration.String`` writes: ``30s``, ``1m0s``, ``1h0m0s``, ``1.5s``, ``500ms``."""
    if nanos == 0:
        return "0s"
    sign, u = ("-" if nanos < 0 else ""), abs(nanos)

    def fraction(value: int, scale: int) -> str:
        whole, rest = divmod(value, scale)
        digits = len(str(scale)) - 1
        return f"{whole}" + (f".{rest:0{digits}d}".rstrip("0") if rest else "")

    if u < 10**3:
        return f"{sign}{u}ns"
    if u < 10**6:
        return f"{sign}{fraction(u, 10**3)}µs"
    if u < 10**9:
        return f"{sign}{fraction(u, 10**6)}ms"
    seconds, nano_part = divmod(u, 10**9)
    text = fraction((seconds % 60) * 10**9 + nano_part, 10**9) + "s"
    minutes = seconds // 60
    if minutes:
        text = f"{minutes % 60}m{text}"
        if minutes // 60:
            text = f"{minutes // 60}h{text}"
    return sign + text


def _parse_go_duration(text: str) -> int | None:
    """Nanoseconds of a Go duration (``time.ParseDuration``'s grammar), or None if it is not one."""
    body, sign = text, 1
    if body[:1] in ("+", "-"):
        sign, body = (-1 if body[0] == "-" else 1), body[1:]
    if body == "0":
        return 0
    if not body:
        return None
    total, position = Decimal(0), 0
    while position < len(body):
        term = _GO_TERM.match(body, position)
        if term is None or term[1] in ("", ".") or term[2] not in _GO_UNITS:
            return None
        total += Decimal(term[1]) * _GO_UNITS[term[2]]
        position = term.end()
    return sign * int(total.to_integral_value())


def _read_window(value: Any, where: str) -> pd.Timedelta:
    if not isinstance(value, str):
        raise InvalidArgument(f"{where}.window must be a duration string such as '30s', not {_show(value)}")
    nanos = _parse_go_duration(value)
    if nanos is None:
        try:  # not Go's grammar; meshlab's own (Prometheus-style, e.g. '1d') is read too
            nanos = to_timedelta(value, name=f"{where}.window").value
        except InvalidArgument:
            raise InvalidArgument(f"{where}.window {_show(value)} is not a duration such as '30s' or '1m0s'") from None
        except (ValueError, OverflowError):  # pandas' limits: about 292 years
            raise InvalidArgument(f"{where}.window {_show(value)} is out of range: at most 2562047h47m16s") from None
    if nanos <= 0:
        raise InvalidArgument(f"{where}.window must be positive, got {_show(value)}")
    if nanos > _MAX_NANOS:  # Go's time.Duration and pandas both stop at about 292 years
        raise InvalidArgument(f"{where}.window {_show(value)} is out of range: at most 2562047h47m16s")
    return pd.Timedelta(nanos, unit="ns")


def _format_time(ts: pd.Timestamp) -> str:
    """RFC 3339 in UTC, to the second like ``metav1.Time``, with a fraction only when there is one."""
    ts = ts.tz_convert("UTC")
    nanos = ts.value % 10**9
    return ts.strftime("%Y-%m-%dT%H:%M:%S") + (f".{nanos:09d}".rstrip("0") if nanos else "") + "Z"


def _read_time(value: Any, where: str) -> pd.Timestamp:
    if not isinstance(value, str) or not _RFC3339.fullmatch(value):
        raise InvalidArgument(f"{where}.timestamp must be an RFC 3339 time such as '2019-06-17T14:26:22Z', "
                              f"not {_show(value)}")
    try:
        return _parse_rfc3339(value)
    except (ValueError, OverflowError) as error:  # 2024-02-30, hour 25, or past pandas' 1677-2262
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise InvalidArgument(f"{where}.timestamp {value!r} is not a valid time ({reason})") from None


@functools.lru_cache(maxsize=4096)  # a list repeats each step's timestamp once per workload
def _parse_rfc3339(text: str) -> pd.Timestamp:
    return pd.Timestamp(text).tz_convert("UTC").as_unit("ns")


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
        :func:`from_traffic_metrics` reads back);
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
    window_text = _format_go_duration(window.value)
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
            out[f"latency_p{latency[1]}_ms"] = number * scale
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
    row["_window_s"] = window.total_seconds()
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
