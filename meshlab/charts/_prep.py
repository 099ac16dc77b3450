"""Data preparation for the charts: pure pandas, no altair.

Charts never ship a frame as it comes: they aggregate or downsample it first so a month of
1-minute data stays under Altair's 5,000-row limit and a few hundred kilobytes of JSON.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from ..errors import InvalidArgument

__all__ = ["BUCKETS", "DEFAULT_MAX_ROWS", "bucket_for", "downsample", "percentile_columns", "series_label",
           "to_vega"]

#: The most rows a chart ships inline, over all its datasets (Altair refuses more than 5,000).
DEFAULT_MAX_ROWS = 4000
#: Bucket widths downsampling chooses from, smallest first (each divides the next day or week).
BUCKETS = tuple(pd.Timedelta(s) for s in (
    "1min", "2min", "5min", "10min", "15min", "30min", "1h", "2h", "3h", "6h", "12h", "1D", "2D", "7D"))

_PERCENTILE = re.compile(r"^latency_p(\d+)_ms$")
_SIGNIFICANT = 6  # digits kept in the JSON: invisible in a chart, halves the bytes


def percentile_columns(frame: pd.DataFrame, percentiles: Sequence[str] | None = None) -> list[str]:
    """The ``latency_pNN_ms`` columns to plot, sorted by quantile.

    Parameters
    ----------
    frame : pandas.DataFrame
        A traffic, edges or benchmark frame.
    percentiles : sequence of str, optional
        Names such as ``"p50"`` or ``"latency_p99_ms"``; default: every percentile column.
    """
    present = [c for c in frame.columns if _PERCENTILE.match(str(c))]
    if percentiles is None:
        chosen = present
    else:
        if isinstance(percentiles, str):
            percentiles = [percentiles]
        chosen = []
        for p in percentiles:
            name = p if str(p).startswith("latency_") else f"latency_{p}_ms"
            if name not in frame.columns:
                raise InvalidArgument(f"percentiles: {p!r} is not a column of the frame; it has "
                                      f"{[short_percentile(c) for c in present]}")
            chosen.append(name)
    return sorted(chosen, key=_quantile)


def _quantile(column: str) -> float:
    digits = _PERCENTILE.match(column).group(1)  # type: ignore[union-attr]
    return float("0." + digits)


def short_percentile(column: str) -> str:
    """``latency_p99_ms`` -> ``p99``."""
    return column.removeprefix("latency_").removesuffix("_ms")


def resolution_columns(frame: pd.DataFrame, column: str) -> tuple[str, str] | None:
    """The ``latency_pNN_low_ms``/``_high_ms`` bounds of a percentile column, when the frame has both."""
    stem = column.removesuffix("_ms")
    low, high = f"{stem}_low_ms", f"{stem}_high_ms"
    return (low, high) if low in frame.columns and high in frame.columns else None


def text(column: pd.Series, missing: str = "") -> pd.Series:
    """A label column as plain strings, ``missing`` where it is NaN (pandas 3 keeps NaN through astype(str))."""
    return column.astype(object).where(column.notna(), missing).map(str)


def qualified(namespace: pd.Series, name: pd.Series) -> pd.Series:
    """``namespace/name``, or the bare name where the namespace is unknown (e.g. an external destination)."""
    ns = text(namespace)
    return (ns + "/").where(ns != "", "") + text(name, "?")


def series_label(frame: pd.DataFrame) -> pd.Series:
    """One label per row naming its series: ``namespace/name`` for traffic, ``src → dst`` for edges."""
    if {"namespace", "name"} <= set(frame.columns):
        return qualified(frame["namespace"], frame["name"])
    if {"src_name", "dst_name"} <= set(frame.columns):
        src = qualified(frame["src_namespace"], frame["src_name"])
        dst = qualified(frame["dst_namespace"], frame["dst_name"])
        label = src + " → " + dst
        if "side" in frame.columns and frame["side"].nunique() > 1:
            label = label + " (" + text(frame["side"]) + ")"
        return label
    if "workload" in frame.columns:
        return qualified(frame["namespace"], frame["workload"])
    raise InvalidArgument("frame: expected a traffic frame (namespace, name) or an edges frame "
                          f"(src_name, dst_name); it has columns {list(frame.columns)}")


def native_step(timestamps: pd.Series) -> pd.Timedelta:
    """The frame's own step: the most common gap between distinct timestamps (1 minute if only one)."""
    unique = pd.Series(timestamps.dropna().unique()).sort_values()
    gaps = unique.diff().dropna()
    gaps = gaps[gaps > pd.Timedelta(0)]
    return pd.Timedelta(gaps.mode().iloc[0]) if len(gaps) else pd.Timedelta("1min")


