"""The tidy frame contract: every frame meshlab returns, its columns and dtypes, in one place.

Every frame meshlab returns has one row per observation and follows these rules:

- ``timestamp`` is ``datetime64[ns, UTC]``;
- metrics are ``float64``;
- label and identity columns are pandas categoricals.

Each kind of frame is a :class:`FrameSpec` registered in :data:`FRAMES`. Use
:func:`validate` to check a frame (meshlab validates everything it returns) and
:func:`empty` to build an empty frame of a kind.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from .errors import SchemaError

__all__ = ["FRAMES", "QUANTILES", "TIMESTAMP_DTYPE", "Column", "FrameSpec", "concat", "conform", "empty",
           "kind_of", "quantile_column", "validate"]

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
        Whether further ``latency_pNN_ms`` float64 columns (extra quantiles) may follow.
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
            optional=_CLUSTER,
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
_QUANTILE_COLUMN = re.compile(r"^latency_p\d+_ms$")


def quantile_column(q: float) -> str:
    """The column name of a latency quantile: 0.5 -> ``latency_p50_ms``, 0.999 -> ``latency_p999_ms``."""
    return "latency_p" + f"{q * 100:g}".replace(".", "") + "_ms"


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
        allowed = " (and latency_pNN_ms quantile columns)" if spec.quantile_columns else ""
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
    out = frame[[*spec.names[:1], *optional, *spec.names[1:], *extra]].copy()
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
    return conform(pd.concat(parts, ignore_index=True), kind)


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
