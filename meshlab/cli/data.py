"""``meshlab demo``, ``meshlab query`` and ``meshlab datasets list``."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from .common import check_out, debug_option, output_option, prometheus
from .core import Command, Group, duration_type, positive, time_type
from .output import FORMATS, Col, emit, text


def _demo_run(out_path: str, fmt: str) -> int:
    """Summarise the bundled mesh-shootout dataset per mesh and write it as CSV."""
    import pandas as pd

    from .. import datasets
    from ..report import write_csv

    data = datasets.load("mesh-shootout")
    # Each mesh's adapter view of its workloads' inbound traffic, read from the same Prometheus.
    traffic = data.frames["traffic"]
    per = traffic.groupby(["mesh", "name"], observed=True)
    # A p99 is only as fine as the histogram bucket it fell in, and each mesh has its own buckets.
    # The bounds' medians stay on bucket bounds (lower/higher), and hold the estimates' median.
    bounded = {"latency_p99_low_ms", "latency_p99_high_ms"} <= set(traffic.columns)
    summary = pd.DataFrame({
        "rps": per["rps"].mean(),
        "success_rate": per["success_count"].sum() / per["requests"].sum(),
        "latency_p99_ms": per["latency_p99_ms"].median(),
        "latency_p99_low_ms": per["latency_p99_low_ms"].quantile(0.5, interpolation="lower") if bounded else None,
        "latency_p99_high_ms": per["latency_p99_high_ms"].quantile(0.5, interpolation="higher") if bounded else None,
    }).reset_index().rename(columns={"name": "workload"})
    summary["latency_p99_within_resolution_of"] = _within_resolution(summary)
    proxies = data.frames["proxies"]
    cost = proxies.groupby("mesh", observed=True).agg(cpu_cores=("cpu_cores", "mean"),
                                                      memory_mib=("memory_bytes", "mean"))
    cost["memory_mib"] /= 2**20
    # All proxies' CPU, idle cost included, per 1k requests per second the workloads received. Istio's
    # performance page quotes the marginal cost per sidecar instead (0.35 vCPU per 1k rps through it).
    total_cpu = proxies.groupby(["mesh", "timestamp"], observed=True)["cpu_cores"].sum()
    total_rps = traffic.groupby(["mesh", "timestamp"], observed=True)["rps"].sum()
    cost["cores_per_1k_rps"] = (total_cpu / (total_rps / 1000)).groupby(level="mesh", observed=True).median()
    out = write_csv(summary, out_path)
    if fmt in ("json", "csv"):
        emit(summary, fmt)
        print(f"wrote {out}", file=sys.stderr)
        return 0
    print(f"mesh-shootout ({data.manifest['hours']:g} h of the synthetic 'shop' app under three meshes)\n")
    print("requests per second, by workload:")
    print(summary.pivot(index="workload", columns="mesh", values="rps").round(1).to_string())
    print("\nsuccess rate by mesh (each mesh classifies failures its own way):")
    print(summary.pivot(index="workload", columns="mesh", values="success_rate").round(4).to_string())
    print("\np99 latency (ms, median over the run) as each workload's own proxy sees it:")
    print(summary.pivot(index="workload", columns="mesh", values="latency_p99_ms").round(1).to_string())
    if bounded:
        print("\nthe histogram bucket each p99 fell in (ms; each mesh has its own buckets):")
        ranges = summary.assign(bucket=[f"{lo:g}-{hi:g}" for lo, hi in
                                        zip(summary["latency_p99_low_ms"], summary["latency_p99_high_ms"],
                                            strict=True)])
        print(ranges.pivot(index="workload", columns="mesh", values="bucket").to_string())
        print("p99 differences within bucket resolution (the buckets overlap: not a measured difference):")
        for row in summary.sort_values(["workload", "mesh"]).itertuples():
            others = [m for m in str(row.latency_p99_within_resolution_of).split(", ") if m > str(row.mesh)]
            for other in others:
                theirs = summary[(summary["workload"] == row.workload) & (summary["mesh"] == other)].iloc[0]
                print(f"  {row.workload}: {row.mesh} {row.latency_p99_ms:.1f} vs {other} "
                      f"{theirs['latency_p99_ms']:.1f} ms")
    else:
        print("(this dataset predates latency bucket bounds: rebuild it with `make datasets` to see which "
              "differences are within bucket resolution)")
    print("\nproxy cost (mean per pod; all proxies' cores, idle included, per 1k rps received):")
    print(cost.round({"cpu_cores": 4, "memory_mib": 1, "cores_per_1k_rps": 3}).to_string())
    print(f"\nWrote {out}")
    return 0


def _within_resolution(summary: Any) -> list[str]:
    """Per row, the other meshes whose p99 bucket for the same workload overlaps this one's: a
    difference between them is within what their histograms resolve."""
    out = []
    for row in summary.itertuples():
        others = summary[(summary["workload"] == row.workload) & (summary["mesh"] != row.mesh)]
        overlapping = others[(others["latency_p99_low_ms"] <= row.latency_p99_high_ms)
                             & (row.latency_p99_low_ms <= others["latency_p99_high_ms"])]
        out.append(", ".join(str(m) for m in overlapping["mesh"]))
    return out


@click.command(cls=Command, help="Summarise the bundled mesh-shootout dataset per mesh and write the summary as CSV.",
               short_help="Summarise the bundled mesh-shootout dataset.")
@click.option("--out", default="out/mesh-shootout-summary.csv", show_default=True, help="CSV file to write.")
@output_option
@debug_option
def demo(out: str, fmt: str) -> int:
    check_out(out, "--out")
    return _demo_run(out, fmt)


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


COMMANDS = (demo, query, datasets)
