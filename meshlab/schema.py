"""The tidy frame contract: every frame meshlab returns, its columns and dtypes, in one place.

Every frame meshlab returns has one row per observation and follows these rules:

- ``timestamp`` is ``datetime64[ns, UTC]``;
- metrics are ``float64``;
- label and identity columns are pandas categoricals.

Each kind of frame is a :class:`FrameSpec` registered in :data:`FRAMES`. Use
:func:`validate` to check a frame (meshlab validates everything it returns) and
:func:`empty` to build an empty frame of a kind.

Longer than 400 lines: the column declarations of every frame kind (about 130 lines) are
what this module exists to keep in one place, and the checks, conversions and quantile
column names beside them read those declarations; split, each half would only import the other.
"""

from __future__ import annotations

import decimal
import numbers
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from .errors import InvalidArgument, SchemaError

__all__ = ["BOUNDS", "FRAMES", "QUANTILES", "TIMESTAMP_DTYPE", "Column", "FrameSpec", "check_quantile",
           "check_quantiles", "column_quantile", "concat", "conform", "empty", "kind_of", "quantile_column",
           "quantile_text", "validate"]

TIMESTAMP_DTYPE = pd.DatetimeTZDtype(unit="ns", tz="UTC")

Role = Literal["time", "metric", "label", "text"]

_ROLE_DTYPE = {
    "time": "datetime64[ns, UTC]",
    "metric": "float64",
    "label": "category",
    "text": "string",
}
_ROLE_FIX = {
    "time": "frame[{col!r}] = pandas.to_datetime(frame[{col!r}], utc=True).dt.as_unit('ns')",
    "metric": "frame[{col!r}] = frame[{col!r}].astype('float64')",
    "label": "frame[{col!r}] = frame[{col!r}].astype('category')",
    "text": "frame[{col!r}] = frame[{col!r}].astype('string')",
}


@dataclass(frozen=True)
class Column:
    """One column of a frame kind.

    Attributes
    ----------
    name : str
        The column name.
    role : {"time", "metric", "label", "text"}
        ``time`` is ``datetime64[ns, UTC]``, ``metric`` is ``float64``, ``label`` is
        categorical, ``text`` is a pandas string column.
    doc : str
        What the column holds, for the column dictionary in the docs and dataset cards.
    """

    name: str
    role: Role
    doc: str

    @property
    def dtype(self) -> str:
        """The dtype the column must have, as pandas names it."""
        return _ROLE_DTYPE[self.role]


@dataclass(frozen=True)
class FrameSpec:
    """The columns of one kind of frame.

    Attributes
    ----------
    kind : str
        The name used with :func:`validate`, e.g. ``"query"``.
    columns : tuple of Column
        The fixed columns, in order.
    label_columns : bool
        Whether further categorical columns (one per Prometheus label) may follow.
    quantile_columns : bool
        Whether further latency float64 columns may follow: ``latency_pNN_ms`` (extra quantiles,
        named by :func:`quantile_column`) and their ``latency_pNN_low_ms``/``latency_pNN_high_ms``
        bucket bounds.
    doc : str
        One sentence on what a row is.
    optional : tuple of Column
        Columns a frame may have, placed right after ``timestamp`` when present
        (``cluster``, from :func:`meshlab.concat_sources`).
    """

    kind: str
    columns: tuple[Column, ...]
    label_columns: bool
    doc: str
    quantile_columns: bool = False
    optional: tuple[Column, ...] = ()

    @property
    def names(self) -> list[str]:
        """The fixed column names, in order."""
        return [c.name for c in self.columns]


