"""Proxy CPU and memory saved as Prometheus API JSON, joined to benchmark runs by time window.

The files are what ``curl .../api/v1/query_range`` writes (``{"status": "success", "data":
{"resultType": "matrix", "result": [...]}}``) or what ``promtool query range -o json``
prints (the bare list of series), for a CPU query in cores (e.g.
``rate(container_cpu_usage_seconds_total{container="istio-proxy"}[1m])``) and a memory query
in bytes (e.g. ``container_memory_working_set_bytes{container="istio-proxy"}``).

Each series is assigned a proxy role (client, server, gateway) by a regular expression on
one of its labels (the pod name by default). A run's cost per role is the mean, over the
samples inside its window, of the mean over that role's series: the cost of one proxy.
The window starts ``warmup`` after the run's start (the first ``rate`` window still
carries the previous run's load) and ends ``duration_s`` after it.
"""

from __future__ import annotations

import glob
import json
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Union

import numpy as np
import pandas as pd

from ...errors import InvalidArgument
from ...timeutil import to_timedelta

__all__ = ["DEFAULT_ROLES", "join_cost", "read_series"]

#: role -> regular expression on the pod name, as Istio's perf/benchmark names its pods
DEFAULT_ROLES = {"client": r"^fortioclient-", "server": r"^fortioserver-", "gateway": r"ingressgateway"}
#: resource -> (column suffix, factor from the query's unit: cores -> millicores, bytes -> MiB)
RESOURCES = {"cpu": ("cpu_mcores", 1e3), "memory": ("mem_mib", 1 / 2**20)}
_MIB = 2**20

CostSource = Union[str, os.PathLike, Mapping[str, Any], Sequence[Any]]


def _files(source: str | os.PathLike) -> list[str]:
    text = os.fspath(source)
    if os.path.isdir(text):
        found = sorted(str(p) for p in Path(text).rglob("*.json"))
        if not found:
            raise InvalidArgument(f"cost: directory {text!r} holds no .json file")
        return found
    if os.path.exists(text):
        return [text]
    if glob.has_magic(text):
        matched = sorted(m for m in glob.glob(text, recursive=True) if os.path.isfile(m))
        if matched:
            return matched
        raise InvalidArgument(f"cost: the pattern {text!r} matches no file")
    raise InvalidArgument(f"cost: no such file or directory: {text!r}")


def _series_of(doc: Any, where: str) -> list[Mapping[str, Any]]:
    """The matrix series of a query_range response or of promtool's bare list."""
    if isinstance(doc, Mapping):
        if doc.get("status") not in (None, "success"):
            raise InvalidArgument(f"cost: {where} is a failed query ({doc.get('errorType')}: {doc.get('error')})")
        data = doc.get("data")
        if not isinstance(data, Mapping) or data.get("resultType") != "matrix":
            raise InvalidArgument(f"cost: {where} is not a range query result (resultType "
                                  f"{data.get('resultType') if isinstance(data, Mapping) else None!r}); save "
                                  "/api/v1/query_range or `promtool query range -o json` output")
        doc = data.get("result")
    if not isinstance(doc, list) or not all(isinstance(s, Mapping) and "values" in s for s in doc):
        raise InvalidArgument(f"cost: {where} is not Prometheus range-query JSON (a matrix of series with "
                              "'metric' and 'values')")
    return doc


def read_series(source: CostSource) -> list[tuple[dict[str, str], pd.Series]]:
    """Every series in the files (or decoded documents) of ``source``: (labels, values by UTC time)."""
    items: list[tuple[str, Any]] = []
    if isinstance(source, (str, os.PathLike)):
        for path in _files(source):
            try:
                with open(path, encoding="utf-8") as f:
                    items.append((path, json.load(f)))
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise InvalidArgument(f"cost: {path!r} is not JSON ({exc})") from None
    elif isinstance(source, Mapping):
        items.append(("<document>", source))
    elif isinstance(source, Sequence) and source and all(isinstance(s, Mapping) and "values" in s for s in source):
        items.append(("<series list>", source))
    elif isinstance(source, Sequence) and source:
        return [series for part in source for series in read_series(part)]
    else:
        raise InvalidArgument(f"cost: expected a path, a glob, a directory, a decoded query_range response or a "
                              f"list of them, got {type(source).__name__}")
    out: list[tuple[dict[str, str], pd.Series]] = []
    for where, doc in items:
        for series in _series_of(doc, where):
            values = series["values"]
            stamps = pd.to_datetime([float(t) for t, _ in values], unit="s", utc=True).as_unit("ns")
            numbers = np.array([float(v) for _, v in values], dtype=np.float64)
            out.append(({str(k): str(v) for k, v in (series.get("metric") or {}).items()},
                        pd.Series(numbers, index=stamps)))
    return out


