"""``make demo``: the bundled mesh-shootout dataset summarised per mesh, as text, a CSV and a full report."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from ._reportdir import Report

__all__ = ["build_demo_report", "demo_summary", "run_demo"]

DATASET = "mesh-shootout"

#: what the demo's own tables hold (columns.csv; the dataset's frames are described by the schema)
SUMMARY_COLUMNS = {
    "workload": "The workload (deployment) the row summarises.",
    "mesh": "The mesh whose adapter read it.",
    "rps": "Mean requests per second the workload received over the run.",
    "success_rate": "Successful requests over all requests in the run, as this mesh classifies them.",
    "latency_p99_ms": "Median over the run of the 99th percentile latency in milliseconds.",
    "latency_p99_low_ms": "Lower bound of the histogram bucket the median p99 fell in.",
    "latency_p99_high_ms": "Upper bound of the histogram bucket the median p99 fell in.",
    "latency_p99_within_resolution_of": "Meshes whose p99 for this workload lies in an overlapping bucket: "
                                        "a difference the histograms cannot resolve.",
}
#: the load both cost figures divide by; a call between two meshed workloads passes two proxies
_THROUGH = "requests/s through the proxies (each workload's inbound requests and its outbound calls)"
COST_COLUMNS = {
    "mesh": "The mesh.",
    "cpu_cores": "Mean CPU cores per proxy pod over the run.",
    "memory_mib": "Mean memory per proxy pod over the run, in MiB.",
    "average_cores_per_1k_rps": "All of the mesh's proxies' CPU over the run, idle cost included, per 1000 "
                                f"{_THROUGH}: total CPU over total requests. At the shop's light load this is "
                                "mostly idle cost, not what 1000 more requests/s would cost: plan with "
                                "marginal_cores_per_1k_rps.",
    "marginal_cores_per_1k_rps": "CPU cores a proxy adds per 1000 more requests/s through it, idle cost excluded: "
                                 "the slope of ml.capacity.fit (ordinary least squares of each proxy's CPU against "
                                 "its share of its workload's requests/s, every step of the run). NaN when the "
                                 "load did not vary enough to fit.",
    "marginal_cores_per_1k_rps_low": "Lower bound of the 95 % confidence interval of marginal_cores_per_1k_rps.",
    "marginal_cores_per_1k_rps_high": "Upper bound of the 95 % confidence interval of marginal_cores_per_1k_rps.",
    "idle_cpu_cores": "CPU cores a proxy uses with no load: the intercept of the same fit.",
}


def demo_summary(data: Any) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per mesh and workload: mean rps, success rate, median p99 (and its bucket); per mesh: proxy cost."""
    import pandas as pd

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
    through = _through_load(traffic, data.frames.get("edges"))
    # Total CPU over total requests, over the steps both frames hold.
    totals = pd.concat({"cpu": proxies.groupby(["mesh", "timestamp"], observed=True)["cpu_cores"].sum(),
                        "rps": through.groupby(["mesh", "timestamp"], observed=True)["rps"].sum()},
                       axis=1, join="inner").groupby(level="mesh", observed=True).sum()
    cost["average_cores_per_1k_rps"] = totals["cpu"] / totals["rps"] * 1000
    # The marginal cost: the run's load is nearly flat over time (and the pod count steps), so a line through
    # the mesh's total CPU against its total load means nothing; the spread of load across workloads fits well.
    fitted = _cpu_fit(proxies, through)
    for column, source in (("marginal_cores_per_1k_rps", "per_1k_rps"),
                           ("marginal_cores_per_1k_rps_low", "per_1k_rps_low"),
                           ("marginal_cores_per_1k_rps_high", "per_1k_rps_high"), ("idle_cpu_cores", "intercept")):
        cost[column] = fitted[source].reindex(cost.index.astype(str)).to_numpy() / 1000  # millicores -> cores
    return summary, cost


def _through_load(traffic: pd.DataFrame, edges: pd.DataFrame | None) -> pd.DataFrame:
    """Per mesh, workload and step, the requests/s through the workload's proxies: its inbound requests
    plus its outbound calls (the client side of its edges), as a ``traffic``-like frame."""
    import pandas as pd

    keys = ["timestamp", "mesh", "namespace", "name"]
    inbound = traffic.groupby(keys, observed=True)["rps"].sum()
    if edges is None or edges.empty:
        return inbound.reset_index()
    calls = edges[edges["side"] == "client"].rename(columns={"src_namespace": "namespace", "src_name": "name"})
    outbound = calls.groupby(keys, observed=True)["rps"].sum()
    both = pd.concat([inbound, outbound], axis=1, keys=["in", "out"]).fillna(0.0)
    return (both["in"] + both["out"]).rename("rps").reset_index()


def _cpu_fit(proxies: pd.DataFrame, through: pd.DataFrame) -> pd.DataFrame:
    """``ml.capacity.fit``'s CPU line per mesh (index: the mesh's name), in millicores; no row for a mesh
    whose load did not vary (or whose proxies serve none of the load)."""
    import pandas as pd

    from .analysis import capacity
    from .errors import InvalidArgument

    try:
        fitted = capacity.fit(proxies, traffic=through)
    except InvalidArgument:  # no proxy serves any of the load: nothing to fit
        return pd.DataFrame(columns=["intercept", "per_1k_rps", "per_1k_rps_low", "per_1k_rps_high"],
                            index=pd.Index([], name="mesh"), dtype="float64")
    fitted = fitted[fitted["resource"] == "cpu_mcores"]
    return fitted.assign(mesh=fitted["mesh"].astype(str)).set_index("mesh")