_TIMESTAMP = Column("timestamp", "time", "When the value was observed or evaluated (UTC).")
_MESH = Column("mesh", "label", "The service mesh whose proxies observed the traffic ('none': the application).")
_KIND = Column("kind", "label", "The Kubernetes kind the names refer to (deployment, statefulset, service...).")
_SIDE = Column("side", "label", "Whose proxy observed an edge: 'client' (the caller's) or 'server' (the callee's).")
_GOLDEN = (
    Column("success_count", "metric", "Requests that succeeded in the window, as the mesh classifies them."),
    Column("failure_count", "metric", "Requests that failed in the window, as the mesh classifies them."),
    Column("requests", "metric", "success_count + failure_count."),
    Column("success_rate", "metric", "success_count / requests; NaN when there were no requests."),
    Column("rps", "metric", "requests / window seconds."),
    Column("latency_p50_ms", "metric", "Median response latency in milliseconds."),
    Column("latency_p90_ms", "metric", "90th percentile response latency in milliseconds."),
    Column("latency_p99_ms", "metric", "99th percentile response latency in milliseconds."),
)
_CLUSTER = (Column("cluster", "label", "The source the row came from (one Prometheus per cluster), "
                                     "when several were read together."),)
_EDGE_IDS = (
    Column("src_namespace", "label", "The calling workload's namespace."),
    Column("src_name", "label", "The calling workload."),
    Column("dst_namespace", "label", "The called workload's namespace."),
    Column("dst_name", "label", "The called workload."),
)

FRAMES: Mapping[str, FrameSpec] = {
    spec.kind: spec
    for spec in (
        FrameSpec(
            "query",
            (_TIMESTAMP, Column("value", "metric", "The sample value.")),
            label_columns=True,
            doc="One row per sample of a PromQL result; one categorical column per label follows "
            "`value` (missing labels are NaN).",
        ),
        FrameSpec(
            "string",
            (_TIMESTAMP, Column("value", "text", "The string result.")),
            label_columns=False,
            doc="The single row of a PromQL string result.",
        ),
        FrameSpec(
            "traffic",
            (_TIMESTAMP, _MESH, _KIND, Column("namespace", "label", "The workload's namespace."),
             Column("name", "label", "The workload."), *_GOLDEN),
            label_columns=False,
            doc="One row per workload and window: the golden signals of its inbound traffic.",
            quantile_columns=True,
            optional=(*_CLUSTER, Column("workload_kind", "label", "With kind 'workload': the workload's Kubernetes "
                                        "kind, where the mesh's labels or its pods' names say it (else missing).")),
        ),
        FrameSpec(
            "edges",
            (_TIMESTAMP, _MESH, _KIND, *_EDGE_IDS, _SIDE, *_GOLDEN),
            label_columns=False,
            doc="One row per (source, destination, observing side) and window.",
            quantile_columns=True,
            optional=_CLUSTER,
        ),
        FrameSpec(
            "tcp",
            (_TIMESTAMP, _MESH, _KIND, *_EDGE_IDS, _SIDE,
             Column("opened_connections", "metric", "Connections opened in the window."),
             Column("open_connections", "metric", "Connections open at the timestamp."),
             Column("sent_bytes_per_second", "metric", "Bytes the client sent per second."),
             Column("received_bytes_per_second", "metric", "Bytes the client received per second.")),
            label_columns=False,
            doc="One row per TCP connection edge and window.",
            optional=_CLUSTER,
        ),
        FrameSpec(
            "proxies",
            (_TIMESTAMP, _MESH, Column("namespace", "label", "The pod's namespace."),
             Column("workload", "label", "The pod's workload."), Column("pod", "label", "The pod."),
             Column("container", "label", "The proxy container."),
             Column("cpu_cores", "metric", "Mean CPU cores the proxy used over the window."),
             Column("memory_bytes", "metric", "The proxy's working-set memory at the timestamp.")),
            label_columns=False,
            doc="One row per proxy and window: what the proxy cost.",
            optional=_CLUSTER,
        ),
        FrameSpec(
            "status_counts",
            (_TIMESTAMP, *_EDGE_IDS, Column("protocol", "label", "http, grpc or tcp."),
             Column("status", "label", "HTTP status code, or gRPC status name on gRPC edges."),
             Column("requests", "metric", "Requests that ended with this status in the interval.")),
            label_columns=False,
            doc="Simulator ground truth: requests per edge and status, per interval.",
        ),
        FrameSpec(
            "benchmark",
            (Column("timestamp", "time", "When the load-test run started (UTC); NaT where the source does not say."),
             Column("run_id", "label", "The run's identifier in its source (file name and position when it has none)."),
             Column("mesh", "label", "The mesh under test ('none': a run without sidecars)."),
             Column("mode", "label", "The source's own configuration label (e.g. Istio's 'v2-stats-nullvm')."),
             Column("sidecars", "label", "Which side had proxies: none, client, server, both or ingress."),
             Column("source", "label", "The file (or frame) the run was read from."),
             Column("requested_qps", "metric", "The load asked for, in requests per second; NaN for 'max'."),
             Column("actual_qps", "metric", "The load achieved, in requests per second."),
             Column("connections", "metric", "Concurrent connections (Fortio's NumThreads)."),
             Column("payload_bytes", "metric", "Request payload size in bytes."),
             Column("duration_s", "metric", "How long the run lasted, in seconds."),
             Column("requests", "metric", "Requests sent in the run."),
             Column("error_ratio", "metric", "Failed requests / requests (1: every request failed)."),
             Column("latency_p50_ms", "metric", "Median latency in milliseconds."),
             Column("latency_p90_ms", "metric", "90th percentile latency in milliseconds."),
             Column("latency_p99_ms", "metric", "99th percentile latency in milliseconds."),
             Column("latency_p999_ms", "metric", "99.9th percentile latency in milliseconds."),
             Column("latency_max_ms", "metric", "Slowest request in milliseconds."),
             Column("latency_resolution_ms", "metric", "Width of the widest histogram bucket holding a reported "
                    "percentile: differences below it are not resolved (NaN: no histogram)."),
             Column("latency_coarse", "label", "Percentiles estimated from a first bucket or from a bucket wider "
                    "than the value itself (e.g. 'p50,p90'); empty when none, NaN without a histogram."),
             Column("client_cpu_mcores", "metric", "CPU of the client-side proxy, millicores."),
             Column("server_cpu_mcores", "metric", "CPU of the server-side proxy, millicores."),
             Column("gateway_cpu_mcores", "metric", "CPU of the ingress gateway proxy, millicores."),
             Column("client_mem_mib", "metric", "Memory of the client-side proxy, MiB."),
             Column("server_mem_mib", "metric", "Memory of the server-side proxy, MiB."),
             Column("gateway_mem_mib", "metric", "Memory of the ingress gateway proxy, MiB."),
             Column("note", "text", "What the reader noticed about the run (failed requests, units), or empty.")),
            label_columns=False,
            doc="One row per load-test run: its load, latency and proxy cost (meshlab.read_benchmark).",
            quantile_columns=True,
        ),
    )
}


