"""Golden signals over time: request rate, success rate and latency percentiles per workload."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import altair as alt
import numpy as np
import pandas as pd

from ..errors import InvalidArgument
from . import _prep
from ._common import _WIDTH, _budget, _filter_mesh, _human, _require, _select_series, _time_tooltip, _time_x
from ._prep import DEFAULT_MAX_ROWS

__all__ = ["golden_signals"]


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