def _cost_table(cost: pd.DataFrame) -> pd.DataFrame:
    """The proxy cost table as printed: rounded, the marginal cost beside its interval."""
    shown = cost[["cpu_cores", "memory_mib", "idle_cpu_cores", "average_cores_per_1k_rps"]].round(
        {"cpu_cores": 4, "memory_mib": 1, "idle_cpu_cores": 4, "average_cores_per_1k_rps": 3})
    shown["marginal_cores_per_1k_rps"] = [
        f"{m:.3f} ({lo:.3f}-{hi:.3f})" if m == m else "NaN: the load did not vary enough to fit"
        for m, lo, hi in zip(cost["marginal_cores_per_1k_rps"], cost["marginal_cores_per_1k_rps_low"],
                             cost["marginal_cores_per_1k_rps_high"], strict=True)]
    return shown


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


def build_demo_report(path: str | os.PathLike[str] = "meshlab-report", *, data: Any = None) -> Report:
    """The full report of the bundled mesh-shootout dataset: its four adapter frames and the per-mesh summary.

    Parameters
    ----------
    path : path-like
        The report folder (default ``./meshlab-report``), replaced atomically.
    data : Dataset, optional
        Default: ``ml.datasets.load("mesh-shootout")``.
    """
    from . import datasets
    from ._reportdir import build

    data = data if data is not None else datasets.load(DATASET)
    summary, cost = demo_summary(data)
    cost = cost.reset_index()
    summary.attrs["descriptions"], cost.attrs["descriptions"] = SUMMARY_COLUMNS, COST_COLUMNS
    tables = {"summary": summary, "proxy_cost": cost, **data.frames}
    return build(tables, path, title=f"meshlab report: {data.name}",
                 description=f"{data.manifest.get('description', '')} {data.manifest['hours']:g} hours, "
                             "the same offered load under every mesh.")


def run_demo(out: str | os.PathLike[str] = "out/mesh-shootout-summary.csv",
             report_path: str | os.PathLike[str] = "meshlab-report", *, file: IO[str] | None = None) -> int:
    """What ``meshlab demo`` does: print the summary, write it as CSV, build the full report; returns 0."""
    from . import datasets
    from ._files import destination
    from .report import write_csv

    stream = file or sys.stdout
    destination(out)  # a bad CSV path fails before any work
    data = datasets.load(DATASET)
    summary, cost = demo_summary(data)
    bounded = "latency_p99_low_ms" in summary and summary["latency_p99_low_ms"].notna().any()
    written = write_csv(summary, out)

    def say(*lines: str) -> None:
        print(*lines, sep="\n", file=stream)

    say(f"{DATASET} ({data.manifest['hours']:g} h of the synthetic 'shop' app under three meshes)\n",
        "requests per second, by workload:",
        summary.pivot(index="workload", columns="mesh", values="rps").round(1).to_string(),
        "\nsuccess rate by mesh (each mesh classifies failures its own way):",
        summary.pivot(index="workload", columns="mesh", values="success_rate").round(4).to_string(),
        "\np99 latency (ms, median over the run) as each workload's own proxy sees it:",
        summary.pivot(index="workload", columns="mesh", values="latency_p99_ms").round(1).to_string())
    if bounded:
        say("\nthe histogram bucket each p99 fell in (ms; each mesh has its own buckets):")
        ranges = summary.assign(bucket=[f"{lo:g}-{hi:g}" for lo, hi in
                                        zip(summary["latency_p99_low_ms"], summary["latency_p99_high_ms"],
                                            strict=True)])
        say(ranges.pivot(index="workload", columns="mesh", values="bucket").to_string(),
            "p99 differences within bucket resolution (the buckets overlap: not a measured difference):")
        for row in summary.sort_values(["workload", "mesh"]).itertuples():
            others = [m for m in str(row.latency_p99_within_resolution_of).split(", ") if m > str(row.mesh)]
            for other in others:
                theirs = summary[(summary["workload"] == row.workload) & (summary["mesh"] == other)].iloc[0]
                say(f"  {row.workload}: {row.mesh} {row.latency_p99_ms:.1f} vs {other} "
                    f"{theirs['latency_p99_ms']:.1f} ms")
    else:
        say("(this dataset predates latency bucket bounds: rebuild it with `make datasets` to see which "
            "differences are within bucket resolution)")
    say("\nproxy cost: CPU and memory per proxy pod (mean over the run); CPU cores per 1000 requests/s through the "
        "proxies,\n  average: all proxies' CPU over all their requests, idle cost included (mostly idle cost at this "
        "light load),\n  marginal: what 1000 more requests/s add (ml.capacity.fit's slope, its 95 % interval); "
        "plan capacity with this one:",
        _cost_table(cost).to_string(), f"\nWrote {written}")
    report = build_demo_report(report_path, data=data)
    say(f"Wrote the full report to {Path(report.path).absolute()}/ "
        f"({len(report.tables)} tables as CSV and Parquet, {len(report.charts)} charts); open {report.html.absolute()}")
    return 0
