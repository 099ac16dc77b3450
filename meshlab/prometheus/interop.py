"""Interoperability with prometheus-pandas.

prometheus-pandas returns a wide frame (one column per series, named like
``up{job="a",instance="b"}``) for range queries and a Series for instant ones.
:func:`from_prometheus_pandas` turns either into meshlab's tidy ``query`` frame.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd

from ..errors import InvalidArgument
from ..timeutil import TimeLike, to_millis, to_timestamp
from .parse import SeriesBlock, frame_from_block

__all__ = ["from_prometheus_pandas", "parse_series_name"]

# prometheus-pandas writes each label as name=<json.dumps(value)>, joined by commas.
_NAME = re.compile(r"^(?P<metric>[a-zA-Z_:][a-zA-Z0-9_:]*)?\{(?P<labels>.*)\}$", re.DOTALL)
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)=("(?:[^"\\]|\\.)*")\s*(,|$)', re.DOTALL)


def parse_series_name(name: str) -> dict[str, str]:
    """Parse a prometheus-pandas column name such as ``up{job="a"}`` into a label dict.

    Raises
    ------
    InvalidArgument
        If the name is not in prometheus-pandas' format.
    """
    match = _NAME.match(str(name))
    if not match:
        raise InvalidArgument(f"{name!r} is not a prometheus-pandas series name like 'up{{job=\"a\"}}'")
    labels: dict[str, str] = {}
    if match["metric"]:
        labels["__name__"] = match["metric"]
    body, pos = match["labels"], 0
    while pos < len(body):
        item = _LABEL.match(body, pos)
        if not item:
            raise InvalidArgument(f"cannot read the labels of {name!r} at position {pos}")
        labels[item[1]] = json.loads(item[2])
        pos = item.end()
    return labels


def from_prometheus_pandas(obj: pd.DataFrame | pd.Series, *, dropna: bool = True,
                           time: TimeLike | None = None) -> pd.DataFrame:
    """Turn a prometheus-pandas result into a tidy ``query`` frame.

    Parameters
    ----------
    obj : pandas.DataFrame or pandas.Series
        A ``query_range`` result (wide frame indexed by time) or a ``query`` result
        (Series indexed by series name).
    time : time-like, optional
        For a Series, which prometheus-pandas returns without its timestamps: the evaluation
        time you passed to its ``query`` (required; there is no "now" to assume afterwards).
    dropna : bool
        Drop NaN cells of a wide frame. The wide form cannot tell a missing point from a
        real NaN sample; both are NaN there, and both are dropped by default.

    Returns
    -------
    pandas.DataFrame
        Timestamps are rounded to the millisecond, undoing prometheus-pandas' float
        conversion (Prometheus timestamps are whole milliseconds).
    """
    if isinstance(obj, pd.Series):
        if time is None:
            raise InvalidArgument(
                "a prometheus-pandas instant result (a Series) has lost its timestamps: pass time=, the "
                "evaluation time given to its query() (e.g. from_prometheus_pandas(series, time=t))"
            )
        at = to_millis(to_timestamp(time, name="time"))
        labels = [parse_series_name(n) for n in obj.index]
        block = SeriesBlock(labels, np.ones(len(labels), np.int64),
                            np.full(len(labels), at, np.int64), obj.to_numpy(dtype=np.float64))
        return frame_from_block(block)
    if not isinstance(obj, pd.DataFrame):
        raise InvalidArgument(f"expected a prometheus-pandas DataFrame or Series, got {type(obj).__name__}")
    index = pd.DatetimeIndex(obj.index)
    index = index.tz_localize("UTC") if index.tz is None else index.tz_convert("UTC")
    millis = index.as_unit("ns").round("ms").asi8 // 1_000_000
    labels, counts, times, values = [], [], [], []
    for column in obj.columns:
        data = obj[column].to_numpy(dtype=np.float64)
        keep = ~np.isnan(data) if dropna else np.ones(len(data), bool)
        labels.append(parse_series_name(column))
        counts.append(int(keep.sum()))
        times.append(millis[keep])
        values.append(data[keep])
    block = SeriesBlock(labels, np.array(counts, np.int64),
                        np.concatenate(times) if times else np.zeros(0, np.int64),
                        np.concatenate(values) if values else np.zeros(0, np.float64))
    return frame_from_block(block)
