"""What every chart module shares: argument checks, series selection, the UTC time axis, unit titles."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import altair as alt
import pandas as pd

from ..errors import InvalidArgument
from . import _prep

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



def _human(width: pd.Timedelta) -> str:
    seconds = int(width.total_seconds())
    for unit, size in (("day", 86400), ("h", 3600), ("min", 60)):
        if seconds % size == 0:
            n = seconds // size
            return f"{n} {unit}" + ("s" if unit == "day" and n > 1 else "")
    return f"{seconds} s"