def _spec(kind: str) -> FrameSpec:
    try:
        return FRAMES[kind]
    except KeyError:
        raise SchemaError(f"unknown frame kind {kind!r}; must be one of: {', '.join(FRAMES)}") from None


def _is_text_labels(column: pd.Series) -> bool:
    """Whether a non-categorical column holds only text or missing values: what ``pandas.concat``
    makes of label columns whose categories differ."""
    dtype = column.dtype
    if isinstance(dtype, pd.StringDtype):
        return True
    if not pd.api.types.is_object_dtype(dtype):
        return False
    return pd.api.types.infer_dtype(column, skipna=True) in ("string", "empty")


def _has_dtype(dtype: object, role: Role) -> bool:
    if role == "time":
        return isinstance(dtype, pd.DatetimeTZDtype) and dtype == TIMESTAMP_DTYPE
    if role == "metric":
        return dtype == np.float64
    if role == "label":
        return isinstance(dtype, pd.CategoricalDtype)
    return isinstance(dtype, pd.StringDtype)


#: The latency quantiles every traffic and edges frame has columns for.
QUANTILES = (0.5, 0.9, 0.99)
#: Which end of the histogram bucket a latency estimate fell in a bound column holds.
BOUNDS = ("low", "high")
# latency_p<digits>_ms: the quantile's decimal digits after "0.", at least two, no trailing zero past the
# second (p50 is 0.5, p999 0.999, p0999 0.0999, p025 0.025); _low/_high: the bucket the estimate fell in.
_QUANTILE_COLUMN = re.compile(r"^latency_p(?!00_)(\d\d(?:\d*[1-9])?)(?:_(low|high))?_ms$")


