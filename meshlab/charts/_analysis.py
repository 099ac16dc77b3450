"""The analysis frames: mesh comparisons with intervals, capacity (cost against load), latency against load."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import altair as alt
import numpy as np
import pandas as pd

from ..errors import InvalidArgument
from . import _prep
from ._common import _WIDTH, _modes_matter, _require, _unit_title

__all__ = ["capacity", "comparison", "latency_vs_load"]


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


def comparison(compare: pd.DataFrame, *, metrics: Sequence[str] | None = None) -> alt.VConcatChart:
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
    color = alt.Color("who:N", title="mesh")
    opacity = alt.condition(pick, alt.value(1.0), alt.value(0.15))
    # one chart per metric in a vconcat, not a facet: each metric has its own unit and keys, and a facet with
    # independent scales over the layers' differently filtered data makes Vega-Lite warn about unioned domains
    panels: list[Any] = []
    for i, panel in enumerate(dict.fromkeys(data["panel"])):
        keys = [k for k in order if ((data["panel"] == panel) & (data["key"] == k)).any()]
        unit = str(data.loc[data["panel"] == panel, "unit"].iloc[0])
        x_title = f"difference from the baseline ({unit})"
        mine = alt.FieldEqualPredicate(field="panel", equal=panel)
        base = alt.Chart().encode(alt.Y("key:N", sort=keys, title="matched on"), alt.YOffset("who:N"), color,
                                  opacity=opacity, tooltip=tips).transform_filter(mine)
        bars = base.mark_rule(strokeWidth=2).encode(alt.X("delta_low:Q", title=x_title), alt.X2("delta_high:Q"))
        # ordinal, not nominal: Vega-Lite warns against an opacity channel on an unsorted discrete field
        dots = base.mark_point(size=60).encode(
            alt.X("delta:Q", title=x_title), alt.Fill("who:N", legend=None),
            alt.FillOpacity("resolved:O", scale=alt.Scale(domain=[True, False], range=[1.0, 0.0]),
                            legend=alt.Legend(title="beyond bucket resolution")))
        if i == 0:  # a parameter is declared once; the other panels refer to it by name
            dots = dots.add_params(pick)
        zero = alt.Chart().mark_rule(color="gray", strokeDash=[4, 3]).encode(
            x=alt.datum(0), tooltip=[alt.Tooltip("baseline:N", title="zero: same as baseline")])
        panels.append(alt.layer(zero, bars, dots).properties(
            width=_WIDTH - 120, height=alt.Step(14), title=alt.TitleParams(panel, anchor="start", fontSize=12)))
    heading = "Difference from the baseline per mesh (bars: 95 % interval; hollow: within bucket resolution)"
    return alt.vconcat(*panels, data=data, title=heading).resolve_scale(color="shared", fill="shared")


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
    # the rule and its label come from the panel's data: once per panel, not once per run drawn on top of itself
    once = {"window": [{"op": "row_number", "as": "slo_row"}], "groupby": ["panel"]}
    slo = slo.transform_window(**once).transform_filter("datum.slo_row == 1")
    slo_label = slo_label.transform_window(**once).transform_filter("datum.slo_row == 1")
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
