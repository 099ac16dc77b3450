"""Cheap mesh detection: which meshes have data in a Prometheus, and since when, in a few requests.

The bisection it replaces asked about 40 queries per mesh, the first decoding every sample
of the mesh's marker in the server's whole history. Here each mesh costs:

1. one index lookup, ``/api/v1/label/__name__/values`` with ``match[]`` over all time,
   which reads no samples: a mesh without data stops here;
2. three range queries of ``count(last_over_time(marker[step]))`` of 2,000 steps each: over
   all time (steps of about ten days), over the step where data began (about seven minutes),
   then over that one (about a fifth of a second). Windows as long as the step tile the
   range, so the first step with a count holds the first sample. Prometheus holds one
   series' window at a time plus the 2,000-step intermediate result per series, so the
   peak stays that of the bisection's first query (measured: 5,780 samples for 20 series
   over a day at 15 s, both ways; 10,000 steps a level made it 102,857);
3. one instant query of the marker's raw samples in the last window (rarely more than one
   per series): the earliest of them is the first sample, to the millisecond.

Everything the first range query decodes, the bisection's first query decoded too; the
later levels re-read at most ten days of data where the bisection re-read about half of
everything again. A range query the server refuses for its size is split by
:meth:`meshlab.Prometheus.query_range`, so a limit on samples costs requests, not the answer.
"""

from __future__ import annotations

import pandas as pd

from ..prometheus.client import Prometheus
from ..timeutil import format_unix_ms

__all__ = ["FLOOR_MS", "POINTS_PER_LEVEL", "RAW_WINDOW_MS", "earliest_sample", "has_series"]

#: Steps per range query while narrowing down the first sample: fewer levels with more steps
#: would hold more of the intermediate result in the server's memory at once.
POINTS_PER_LEVEL = 2_000
#: Where the search starts: 1971-01-01. VictoriaMetrics answers nothing for a range whose first
#: window reaches back to the epoch, and no mesh exported metrics in 1970.
FLOOR_MS = 365 * 86_400_000
#: The window whose raw samples are read at the end: a few samples per series at usual scrape intervals.
RAW_WINDOW_MS = 60_000


def has_series(prom: Prometheus, series: str, end_ms: int) -> bool:
    """Whether any series matching the selector ``series`` has data up to ``end_ms``, from the index alone."""
    names = prom.get("label/__name__/values", {"match[]": series, "start": "0", "end": format_unix_ms(end_ms)})
    return bool(names)


def earliest_sample(prom: Prometheus | str, series: str, *, resolution_s: float = 1.0) -> pd.Timestamp | None:
    """The time of the earliest sample of the selector ``series``, or None if it has none.

    Five requests when there is data (one when there is none): see :mod:`meshlab.meshes.detection`.

    Parameters
    ----------
    prom : Prometheus or str
        A client or a URL.
    series : str
        A series selector, e.g. ``'istio_requests_total'`` or ``'x{a!=""}'``.
    resolution_s : float
        Kept for compatibility: the answer is the first sample's own time, to the millisecond.

    Returns
    -------
    pandas.Timestamp or None
        UTC, nanosecond unit.
    """
    from .base import as_prometheus

    prom = as_prometheus(prom, "earliest_sample")
    now_ms = int(pd.Timestamp.now(tz="UTC").value // 1_000_000)
    if not has_series(prom, series, now_ms):
        return None
    # The first sample lies in (lo, hi]; each level narrows that to one of its steps.
    lo, hi = FLOOR_MS, now_ms
    while hi - lo > RAW_WINDOW_MS:
        step = -(-(hi - lo) // POINTS_PER_LEVEL)
        # the range ends a step past hi: a server aligning steps (VictoriaMetrics) still covers it
        frame = prom.query_range(f"count(last_over_time({series}[{step}ms]))", _at(lo + step), _at(hi + step),
                                 f"{step}ms", progress=False)
        if not len(frame):  # the data went away between requests (retention, deletion)
            return None
        first = int(frame["timestamp"].min().value // 1_000_000)
        lo, hi = max(lo, first - step), first
    raw = prom.query(f"{series}[{hi - lo}ms]", time=_at(hi))
    if not len(raw):
        return None
    # Samples at or before lo belong to no earlier window (Prometheus 2's ranges include their start).
    times = raw["timestamp"][raw["timestamp"] > _at(lo)]
    if not len(times):
        return None
    return pd.Timestamp(times.min()).as_unit("ns")


def _at(ms: int) -> pd.Timestamp:
    return pd.Timestamp(ms, unit="ms", tz="UTC")
