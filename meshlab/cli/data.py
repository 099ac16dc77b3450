"""``meshlab demo``, ``meshlab query`` and ``meshlab datasets list``."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from .common import check_out, debug_option, output_option, prometheus
from .core import Command, Group, duration_type, positive, time_type
from .output import FORMATS, Col, emit, text


@click.command(cls=Command, help="Summarise the bundled mesh-shootout dataset per mesh, write the summary as CSV "
                                    "and build the full report folder (CSV, Parquet and an offline HTML page).",
               short_help="Summarise the bundled mesh-shootout dataset and build its report.")
@click.option("--out", default="out/mesh-shootout-summary.csv", show_default=True, help="CSV file to write.")
@click.option("--report", "report_path", default="meshlab-report", show_default=True,
              help="Report folder to write.")
@debug_option
def demo(out: str, report_path: str) -> int:
    check_out(out, "--out")
    from ..report import run_demo

    return run_demo(out, report_path)


_QUERY_HELP = """Run a PromQL query and write a tidy CSV.

Timestamps are ISO 8601 in UTC; text cells a spreadsheet would evaluate are prefixed with a
quote (--unsafe-csv writes them as they are). A query that matches nothing writes the
header, says so on stderr and exits 0.

\b
  meshlab query http://127.0.0.1:9090 'sum by (deployment) (rate(response_total[1m]))'
  meshlab query URL up --start -1h --step 30s -o table
"""


@click.command(cls=Command, help=_QUERY_HELP, needs=("url", "promql"), short_help="Run PromQL; a tidy CSV.")
@click.argument("url", required=False)
@click.argument("promql", required=False)
@click.option("--time", type=time_type("--time"), default=None,
              help="Instant query time, e.g. -5m (default: the server's now).")
@click.option("--start", type=time_type("--start"), default=None, help="Range start, e.g. -1h or an ISO time.")
@click.option("--end", type=time_type("--end"), default="now", show_default=True, help="Range end.")
@click.option("--step", type=duration_type("--step"), default="1m", show_default=True, help="Range step.")
@click.option("--timeout", type=positive(float, "seconds"), default=30.0, show_default=True, help="Seconds.")
@click.option("-o", "--out", default=None, metavar="FORMAT|FILE",
              help="table, wide, json or csv (the default) on stdout, or a CSV file to write.")
@click.option("--unsafe-csv", is_flag=True, help="Write text cells exactly as they are, even those starting "
                                                 "with = + - @.")
@debug_option
def query(url: str, promql: str, time: str | None, start: str | None, end: str, step: str, timeout: float,
          out: str | None, unsafe_csv: bool) -> int:
    fmt = out if out in FORMATS else "csv"
    path = None if out in FORMATS else out
    if path:
        check_out(path)
    prom = prometheus(url, timeout)
    if start is None:
        frame = prom.query(promql, time=time)
    else:
        frame = prom.query_range(promql, start, end, step)
    if path:
        from ..report import write_csv

        print(f"wrote {len(frame)} rows to {write_csv(frame, path, safe=not unsafe_csv)}")
    else:
        emit(frame, fmt, safe_csv=not unsafe_csv)
    if not len(frame):  # exit 0: an empty answer is an answer, and scripts can test for rows
        when = f"at {time}" if start is None and time else "now" if start is None else f"from {start} to {end}"
        print(f"meshlab: note: the query matched no series {when}; check the metric and label names "
              "(list metrics with: meshlab query URL 'count by (__name__) ({__name__=~\".+\"})') "
              "and the time range (--start -1h for a range)", file=sys.stderr)
    return 0


@click.group(cls=Group, help="The bundled datasets.")
def datasets() -> None:
    pass


@datasets.command("list", cls=Command, help="List the bundled datasets: name, length, meshes, description.")
@output_option
@debug_option
def datasets_list(fmt: str) -> int:
    import pandas as pd

    from ..datasets import data_dir
    from ..datasets import list as names

    rows: list[dict[str, Any]] = []
    for name in names():
        manifest = json.loads((data_dir() / name / "manifest.json").read_text())
        queries = manifest.get("queries", {}).values()
        meshes = sorted({str(q["mesh"]) for q in queries if q.get("mesh") not in (None, "", "all")})
        rows.append({"name": name, "hours": float(manifest.get("hours", float("nan"))),
                     "meshes": ",".join(meshes), "step": str(manifest.get("step", "")),
                     "description": " ".join(str(manifest.get("description", "")).split())})
    frame = pd.DataFrame(rows, columns=["name", "hours", "meshes", "step", "description"])
    emit(frame, fmt, [Col("NAME", "name", right=False), Col("HOURS", "hours", lambda v: f"{v:g}"),
                      Col("MESHES", "meshes", text, right=False), Col("STEP", "step", text),
                      Col("DESCRIPTION", "description", text, wide=True, right=False)])
    return 0


