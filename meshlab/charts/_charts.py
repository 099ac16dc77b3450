"""The chart builders: meshlab frames in, Altair charts out."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import altair as alt
import numpy as np
import pandas as pd

from ..errors import InvalidArgument
from . import _prep
from ._prep import DEFAULT_MAX_ROWS

__all__ = ["capacity", "comparison", "edge_matrix", "golden_signals", "latency_by_mesh", "latency_vs_load",
           "worst_workloads"]

TIME_TITLE = "time (UTC)"
_TIME_FORMAT = "%Y-%m-%d %H:%M UTC"
_WIDTH = 560


def _time_x(span: pd.Timedelta | None = None) -> alt.X:
    if span is None or span <= pd.Timedelta("1D"):
        fmt = "%H:%M"
    elif span <= pd.Timedelta("14D"):
        fmt = "%m-%d %H:%M"
    else:
        fmt = "%Y-%m-%d"
    # a utc scale makes both the ticks and this format UTC
    return alt.X("timestamp:T", title=TIME_TITLE, scale=alt.Scale(type="utc"),
                 axis=alt.Axis(format=fmt, labelOverlap=True, tickCount=6))


def _time_tooltip(field: str = "timestamp") -> alt.Tooltip:
    # formatType="utc" with a format renders nothing in Vega-Lite 6; a utc timeUnit formats in UTC
    return alt.Tooltip(f"{field}:T", title=TIME_TITLE, timeUnit="utcyearmonthdatehoursminutes", format=_TIME_FORMAT)


def _require(frame: Any, argument: str, columns: Sequence[str], what: str) -> pd.DataFrame:
    if not isinstance(frame, pd.DataFrame):
        raise InvalidArgument(f"{argument}: expected {what} (a pandas.DataFrame), got {type(frame).__name__}")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InvalidArgument(f"{argument}: expected {what}; missing columns {missing} (it has {list(frame.columns)})")
    if frame.empty:
        raise InvalidArgument(f"{argument}: the frame is empty; there is nothing to chart")
    return frame


def _budget(max_rows: int) -> int:
    if not isinstance(max_rows, int) or isinstance(max_rows, bool) or not 10 <= max_rows <= 5000:
        raise InvalidArgument(f"max_rows: must be an integer from 10 to 5000 (Altair's limit), got {max_rows!r}")
    return max_rows


def _select_series(frame: pd.DataFrame, workloads: Sequence[str] | None, argument: str = "workloads") -> pd.DataFrame:
    frame = frame.assign(series=_prep.series_label(frame))
    if workloads is None:
        return frame
    if isinstance(workloads, str):
        workloads = [workloads]
    wanted = set(workloads)
    # a bare name matches in any namespace
    keep = frame["series"].isin(wanted)
    if "name" in frame.columns:
        keep |= frame["name"].pipe(_prep.text).isin(wanted)
    if not keep.any():
        raise InvalidArgument(f"{argument}: none of {sorted(wanted)} is in the frame; it has "
                              f"{sorted(frame['series'].unique())[:20]}")
    return frame[keep]


def _filter_mesh(frame: pd.DataFrame, mesh: str | Sequence[str] | None) -> pd.DataFrame:
    if mesh is None:
        return frame
    meshes = [mesh] if isinstance(mesh, str) else list(mesh)
    part = frame[frame["mesh"].pipe(_prep.text).isin(meshes)]
    if part.empty:
        have = sorted(frame["mesh"].pipe(_prep.text).unique())
        raise InvalidArgument(f"mesh: {meshes} not in the frame; it has {have}")
    return part


def _modes_matter(frame: pd.DataFrame) -> bool:
    """Whether some mesh has runs in several modes, so labels must name the mode too."""
    if "mode" not in frame.columns:
        return False
    return bool((frame.groupby("mesh", observed=True)["mode"].nunique() > 1).any())


def _unit_title(metric: str) -> str:
    if metric.endswith("_ms"):
        return "ms"
    if metric in ("rps", "requested_qps", "actual_qps"):
        return "requests/s"
    if metric in ("success_rate", "error_ratio"):
        return "ratio, 1 = 100 %"
    if metric.endswith("_mcores"):
        return "millicores"
    if metric.endswith("_mib"):
        return "MiB"
    return "value"


# --- golden signals over time ---------------------------------------------------------------------------------

def golden_signals(traffic: pd.DataFrame, *, workloads: Sequence[str] | None = None,
                   mesh: str | Sequence[str] | None = None, percentiles: Sequence[str] | None = None,
                   latency: Literal["lines", "band"] = "lines", max_rows: int = DEFAULT_MAX_ROWS) -> alt.VConcatChart:
    """Request rate, success rate and latency percentiles over time, one line per workload.

    Parameters
    ----------
    traffic : pandas.DataFrame
        A ``traffic`` frame (one line per workload) or an ``edges`` frame (one line per edge).
        Several meshes give one column of panels per mesh.
    workloads : sequence of str, optional
        ``namespace/name`` labels or bare names to keep; default: all.
    mesh : str or sequence of str, optional
        Meshes to keep; default: all.
    percentiles : sequence of str, optional
        e.g. ``["p50", "p99"]``; default: every ``latency_pNN_ms`` column.
    latency : {"lines", "band"}
        ``lines``: one dashed line per percentile; ``band``: the area between the lowest and the
        highest percentile, with the middle ones as lines. Percentiles with
        ``latency_pNN_low_ms``/``_high_ms`` columns also get a light band showing that resolution.
    max_rows : int
        The most rows the chart ships. Longer frames are averaged into epoch-aligned buckets
        (1 min … 7 days) chosen so all series fit; the chart title names the bucket.

    Returns
    -------
    altair.VConcatChart
        Three panels sharing the time axis; click a legend entry to highlight a workload.
    """
    frame = _require(traffic, "traffic", ["timestamp", "mesh", "rps", "success_rate"], "a traffic or edges frame")
    if latency not in ("lines", "band"):
        raise InvalidArgument(f"latency: must be 'lines' or 'band', got {latency!r}")
    budget = _budget(max_rows)
    frame = _select_series(_filter_mesh(frame, mesh), workloads)
    pcols = _prep.percentile_columns(frame, percentiles)
    bounds = {c: _prep.resolution_columns(frame, c) for c in pcols}
    keep = ["success_count", "failure_count", "requests", "rps", "success_rate", *pcols,
            *(b for pair in bounds.values() if pair for b in pair)]
    keep = [c for c in keep if c in frame.columns]
    by = ["mesh", "series"]
    n_series = frame.groupby(by, observed=True).ngroups
    step = _prep.native_step(frame["timestamp"])
    width = _prep.bucket_for(frame["timestamp"].min(), frame["timestamp"].max(), step, n_series,
                             budget // (1 + max(len(pcols), 1)))
    data = frame[["timestamp", *by, *keep]]
    if width != step:
        data = _prep.downsample(data, by, width)
    data = data.sort_values([*by, "timestamp"])
    wide = _prep.to_vega(data, ["timestamp", *by, *[c for c in ("rps", "success_rate", "requests") if c in data]])

    span = data["timestamp"].max() - data["timestamp"].min()
    several_meshes = data["mesh"].nunique() > 1
    pick = alt.selection_point(fields=["series"], bind="legend", name="workload")
    color = alt.Color("series:N", title="workload", legend=alt.Legend(orient="right", symbolLimit=50))
    opacity = alt.condition(pick, alt.value(1.0), alt.value(0.15))
    panel_width = _WIDTH // max(1, min(data["mesh"].nunique(), 3)) if several_meshes else _WIDTH
    column = [alt.Column("mesh:N", title="mesh")] if several_meshes else []

    base_tips = [_time_tooltip(), alt.Tooltip("mesh:N"), alt.Tooltip("series:N", title="workload")]
    rps = alt.Chart(wide).mark_line(strokeWidth=1.5).encode(
        _time_x(span), alt.Y("rps:Q", title="request rate (requests/s)"), color,
        *column, opacity=opacity, tooltip=[*base_tips, alt.Tooltip("rps:Q", title="rps (requests/s)", format=",.2f")],
    ).add_params(pick).properties(width=panel_width, height=130)
    success = alt.Chart(wide).mark_line(strokeWidth=1.5).encode(
        _time_x(span), alt.Y("success_rate:Q", title="success rate (%)", axis=alt.Axis(format=".1%"),
                         scale=alt.Scale(zero=False)),
        color, *column, opacity=opacity,
        tooltip=[*base_tips, alt.Tooltip("success_rate:Q", title="success rate", format=".3%")],
    ).properties(width=panel_width, height=130)
    panels: list[Any] = [rps, success]
    if pcols:
        panels.append(_latency_panel(data, by, pcols, bounds, latency, color, opacity, pick, column, base_tips,
                                     panel_width, span))
    bucket = "raw windows" if width == step else f"mean per {_human(width)} bucket"
    title = f"Golden signals ({bucket}; times in UTC)"
    return alt.vconcat(*panels, title=title).resolve_scale(color="shared")


def _latency_panel(data: pd.DataFrame, by: list[str], pcols: list[str], bounds: dict[str, tuple[str, str] | None],
                   latency: str, color: alt.Color, opacity: Any, pick: Any, column: list[Any], base_tips: list[Any],
                   panel_width: int, span: pd.Timedelta) -> alt.LayerChart:
    parts = []
    for c in pcols:
        part = data[["timestamp", *by, c]].rename(columns={c: "latency_ms"})
        part["percentile"] = _prep.short_percentile(c)
        pair = bounds[c]
        part["low_ms"] = data[pair[0]].to_numpy() if pair else np.nan
        part["high_ms"] = data[pair[1]].to_numpy() if pair else np.nan
        parts.append(part)
    long_frame = pd.concat(parts, ignore_index=True)
    lo, hi = _prep.short_percentile(pcols[0]), _prep.short_percentile(pcols[-1])
    band_mode = latency == "band" and len(pcols) >= 2
    if band_mode:
        # every row carries its series' lowest and highest percentile, so all layers share one dataset
        long_frame["band_low_ms"] = np.tile(data[pcols[0]].to_numpy(), len(pcols))
        long_frame["band_high_ms"] = np.tile(data[pcols[-1]].to_numpy(), len(pcols))
    long = _prep.to_vega(long_frame)
    has_bounds = any(bounds.values())
    tips = [*base_tips, alt.Tooltip("percentile:N"), alt.Tooltip("latency_ms:Q", title="latency (ms)", format=",.2f")]
    if has_bounds:
        tips += [alt.Tooltip("low_ms:Q", title="bucket low (ms)", format=",.2f"),
                 alt.Tooltip("high_ms:Q", title="bucket high (ms)", format=",.2f")]
    base = alt.Chart()
    y = alt.Y("latency_ms:Q", title="latency (ms)")
    # an opacity condition replaces the mark's opacity, so a band needs its own faint pair
    band_opacity = alt.condition(pick, alt.value(0.3), alt.value(0.05))
    layers: list[Any] = []
    if has_bounds:
        layers.append(base.mark_area(opacity=0.18).encode(
            _time_x(span), alt.Y("low_ms:Q", title="latency (ms)", stack=None), alt.Y2("high_ms:Q"), color,
            alt.Detail("percentile:N"), tooltip=tips).transform_filter("isValid(datum.low_ms)"))
    if band_mode:
        layers.append(base.mark_area(opacity=0.3).encode(
            _time_x(span), alt.Y("band_low_ms:Q", title="latency (ms)", stack=None), alt.Y2("band_high_ms:Q"), color,
            opacity=band_opacity,
            tooltip=[*base_tips, alt.Tooltip("band_low_ms:Q", title=f"{lo} (ms)", format=",.2f"),
                     alt.Tooltip("band_high_ms:Q", title=f"{hi} (ms)", format=",.2f")],
        ).transform_filter(alt.datum.percentile == lo))
        middle = [_prep.short_percentile(c) for c in pcols[1:-1]]
        if middle:
            layers.append(base.mark_line(strokeWidth=1.5).encode(
                _time_x(span), y, color, alt.StrokeDash("percentile:N", title="percentile"),
                opacity=opacity, tooltip=tips,
            ).transform_filter(alt.FieldOneOfPredicate(field="percentile", oneOf=middle)))
    else:
        layers.append(base.mark_line(strokeWidth=1.5).encode(
            _time_x(span), y, color,
            alt.StrokeDash("percentile:N", title="percentile", sort=[_prep.short_percentile(c) for c in pcols]),
            opacity=opacity, tooltip=tips))
    layer = alt.layer(*layers, data=long).properties(width=panel_width, height=170)
    return layer.facet(column=column[0]) if column else layer


def _human(width: pd.Timedelta) -> str:
    seconds = int(width.total_seconds())
    for unit, size in (("day", 86400), ("h", 3600), ("min", 60)):
        if seconds % size == 0:
            n = seconds // size
            return f"{n} {unit}" + ("s" if unit == "day" and n > 1 else "")
    return f"{seconds} s"


# --- latency percentiles across meshes ------------------------------------------------------------------------

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


# --- analysis frames: comparison, capacity, latency against load ------------------------------------------

_COMPARE_FIXED = {"mesh", "mode", "baseline", "metric", "value", "baseline_value", "delta", "delta_low",
                  "delta_high", "n", "baseline_n", "flags", "summary", "block_length", "resolution_ms"}


def _key_label(frame: pd.DataFrame, keys: list[str]) -> pd.Series:
    def fmt(name: str, value: Any) -> str:
        missing = value is None or (isinstance(value, float) and math.isnan(value))
        if name == "requested_qps":
            return "max qps" if missing else f"{value:g} qps"
        if name == "connections":
            return f"{value:g} conn" if not missing else "? conn"
        if name == "payload_bytes":
            return f"{value:g} B" if not missing else "? B"
        if isinstance(value, float) and not missing:
            return f"{name}={value:g}"
        return f"{name}={value}"

    if {"namespace", "name"} <= set(keys):
        rest = [k for k in keys if k not in ("namespace", "name", "scope")]
        label = _prep.qualified(frame["namespace"], frame["name"]).astype(object)
        if "scope" in keys:  # live comparisons: all workloads together is one row, "overall"
            label = label.where(frame["scope"].astype(object) != "overall", "overall")
        for k in rest:
            label = label + ", " + frame[k].astype(object).map(lambda v, k=k: fmt(k, v))
        return label
    cols = [frame[k].astype(object).map(lambda v, k=k: fmt(k, v)) for k in keys]
    if not cols:
        return pd.Series("overall", index=frame.index)
    label = cols[0]
    for c in cols[1:]:
        label = label + ", " + c
    return label


def comparison(compare: pd.DataFrame, *, metrics: Sequence[str] | None = None) -> alt.FacetChart:
    """Each mesh's difference from the baseline with its confidence interval, per key and metric.

    Parameters
    ----------
    compare : pandas.DataFrame
        The frame ``meshlab.compare`` returns: ``mesh, baseline``, the key columns (workload or
        load level), ``metric, value, baseline_value, delta, delta_low, delta_high``, flags and
        ``summary``. Rows whose interval is NaN are drawn as points without a bar.
    metrics : sequence of str, optional
        The metrics to show (default: all), one panel each.
    """
    frame = _require(compare, "compare", ["mesh", "baseline", "metric", "value", "baseline_value", "delta",
                                          "delta_low", "delta_high"], "a comparison frame (meshlab.compare)")
    if metrics is not None:
        metrics = [metrics] if isinstance(metrics, str) else list(metrics)
        unknown = sorted(set(metrics) - set(frame["metric"].pipe(_prep.text)))
        if unknown:
            raise InvalidArgument(f"metrics: {unknown} not in the comparison; it has "
                                  f"{sorted(frame['metric'].pipe(_prep.text).unique())}")
        frame = frame[frame["metric"].pipe(_prep.text).isin(metrics)]
    bools = [c for c in frame.columns if pd.api.types.is_bool_dtype(frame[c].dtype)]
    # ml.compare records what it matched on; a frame read back from a file is guessed from its columns
    keys = [c for c in frame.attrs.get("keys", []) if c in frame.columns] or \
        [c for c in frame.columns if c not in _COMPARE_FIXED and c not in bools]
    frame = frame.sort_values([*keys, "mesh"], kind="stable") if keys else frame
    data = frame.assign(
        key=_key_label(frame, keys).to_numpy(),
        who=(frame["mesh"].pipe(_prep.text) + (" · " + frame["mode"].pipe(_prep.text)
                                          if _modes_matter(frame) else "")),
        unit=frame["metric"].pipe(_prep.text).map(_unit_title),
        panel=frame["metric"].pipe(_prep.text) + " (" + frame["metric"].pipe(_prep.text).map(_unit_title) + ")",
        flags=(frame["flags"].map(lambda v: ", ".join(v) if isinstance(v, list | tuple) else v)
               if "flags" in frame.columns else ""),
        summary=frame["summary"] if "summary" in frame.columns else "",
        resolved=~frame["within_resolution"].astype(bool) if "within_resolution" in frame.columns else True,
    )
    data = data.drop(columns=[c for c in data.columns if c in bools])
    data = _prep.to_vega(data)
    order = list(dict.fromkeys(data["key"]))
    tips = [alt.Tooltip("summary:N"), alt.Tooltip("who:N", title="mesh"), alt.Tooltip("baseline:N"),
            alt.Tooltip("key:N", title="matched on"), alt.Tooltip("metric:N"), alt.Tooltip("unit:N"),
            alt.Tooltip("value:Q", format=",.3f"), alt.Tooltip("baseline_value:Q", title="baseline value",
                                                               format=",.3f"),
            alt.Tooltip("delta:Q", title="difference", format="+,.3f"),
            alt.Tooltip("delta_low:Q", title="95 % interval low", format="+,.3f"),
            alt.Tooltip("delta_high:Q", title="95 % interval high", format="+,.3f"), alt.Tooltip("flags:N")]
    pick = alt.selection_point(fields=["who"], bind="legend", name="compare_mesh")
    base = alt.Chart().encode(alt.Y("key:N", sort=order, title="matched on"), alt.YOffset("who:N"),
                              alt.Color("who:N", title="mesh"),
                              opacity=alt.condition(pick, alt.value(1.0), alt.value(0.15)), tooltip=tips)
    x_title = "difference from the baseline, in the unit beside the panel"
    bars = base.mark_rule(strokeWidth=2).encode(alt.X("delta_low:Q", title=x_title), alt.X2("delta_high:Q"))
    dots = base.mark_point(size=60).encode(
        alt.X("delta:Q", title=x_title),
        alt.Fill("who:N", legend=None),
        alt.FillOpacity("resolved:N", scale=alt.Scale(domain=[True, False], range=[1.0, 0.0]),
                        legend=alt.Legend(title="beyond bucket resolution"))).add_params(pick)
    zero = alt.Chart().mark_rule(color="gray", strokeDash=[4, 3]).encode(
        x=alt.datum(0), tooltip=[alt.Tooltip("baseline:N", title="zero: same as baseline")])
    heading = "Difference from the baseline per mesh (bars: 95 % interval; hollow: within bucket resolution)"
    return alt.layer(zero, bars, dots, data=data).properties(width=_WIDTH - 120, height=alt.Step(14)).facet(
        row=alt.Row("panel:N", title=None, header=alt.Header(labelAngle=0, labelAlign="left")), title=heading,
    ).resolve_scale(x="independent", y="independent")


_RESOURCES = {"cpu_mcores": ("cpu_mcores", "proxy CPU (millicores)"),
              "memory_mib": ("mem_mib", "proxy memory (MiB)")}
_RESOURCE_ALIASES = {"cpu": "cpu_mcores", "cpu_mcores": "cpu_mcores", "memory": "memory_mib", "mem": "memory_mib",
                     "mem_mib": "memory_mib", "memory_mib": "memory_mib"}


def capacity(benchmark: pd.DataFrame, fit: pd.DataFrame | None = None, *, resource: str = "cpu_mcores",
             roles: Sequence[str] | None = None) -> alt.LayerChart | alt.FacetChart:
    """Proxy cost against load: each run as a point, with the fitted line and its band per mesh.

    Parameters
    ----------
    benchmark : pandas.DataFrame
        A ``benchmark`` frame (``actual_qps`` and ``{role}_cpu_mcores`` / ``{role}_mem_mib``).
    fit : pandas.DataFrame, optional
        ``meshlab.capacity.fit(benchmark)``: ``mesh, mode, role, resource, intercept, per_1k_rps,
        per_1k_rps_low, per_1k_rps_high, r2, n``. The line is ``intercept + per_1k_rps × rps / 1000``
        and the band spans the slope's 95 % interval (intercept held). Without it, points only.
    resource : {"cpu_mcores", "memory_mib"}
        ``cpu``/``memory`` are accepted too.
    roles : sequence of str, optional
        Proxy roles (``client``, ``server``, ``gateway``); default: every role with data, one panel each.
    """
    frame = _require(benchmark, "benchmark", ["mesh", "actual_qps"], "a benchmark frame (meshlab.read_benchmark)")
    resource_key = _RESOURCE_ALIASES.get(str(resource))
    if resource_key is None:
        raise InvalidArgument(f"resource: must be 'cpu_mcores' or 'memory_mib', got {resource!r}")
    suffix, y_title = _RESOURCES[resource_key]
    all_roles = [r for r in ("client", "server", "gateway") if f"{r}_{suffix}" in frame.columns
                 and frame[f"{r}_{suffix}"].notna().any()]
    if roles is not None:
        roles = [roles] if isinstance(roles, str) else list(roles)
        bad = [r for r in roles if r not in all_roles]
        if bad:
            raise InvalidArgument(f"roles: {bad} have no {suffix} data; roles with data: {all_roles}")
        all_roles = roles
    if not all_roles:
        raise InvalidArgument(f"benchmark: no {suffix} column has values (client_/server_/gateway_{suffix})")
    mode = frame["mode"].pipe(_prep.text) if "mode" in frame.columns else pd.Series("", index=frame.index)
    several_modes = _modes_matter(frame)
    who = frame["mesh"].pipe(_prep.text) + (" · " + mode if several_modes else "")
    points = []
    for role in all_roles:
        part = pd.DataFrame({"who": who, "mesh": frame["mesh"].pipe(_prep.text), "mode": mode, "role": role,
                             "rps": frame["actual_qps"], "cost": frame[f"{role}_{suffix}"],
                             "run": frame["run_id"].pipe(_prep.text) if "run_id" in frame.columns else "",
                             "connections": frame.get("connections", np.nan),
                             "layer": "run"})
        points.append(part[part["cost"].notna() & part["rps"].notna()])
    runs = pd.concat(points, ignore_index=True)
    layers = [runs]
    if fit is not None:
        layers.append(_fit_lines(fit, runs, resource_key, all_roles, several_modes))
    data = _prep.to_vega(pd.concat(layers, ignore_index=True))
    pick = alt.selection_point(fields=["who"], bind="legend", name="capacity_mesh")
    color = alt.Color("who:N", title="mesh")
    opacity = alt.condition(pick, alt.value(1.0), alt.value(0.15))
    x = alt.X("rps:Q", title="load (achieved requests/s)")
    base = alt.Chart().encode(x, color)
    dots = base.mark_point(filled=True, size=40).encode(
        alt.Y("cost:Q", title=y_title), opacity=opacity,
        tooltip=[alt.Tooltip("who:N", title="mesh"), alt.Tooltip("role:N"), alt.Tooltip("run:N"),
                 alt.Tooltip("rps:Q", title="achieved rps (requests/s)", format=",.1f"),
                 alt.Tooltip("connections:Q", format=",.0f"),
                 alt.Tooltip("cost:Q", title=y_title, format=",.2f")],
    ).transform_filter(alt.datum.layer == "run").add_params(pick)
    parts: list[Any] = [dots]
    title = f"{y_title} against load, per run"
    if fit is not None:
        fit_tips = [alt.Tooltip("who:N", title="mesh"), alt.Tooltip("role:N"),
                    alt.Tooltip("rps:Q", title="load (requests/s)", format=",.0f"),
                    alt.Tooltip("cost:Q", title=f"fitted {y_title}", format=",.2f"),
                    alt.Tooltip("intercept:Q", title="idle cost (intercept)", format=",.2f"),
                    alt.Tooltip("per_1k_rps:Q", title="per 1k rps", format=",.3f"),
                    alt.Tooltip("per_1k_rps_low:Q", title="per 1k rps, 95 % low", format=",.3f"),
                    alt.Tooltip("per_1k_rps_high:Q", title="per 1k rps, 95 % high", format=",.3f"),
                    alt.Tooltip("r2:Q", title="R²", format=".3f"), alt.Tooltip("n:Q", title="runs", format=",.0f")]
        band = base.mark_area(opacity=0.2).encode(alt.Y("cost_low:Q", title=y_title, stack=None), alt.Y2("cost_high:Q"),
                                                  alt.Detail("who:N"), tooltip=fit_tips,
                                                  opacity=alt.condition(pick, alt.value(0.25), alt.value(0.05))
                                                  ).transform_filter(alt.datum.layer == "fit")
        line = base.mark_line(strokeWidth=2).encode(alt.Y("cost:Q", title=y_title), opacity=opacity, tooltip=fit_tips
                                                    ).transform_filter(alt.datum.layer == "fit")
        parts = [band, line, dots]
        title += " (line: fit; band: 95 % interval of the slope)"
    layer = alt.layer(*parts, data=data).properties(width=360 if len(all_roles) > 1 else _WIDTH, height=260)
    if len(all_roles) > 1:
        return layer.facet(column=alt.Column("role:N", title="proxy role", sort=all_roles), title=title)
    return layer.properties(title=f"{title}, {all_roles[0]} proxy")


def _fit_lines(fit: pd.DataFrame, runs: pd.DataFrame, resource: str, roles: list[str],
               several_modes: bool) -> pd.DataFrame:
    fit = _require(fit, "fit", ["mesh", "role", "resource", "intercept", "per_1k_rps", "per_1k_rps_low",
                                "per_1k_rps_high"], "a capacity fit frame (meshlab.capacity.fit)")
    aliases = [k for k, v in _RESOURCE_ALIASES.items() if v == resource]
    chosen = fit[fit["resource"].pipe(_prep.text).isin(aliases) & fit["role"].pipe(_prep.text).isin(roles)]
    lines = []
    for _, row in chosen.iterrows():
        mesh = str(row["mesh"])
        mode = str(row["mode"]) if "mode" in chosen.columns else ""
        mine = runs[(runs["mesh"] == mesh) & (runs["role"] == str(row["role"]))]
        if "mode" in chosen.columns and several_modes:
            mine = mine[mine["mode"] == mode]
        low = float(row["qps_min"]) if "qps_min" in row and pd.notna(row["qps_min"]) else mine["rps"].min()
        high = float(row["qps_max"]) if "qps_max" in row and pd.notna(row["qps_max"]) else mine["rps"].max()
        if not (np.isfinite(low) and np.isfinite(high)):
            continue
        rps = np.linspace(low, high, 20)
        per_k = rps / 1000.0
        lines.append(pd.DataFrame({
            "who": mesh + (" · " + mode if several_modes else ""), "mesh": mesh, "mode": mode,
            "role": str(row["role"]), "rps": rps, "layer": "fit",
            "cost": row["intercept"] + row["per_1k_rps"] * per_k,
            "cost_low": row["intercept"] + row["per_1k_rps_low"] * per_k,
            "cost_high": row["intercept"] + row["per_1k_rps_high"] * per_k,
            "intercept": float(row["intercept"]), "per_1k_rps": float(row["per_1k_rps"]),
            "per_1k_rps_low": float(row["per_1k_rps_low"]), "per_1k_rps_high": float(row["per_1k_rps_high"]),
            "r2": float(row["r2"]) if "r2" in row else np.nan, "n": float(row["n"]) if "n" in row else np.nan}))
    if not lines:
        raise InvalidArgument(f"fit: no rows for resource {resource!r} and roles {roles}; it has resources "
                              f"{sorted(fit['resource'].pipe(_prep.text).unique())} and roles "
                              f"{sorted(fit['role'].pipe(_prep.text).unique())}")
    return pd.concat(lines, ignore_index=True)


def latency_vs_load(benchmark: pd.DataFrame, *, slo_ms: float, percentile: str = "p99",
                    max_rps: pd.DataFrame | None = None, saturation: float = 0.95,
                    log_x: bool | None = None) -> alt.FacetChart:
    """Latency against achieved load, one panel per mesh, with the SLO as a line.

    Parameters
    ----------
    benchmark : pandas.DataFrame
        A ``benchmark`` frame.
    slo_ms : float
        The latency objective in milliseconds (a red dashed line in every panel).
    percentile : str
        ``p50``, ``p90``, ``p99``, ``p999`` or a ``latency_pNN_ms`` column.
    max_rps : pandas.DataFrame, optional
        ``meshlab.capacity.max_rps(...)``: its ``max_rps_measured`` per mesh, mode and connections
        is drawn as a vertical line.
    saturation : float
        Runs whose ``actual_qps`` is below ``saturation × requested_qps`` are drawn as crosses
        (they did not get the load they asked for).
    log_x : bool, optional
        A log load axis; default when the loads span more than 20×.
    """
    frame = _require(benchmark, "benchmark", ["mesh", "actual_qps"], "a benchmark frame (meshlab.read_benchmark)")
    if isinstance(slo_ms, bool) or not isinstance(slo_ms, int | float) or not (math.isfinite(slo_ms) and slo_ms > 0):
        raise InvalidArgument(f"slo_ms: must be a positive number of milliseconds, got {slo_ms!r}")
    column = _prep.percentile_columns(frame, [percentile])[0]
    short = _prep.short_percentile(column)
    mode = frame["mode"].pipe(_prep.text) if "mode" in frame.columns else pd.Series("", index=frame.index)
    data = pd.DataFrame({
        "panel": frame["mesh"].pipe(_prep.text) + (" · " + mode if _modes_matter(frame) else ""),
        "mesh": frame["mesh"].pipe(_prep.text), "mode": mode,
        "connections": frame["connections"] if "connections" in frame.columns else np.nan,
        "requested_qps": frame["requested_qps"] if "requested_qps" in frame.columns else np.nan,
        "rps": frame["actual_qps"], "latency_ms": frame[column],
        "resolution_ms": frame["latency_resolution_ms"] if "latency_resolution_ms" in frame.columns else np.nan,
        "error_ratio": frame["error_ratio"] if "error_ratio" in frame.columns else np.nan,
        "run": frame["run_id"].pipe(_prep.text) if "run_id" in frame.columns else "",
    })
    data = data[data["rps"].notna() & data["latency_ms"].notna()]
    if data.empty:
        raise InvalidArgument(f"benchmark: no run has both actual_qps and {column}")
    data["saturated"] = (data["rps"] < saturation * data["requested_qps"]).map({True: "saturated", False: "met"})
    data["meets_slo"] = (data["latency_ms"] <= slo_ms).map({True: "yes", False: "no"})
    data["max_rps_measured"] = np.nan
    if max_rps is not None:
        limits = _require(max_rps, "max_rps", ["mesh", "max_rps_measured"], "a frame from meshlab.capacity.max_rps")
        on = [c for c in ("mesh", "mode", "connections") if c in limits.columns and c in data.columns]
        right = limits[[*on, "max_rps_measured"]].copy()
        for c in on:
            right[c] = right[c].pipe(_prep.text) if c in ("mesh", "mode") else right[c].astype("float64")
        data = data.drop(columns="max_rps_measured").merge(right, on=on, how="left")
    data = data.sort_values(["panel", "connections", "rps"])
    if log_x is None:
        positive = data["rps"][data["rps"] > 0]
        log_x = bool(len(positive)) and positive.max() / positive.min() > 20
    vega = _prep.to_vega(data)
    x_scale = alt.Scale(type="log", nice=False) if log_x else alt.Scale()
    x = alt.X("rps:Q", title="load (achieved requests/s)", scale=x_scale)
    y_title = f"{short} latency (ms)"
    tips = [alt.Tooltip("panel:N", title="mesh"), alt.Tooltip("run:N"),
            alt.Tooltip("connections:Q", format=",.0f"),
            alt.Tooltip("requested_qps:Q", title="requested (requests/s)", format=",.0f"),
            alt.Tooltip("rps:Q", title="achieved (requests/s)", format=",.1f"),
            alt.Tooltip("latency_ms:Q", title=y_title, format=",.2f"),
            alt.Tooltip("resolution_ms:Q", title="histogram resolution (ms)", format=",.2f"),
            alt.Tooltip("error_ratio:Q", title="error ratio", format=".2%"),
            alt.Tooltip("saturated:N", title="load"), alt.Tooltip("meets_slo:N", title=f"meets {slo_ms:g} ms")]
    pick = alt.selection_point(fields=["connections"], bind="legend", name="connections_pick")
    color = alt.Color("connections:O", title="connections", scale=alt.Scale(scheme="viridis"))
    opacity = alt.condition(pick, alt.value(1.0), alt.value(0.12))
    base = alt.Chart().encode(x, alt.Y("latency_ms:Q", title=y_title), color, opacity=opacity, tooltip=tips)
    lines = base.mark_line(strokeWidth=1.5).encode(alt.Detail("connections:O"))
    dots = base.mark_point(filled=True, size=45).encode(
        alt.Shape("saturated:N", title="load", scale=alt.Scale(domain=["met", "saturated"],
                                                               range=["circle", "cross"]))).add_params(pick)
    slo = alt.Chart().mark_rule(color="#d62728", strokeDash=[6, 3], strokeWidth=1.5).encode(
        y=alt.datum(slo_ms), tooltip=[alt.Tooltip("panel:N", title="mesh")])
    slo_label = alt.Chart().mark_text(color="#d62728", align="left", dy=-6, fontSize=10).encode(
        x=alt.value(4), y=alt.datum(slo_ms), text=alt.value(f"SLO {short} {slo_ms:g} ms"),
        tooltip=alt.value(f"the SLO: {short} ≤ {slo_ms:g} ms"))
    parts: list[Any] = [lines, dots, slo, slo_label]
    if max_rps is not None:
        parts.append(alt.Chart().mark_rule(strokeDash=[2, 2]).encode(
            alt.X("max_rps_measured:Q"), color,
            tooltip=[alt.Tooltip("panel:N", title="mesh"), alt.Tooltip("connections:Q", format=",.0f"),
                     alt.Tooltip("max_rps_measured:Q", title="highest load within the SLO (requests/s)",
                                 format=",.0f")]).transform_filter("isValid(datum.max_rps_measured)"))
    return alt.layer(*parts, data=vega).properties(width=300, height=220).facet(
        column=alt.Column("panel:N", title="mesh"),
        title=f"{short} latency against load; red line: the {slo_ms:g} ms SLO",
    )
