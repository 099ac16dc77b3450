"""How each mesh's live traffic differs from a baseline's, with block-bootstrap intervals.

:func:`compare_traffic` takes adapter ``traffic`` frames of several meshes (one frame with
a ``mesh`` column), aligns them on workload (``namespace``, ``name`` and ``cluster`` when
present) and timestamp, and reports per workload and overall the mean difference of each
metric over the aligned steps.

Consecutive windows are autocorrelated (a ``rate[5m]`` evaluated every minute shares four
fifths of its requests with the next one), so an i.i.d. bootstrap would give intervals far
too narrow. The intervals come from arch's stationary bootstrap (Politis & Romano 1994),
resampling blocks of *time steps*: every workload and mesh is resampled with the same
blocks, which keeps their correlation for the overall figures. The block length is twice
arch's ``optimal_block_length`` (Politis & White 2004, corrected by Patton, Politis & White
2009) for the stationary bootstrap, computed on each mesh's and metric's overall
difference series (the mean over workloads), taking the largest: one length for the whole
comparison, conservative where series differ (see
:func:`meshlab.analysis._bootstrap.block_length` for why twice).
The interval is the bootstrap's percentile interval of the mean difference, as
``arch``'s ``conf_int(method="percentile")`` computes it; the replicate means come at
once from a product of the replicates' index counts with the data, which gives the same
numbers without a Python loop per replicate.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InvalidArgument
from ._bootstrap import block_length as _block_length
from ._bootstrap import percentile_interval, quiet

__all__ = ["METRICS", "compare_traffic"]

METRICS = ("latency_p50_ms", "latency_p90_ms", "latency_p99_ms", "success_rate", "rps")
COLUMNS = ["mesh", "baseline", "scope", "namespace", "name", "metric", "value", "baseline_value", "delta",
           "delta_low", "delta_high", "n", "block_length", "resolution_ms", "within_resolution", "flags", "summary"]
_REQUIRED = ("timestamp", "mesh", "namespace", "name", "success_count", "requests")
_UNITS = {"success_rate": "", "rps": " rps"}


def _resolution_columns(metric: str) -> tuple[str, str]:
    stem = metric.removesuffix("_ms")
    return f"{stem}_low_ms", f"{stem}_high_ms"


def _check(frame: pd.DataFrame, baseline: str, metrics: Sequence[str]) -> list[str]:
    if not isinstance(frame, pd.DataFrame):
        raise InvalidArgument(f"frame: expected a traffic frame (Mesh.traffic()), got {type(frame).__name__}")
    missing = [c for c in (*_REQUIRED, *metrics) if c not in frame.columns]
    if missing:
        raise InvalidArgument(f"frame: a traffic frame needs columns {missing}; pass the frame of "
                              "Mesh.traffic() (several meshes concatenated, with their mesh column)")
    unknown = [m for m in metrics if m not in METRICS and not m.startswith("latency_p")]
    if unknown:
        raise InvalidArgument(f"metrics: {unknown} cannot be compared; use {list(METRICS)} or latency_pNN_ms columns")
    meshes = sorted({str(m) for m in frame["mesh"].dropna().unique()})
    if baseline not in meshes:
        hint = " (adapter frames have no 'none': compare to a mesh, or add the application's view)" \
            if baseline == "none" else ""
        raise InvalidArgument(f"baseline: no traffic of mesh {baseline!r} in the frame; it has meshes {meshes}{hint}")
    if len(meshes) < 2:
        raise InvalidArgument(f"frame: only mesh {meshes} is present; compare needs the baseline and another mesh")
    return meshes


def compare_traffic(frame: pd.DataFrame, baseline: str = "none", metrics: Sequence[str] = METRICS,
                    level: float = 0.95, reps: int = 999, block_length: float | None = None,
                    seed: int = 0) -> pd.DataFrame:
    """Each mesh's difference from ``baseline`` in live traffic, per workload and overall.

    Parameters
    ----------
    frame : pandas.DataFrame
        ``traffic`` frames of several meshes in one frame (``pandas.concat`` or
        :func:`meshlab.schema.concat`). Rows are aligned on (``cluster`` when present,)
        ``namespace``, ``name`` and ``timestamp``; query every mesh with the same step
        and start so that the timestamps meet.
    baseline : str
        The mesh the others are compared against (``"none"``: the application's own view,
        or any mesh in the frame).
    metrics : sequence of str
        Columns to compare: latency percentiles, ``success_rate``, ``rps``.
    level : float
        Confidence level of the intervals.
    reps : int
        Bootstrap replicates.
    block_length : float, optional
        Mean block length of the stationary bootstrap, in steps; by default chosen by
        arch's ``optimal_block_length`` (see the module docstring).
    seed : int
        Seed of the bootstrap, so that a comparison is reproducible.

    Returns
    -------
    pandas.DataFrame
        Long form, one row per mesh, workload (``scope="workload"``) or the whole
        frame (``scope="overall"``, ``namespace`` and ``name`` NaN) and metric (a
        ``cluster`` column follows ``scope`` when the frame has one):
        ``mesh, baseline, scope, namespace, name, metric, value, baseline_value, delta,
        delta_low, delta_high, n, block_length, resolution_ms, within_resolution,
        flags, summary``. ``value`` and ``baseline_value`` are means over the ``n``
        aligned steps where both sides have a value, and ``delta`` their difference.
        Overall: latency is the mean over workloads of each workload's percentile (not
        a percentile of all requests), ``success_rate`` pools all requests, ``rps`` is
        the total, each over the workloads both sides have at that step.
        ``resolution_ms`` is the mean width of the histogram buckets holding the
        percentile (the wider side's, from ``latency_pNN_low_ms`` and
        ``latency_pNN_high_ms`` when the frame has them; NaN otherwise), and
        ``within_resolution`` is True when ``|delta|`` is smaller. ``flags`` lists
        ``within_resolution``, ``unmatched`` (a workload one side lacks),
        ``no_interval`` (fewer than 3 aligned steps) and ``short_series`` (fewer than
        10 blocks' worth of steps: the interval is rough).

    Raises
    ------
    InvalidArgument
        For a frame without the traffic columns, a baseline not in it, duplicate rows
        for a mesh, workload and timestamp, or bad ``level``, ``reps`` or
        ``block_length``.
    """
    if not 0 < level < 1:
        raise InvalidArgument(f"level: must be between 0 and 1, got {level!r}")
    if int(reps) < 50:
        raise InvalidArgument(f"reps: at least 50 bootstrap replicates are needed for an interval, got {reps!r}")
    if block_length is not None and not block_length >= 1:
        raise InvalidArgument(f"block_length: must be at least 1 step, got {block_length!r}")
    metrics = list(dict.fromkeys(metrics))
    meshes = _check(frame, baseline, metrics)
    data = _Aligned(frame, meshes, metrics)
    b = meshes.index(baseline)
    meta: list[tuple[str, str, str | None, str | None, str, float]] = []
    values: list[np.ndarray] = []
    bases: list[np.ndarray] = []
    unmatched: list[dict[str, Any]] = []
    for mesh in meshes:
        if mesh == baseline:
            continue
        m = meshes.index(mesh)
        for metric, keys, x, y, width in data.series(m, b):
            values.append(x)
            bases.append(y)
            for j, key in enumerate(keys):
                scope = "overall" if key is None else "workload"
                namespace, name = key if key is not None else (None, None)
                meta.append((mesh, scope, namespace, name, metric, float(width[j])))
        for key, side in data.unmatched(m, b):
            for metric in metrics:
                unmatched.append(_unmatched_row(mesh, baseline, key, metric, side))
    clustered = "cluster" in frame.columns
    if not values:
        return _frame(unmatched, clustered)
    value = np.concatenate(values, axis=1)
    base = np.concatenate(bases, axis=1)
    mask = ~(np.isnan(value) | np.isnan(base))
    n = mask.sum(axis=0)
    value[~mask] = 0.0
    base[~mask] = 0.0
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_value = value.sum(axis=0) / n
        mean_base = base.sum(axis=0) / n
    delta = mean_value - mean_base
    # the differences, centred on their mean (0 where a side is missing): sums stay accurate
    centred = value
    centred -= base
    centred -= np.where(np.isnan(delta), 0.0, delta)
    centred *= mask
    del base
    overall = [i for i, row in enumerate(meta) if row[1] == "overall"]
    length = float(math.ceil(block_length)) if block_length is not None else \
        _block_length(np.where(mask[:, overall], centred[:, overall], np.nan))
    low, high = percentile_interval(centred, mask, delta, length, int(reps), level, seed)
    rows = [_row(*meta[i], baseline, float(mean_value[i]), float(mean_base[i]), float(delta[i]), float(low[i]),
                 float(high[i]), int(n[i]), length) for i in range(len(meta))]
    return _frame(rows + unmatched, clustered)


class _Aligned:
    """The frame as arrays ``[mesh, step, workload]`` per column, on one time grid."""

    def __init__(self, frame: pd.DataFrame, meshes: list[str], metrics: list[str]):
        keys = ["cluster", "namespace", "name"] if "cluster" in frame.columns else ["namespace", "name"]
        usable = (frame["mesh"].notna() & frame[keys].notna().all(axis=1)).to_numpy()
        if not usable.all():
            frame = frame[usable]
        mesh_code = _codes(frame["mesh"], meshes)
        stamps = pd.DatetimeIndex(frame["timestamp"]).as_unit("ns").asi8  # int64: sorting Timestamps is slow
        t, times = pd.factorize(stamps, sort=True)
        self.times = times
        # one integer per workload key: mixed-radix over the key columns' category codes
        parts = [frame[k].astype("category").cat for k in keys]
        combo = np.zeros(len(frame), dtype=np.int64)
        for part in parts:
            combo = combo * len(part.categories) + part.codes.to_numpy().astype(np.int64)
        w, uniq = pd.factorize(combo, sort=True)
        self.labels: list[tuple[str, str]] = []
        for code in uniq.tolist():
            names = []
            for part in reversed(parts):
                code, rest = divmod(code, len(part.categories))
                names.append(str(part.categories[rest]))
            names.reverse()
            self.labels.append(("/".join(names[:-1]), names[-1]))  # ("cluster/namespace" or namespace, name)
        shape = (len(meshes), len(self.times), len(uniq))
        flat = np.ravel_multi_index((mesh_code, t, w), shape)
        counts = np.bincount(flat, minlength=int(np.prod(shape)))
        if counts.max(initial=0) > 1:
            raise InvalidArgument("frame: several rows share a mesh, workload and timestamp; compare one cluster "
                                  "at a time, or keep the cluster column (meshlab.concat_sources adds it)")
        self.present = counts.reshape(shape) > 0
        wanted = {*metrics, "success_count", "requests"}
        for metric in metrics:
            lo, hi = _resolution_columns(metric)
            if metric.startswith("latency_") and lo in frame.columns and hi in frame.columns:
                wanted |= {lo, hi}
        self.columns: dict[str, np.ndarray] = {}
        for column in wanted:
            array = np.full(int(np.prod(shape)), np.nan)
            array[flat] = frame[column].to_numpy(dtype=np.float64, na_value=np.nan)
            self.columns[column] = array.reshape(shape)
        self.metrics = metrics

    def _has(self, m: int) -> np.ndarray:
        return np.asarray(self.present[m].any(axis=0))

    def unmatched(self, m: int, b: int) -> list[tuple[tuple[str, str], str]]:
        mine, theirs = self._has(m), self._has(b)
        out = [(self.labels[i], "baseline") for i in np.flatnonzero(mine & ~theirs)]
        return out + [(self.labels[i], "mesh") for i in np.flatnonzero(theirs & ~mine)]

    def series(self, m: int, b: int) -> list[tuple[str, list[tuple[str, str] | None], np.ndarray, np.ndarray,
                                                np.ndarray]]:
        """Per metric: the keys (workloads, then None for overall), the mesh's and the baseline's
        ``[step, key]`` arrays, and the mean resolution per key."""
        shared = np.flatnonzero(self._has(m) & self._has(b))
        if not len(shared):
            return []
        keys: list[tuple[str, str] | None] = [*(self.labels[i] for i in shared), None]
        out = []
        for metric in self.metrics:
            x, y = self.columns[metric][m][:, shared], self.columns[metric][b][:, shared]
            both = ~(np.isnan(x) | np.isnan(y))
            with np.errstate(invalid="ignore", divide="ignore"), quiet():
                if metric == "success_rate":
                    ok_x, all_x = self.columns["success_count"][m][:, shared], self.columns["requests"][m][:, shared]
                    ok_y, all_y = self.columns["success_count"][b][:, shared], self.columns["requests"][b][:, shared]
                    ox = np.where(both, ok_x, 0).sum(axis=1) / np.where(both, all_x, 0).sum(axis=1)
                    oy = np.where(both, ok_y, 0).sum(axis=1) / np.where(both, all_y, 0).sum(axis=1)
                elif metric == "rps":
                    ox, oy = np.where(both, x, 0).sum(axis=1), np.where(both, y, 0).sum(axis=1)
                else:
                    ox = np.nanmean(np.where(both, x, np.nan), axis=1)
                    oy = np.nanmean(np.where(both, y, np.nan), axis=1)
            none = ~both.any(axis=1)
            ox[none] = oy[none] = np.nan
            width = np.full(len(keys), np.nan)
            lo, hi = _resolution_columns(metric)
            if lo in self.columns:
                wider = np.fmax(self.columns[hi][m][:, shared] - self.columns[lo][m][:, shared],
                                self.columns[hi][b][:, shared] - self.columns[lo][b][:, shared])
                wider = np.where(both, wider, np.nan)
                with quiet():
                    width = np.concatenate([np.nanmean(wider, axis=0), [np.nanmean(wider)]])
            out.append((metric, keys, np.column_stack([x, ox]), np.column_stack([y, oy]), width))
        return out


def _codes(column: pd.Series, names: list[str]) -> np.ndarray:
    """Each row's position in ``names`` (by its text), through the categories, not row by row."""
    category = column.astype("category").cat
    lookup = np.array([names.index(str(c)) for c in category.categories], dtype=np.int64)
    return lookup[category.codes.to_numpy()]


def _number(value: float, metric: str) -> str:
    if metric == "success_rate":
        value = 100 * value  # percentage points
    return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"


def _unit(metric: str) -> str:
    return " ms" if metric.startswith("latency_") else {"success_rate": " pp", "rps": " rps"}.get(metric, "")


def _where(scope: str, namespace: str | None, name: str | None) -> str:
    return "overall" if scope == "overall" else f"for {namespace}/{name}"


def _row(mesh: str, scope: str, namespace: str | None, name: str | None, metric: str, resolution: float,
         baseline: str, value: float, base: float, delta: float, low: float, high: float, n: int,
         length: float) -> dict[str, Any]:
    flags = []
    within = bool(math.isfinite(resolution) and math.isfinite(delta) and abs(delta) < resolution)
    if within:
        flags.append("within_resolution")
    short = metric.removeprefix("latency_").removesuffix("_ms") if metric.startswith("latency_") else \
        metric.replace("_", " ")
    where = _where(scope, namespace, name)
    if n == 0:
        summary = f"{mesh} vs {baseline} {where}: no step where both have a {short}; not compared"
        flags.append("no_interval")
    else:
        if n < 3:
            flags.append("no_interval")
            interval = f" (no interval: {n} aligned step(s))"
        else:
            interval = f" ({_number(low, metric)} to {_number(high, metric)})"
            if n < 10 * length:
                flags.append("short_series")
        size = f"{_number(abs(delta), metric)}{_unit(metric)}"
        if metric.startswith("latency_"):
            head = f"{mesh} {'adds' if delta >= 0 else 'saves'} {size}{interval} at {short} over {baseline}"
        else:
            what = "success rate" if metric == "success_rate" else short
            head = f"{mesh}'s {what} is {size} {'higher' if delta >= 0 else 'lower'}{interval} than {baseline}'s"
        summary = f"{head} {where}, over {n} aligned steps" + \
            (f" (within the histogram's resolution, {resolution:.3g} ms)" if within else "")
    return {"mesh": mesh, "baseline": baseline, "scope": scope, "namespace": namespace, "name": name,
            "metric": metric, "value": value, "baseline_value": base, "delta": delta, "delta_low": low,
            "delta_high": high, "n": float(n), "block_length": length, "resolution_ms": resolution,
            "within_resolution": within, "flags": ",".join(flags), "summary": summary}


def _unmatched_row(mesh: str, baseline: str, key: tuple[str, str], metric: str, side: str) -> dict[str, Any]:
    lacking = baseline if side == "baseline" else mesh
    return {"mesh": mesh, "baseline": baseline, "scope": "workload", "namespace": key[0], "name": key[1],
            "metric": metric, "value": math.nan, "baseline_value": math.nan, "delta": math.nan,
            "delta_low": math.nan, "delta_high": math.nan, "n": 0.0, "block_length": math.nan,
            "resolution_ms": math.nan, "within_resolution": False, "flags": "unmatched",
            "summary": f"{mesh} vs {baseline} for {key[0]}/{key[1]}: {lacking} has no traffic for it; not compared"}


def _frame(rows: list[dict[str, Any]], clustered: bool = False) -> pd.DataFrame:
    result = pd.DataFrame(rows, columns=COLUMNS)
    if clustered:  # the key was "cluster/namespace" (a namespace has no "/"): give the cluster its column
        split = result["namespace"].str.rsplit("/", n=1, expand=True).reindex(columns=[0, 1])
        result.insert(3, "cluster", split[0])
        result["namespace"] = split[1]
    for name in ("mesh", "baseline", "scope", "cluster", "namespace", "name", "metric"):
        if name in result.columns:
            result[name] = result[name].astype("category")
    for name in ("value", "baseline_value", "delta", "delta_low", "delta_high", "n", "block_length", "resolution_ms"):
        result[name] = result[name].astype("float64")
    result["within_resolution"] = result["within_resolution"].astype(bool)
    for name in ("flags", "summary"):
        result[name] = result[name].astype("string")
    result.attrs["keys"] = [k for k in ("scope", "cluster", "namespace", "name") if k in result.columns]
    return result
