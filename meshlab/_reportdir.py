"""The report folder behind :func:`meshlab.report.report`: CSV, Parquet, a column dictionary, one HTML page.

Kept apart from :mod:`meshlab.report` (the CSV writer) because it imports the charts, and
with them altair, only when a report is built.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import html
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import pandas as pd

from . import __version__
from ._files import atomic_folder, atomic_write
from .errors import InvalidArgument, MeshlabError, SchemaError

__all__ = ["Report", "build", "columns_table"]

#: Marks a folder as a meshlab report, which a later report may replace.
MANIFEST = "report.json"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
_RESERVED = {"columns", "report"}
_PREVIEW_ROWS = 60

_UNITS = (  # (name suffix or name, unit), first match wins
    ("_low_ms", "ms"), ("_high_ms", "ms"), ("_ms", "ms"), ("_s", "s"), ("_bytes_per_second", "bytes/s"),
    ("_bytes", "bytes"), ("_mcores", "millicores"), ("_cores", "cores"), ("_mib", "MiB"), ("rps", "requests/s"),
    ("_qps", "requests/s"), ("_per_1k_rps", "per 1000 requests/s"), ("_rate", "fraction (0-1)"),
    ("_ratio", "fraction (0-1)"), ("_count", "count"), ("requests", "count"), ("_connections", "count"),
    ("connections", "count"),
)


def _unit(column: str, dtype: Any) -> str:
    if isinstance(dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_any_dtype(dtype):
        return "UTC, ISO 8601"
    if not pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype):
        return ""
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
        for column, dtype in frame.dtypes.items():
            rows.append({"table": name, "column": str(column), "dtype": str(dtype), "unit": _unit(str(column), dtype),
                         "description": _describe(kind, str(column))})
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
    from . import charts

    made: list[tuple[str, Any]] = []
    by_kind: dict[str, list[str]] = {}
    for name, kind in kinds.items():
        by_kind.setdefault(kind or "", []).append(name)
    fit = tables[by_kind["capacity_fit"][0]] if by_kind.get("capacity_fit") else None
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


@functools.lru_cache(maxsize=2)
def _vega_bundle(vl_version: str) -> str:
    """Vega, Vega-Lite and vega-embed as one script, and the few lines that draw every chart of the page.

    Bundling takes seconds, so the bundle is cached on disk beside the sandbox cache.
    """
    import vl_convert

    snippet = _EMBED_JS
    from importlib.metadata import version

    key = hashlib.sha256(f"{version('vl-convert-python')}|{vl_version}|{snippet}".encode()).hexdigest()[:16]
    from .sim.sandbox import cache_dir

    cached = cache_dir() / "vega" / f"bundle-{key}.js"
    try:
        return cached.read_text(encoding="utf-8")
    except OSError:
        pass
    bundle: str = vl_convert.javascript_bundle(snippet, vl_version=vl_version)
    try:
        with atomic_write(cached, "w") as handle:
            handle.write(bundle)
    except OSError:
        pass  # a read-only cache: bundle again next time
    return bundle


_EMBED_JS = """
const specs = JSON.parse(document.getElementById("meshlab-specs").textContent);
for (const [id, spec] of Object.entries(specs)) {
  const box = document.getElementById(id);
  vegaEmbed(box, spec, {renderer: "svg", actions: {export: true, source: false, compiled: false, editor: false}})
    .then(() => box.setAttribute("data-rendered", "true"))
    .catch((error) => { box.textContent = "This chart could not be drawn: " + error; console.error(error); });
}
"""

_CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d2430;background:#fff}
header{background:#17324d;color:#fff;padding:22px 32px}header h1{margin:0 0 4px;font-size:26px}
header p{margin:2px 0;opacity:.9}header code{background:#2c4c6e;color:#fff}main{padding:8px 32px 40px;max-width:1400px}
h2{border-bottom:2px solid #e3e8ef;padding-bottom:4px;margin-top:32px}
nav ul{columns:2;padding-left:18px}figure{margin:18px 0 28px}figcaption{font-weight:600;margin-bottom:6px}
.chart{overflow-x:auto}table{border-collapse:collapse;font-size:13px;margin:6px 0 12px}
th,td{border-bottom:1px solid #e3e8ef;padding:3px 9px;text-align:right;white-space:nowrap}
th{background:#f4f6f9;position:sticky;top:0}td:first-child,th:first-child{text-align:left}
.scroll{max-height:420px;overflow:auto;border:1px solid #e3e8ef;display:inline-block;max-width:100%}
.meta{color:#5b6675;font-size:13px}.warn{color:#8a4b00}code{background:#f4f6f9;padding:1px 4px;border-radius:3px}
"""