def check_quantile(q: object, argument: str = "quantile") -> float:
    """``q`` as a float, if it is a real number strictly between 0 and 1.

    Raises
    ------
    InvalidArgument
        Naming ``argument``, for strings, booleans, NaN and anything outside (0, 1).
    """
    if isinstance(q, bool) or not isinstance(q, numbers.Real):
        raise InvalidArgument(f"{argument} must be numbers strictly between 0 and 1 such as 0.99, got {q!r} "
                              f"({type(q).__name__})")
    value = float(q)
    if not 0.0 < value < 1.0:  # NaN fails too
        raise InvalidArgument(f"{argument} must be strictly between 0 and 1 (0.99 is the 99th percentile), "
                              f"got {q!r}")
    return value


def check_quantiles(quantiles: object, argument: str = "quantiles") -> tuple[float, ...]:
    """The latency quantiles a frame gets: :data:`QUANTILES` and ``quantiles``, unique and sorted.

    Raises
    ------
    InvalidArgument
        When ``quantiles`` is not a list of numbers strictly between 0 and 1.
    """
    if isinstance(quantiles, (str, bytes)) or not isinstance(quantiles, Iterable):
        raise InvalidArgument(f"{argument} must be a list of numbers between 0 and 1 such as (0.95, 0.999), "
                              f"got {quantiles!r}")
    return tuple(sorted({*QUANTILES, *(check_quantile(q, argument) for q in quantiles)}))


def quantile_text(q: float) -> str:
    """The exact decimal of a quantile, as PromQL and the column name carry it: 1e-07 -> ``0.0000001``.

    The shortest decimal that reads back as the same float, never rounded (0.9999999 stays 0.9999999).
    """
    return format(decimal.Decimal(repr(check_quantile(q))), "f")


def quantile_column(q: float, bound: str | None = None) -> str:
    """The column name of a latency quantile: 0.5 -> ``latency_p50_ms``, 0.999 -> ``latency_p999_ms``,
    0.0999 -> ``latency_p0999_ms``; with ``bound`` ("low" or "high"), the bucket-bound column
    ``latency_p99_low_ms``. Every float in (0, 1) has its own name; :func:`column_quantile` reads it back."""
    if bound is not None and bound not in BOUNDS:
        raise InvalidArgument(f"bound must be 'low', 'high' or None, got {bound!r}")
    digits = quantile_text(q)[2:].ljust(2, "0")
    return f"latency_p{digits}{'_' + bound if bound else ''}_ms"


def column_quantile(name: str) -> tuple[float, str | None] | None:
    """``(quantile, bound)`` of a latency column name (bound None for the estimate), or None if it is not one."""
    match = _QUANTILE_COLUMN.match(str(name))
    if match is None:
        return None
    return float("0." + match[1]), match[2]


def _extra_role(spec: FrameSpec, name: str) -> Role | None:
    """The role a column beyond the fixed ones plays in this kind, or None if it has no place."""
    for column in spec.optional:
        if column.name == name:
            return column.role
    if spec.quantile_columns and _QUANTILE_COLUMN.match(str(name)):
        return "metric"
    return "label" if spec.label_columns else None


