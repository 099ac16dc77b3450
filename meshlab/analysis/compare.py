"""How much latency each mesh adds over a baseline, from benchmark frames or live traffic.

Live ``traffic`` frames go to :func:`meshlab.analysis.live.compare_traffic` (block
bootstrap over time); the rest of this module compares ``benchmark`` frames.

Runs are matched on the load level (``requested_qps``, ``connections``,
``payload_bytes``); levels present on one side only are reported, never paired with a
neighbour. Replicate runs give a Welch t-interval for the difference of means (scipy);
a level with one run on either side has a NaN interval and says why.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pandas as pd

from ..errors import InvalidArgument
from .capacity import _benchmark, _groups

__all__ = ["KEYS", "compare"]

KEYS = ("requested_qps", "connections", "payload_bytes")
METRICS = ("latency_p50_ms", "latency_p90_ms", "latency_p99_ms")
COLUMNS = ["mesh", "mode", "baseline", *KEYS, "metric", "value", "baseline_value", "delta", "delta_low",
           "delta_high", "n", "baseline_n", "saturated", "within_resolution", "flags", "summary"]


def _level(key: tuple[Any, ...]) -> str:
    qps, connections, payload = key
    parts = ["max qps" if qps is None or (isinstance(qps, float) and math.isnan(qps)) else f"{qps:g} qps"]
    if connections is not None and not math.isnan(connections):
        parts.append(f"{connections:g} connections")
    if payload is not None and not math.isnan(payload):
        parts.append(f"{payload:g} B payload")
    return ", ".join(parts)


def _ms(value: float) -> str:
    return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"


def compare(frame: pd.DataFrame, baseline: str = "none", metrics: Sequence[str] | None = None,
            level: float = 0.95, max_error_ratio: float = 0.5, saturation: float = 0.95, *,
            reps: int = 999, block_length: float | None = None, seed: int = 0) -> pd.DataFrame:
    """The latency each mesh (and mode) adds over ``baseline`` at each matched load level.

    Given a live ``traffic`` frame (a ``timestamp``, ``name`` and ``rps`` column, no
    ``requested_qps``) this is :func:`meshlab.analysis.live.compare_traffic`, which
    takes ``metrics``, ``level``, ``reps``, ``block_length`` and ``seed``; see there.

    Parameters
    ----------
    frame : pandas.DataFrame
        A ``benchmark`` frame with runs of the baseline mesh and of the others, or a
        ``traffic`` frame of several meshes.
    baseline : str
        The mesh to compare against (``"none"``: runs without sidecars). Baseline runs are
        pooled across their modes: without proxies the mode changes nothing in the path.
    metrics : sequence of str, optional
        Latency columns to compare (default: p50, p90, p99; for traffic also
        ``success_rate`` and ``rps``).
    level : float
        Confidence level of the intervals.
    max_error_ratio : float
        Runs with a larger error ratio are left out (flag ``failed_runs``): their latency
        measures failures.
    saturation : float
        A run whose actual qps is below ``saturation × requested_qps`` is saturated (flag).
    reps, block_length, seed
        The block bootstrap of a traffic comparison (unused for benchmarks).

    Returns
    -------
    pandas.DataFrame
        Long form: ``mesh, mode, baseline, requested_qps, connections, payload_bytes,
        metric, value, baseline_value, delta, delta_low, delta_high, n, baseline_n,
        saturated, within_resolution, flags, summary``. ``value`` and
        ``baseline_value`` are means over replicate runs; ``flags`` lists ``unmatched``,
        ``single_run``, ``saturated``, ``within_resolution``, ``failed_runs`` where they
        apply; ``summary`` is one line per finding.
    """
    from scipy import stats

    if isinstance(frame, pd.DataFrame) and "requested_qps" not in frame.columns \
            and {"timestamp", "name", "rps"} <= set(frame.columns):
        from .live import METRICS as TRAFFIC_METRICS
        from .live import compare_traffic

        return compare_traffic(frame, baseline=baseline, metrics=TRAFFIC_METRICS if metrics is None else metrics,
                               level=level, reps=reps, block_length=block_length, seed=seed)
    if metrics is None:
        metrics = METRICS
    frame = _benchmark(frame)
    if baseline not in set(frame["mesh"].astype(str)):
        raise InvalidArgument(f"baseline: no run of mesh {baseline!r}; the frame has meshes "
                              f"{sorted(set(frame['mesh'].astype(str)))}")
    bad = [m for m in metrics if m not in frame.columns]
    if bad:
        raise InvalidArgument(f"metrics: {bad} are not columns of the benchmark frame")
    failed = frame["error_ratio"] > max_error_ratio
    usable = frame[~failed]
    base = usable[usable["mesh"].astype(str) == baseline]
    base_levels = {key: runs for key, runs in _groups(base, KEYS)}
    out: list[dict[str, Any]] = []
    others = frame[frame["mesh"].astype(str) != baseline]
    for (mesh, mode), runs_all in _groups(others, ("mesh", "mode")):
        runs = runs_all[~failed.loc[runs_all.index]]
        dropped = {key: len(r) for key, r in _groups(runs_all[failed.loc[runs_all.index]], KEYS)} \
            if failed.loc[runs_all.index].any() else {}
        levels = {key: r for key, r in _groups(runs, KEYS)}
        for key in sorted(set(levels) | set(base_levels) | set(dropped),
                          key=lambda k: tuple(-1 if v is None else v for v in k)):
            mine, theirs = levels.get(key), base_levels.get(key)
            for metric in metrics:
                out.append(_row(mesh, mode, baseline, key, metric, mine, theirs, dropped.get(key, 0), level,
                                saturation, stats))
    result = pd.DataFrame(out, columns=COLUMNS)
    for name in ("mesh", "mode", "baseline", "metric"):
        result[name] = result[name].astype("category")
    for name in (*KEYS, "value", "baseline_value", "delta", "delta_low", "delta_high", "n", "baseline_n"):
        result[name] = result[name].astype("float64")
    for name in ("saturated", "within_resolution"):
        result[name] = result[name].astype(bool)
    for name in ("flags", "summary"):
        result[name] = result[name].astype("string")
    result.attrs["keys"] = list(KEYS)  # what a row was matched on: charts label rows by these
    return result


def _row(mesh: Any, mode: Any, baseline: str, key: tuple[Any, ...], metric: str, mine: pd.DataFrame | None,
         theirs: pd.DataFrame | None, dropped: int, level: float, saturation: float, stats: Any) -> dict[str, Any]:
    qps, connections, payload = (math.nan if v is None else v for v in key)
    a = mine[metric].dropna() if mine is not None else pd.Series(dtype=float)
    b = theirs[metric].dropna() if theirs is not None else pd.Series(dtype=float)
    flags: list[str] = []
    row: dict[str, Any] = {"mesh": mesh, "mode": mode, "baseline": baseline, "requested_qps": qps,
                           "connections": connections, "payload_bytes": payload, "metric": metric,
                           "value": a.mean() if len(a) else math.nan,
                           "baseline_value": b.mean() if len(b) else math.nan,
                           "n": float(len(a)), "baseline_n": float(len(b)),
                           "delta_low": math.nan, "delta_high": math.nan, "saturated": False,
                           "within_resolution": False}
    row["delta"] = row["value"] - row["baseline_value"]
    short = metric.removeprefix("latency_").removesuffix("_ms")
    where = _level(key)
    label = f"{mesh}" + (f" ({mode})" if isinstance(mode, str) else "")
    if dropped:
        flags.append("failed_runs")
    for runs in (mine, theirs):
        if runs is not None and (runs["actual_qps"] < saturation * runs["requested_qps"]).any():
            row["saturated"] = True
    if row["saturated"]:
        flags.append("saturated")
    if not len(a) or not len(b):
        flags.append("unmatched")
        side = f"no {baseline} run" if not len(b) else f"no usable {mesh} run"
        if dropped and not len(a):
            side = f"every {mesh} run failed ({dropped} run(s) left out)"
        row["summary"] = f"{label} at {where}: {side} at this level; not compared"
        row["flags"] = ",".join(flags)
        return row
    if len(a) >= 2 and len(b) >= 2:
        test = stats.ttest_ind(a.to_numpy(), b.to_numpy(), equal_var=False)
        ci = test.confidence_interval(confidence_level=level)
        row["delta_low"], row["delta_high"] = float(ci.low), float(ci.high)
        interval = f" ({_ms(row['delta_low'])}–{_ms(row['delta_high'])})"
    else:
        flags.append("single_run")
        interval = f" (no interval: {len(a)} and {len(b)} run(s))"
    assert mine is not None and theirs is not None  # both sides have runs here
    resolution = float(pd.concat([mine["latency_resolution_ms"], theirs["latency_resolution_ms"]]).max())
    if not math.isnan(resolution) and abs(row["delta"]) < resolution:
        row["within_resolution"] = True
        flags.append("within_resolution")
    verb = "adds" if row["delta"] >= 0 else "saves"
    row["summary"] = (f"{label} {verb} {_ms(abs(row['delta']))} ms{interval} at {short} over {baseline} at {where}"
                      + (" (within the histogram's resolution)" if row["within_resolution"] else "")
                      + (" (saturated)" if row["saturated"] else ""))
    row["flags"] = ",".join(flags)
    return row