def _summary(frame: pd.DataFrame, kind: str | None) -> tuple[pd.DataFrame, str]:
    """What the page shows of a table: per series over the whole range when it is a time series, else its rows."""
    labels = [c for c in frame.columns if isinstance(frame[c].dtype, pd.CategoricalDtype) and c != "kind"]
    metrics = [c for c in frame.columns if pd.api.types.is_float_dtype(frame[c].dtype)]
    if "timestamp" in frame.columns and labels and metrics and kind not in ("benchmark", "comparison"):
        grouped = frame.groupby(labels, observed=True, sort=True)
        sums = [c for c in metrics if c.endswith("_count") or c in ("requests", "opened_connections")]
        out = grouped[metrics].mean()
        if sums:
            out[sums] = grouped[sums].sum()
        if {"success_rate", "success_count", "requests"} <= set(metrics):
            totals = grouped[["success_count", "requests"]].sum()
            out["success_rate"] = totals["success_count"] / totals["requests"]
        out = out.reset_index()
        note = (f"{len(out)} series over the whole range: counts summed, the success rate from the summed counts, "
                "every other column the mean of its windows")
    else:
        out, note = frame, "the rows"
    if len(out) > _PREVIEW_ROWS:
        note += f"; the first {_PREVIEW_ROWS} of {len(out)} shown"
        out = out.head(_PREVIEW_ROWS)
    return out, note


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return "" if value != value else f"{value:.4g}"
    if isinstance(value, pd.Timestamp):
        return "" if pd.isna(value) else value.tz_convert("UTC").strftime("%Y-%m-%d %H:%M:%S") \
            if value.tzinfo else value.strftime("%Y-%m-%d %H:%M:%S")
    return "" if value is None or value is pd.NA or value is pd.NaT else str(value)


def _table_html(frame: pd.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    rows = "".join("<tr>" + "".join(f"<td>{html.escape(_cell(v))}</td>" for v in row) + "</tr>"
                   for row in frame.itertuples(index=False, name=None))
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table></div>'


def _span(frame: pd.DataFrame) -> str:
    if "timestamp" not in frame.columns or not len(frame) or frame["timestamp"].isna().all():
        return ""
    times = pd.to_datetime(frame["timestamp"], utc=True)
    return f"; {times.min():%Y-%m-%d %H:%M} to {times.max():%Y-%m-%d %H:%M} UTC"


def _page(title: str, description: str | None, created: pd.Timestamp, tables: Mapping[str, pd.DataFrame],
          kinds: Mapping[str, str | None], specs: list[tuple[str, dict[str, Any]]], problems: list[str],
          dictionary: pd.DataFrame, bundle: str) -> str:
    from .schema import FRAMES

    esc = html.escape
    parts = [f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
             f'<meta name="viewport" content="width=device-width, initial-scale=1">'
             f'<meta name="generator" content="meshlab {esc(__version__)}">'
             f"<title>{esc(title)}</title><style>{_CSS}</style></head><body>",
             f"<header><h1>{esc(title)}</h1>"
             + (f"<p>{esc(description)}</p>" if description else "")
             + f"<p>Written {created:%Y-%m-%d %H:%M} UTC by meshlab {esc(__version__)}: {len(specs)} charts, "
               f"{len(tables)} tables. Every table is also in this folder as CSV and Parquet; "
               f"<code>columns.csv</code> describes every column.</p></header><main>"]
    parts.append("<nav><h2>Contents</h2><ul>"
                 + "".join(f'<li><a href="#chart-{i}">{esc(t)}</a></li>' for i, (t, _) in enumerate(specs))
                 + "".join(f'<li><a href="#table-{esc(n)}">table: {esc(n)}</a></li>' for n in tables)
                 + '<li><a href="#columns">the columns</a></li></ul></nav>')
    if specs or problems:
        parts.append("<h2>Charts</h2>")
    for i, (chart_title, _) in enumerate(specs):
        parts.append(f'<figure><figcaption>{esc(chart_title)}</figcaption>'
                     f'<div class="chart" id="chart-{i}"></div></figure>')
    for problem in problems:
        parts.append(f'<p class="warn">Not drawn: {esc(problem)}</p>')
    parts.append("<h2>Tables</h2>")
    for name, frame in tables.items():
        kind = kinds[name]
        spec = FRAMES.get(kind or "")
        shown, note = _summary(frame, kind)
        parts.append(f'<section id="table-{esc(name)}"><h3>{esc(name)}</h3>'
                     + (f"<p>{esc(spec.doc)}</p>" if spec else "")
                     + f'<p class="meta">{len(frame):,} rows, {frame.shape[1]} columns{esc(_span(frame))}; '
                       f'files: <a href="{esc(name)}.csv">{esc(name)}.csv</a>, '
                       f'<a href="{esc(name)}.parquet">{esc(name)}.parquet</a>. Below: {esc(note)}.</p>'
                     + _table_html(shown) + "</section>")
    parts.append('<h2 id="columns">The columns</h2><p>Also in <a href="columns.csv">columns.csv</a>. '
                 "Timestamps are UTC; units are in the column names.</p>" + _table_html(dictionary))
    # "</" inside a script element would end it; JSON allows "\/" for "/"
    payload = json.dumps({f"chart-{i}": spec for i, (_, spec) in enumerate(specs)}, separators=(",", ":"))
    payload = payload.replace("</", "<\\/").replace("<!--", "<\\u0021--")
    script = bundle.replace("</script", "<\\/script")
    parts.append(f'</main><script type="application/json" id="meshlab-specs">{payload}</script>'
                 f'<script type="module">{script}</script></body></html>\n')
    return "".join(parts)


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
    from .charts._save import _vl_version

    bundle = _vega_bundle(_vl_version()) if specs else ""
    created = pd.Timestamp(dt.datetime.now(dt.timezone.utc))
    dictionary = columns_table(tables)
    with atomic_folder(target) as staging:
        for name, frame in tables.items():
            _write_table(frame, staging, name, safe)
        with open(staging / "columns.csv", "w", encoding="utf-8", newline="") as handle:
            from .report import write_csv_to

            write_csv_to(dictionary, handle, safe=safe)
        page = _page(title, description, created, tables, kinds, specs, problems, dictionary, bundle)
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