def _check_memory(labels: Mapping[str, str], values: pd.Series, where: str) -> None:
    """Refuse a "memory" series that is a counter or behaves like a rate (bytes per second)."""
    name = labels.get("__name__", "")
    described = f"memory series {dict(labels)} ({where})"
    if name.endswith(("_total", "_per_second")) or "rate" in name:
        raise InvalidArgument(f"cost: {described} is named {name!r}, a counter or a rate, not bytes in use; "
                              "query the working set, e.g. container_memory_working_set_bytes{container=...}")
    live = values.dropna()
    if live.empty:
        return
    median, low, high = float(live.median()), float(live.min()), float(live.max())
    if median < _MIB:
        raise InvalidArgument(f"cost: {described} has a median of {median:.4g}, under 1 MiB: no proxy runs in "
                              "that, so these look like bytes per second (a rate()), not bytes. Query the "
                              "working set, e.g. container_memory_working_set_bytes{container=...}, without rate()")
    if high > 0 and low < 0.1 * high:
        raise InvalidArgument(f"cost: {described} falls from {high:.4g} to {low:.4g}: a process's working set "
                              "does not lose 90 % between scrapes, a rate does, so these look like bytes per "
                              "second rather than bytes. Query the working set without rate()")


def join_cost(frame: pd.DataFrame, cost: Mapping[str, CostSource], roles: Mapping[str, str] | None = None,
              role_label: str = "pod", warmup: str | float | pd.Timedelta = "1m") -> pd.DataFrame:
    """Fill a benchmark frame's proxy cost columns from Prometheus range-query JSON.

    Parameters
    ----------
    frame : pandas.DataFrame
        Benchmark rows with ``timestamp`` (the run's start) and ``duration_s``.
    cost : mapping
        ``{"cpu": source, "memory": source}`` (either or both): CPU in cores, memory in
        bytes; a source is a file, directory, glob, decoded document or a list of them.
    roles : mapping, optional
        Role (``client``, ``server``, ``gateway``) -> regular expression searched in the
        ``role_label`` label (default :data:`DEFAULT_ROLES`, Istio perf/benchmark's pods).
    role_label : str
        The label the role expressions read.
    warmup : duration
        Left out at the start of every run (``"1m"``, seconds as a number, or a Timedelta).

    Returns
    -------
    pandas.DataFrame
        A copy of ``frame`` with ``{role}_cpu_mcores`` and ``{role}_mem_mib`` filled where
        series cover the run's window (existing values are replaced; runs no sample covers
        keep theirs and get a note).
    """
    if not isinstance(cost, Mapping) or not cost or set(cost) - set(RESOURCES):
        raise InvalidArgument(f"cost: expected a mapping with keys 'cpu' (cores) and/or 'memory' (bytes), "
                              f"e.g. cost={{'cpu': 'cpu.json', 'memory': 'mem.json'}}, got {cost!r}")
    roles = dict(DEFAULT_ROLES if roles is None else roles)
    unknown = set(roles) - {"client", "server", "gateway"}
    if unknown:
        raise InvalidArgument(f"roles: {sorted(unknown)} are not proxy roles; use client, server, gateway")
    patterns = {}
    for role, pattern in roles.items():
        try:
            patterns[role] = re.compile(pattern)
        except re.error as exc:
            raise InvalidArgument(f"roles: {role}={pattern!r} is not a regular expression ({exc})") from None
    skip = to_timedelta(warmup, name="warmup") if not isinstance(warmup, pd.Timedelta) else warmup
    if skip < pd.Timedelta(0):
        raise InvalidArgument(f"warmup: must not be negative, got {warmup!r}")
    out = frame.copy()
    if out["timestamp"].isna().any() or out["duration_s"].isna().any():
        bad = out.loc[out["timestamp"].isna() | out["duration_s"].isna(), "run_id"].astype(str).tolist()
        raise InvalidArgument(f"cost: runs {bad[:5]} have no start time or duration, so no window to join the "
                              "cost to; their source does not say when they ran")
    notes = out["note"].astype(object).fillna("").tolist()
    for resource, source in cost.items():
        suffix, factor = RESOURCES[resource]
        by_role: dict[str, list[pd.Series]] = {role: [] for role in patterns}
        series = read_series(source)
        for labels, values in series:
            if resource == "memory":
                _check_memory(labels, values, str(source))
            value = labels.get(role_label)
            if value is None:
                continue
            for role, compiled in patterns.items():
                if compiled.search(value):
                    by_role[role].append(values)
                    break
        if not any(by_role.values()):
            raise InvalidArgument(f"cost: no {resource} series has a {role_label!r} label matching the roles "
                                  f"{roles}; labels seen: {[labels for labels, _ in series][:3]}")
        for role, parts in by_role.items():
            if not parts:
                continue
            proxy = pd.concat(parts, axis=1).mean(axis=1).sort_index()  # the mean proxy of the role
            column = f"{role}_{suffix}"
            for i, (start, seconds) in enumerate(zip(out["timestamp"], out["duration_s"], strict=True)):
                begin, end = start + skip, start + pd.Timedelta(seconds=float(seconds))
                inside = proxy[(proxy.index > begin) & (proxy.index <= end)].dropna()
                if inside.empty:
                    notes[i] = "; ".join(filter(None, [notes[i], f"no {resource} sample of the {role} proxy "
                                                                 f"after the {skip} warm-up"]))
                    continue
                out.loc[out.index[i], column] = float(inside.mean()) * factor
    out["note"] = pd.Series(notes, index=out.index, dtype="string")
    return out
