"""``_repr_html_`` bodies for meshlab's result objects: a short, readable summary in JupyterLab.

Every value shown is escaped: names and descriptions come from files and servers.
"""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from ._reportdir import Report
    from .datasets import Dataset
    from .sim.sandbox import Sandbox

__all__ = ["dataset_html", "report_html", "sandbox_html"]

_STYLE = ("<style>.meshlab-repr table{border-collapse:collapse}.meshlab-repr th,.meshlab-repr td"
          "{padding:2px 8px;text-align:left;border-bottom:1px solid #ddd}</style>")


def _rows(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{escape(str(v))}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _span(frame: pd.DataFrame) -> str:
    if "timestamp" not in frame.columns or not len(frame) or frame["timestamp"].isna().all():
        return ""
    return f"{frame['timestamp'].min():%Y-%m-%d %H:%M} to {frame['timestamp'].max():%Y-%m-%d %H:%M} UTC"


def _box(title: str, *parts: str) -> str:
    return f'<div class="meshlab-repr">{_STYLE}<b>{escape(title)}</b>{"".join(parts)}</div>'


def report_html(report: Report) -> str:
    """A report: its title, where it is, its tables and charts."""
    rows = [[t.name, t.kind or "", f"{t.rows:,}", t.columns, t.csv.name, t.parquet.name]
            for t in report.tables.values()]
    charts = "".join(f"<li>{escape(c)}</li>" for c in report.charts)
    link = escape(str(report.html))
    return _box(f"Report: {report.title}",
                f"<p>{escape(str(report.path))} (open <code>{link}</code> in a browser), written "
                f"{report.created:%Y-%m-%d %H:%M} UTC</p>",
                _rows(["table", "kind", "rows", "columns", "CSV", "Parquet"], rows),
                f"<p>{len(report.charts)} charts:</p><ul>{charts}</ul>" if report.charts else "",
                "".join(f"<p>not drawn: {escape(w)}</p>" for w in report.warnings))


def dataset_html(dataset: Dataset) -> str:
    """A dataset: its description, and each frame's rows and time range."""
    manifest = dataset.manifest
    rows = [[f"frames[{k!r}]", f"{len(f):,}", ", ".join(map(str, f.columns[:6])) + (", ..." if f.shape[1] > 6 else ""),
             _span(f)] for k, f in dataset.frames.items()]
    rows += [[f"queries[{k!r}]", f"{len(f):,}", manifest.get("queries", {}).get(k, {}).get("promql", ""), _span(f)]
             for k, f in dataset.queries.items()]
    rows += [[f"truth[{k!r}]", f"{len(f):,}", "simulator ground truth", _span(f)] for k, f in dataset.truth.items()]
    facts = ", ".join(f"{k}: {manifest[k]}" for k in ("hours", "step", "window", "meshlab_version") if k in manifest)
    return _box(f"Dataset {dataset.name!r}", f"<p>{escape(str(manifest.get('description', '')))}<br>"
                f"{escape(facts)}</p>", _rows(["frame", "rows", "columns / PromQL", "time range"], rows))


def sandbox_html(box: Sandbox) -> str:
    """A sandbox: its scenario, meshes, time range and whether Prometheus is running."""
    times = box.traffic.timestamps()
    server = box.server
    state = (f"running at <code>{escape(str(server.url))}</code>" if server is not None
             else "not running (use it in a <code>with</code> block or call <code>start()</code>)")
    rows = [["scenario", f"{box.scenario.name}: {' '.join(str(box.scenario.description).split())}"],
            ["meshes", ", ".join(box.meshes)],
            ["time range", f"{times[0]:%Y-%m-%d %H:%M} to {times[-1]:%Y-%m-%d %H:%M} UTC"],
            ["loaded by", box.load], ["cached", "yes" if box.cache else "no"]]
    return _box("Sandbox", f"<p>Prometheus {state}</p>", _rows(["", ""], rows))
