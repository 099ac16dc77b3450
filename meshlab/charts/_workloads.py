"""Summaries over the whole range: latency percentiles by mesh, the edge matrix, the worst workloads."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import altair as alt
import numpy as np
import pandas as pd

from ..errors import InvalidArgument
from . import _prep
from ._common import _WIDTH, _filter_mesh, _require, _select_series

__all__ = ["edge_matrix", "latency_by_mesh", "worst_workloads"]


def latency_by_mesh(traffic: pd.DataFrame, *, percentiles: Sequence[str] | None = None,
                    workloads: Sequence[str] | None = None, log: bool = False) -> alt.FacetChart:
    """Each workload's latency percentiles, mesh beside mesh.

    Each point is the median over the frame's windows of that percentile; the bar around it is
    the bucket resolution (median of ``latency_pNN_low_ms``/``_high_ms``) when the frame has it,
    else the interquartile range over windows.

    Parameters
    ----------
    traffic : pandas.DataFrame
        A ``traffic`` or ``edges`` frame with several meshes.
    percentiles : sequence of str, optional
        Default: every ``latency_pNN_ms`` column.
    workloads : sequence of str, optional
        ``namespace/name`` labels or bare names to keep.
    log : bool
        A log latency axis (for percentiles that differ by orders of magnitude).
    """
    frame = _require(traffic, "traffic", ["mesh"], "a traffic or edges frame")
    frame = _select_series(frame, workloads)
    pcols = _prep.percentile_columns(frame, percentiles)
    if not pcols:
        raise InvalidArgument("traffic: the frame has no latency_pNN_ms columns")
    rows = []
    for c in pcols:
        pair = _prep.resolution_columns(frame, c)
        cols = [c, *(pair or ())]
        grouped = frame.groupby(["mesh", "series"], observed=True)
        med = grouped[cols].median()
        q1, q3 = grouped[c].quantile(0.25), grouped[c].quantile(0.75)
        part = pd.DataFrame({
            "latency_ms": med[c],
            "low_ms": med[pair[0]] if pair else q1,
            "high_ms": med[pair[1]] if pair else q3,
            "windows": grouped[c].count().astype("float64"),
        }).reset_index()
        part["percentile"] = _prep.short_percentile(c)
        part["bar"] = "bucket resolution" if pair else "interquartile range over windows"
        rows.append(part)
    data = _prep.to_vega(pd.concat(rows, ignore_index=True))
    order = [_prep.short_percentile(c) for c in pcols]
    scale = alt.Scale(type="log") if log else alt.Scale(zero=True)
    tips = [alt.Tooltip("series:N", title="workload"), alt.Tooltip("mesh:N"), alt.Tooltip("percentile:N"),
            alt.Tooltip("latency_ms:Q", title="median over windows (ms)", format=",.2f"),
            alt.Tooltip("low_ms:Q", title="bar low (ms)", format=",.2f"),
            alt.Tooltip("high_ms:Q", title="bar high (ms)", format=",.2f"),
            alt.Tooltip("bar:N", title="bar shows"), alt.Tooltip("windows:Q", title="windows", format=",.0f")]
    pick = alt.selection_point(fields=["mesh"], bind="legend", name="mesh_pick")
    base = alt.Chart(data).encode(
        alt.Y("series:N", title="workload"), alt.YOffset("mesh:N"),
        alt.Color("mesh:N", title="mesh"), opacity=alt.condition(pick, alt.value(1.0), alt.value(0.15)), tooltip=tips)
    bars = base.mark_rule(strokeWidth=2).encode(alt.X("low_ms:Q", title="latency (ms)", scale=scale),
                                                alt.X2("high_ms:Q"))
    points = base.mark_point(filled=True, size=45).encode(alt.X("latency_ms:Q", title="latency (ms)", scale=scale))
    return alt.layer(bars, points.add_params(pick), data=data).properties(width=220, height=alt.Step(9)).facet(
        column=alt.Column("percentile:N", title="percentile", sort=order),
        title="Latency percentiles by mesh (median over windows)",
    ).resolve_scale(x="independent")


# --- edge matrix ----------------------------------------------------------------------------------------------

_EDGE_METRICS = {"rps": ("mean request rate (requests/s)", "blues", ",.2f"),
                 "success_rate": ("success rate (%)", "redyellowgreen", ".2%")}


def edge_matrix(edges: pd.DataFrame, *, metric: str = "rps", side: str | None = None,
                mesh: str | Sequence[str] | None = None) -> alt.Chart | alt.FacetChart:
    """Source × destination heatmap over the frame's time range.

    Parameters
    ----------
    edges : pandas.DataFrame
        An ``edges`` frame.
    metric : str
        ``rps`` (mean over windows), ``success_rate`` (summed successes / summed requests) or a
        latency column such as ``latency_p99_ms`` or ``p99`` (mean of the per-window estimates).
    side : {"client", "server"}, optional
        Whose proxy's view to show; default ``client`` when both are present (the client sees
        calls to unmeshed destinations too).
    mesh : str or sequence of str, optional
        Meshes to keep; several give one matrix per mesh.
    """
    frame = _require(edges, "edges", ["mesh", "src_namespace", "src_name", "dst_namespace", "dst_name", "side",
                                      "rps", "requests", "success_count"], "an edges frame")
    if not isinstance(metric, str):
        raise InvalidArgument(f"metric: expected a column name, got {metric!r}")
    if metric not in _EDGE_METRICS:
        metric = _prep.percentile_columns(frame, [metric])[0] if metric.startswith(("p", "latency_")) else metric
        if metric not in frame.columns or not metric.startswith("latency_"):
            raise InvalidArgument(f"metric: must be 'rps', 'success_rate' or a latency column such as "
                                  f"'latency_p99_ms', got {metric!r}")
    sides = sorted(frame["side"].pipe(_prep.text).unique())
    if side is None:
        side = "client" if "client" in sides else sides[0]
    if side not in sides:
        raise InvalidArgument(f"side: {side!r} not in the frame; it has {sides}")
    frame = _filter_mesh(frame, mesh)
    frame = frame[frame["side"].pipe(_prep.text) == side]
    src = _prep.qualified(frame["src_namespace"], frame["src_name"])
    dst = _prep.qualified(frame["dst_namespace"], frame["dst_name"])
    pcols = _prep.percentile_columns(frame)
    work = frame.assign(source=src, destination=dst)
    grouped = work.groupby(["mesh", "source", "destination"], observed=True)
    agg = grouped.agg(rps=("rps", "mean"), requests=("requests", "sum"), success_count=("success_count", "sum"),
                      **{c: (c, "mean") for c in pcols}).reset_index()
    with np.errstate(invalid="ignore", divide="ignore"):
        agg["success_rate"] = (agg["success_count"] / agg["requests"]).where(agg["requests"] > 0)
    data = _prep.to_vega(agg)
    title, scheme, fmt = _EDGE_METRICS.get(metric, (f"{_prep.short_percentile(metric)} latency, mean (ms)",
                                                    "orangered", ",.1f"))
    tips = [alt.Tooltip("mesh:N"), alt.Tooltip("source:N"), alt.Tooltip("destination:N"),
            alt.Tooltip("rps:Q", title="mean rps (requests/s)", format=",.2f"),
            alt.Tooltip("success_rate:Q", title="success rate", format=".3%"),
            alt.Tooltip("requests:Q", title="requests", format=",.0f"),
            *(alt.Tooltip(f"{c}:Q", title=f"{_prep.short_percentile(c)} mean (ms)", format=",.1f") for c in pcols)]
    scheme_ref: Any = scheme  # altair types scheme names as a Literal
    scale = alt.Scale(scheme=scheme_ref, domainMax=1) if metric == "success_rate" else alt.Scale(scheme=scheme_ref)
    base = alt.Chart(data).encode(alt.X("destination:N", title="destination (called workload)",
                                        axis=alt.Axis(labelAngle=-30)),
                                  alt.Y("source:N", title="source (calling workload)"), tooltip=tips)
    legend = alt.Legend(format=".1%") if metric == "success_rate" else alt.Legend()
    cells = base.mark_rect().encode(alt.Color(f"{metric}:Q", title=title, scale=scale, legend=legend))
    labels = base.mark_text(fontSize=10).encode(
        alt.Text(f"{metric}:Q", format=fmt),
        color=alt.value("black"))
    layer = alt.layer(cells, labels, data=data).properties(width=alt.Step(70), height=alt.Step(28))
    heading = f"Edges seen by the {side} proxy: {title}"
    if data["mesh"].nunique() > 1:
        return layer.facet(column=alt.Column("mesh:N", title="mesh"), title=heading)
    return layer.properties(title=f"{heading} ({data['mesh'].iloc[0]})")


# --- worst workloads ------------------------------------------------------------------------------------------

def worst_workloads(traffic: pd.DataFrame, *, n: int = 10, min_requests: float = 1.0) -> alt.LayerChart:
    """The ``n`` workloads (per mesh) with the lowest success rate over the frame's time range.

    The success rate is summed successes over summed requests; workloads with fewer than
    ``min_requests`` requests are left out.
    """
    frame = _require(traffic, "traffic", ["mesh", "success_count", "failure_count", "requests", "rps"],
                     "a traffic or edges frame")
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise InvalidArgument(f"n: must be a positive integer, got {n!r}")
    if not isinstance(min_requests, int | float) or not min_requests >= 0:
        raise InvalidArgument(f"min_requests: must be a number ≥ 0, got {min_requests!r}")
    frame = frame.assign(series=_prep.series_label(frame))
    agg = frame.groupby(["mesh", "series"], observed=True).agg(
        success_count=("success_count", "sum"), failure_count=("failure_count", "sum"),
        requests=("requests", "sum"), rps=("rps", "mean")).reset_index()
    agg = agg[agg["requests"] >= max(min_requests, 1e-12)]
    if agg.empty:
        raise InvalidArgument(f"min_requests: no workload has {min_requests} requests or more")
    agg["success_rate"] = agg["success_count"] / agg["requests"]
    agg = agg.sort_values(["success_rate", "requests"], ascending=[True, False])
    agg = agg.groupby("mesh", observed=True, sort=False).head(n)
    agg["label"] = agg["mesh"].pipe(_prep.text) + " · " + agg["series"]
    agg["one"] = 1.0
    data = _prep.to_vega(agg)
    order = list(data["label"])
    tips = [alt.Tooltip("series:N", title="workload"), alt.Tooltip("mesh:N"),
            alt.Tooltip("success_rate:Q", title="success rate", format=".3%"),
            alt.Tooltip("failure_count:Q", title="failed requests", format=",.0f"),
            alt.Tooltip("requests:Q", title="requests", format=",.0f"),
            alt.Tooltip("rps:Q", title="mean rps (requests/s)", format=",.2f")]
    pick = alt.selection_point(fields=["mesh"], bind="legend", name="worst_mesh")
    base = alt.Chart(data).encode(alt.Y("label:N", sort=order, title="mesh · workload"),
                                  alt.Color("mesh:N", title="mesh"),
                                  opacity=alt.condition(pick, alt.value(1.0), alt.value(0.15)), tooltip=tips)
    x = alt.X("success_rate:Q", title="success rate over the range (%)", axis=alt.Axis(format=".1%"),
              scale=alt.Scale(zero=False, domainMax=1))
    stems = base.mark_rule(strokeWidth=2).encode(x, alt.X2("one:Q"))
    dots = base.mark_point(filled=True, size=80).encode(x).add_params(pick)
    text = base.mark_text(align="center", dy=-9, fontSize=9).encode(x, alt.Text("success_rate:Q", format=".2%"))
    return alt.layer(stems, dots, text, data=data).properties(
        width=_WIDTH, height=alt.Step(24), title=f"Worst {n} workloads per mesh by success rate")
