"""The report folder behind :func:`meshlab.report.report`: CSV, Parquet, a column dictionary, one HTML page.

Kept apart from :mod:`meshlab.report` (the CSV writer) because it imports the charts, and
with them altair, only when a report is built.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import pandas as pd

from . import __version__
from ._files import atomic_folder
from ._reportpage import page as render_page
from ._reportpage import vega_bundle
from .errors import InvalidArgument, MeshlabError, SchemaError

__all__ = ["Report", "build", "columns_table"]

#: Marks a folder as a meshlab report, which a later report may replace.
MANIFEST = "report.json"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
_RESERVED = {"columns", "report"}

_UNITS = (  # (name suffix or name, unit), first match wins; "_low"/"_high" bounds share their column's unit
    ("_per_1k_rps", "per 1000 requests/s"), ("_ms", "ms"), ("_s", "s"), ("_bytes_per_second", "bytes/s"),
    ("_bytes", "bytes"), ("_mcores", "millicores"), ("_cores", "cores"), ("_mib", "MiB"), ("rps", "requests/s"),
    ("_qps", "requests/s"), ("_rate", "fraction (0-1)"), ("_ratio", "fraction (0-1)"), ("_count", "count"),
    ("requests", "count"), ("_connections", "count"), ("connections", "count"),
)


def _unit(column: str, dtype: Any) -> str:
    if isinstance(dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_any_dtype(dtype):
        return "UTC, ISO 8601"
    if not pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype):
        return ""
    column = re.sub(r"_(low|high)$", "", column)
    head, per, _ = column.rpartition("_per_1k_rps")
    if per and head:  # cores_per_1k_rps: the quantity's own unit, per 1000 requests/s
        quantity = _unit(head, dtype)
        return f"{quantity} per 1000 requests/s" if quantity else "per 1000 requests/s"
    for suffix, unit in _UNITS:
        if column == suffix.lstrip("_") or column.endswith(suffix):
            return unit
    return ""


def _kind(frame: pd.DataFrame) -> str | None:
    from .schema import kind_of

    try:
        return kind_of(frame)
    except SchemaError:
        pass
    columns = set(frame.columns)
    if {"metric", "delta", "delta_low", "delta_high", "baseline"} <= columns:
        return "comparison"
    if {"per_1k_rps", "intercept"} <= columns:
        return "capacity_fit"
    return None


def _describe(kind: str | None, column: str) -> str:
    from .schema import FRAMES, column_quantile

    spec = FRAMES.get(kind or "")
    if spec is not None:
        for col in (*spec.columns, *spec.optional):
            if col.name == column:
                return col.doc
    quantile = column_quantile(column)
    if quantile is not None:
        q, bound = quantile
        text = f"{q * 100:g}th percentile latency in milliseconds"
        if bound:
            return f"{'Lower' if bound == 'low' else 'Upper'} bound of the histogram bucket the {text} fell in."
        return text[0].upper() + text[1:] + "."
    if spec is not None and spec.label_columns:
        return "A Prometheus label of the series."
    return ""


def columns_table(tables: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """The data dictionary of a report: one row per table and column, with its dtype, unit and meaning.

    Parameters
    ----------
    tables : mapping of str to pandas.DataFrame

    Returns
    -------
    pandas.DataFrame
        Columns ``table``, ``column``, ``dtype``, ``unit``, ``description``.
    """
    rows = []
    for name, frame in tables.items():
        kind = _kind(frame)
        told = frame.attrs.get("descriptions", {})  # a table that is no frame kind describes its own columns
        for column, dtype in frame.dtypes.items():
            rows.append({"table": name, "column": str(column), "dtype": str(dtype), "unit": _unit(str(column), dtype),
                         "description": told.get(str(column)) or _describe(kind, str(column))})
    return pd.DataFrame(rows, columns=["table", "column", "dtype", "unit", "description"])


@dataclass(frozen=True)
class Table:
    """One table of a report: its files and shape."""

    name: str
    kind: str | None
    rows: int
    columns: int
    csv: Path
    parquet: Path


@dataclass(frozen=True)
class Report:
    """A report folder written by :func:`meshlab.report`.

    Attributes
    ----------
    path : pathlib.Path
        The folder.
    title : str
    tables : dict of str to Table
        Each table's kind, shape and CSV and Parquet files.
    charts : list of str
        The charts' titles, in the order the page shows them.
    created : pandas.Timestamp
        When it was written (UTC).
    """

    path: Path
    title: str
    tables: dict[str, Table]
    charts: list[str]
    created: pd.Timestamp
    warnings: list[str] = field(default_factory=list)

    @property
    def html(self) -> Path:
        """The self-contained page: ``report.html``."""
        return self.path / "report.html"

    @property
    def columns(self) -> Path:
        """The data dictionary: ``columns.csv``."""
        return self.path / "columns.csv"

    def files(self) -> list[Path]:
        """Every file of the report."""
        return sorted(p for p in self.path.iterdir() if p.is_file())

    def __repr__(self) -> str:
        return (f"<Report {self.title!r} at {self.path}: {len(self.tables)} tables "
                f"({', '.join(self.tables)}), {len(self.charts)} charts>")

    def _repr_html_(self) -> str:
        from ._html import report_html

        return report_html(self)


def _frames(frames: Any) -> tuple[dict[str, pd.DataFrame], str | None, str | None]:
    """The tables to write, and a title and description when ``frames`` is a dataset."""
    from .datasets import Dataset

    title = description = None
    if isinstance(frames, Dataset):
        title, description = f"{frames.name}", str(frames.manifest.get("description", "")) or None
        frames = frames.frames
    if isinstance(frames, pd.DataFrame):
        raise InvalidArgument("frames: pass a mapping of table names to frames, e.g. {'traffic': frame}, "
                              "or a Dataset from ml.datasets.load()")
    if not isinstance(frames, Mapping):
        raise InvalidArgument(f"frames: expected a mapping of table names to DataFrames or a Dataset, "
                              f"got {type(frames).__name__}")
    if not frames:
        raise InvalidArgument("frames: no tables given; pass at least one, e.g. {'traffic': frame}")
    out = {}
    for name, frame in frames.items():
        if not isinstance(name, str) or not _NAME.fullmatch(name) or name.lower() in _RESERVED:
            raise InvalidArgument(f"frames: table name {name!r} cannot be a file name; use letters, digits, "
                                  f"'_', '-' and '.' (starting with a letter or digit), not "
                                  f"{' or '.join(sorted(_RESERVED))}")
        if not isinstance(frame, pd.DataFrame):
            raise InvalidArgument(f"frames[{name!r}]: expected a pandas DataFrame, got {type(frame).__name__}")
        out[name] = frame
    lowered = [n.lower() for n in out]
    if len(set(lowered)) != len(lowered):
        raise InvalidArgument(f"frames: table names differ only in case ({', '.join(out)}); the files would clash "
                              "on some systems")
    return out, title, description


def _check_target(path: Path) -> None:
    """Refuse to replace a folder that is not an earlier meshlab report."""
    if path.is_symlink() and not path.exists():
        raise InvalidArgument(f"path: {path} is a dangling symlink")
    if not path.exists():
        return
    if not path.is_dir():
        raise InvalidArgument(f"path: {path} is a file; a report is a folder, give a new folder name")
    if not any(path.iterdir()):
        return
    try:
        marker = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
        ours = isinstance(marker, dict) and marker.get("generator") == "meshlab"
    except (OSError, ValueError):
        ours = False
    if not ours:
        raise InvalidArgument(f"path: {path} is a folder that is not a meshlab report (no {MANIFEST}); "
                              "refusing to replace it: give a new folder name")


def _charts(tables: Mapping[str, pd.DataFrame], kinds: Mapping[str, str | None], slo_ms: float | None,
            extra: Mapping[str, Any]) -> tuple[list[tuple[str, dict[str, Any]]], list[str]]:
    """(title, Vega-Lite spec) for every chart the tables support, and what could not be drawn."""
    made: list[tuple[str, Any]] = []
    by_kind: dict[str, list[str]] = {}
    for name, kind in kinds.items():
        by_kind.setdefault(kind or "", []).append(name)
    fit = tables[by_kind["capacity_fit"][0]] if by_kind.get("capacity_fit") else None
    if any(kinds.values()):  # altair loads only when there is something to draw
        from . import charts
    for name, kind in kinds.items():
        frame = tables[name]
        if not len(frame):
            continue
        if kind == "traffic":
            made += [(f"{name}: golden signals", lambda f=frame: charts.golden_signals(f)),
                     (f"{name}: latency percentiles by mesh", lambda f=frame: charts.latency_by_mesh(f)),
                     (f"{name}: lowest success rates", lambda f=frame: charts.worst_workloads(f))]
        elif kind == "edges":
            made += [(f"{name}: requests per second by edge", lambda f=frame: charts.edge_matrix(f)),
                     (f"{name}: success rate by edge",
                      lambda f=frame: charts.edge_matrix(f, metric="success_rate"))]
        elif kind == "benchmark":
            made.append((f"{name}: proxy CPU against load", lambda f=frame: charts.capacity(f, fit)))
            if slo_ms is not None:
                made.append((f"{name}: latency against load", lambda f=frame: charts.latency_vs_load(f, slo_ms=slo_ms)))
        elif kind == "comparison":
            made.append((f"{name}: difference from the baseline", lambda f=frame: charts.comparison(f)))
    made += list(extra.items())
    specs, problems = [], []
    for title, make in made:
        try:
            chart = make() if callable(make) and not hasattr(make, "to_dict") else make
            spec = chart.to_dict()
        except MeshlabError as error:  # a frame a chart cannot draw: the report says so, the tables still go out
            problems.append(f"{title}: {error}")
            continue
        specs.append((title, spec))
    return specs, problems


def _write_table(frame: pd.DataFrame, folder: Path, name: str, safe: bool) -> None:
    from .report import write_csv_to

    handle: IO[str]
    with open(folder / f"{name}.csv", "w", encoding="utf-8", newline="") as handle:
        write_csv_to(frame, handle, safe=safe)
    frame.to_parquet(folder / f"{name}.parquet", index=False)


def build(frames: Any, path: str | os.PathLike[str] = "meshlab-report", *, title: str | None = None,
          description: str | None = None, charts: bool = True, extra_charts: Mapping[str, Any] | None = None,
          slo_ms: float | None = None, safe: bool = True) -> Report:
    """See :func:`meshlab.report.report`."""
    tables, dataset_title, dataset_description = _frames(frames)
    if title is not None and not isinstance(title, str):
        raise InvalidArgument(f"title: expected text, got {type(title).__name__}")
    title = title or (f"meshlab report: {dataset_title}" if dataset_title else "meshlab report")
    description = description if description is not None else dataset_description
    if slo_ms is not None and (isinstance(slo_ms, bool) or not isinstance(slo_ms, int | float) or not slo_ms > 0):
        raise InvalidArgument(f"slo_ms: must be a positive number of milliseconds, got {slo_ms!r}")
    if extra_charts is not None and not isinstance(extra_charts, Mapping):
        raise InvalidArgument("extra_charts: expected a mapping of titles to Altair charts")
    target = Path(path)
    _check_target(target)
    kinds = {name: _kind(frame) for name, frame in tables.items()}
    specs, problems = _charts(tables, kinds if charts else {}, slo_ms, extra_charts or {})
    bundle = ""
    if specs:
        from .charts._save import _vl_version

        bundle = vega_bundle(_vl_version())
    created = pd.Timestamp(dt.datetime.now(dt.timezone.utc))
    dictionary = columns_table(tables)
    with atomic_folder(target) as staging:
        for name, frame in tables.items():
            _write_table(frame, staging, name, safe)
        with open(staging / "columns.csv", "w", encoding="utf-8", newline="") as handle:
            from .report import write_csv_to

            write_csv_to(dictionary, handle, safe=safe)
        page = render_page(title, description, created, tables, kinds, specs, problems, dictionary, bundle)
        (staging / "report.html").write_text(page, encoding="utf-8")
        manifest = {"generator": "meshlab", "meshlab_version": __version__, "title": title,
                    "created": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "tables": {n: {"kind": kinds[n], "rows": len(f), "csv": f"{n}.csv", "parquet": f"{n}.parquet"}
                               for n, f in tables.items()},
                    "charts": [t for t, _ in specs], "not_drawn": problems}
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    return Report(target, title, {n: Table(n, kinds[n], len(f), f.shape[1], target / f"{n}.csv",
                                           target / f"{n}.parquet") for n, f in tables.items()},
                  [t for t, _ in specs], created, problems)