def bucket_for(start: pd.Timestamp, end: pd.Timestamp, step: pd.Timedelta, series: int, budget: int) -> pd.Timedelta:
    """The narrowest bucket from :data:`BUCKETS` (at least ``step``) that keeps ``series`` × buckets ≤ ``budget``.

    Returns ``step`` itself when the raw data already fits.
    """
    series = max(series, 1)
    span = end - start
    if series * (span // step + 1) <= budget:
        return step
    for width in BUCKETS:
        # a floor-aligned range can straddle one extra bucket
        if width >= step and series * (span // width + 2) <= budget:
            return width
    days = math.ceil(series * (span / pd.Timedelta("1D") + 2) / budget)
    return pd.Timedelta(days=max(days, 8))


def downsample(frame: pd.DataFrame, by: Sequence[str], width: pd.Timedelta) -> pd.DataFrame:
    """Aggregate a traffic-like frame into ``width`` buckets per ``by`` group.

    Buckets are aligned to the Unix epoch and labelled by their start. ``rps`` and every latency
    column (percentiles and their ``_low_ms``/``_high_ms`` bounds) become the mean over the windows
    in the bucket (a percentile of merged windows cannot be recovered from percentiles); counts are
    summed and ``success_rate`` is recomputed as summed successes over summed requests.
    """
    numeric = [c for c in frame.columns if c not in by and c != "timestamp"
               and pd.api.types.is_float_dtype(frame[c].dtype)]
    work = frame[[*by, "timestamp", *numeric]].copy()
    work["timestamp"] = work["timestamp"].dt.floor(width)
    sums = {c: "sum" for c in ("success_count", "failure_count", "requests") if c in numeric}
    agg = {c: ("sum" if c in sums else "mean") for c in numeric}
    out = work.groupby([*by, "timestamp"], observed=True, sort=True).agg(agg).reset_index()
    if "success_rate" in out.columns and {"success_count", "requests"} <= set(out.columns):
        with np.errstate(invalid="ignore", divide="ignore"):
            out["success_rate"] = (out["success_count"] / out["requests"]).where(out["requests"] > 0)
    return out


def to_vega(frame: pd.DataFrame, columns: Iterable[str] | None = None) -> pd.DataFrame:
    """A compact copy for inline JSON: epoch-millisecond times, plain strings, floats to 6 significant digits."""
    out = frame[list(columns)].copy() if columns is not None else frame.copy()
    for name in out.columns:
        column = out[name]
        if isinstance(column.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_any_dtype(column.dtype):
            utc = pd.to_datetime(column, utc=True)
            out[name] = ((utc - pd.Timestamp(0, tz="UTC")) // pd.Timedelta("1ms")).astype("Int64")
        elif isinstance(column.dtype, pd.CategoricalDtype) or pd.api.types.is_string_dtype(column.dtype):
            out[name] = column.astype(object).where(column.notna(), None).map(
                lambda v: v if v is None else str(v))
        elif pd.api.types.is_float_dtype(column.dtype):
            out[name] = _round_significant(column.to_numpy(dtype="float64"))
    return out.reset_index(drop=True)


def _round_significant(values: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        magnitude = np.floor(np.log10(np.abs(values)))
    magnitude = np.where(np.isfinite(magnitude), magnitude, 0)
    factor = 10.0 ** (_SIGNIFICANT - 1 - magnitude)
    return np.round(values * factor) / factor
