"""Capacity planning from benchmark frames: proxy cost models and the highest load within an SLO.

- :func:`fit`: per mesh and mode (and proxy role), a linear model of CPU millicores and
  memory MiB against ``actual_qps`` (statsmodels OLS), reported as idle cost and cost per
  1k rps with 95 % confidence intervals; on a benchmark frame, or on live frames
  (``mesh.proxies()`` with the ``traffic`` each proxy serves, via :func:`from_live`);
- :func:`project`: the total proxy CPU and memory a target load needs, with prediction
  intervals;
- :func:`max_rps`: the highest measured load meeting a latency SLO, the lowest failing
  one, and an interpolated estimate that says so.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InvalidArgument
from ..schema import FRAMES, conform, validate

__all__ = ["ROLES", "fit", "from_live", "max_rps", "project"]

ROLES = ("client", "server", "gateway")
_RESOURCES = {"cpu_mcores": "cpu_mcores", "mem_mib": "memory_mib"}
FIT_COLUMNS = ["mesh", "mode", "role", "resource", "intercept", "intercept_low", "intercept_high", "per_1k_rps",
               "per_1k_rps_low", "per_1k_rps_high", "r2", "n", "qps_min", "qps_max", "qps_mean", "qps_ss",
               "residual_sd"]


def _benchmark(frame: pd.DataFrame, argument: str = "frame") -> pd.DataFrame:
    if not isinstance(frame, pd.DataFrame):
        raise InvalidArgument(f"{argument}: expected a benchmark frame (meshlab.read_benchmark), "
                              f"got {type(frame).__name__}")
    try:
        validate(frame, "benchmark")
    except Exception as exc:
        raise InvalidArgument(f"{argument}: not a benchmark frame: {exc}") from None
    if frame["mesh"].isna().any():
        raise InvalidArgument(f"{argument}: {int(frame['mesh'].isna().sum())} run(s) have no mesh; "
                              "pass mesh= to meshlab.read_benchmark")
    return frame


def _groups(frame: pd.DataFrame, by: Sequence[str]) -> Iterable[tuple[tuple[Any, ...], pd.DataFrame]]:
    keys = list(by)
    plain = frame[keys].astype(object).where(frame[keys].notna(), None)
    for key, part in plain.groupby(keys, dropna=False, sort=True):
        values = key if isinstance(key, tuple) else (key,)
        # pandas gives a missing key back as NaN, and NaN != NaN: None keeps keys comparable
        yield tuple(None if pd.isna(v) else v for v in values), frame.loc[part.index]


_PROXY_COLUMNS = ("timestamp", "mesh", "namespace", "workload", "pod", "cpu_cores", "memory_bytes")
_TRAFFIC_COLUMNS = ("timestamp", "mesh", "namespace", "name", "rps")


def from_live(proxies: pd.DataFrame, traffic: pd.DataFrame) -> pd.DataFrame:
    """Live proxy cost as a ``benchmark`` frame: one row per proxy and step, for :func:`fit`.

    Each proxy row of ``proxies`` (``mesh.proxies()``) is joined on ``timestamp``, ``mesh``,
    ``namespace`` (and ``cluster`` when both have it) with the ``traffic`` row of the
    workload the proxy's pod belongs to (``workload`` = the traffic's ``name``). The load
    a proxy carries is its workload's inbound ``rps`` divided by the number of the
    workload's proxies at that step (traffic is spread over the pods); its cost is a
    server-side proxy's (``server_cpu_mcores`` = cores × 1000, ``server_mem_mib`` =
    bytes / 2**20). Proxies whose workload has no traffic row at a step (TCP-only
    workloads, say) are left out. The workload's outbound calls go through the same proxy,
    so the slope is the cost per request *served*, calls made on its behalf included.

    Returns
    -------
    pandas.DataFrame
        A ``benchmark`` frame with ``mode`` ``"live"``, ``run_id`` the pod,
        ``source`` ``"namespace/workload"``, ``actual_qps`` the proxy's share of the rps.
    """
    for argument, data, needed in (("proxies", proxies, _PROXY_COLUMNS), ("traffic", traffic, _TRAFFIC_COLUMNS)):
        if not isinstance(data, pd.DataFrame):
            raise InvalidArgument(f"{argument}: expected a frame, got {type(data).__name__}")
        missing = [c for c in needed if c not in data.columns]
        if missing:
            raise InvalidArgument(f"{argument}: needs columns {missing} (pass Mesh.{argument}()'s frame)")
    keys = ["timestamp", "mesh", "namespace"] + (["cluster"] if "cluster" in proxies.columns
                                                 and "cluster" in traffic.columns else [])
    left = proxies[[*keys, "workload", "pod", "cpu_cores", "memory_bytes"]].astype(
        {k: str for k in keys if k != "timestamp"} | {"workload": str, "pod": str})
    right = traffic[[*keys, "name", "rps"]].astype({k: str for k in keys if k != "timestamp"} | {"name": str})
    if right.duplicated([*keys, "name"]).any():
        raise InvalidArgument("traffic: several rows per workload and step; pass one cluster at a time or keep "
                              "the cluster column in both frames")
    pods = left.groupby([*keys, "workload"])["pod"].transform("nunique")
    joined = left.assign(proxies=pods).merge(right.rename(columns={"name": "workload"}), on=[*keys, "workload"],
                                             how="inner")
    if joined.empty:
        raise InvalidArgument("proxies and traffic share no (timestamp, mesh, namespace, workload): query both "
                              "from the same source with the same start and step")
    frame = pd.DataFrame({
        "timestamp": joined["timestamp"], "run_id": joined["pod"], "mesh": joined["mesh"], "mode": "live",
        "sidecars": "server", "source": joined["namespace"] + "/" + joined["workload"],
        "actual_qps": joined["rps"] / joined["proxies"],
        "server_cpu_mcores": joined["cpu_cores"] * 1e3, "server_mem_mib": joined["memory_bytes"] / 2**20,
        "note": ""})
    for column in FRAMES["benchmark"].names:
        if column not in frame.columns:
            frame[column] = math.nan
    return conform(frame, "benchmark")


def fit(frame: pd.DataFrame, by: Sequence[str] = ("mesh", "mode"), level: float = 0.95,
        traffic: pd.DataFrame | None = None) -> pd.DataFrame:
    """Linear models of proxy CPU and memory against load, per ``by`` group, role and resource.

    Parameters
    ----------
    frame : pandas.DataFrame
        A ``benchmark`` frame. Filter it first to hold one load shape (e.g. one connection
        count), or add ``"connections"`` to ``by``. Or a live ``proxies`` frame
        (``mesh.proxies()``) with ``traffic=``: see :func:`from_live` (role ``server``,
        mode ``"live"``, load = the proxy's share of its workload's rps).
    traffic : pandas.DataFrame, optional
        With a ``proxies`` frame: the ``traffic`` frame of the same meshes and steps.
    by : sequence of str
        The columns that define a model (default: mesh and mode).
    level : float
        Confidence level of the intervals.

    Returns
    -------
    pandas.DataFrame
        ``mesh, mode, role, resource, intercept, intercept_low, intercept_high,
        per_1k_rps, per_1k_rps_low, per_1k_rps_high, r2, n`` (intercept: idle cost; per
        1k rps: slope times 1000), then ``qps_min, qps_max, qps_mean, qps_ss,
        residual_sd``, which :func:`project` uses. Resources are ``cpu_mcores`` and
        ``memory_mib``. A group with fewer than three runs has NaN intervals.
    """
    import statsmodels.api as sm

    if isinstance(frame, pd.DataFrame) and "cpu_cores" in frame.columns and "pod" in frame.columns:
        if traffic is None:
            raise InvalidArgument("traffic: fitting live proxies needs the traffic they serve: "
                                  "fit(mesh.proxies(...), traffic=mesh.traffic(...))")
        frame = from_live(frame, traffic)
    elif traffic is not None:
        raise InvalidArgument("traffic= applies to a live proxies frame, not to a benchmark frame")
    frame = _benchmark(frame)
    if not 0 < level < 1:
        raise InvalidArgument(f"level: must be between 0 and 1, got {level!r}")
    by = list(by)
    unknown = [c for c in by if c not in frame.columns]
    if unknown:
        raise InvalidArgument(f"by: {unknown} are not columns of the benchmark frame")
    out = []
    for key, group in _groups(frame, by):
        for role in ROLES:
            for suffix, resource in _RESOURCES.items():
                column = f"{role}_{suffix}"
                data = group[["actual_qps", column]].dropna()
                n = len(data)
                if n < 2 or data["actual_qps"].nunique() < 2:
                    continue
                x = data["actual_qps"].to_numpy() / 1e3  # slope in units per 1k rps
                y = data[column].to_numpy()
                result = sm.OLS(y, sm.add_constant(x, has_constant="add")).fit()
                ci = result.conf_int(alpha=1 - level) if n > 2 else np.full((2, 2), math.nan)
                out.append({
                    **dict(zip(by, key, strict=True)), "role": role, "resource": resource,
                    "intercept": result.params[0], "intercept_low": ci[0][0], "intercept_high": ci[0][1],
                    "per_1k_rps": result.params[1], "per_1k_rps_low": ci[1][0], "per_1k_rps_high": ci[1][1],
                    "r2": result.rsquared, "n": float(n),
                    "qps_min": float(data["actual_qps"].min()), "qps_max": float(data["actual_qps"].max()),
                    "qps_mean": float(data["actual_qps"].mean()),
                    "qps_ss": float(((data["actual_qps"] - data["actual_qps"].mean()) ** 2).sum()),
                    "residual_sd": math.sqrt(result.scale) if n > 2 else math.nan,
                })
    columns = [*by, *[c for c in FIT_COLUMNS if c not in by]]
    result_frame = pd.DataFrame(out, columns=columns)
    return _tidy(result_frame, labels=[*by, "role", "resource"])


def _tidy(frame: pd.DataFrame, labels: Sequence[str]) -> pd.DataFrame:
    for name in frame.columns:
        if name in labels:
            frame[name] = frame[name].astype("category")
        elif frame[name].dtype != bool and frame[name].dtype.kind in "iuf":
            frame[name] = frame[name].astype("float64")
    return frame.reset_index(drop=True)


def project(fit: pd.DataFrame, rps: float | None = None, pods: float | None = None,
            workloads: pd.DataFrame | None = None, roles: Sequence[str] | None = None,
            level: float = 0.95) -> pd.DataFrame:
    """The total proxy CPU and memory a target load needs, per mesh, mode, role and resource.

    Every meshed pod runs one proxy; a proxy's cost is the fitted ``intercept + slope ×
    its rps``, so ``pods`` proxies sharing ``rps`` cost ``pods × intercept + slope × rps``
    however the load is spread (the model is linear).

    Parameters
    ----------
    fit : pandas.DataFrame
        The output of :func:`fit`.
    rps, pods : float
        Total requests per second and the number of meshed pods.
    workloads : pandas.DataFrame, optional
        Instead of ``rps`` and ``pods``: one row per workload with columns ``rps`` and
        ``replicas``.
    roles : sequence of str, optional
        The proxy roles to project (default: every role in ``fit``).
    level : float
        Level of the prediction intervals.

    Returns
    -------
    pandas.DataFrame
        ``mesh, mode, role, resource, pods, rps, estimate, low, high, extrapolated``:
        ``low``/``high`` is a prediction interval (the fit's uncertainty plus each
        proxy's own scatter); ``extrapolated`` is True when the rps per pod lies outside
        the loads the model was fitted on.
    """
    from scipy import stats

    required = {"intercept", "per_1k_rps", "n", "qps_mean", "qps_ss", "residual_sd", "role", "resource"}
    if not isinstance(fit, pd.DataFrame) or not required <= set(fit.columns):
        raise InvalidArgument("fit: expected the frame meshlab.capacity.fit returns")
    if workloads is not None:
        if rps is not None or pods is not None:
            raise InvalidArgument("pass either rps= and pods=, or workloads=, not both")
        if not {"rps", "replicas"} <= set(workloads.columns):
            raise InvalidArgument(f"workloads: needs columns 'rps' and 'replicas', has {list(workloads.columns)}")
        total_rps = float(workloads["rps"].sum())
        total_pods = float(workloads["replicas"].sum())
    else:
        if rps is None or pods is None:
            raise InvalidArgument("pass rps= (total requests per second) and pods= (meshed pods), or workloads=")
        total_rps, total_pods = float(rps), float(pods)
    if not (total_rps >= 0 and total_pods > 0):
        raise InvalidArgument(f"rps must be >= 0 and pods > 0, got rps={total_rps}, pods={total_pods}")
    chosen = fit if roles is None else fit[fit["role"].isin(list(roles))]
    if roles is not None and chosen.empty:
        raise InvalidArgument(f"roles: {list(roles)} not in the fit (it has {sorted(set(fit['role']))})")
    keys = [c for c in fit.columns if c not in FIT_COLUMNS or c in ("mesh", "mode", "role", "resource")]
    out = []
    for record in chosen.to_dict("records"):
        a, b = record["intercept"], record["per_1k_rps"] / 1e3
        n, xbar, sxx, sd = record["n"], record["qps_mean"], record["qps_ss"], record["residual_sd"]
        estimate = total_pods * a + b * total_rps
        # Var(pods·a + rps·b) = σ²(pods²/n + (rps - pods·x̄)²/Sxx); each proxy adds its own σ²
        var_mean = sd**2 * (total_pods**2 / n + (total_rps - total_pods * xbar) ** 2 / sxx)
        half = stats.t.ppf(0.5 + level / 2, n - 2) * math.sqrt(var_mean + total_pods * sd**2) if n > 2 else math.nan
        per_pod = total_rps / total_pods
        out.append({**{k: record[k] for k in keys}, "pods": total_pods, "rps": total_rps, "estimate": estimate,
                    "low": estimate - half, "high": estimate + half,
                    "extrapolated": bool(per_pod < record["qps_min"] or per_pod > record["qps_max"])})
    return _tidy(pd.DataFrame(out, columns=[*keys, "pods", "rps", "estimate", "low", "high", "extrapolated"]),
                 labels=keys)


_PERCENTILES = {"p50": "latency_p50_ms", "p90": "latency_p90_ms", "p99": "latency_p99_ms",
                "p999": "latency_p999_ms", "max": "latency_max_ms"}


def _fmt(qps: float) -> str:
    return f"{qps:g}"


def max_rps(frame: pd.DataFrame, slo_ms: float, percentile: str = "p99", max_error_ratio: float = 0.001,
            saturation: float = 0.95, by: Sequence[str] = ("mesh", "mode", "connections")) -> pd.DataFrame:
    """The highest load that meets a latency SLO, per mesh, mode and connection count.

    A run passes when its latency percentile is at most ``slo_ms``, its error ratio at most
    ``max_error_ratio`` (a source without error counts is not judged on errors) and it is
    not saturated: a run whose ``actual_qps`` is below ``saturation × requested_qps``
    did not carry the load asked for, so it fails that load. A load level (a
    ``requested_qps``) passes when every run at it passes.

    The headline ``max_rps_measured`` is the highest level that passes with every lower
    level passing too. ``min_rps_failing`` is the lowest failing level.
    ``max_rps_interpolated`` interpolates the percentile linearly between those two
    levels (when the failure is the latency); it is an interpolation, never a
    measurement. Sweeps are not always monotone (a level can pass above one that
    failed): ``monotone`` is False then and ``note`` names the levels. When every level
    passes, the answer is "beyond the measured range" and nothing is extrapolated.

    Returns
    -------
    pandas.DataFrame
        ``mesh, mode, connections, slo_ms, percentile, max_rps_measured,
        min_rps_failing, max_rps_interpolated, monotone, note``.
    """
    frame = _benchmark(frame)
    if percentile not in _PERCENTILES:
        raise InvalidArgument(f"percentile: {percentile!r} is not one of {list(_PERCENTILES)}")
    if not slo_ms > 0:
        raise InvalidArgument(f"slo_ms: must be a positive number of milliseconds, got {slo_ms!r}")
    if not 0 <= max_error_ratio <= 1:
        raise InvalidArgument(f"max_error_ratio: must be between 0 and 1, got {max_error_ratio!r}")
    column = _PERCENTILES[percentile]
    by = list(by)
    out = []
    for key, group in _groups(frame, by):
        notes: list[str] = []
        unknown_load = group["requested_qps"].isna()
        if unknown_load.any():
            notes.append(f"{int(unknown_load.sum())} run(s) at max qps left out (no requested load)")
        group = group[~unknown_load]
        levels = []
        for qps, runs in group.groupby("requested_qps", sort=True):
            latency = runs[column]
            saturated = runs["actual_qps"] < saturation * runs["requested_qps"]
            errors = runs["error_ratio"] > max_error_ratio  # NaN (not reported) is not a failure
            slow = latency > slo_ms
            unmeasured = latency.isna() & ~errors
            reasons = []
            if saturated.any():
                reasons.append(f"saturated (actual {runs['actual_qps'].min():.4g} qps)")
            if errors.any():
                reasons.append(f"error ratio {runs['error_ratio'].max():.3g}")
            if slow.any():
                reasons.append(f"{percentile} {latency.max():.4g} ms")
            if unmeasured.any():
                reasons.append(f"no {percentile}")
            levels.append((float(qps), not reasons, float(latency.max()), bool(slow.any()), reasons))
        row: dict[str, Any] = {**dict(zip(by, key, strict=True)), "slo_ms": float(slo_ms), "percentile": percentile,
                               "max_rps_measured": math.nan, "min_rps_failing": math.nan,
                               "max_rps_interpolated": math.nan, "monotone": True}
        if not levels:
            row["note"] = "; ".join([*notes, "no run with a requested load"])
            out.append(row)
            continue
        first_fail = next((i for i, level in enumerate(levels) if not level[1]), None)
        if first_fail is None:
            row["max_rps_measured"] = levels[-1][0]
            notes.insert(0, f"beyond the measured range: every level up to {_fmt(levels[-1][0])} qps meets "
                            f"{percentile} <= {slo_ms:g} ms; not extrapolated")
        else:
            failing = levels[first_fail]
            row["min_rps_failing"] = failing[0]
            saturated_levels = [_fmt(lv[0]) for lv in levels if any(r.startswith("saturated") for r in lv[4])]
            if first_fail == 0:
                notes.insert(0, f"fails at the lowest measured level, {_fmt(failing[0])} qps "
                                f"({', '.join(failing[4])})")
            else:
                passing = levels[first_fail - 1]
                row["max_rps_measured"] = passing[0]
                head = f"meets the SLO up to {_fmt(passing[0])} qps; fails at {_fmt(failing[0])} qps " \
                       f"({', '.join(failing[4])})"
                if failing[3] and len(failing[4]) == 1 and passing[2] <= slo_ms < failing[2]:
                    fraction = (slo_ms - passing[2]) / (failing[2] - passing[2])
                    row["max_rps_interpolated"] = passing[0] + fraction * (failing[0] - passing[0])
                    head += f"; interpolated {row['max_rps_interpolated']:.4g} qps (linear in {percentile} " \
                            "between the two levels, not measured)"
                else:
                    head += "; no interpolation (the failure is not the latency alone)"
                notes.insert(0, head)
            above = [lv for lv in levels[first_fail + 1:] if lv[1]]
            if above:
                row["monotone"] = False
                notes.append(f"not monotone: {', '.join(_fmt(lv[0]) for lv in above)} qps pass(es) above "
                             f"{_fmt(failing[0])} qps, which fails; the headline is the highest level with every "
                             "lower level passing")
            if saturated_levels:
                notes.append(f"saturated at {', '.join(saturated_levels)} qps (actual < "
                             f"{saturation:.0%} of requested): those loads were not met")
        row["note"] = "; ".join(notes)
        out.append(row)
    columns = [*by, "slo_ms", "percentile", "max_rps_measured", "min_rps_failing", "max_rps_interpolated",
               "monotone", "note"]
    result = pd.DataFrame(out, columns=columns)
    result = _tidy(result, labels=[c for c in by if c not in ("connections",)] + ["percentile"])
    result["monotone"] = result["monotone"].astype(bool)
    result["note"] = result["note"].astype("string")
    return result