def validate(frame: pd.DataFrame, kind: str, *, strict: bool = False) -> pd.DataFrame:
    """Check that a frame follows the contract of its kind.

    ``pandas.concat`` of meshlab frames whose categories differ turns their label columns
    into plain text (``object`` or ``string``); such a frame is still valid unless
    ``strict=True``, and :func:`concat` or :func:`conform` make the labels categorical again.

    Parameters
    ----------
    frame : pandas.DataFrame
        The frame to check.
    kind : str
        A key of :data:`FRAMES`, e.g. ``"query"``.
    strict : bool
        Require label columns to be categorical, as meshlab returns them (default False:
        text label columns are accepted too).

    Returns
    -------
    pandas.DataFrame
        The same frame, unchanged, so calls can be chained.

    Raises
    ------
    SchemaError
        Naming every column that is missing, unexpected or of the wrong dtype, and how
        to convert it.
    """
    spec = _spec(kind)
    if not isinstance(frame, pd.DataFrame):
        raise SchemaError(f"a {kind} frame must be a pandas.DataFrame, got {type(frame).__name__}")
    problems = []
    missing = [name for name in spec.names if name not in frame.columns]
    if missing:
        problems.append(f"missing columns {missing}; a {kind} frame has {spec.names}")
    if frame.columns.has_duplicates:
        problems.append(f"duplicate columns {sorted(set(frame.columns[frame.columns.duplicated()]))}")
    checks: list[tuple[str, Role]] = [(c.name, c.role) for c in spec.columns if c.name in frame.columns]
    extra = [name for name in frame.columns if name not in spec.names]
    unexpected = []
    for name in extra:
        role = _extra_role(spec, name)
        if role is None:
            unexpected.append(name)
        else:
            checks.append((name, role))
    if unexpected:
        allowed = (" (and latency_pNN_ms quantile columns, pNN the quantile's digits after '0.': p999 is 0.999, "
                   "with latency_pNN_low_ms/latency_pNN_high_ms bucket bounds)") if spec.quantile_columns else ""
        problems.append(f"unexpected columns {unexpected}; a {kind} frame has only {spec.names}{allowed}")
    dtypes = dict(zip(frame.columns, frame.dtypes, strict=True))  # reading dtypes avoids building columns
    concat_hint = False
    for name, role in checks:
        if _has_dtype(dtypes[name], role):
            continue
        if role == "label" and _is_text_labels(frame[name]):
            if not strict:
                continue
            concat_hint = True
        fix = _ROLE_FIX[role].format(col=name)
        problems.append(f"column {name!r} has dtype {dtypes[name]}, expected {_ROLE_DTYPE[role]} (fix: {fix})")
    if concat_hint:
        problems.append("pandas.concat turns categoricals whose categories differ into text: "
                        f"meshlab.concat(frames, {kind!r}) keeps them categorical")
    if problems:
        raise SchemaError(f"not a valid {kind} frame: " + "; ".join(problems))
    return frame


def empty(kind: str, labels: Iterable[str] = ()) -> pd.DataFrame:
    """Return an empty frame of a kind, with the right columns and dtypes.

    Parameters
    ----------
    kind : str
        A key of :data:`FRAMES`.
    labels : iterable of str
        Label columns to add after the fixed ones (only for kinds that allow them).
    """
    spec = _spec(kind)
    columns: dict[str, pd.Series] = {}
    for column in spec.columns:
        columns[column.name] = _empty_column(column.role)
    for name in labels:
        columns[name] = _empty_column("label")
    return validate(pd.DataFrame(columns), kind)


def _empty_column(role: Role) -> pd.Series:
    if role == "time":
        return pd.Series(pd.DatetimeIndex([], dtype=TIMESTAMP_DTYPE))
    if role == "metric":
        return pd.Series([], dtype="float64")
    if role == "label":
        return pd.Series(pd.Categorical([]))
    return pd.Series([], dtype="string")


def conform(frame: pd.DataFrame, kind: str) -> pd.DataFrame:
    """Put a frame into its kind's contract: fixed columns first, then the extras, with the
    contract's dtypes (labels categorical, metrics float64, timestamps UTC nanoseconds).

    Raises
    ------
    SchemaError
        If columns are missing or cannot belong to the kind.
    """
    spec = _spec(kind)
    missing = [name for name in spec.names if name not in frame.columns]
    if missing:
        raise SchemaError(f"not a valid {kind} frame: missing columns {missing}; a {kind} frame has {spec.names}")
    optional = [c.name for c in spec.optional if c.name in frame.columns]
    extra = [name for name in frame.columns if name not in spec.names and name not in optional]
    order = [*spec.names[:1], *optional, *spec.names[1:], *extra]
    if spec.quantile_columns:  # latency columns sorted by quantile, estimates first, then each one's bounds
        latency = {name: found for name in order if (found := column_quantile(name)) is not None}
        ranked = sorted(latency, key=lambda name: (latency[name][1] is not None, latency[name][0],
                                                   BOUNDS.index(latency[name][1] or "low")))
        first = next((i for i, name in enumerate(order) if name in latency), len(order))
        rest = [name for name in order if name not in latency]
        order = [*rest[:first], *ranked, *rest[first:]]
    out = frame[order].copy()
    roles = {c.name: c.role for c in spec.columns}
    for name in out.columns:
        role = roles.get(name) or _extra_role(spec, name)
        if role is None or _has_dtype(out[name].dtype, role):
            continue  # validate() names what has no place
        if role == "label":
            out[name] = out[name].astype("category")
        elif role == "metric":
            out[name] = out[name].astype("float64")
        elif role == "time":
            out[name] = pd.to_datetime(out[name], utc=True).dt.as_unit("ns")
        else:
            out[name] = out[name].astype("string")
    return validate(out.reset_index(drop=True), kind)


def concat(frames: Iterable[pd.DataFrame], kind: str | None = None) -> pd.DataFrame:
    """Concatenate meshlab frames of one kind, keeping the contract (``meshlab.concat``).

    ``pandas.concat`` turns categoricals whose categories differ (two meshes, two clusters,
    two time ranges) into plain text, and orders columns as they come; this puts the
    result back into its kind's contract: the fixed columns first, labels categorical (the
    values present, sorted, when the parts' categories differ), metrics float64, timestamps UTC.

    Parameters
    ----------
    frames : iterable of pandas.DataFrame
        Frames of one kind (frames without columns are skipped).
    kind : str, optional
        A key of :data:`FRAMES`. By default the kind the first frame validates as.

    Returns
    -------
    pandas.DataFrame

    Raises
    ------
    SchemaError
        If the kind cannot be told from the frames, or the result does not fit it.

    Examples
    --------
    >>> t = pd.Timestamp(0, tz="UTC")
    >>> one = conform(pd.DataFrame({"timestamp": [t], "value": [1.0], "mesh": ["linkerd"]}), "query")
    >>> two = conform(pd.DataFrame({"timestamp": [t], "value": [2.0], "mesh": ["istio"]}), "query")
    >>> isinstance(pd.concat([one, two])["mesh"].dtype, pd.CategoricalDtype)
    False
    >>> list(concat([one, two])["mesh"].cat.categories)
    ['istio', 'linkerd']
    """
    parts = [f for f in frames if len(f.columns)]
    if kind is None:
        if not parts:
            raise SchemaError("concat of no frames (or only empty ones) needs kind=, e.g. kind='traffic'")
        kind = kind_of(parts[0])
    if not parts:
        return empty(kind)
    return conform(pd.concat(_with_shared_categories(parts), ignore_index=True), kind)


def _with_shared_categories(frames: list[pd.DataFrame]) -> list[pd.DataFrame]:
    """The frames with each label column's categories made the union of all of theirs.

    pandas turns categoricals with different categories into text when concatenating, and pandas 2.x
    warns when a part's label is all missing (its categories are empty); shared categories avoid both.
    """
    names = {name for frame in frames for name in frame.columns
             if isinstance(frame[name].dtype, pd.CategoricalDtype)}
    for name in names:
        columns = [frame[name] for frame in frames if name in frame.columns]
        if not all(isinstance(c.dtype, pd.CategoricalDtype) for c in columns):
            continue
        union = columns[0].cat.categories
        for column in columns[1:]:
            union = union.union(column.cat.categories)  # sorted where the labels sort
        frames = [frame.assign(**{name: frame[name].cat.set_categories(union)}) if name in frame.columns else frame
                  for frame in frames]
    return frames


def kind_of(frame: pd.DataFrame) -> str:
    """The kind of a meshlab frame: the key of :data:`FRAMES` it validates as.

    Raises
    ------
    SchemaError
        If it validates as no kind.
    """
    for kind in FRAMES:
        try:
            validate(frame, kind)
        except SchemaError:
            continue
        return kind
    columns = list(frame.columns) if isinstance(frame, pd.DataFrame) else type(frame).__name__
    raise SchemaError(f"not a meshlab frame of any kind ({', '.join(FRAMES)}): columns {columns}; "
                      "pass kind= to be told what does not fit")
