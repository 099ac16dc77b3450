"""Istio's ``perf/benchmark`` CSV (``graph_plotter``'s input).

Each row is one Fortio run. ``Labels`` encodes
``{build}_qps_{qps}_c_{connections}_{payload}_{configuration}_{sidecar mode}``, e.g.
``ecbc1c65_qps_1000_c_8_1024_v2-stats-nullvm_both``; the sidecar mode ``baseline`` means
no proxy in the request path (mesh ``"none"``). p50/p90/p99 are in microseconds,
``cpu_mili_avg_*`` in millicores and ``mem_Mi_avg_*`` in MiB per proxy role.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

import pandas as pd

__all__ = ["LABELS", "is_istio_csv", "parse_labels", "rows"]

LABELS = re.compile(r"^(?P<build>[^_]+)_qps_(?P<qps>[^_]+)_c_(?P<connections>\d+)_(?P<payload>\d+)_(?P<rest>.+)$")
# Istio's runner.py sidecar modes -> the benchmark frame's sidecars
_SIDECARS = {"baseline": "none", "both": "both", "serveronly": "server", "clientonly": "client", "ingress": "ingress",
             "server": "server", "client": "client"}
_ROLE = {"fortioclient": "client", "fortioserver": "server", "istio-ingressgateway": "gateway"}
_COST = re.compile(r"^(?P<kind>cpu_mili|mem_Mi)_avg_istio_proxy_(?P<who>.+)$")
_LATENCY_US = {"p50": "latency_p50_ms", "p90": "latency_p90_ms", "p99": "latency_p99_ms", "p999": "latency_p999_ms"}


def is_istio_csv(columns: Sequence[str]) -> bool:
    """Whether a CSV header is Istio's perf/benchmark layout."""
    names = set(columns)
    return {"Labels", "NumThreads", "ActualQPS", "p50"} <= names


def parse_labels(labels: str) -> dict[str, Any]:
    """Requested qps, connections, payload, mode, sidecars and mesh from an Istio ``Labels`` value.

    >>> parse_labels("ff93ac4f_qps_10_c_16_1024_none_mtls_baseline")["mesh"]
    'none'
    >>> sorted(parse_labels("ecbc1c65_qps_1000_c_8_1024_v2-stats-nullvm_both").items())
    ... # doctest: +NORMALIZE_WHITESPACE
    [('connections', 8.0), ('mesh', 'istio'), ('mode', 'v2-stats-nullvm'), ('payload_bytes', 1024.0),
     ('requested_qps', 1000.0), ('sidecars', 'both')]
    """
    match = LABELS.match(labels)
    if match is None:
        return {}
    rest = match["rest"]
    config, _, side = rest.rpartition("_")
    sidecars: object = _SIDECARS.get(side)
    if sidecars is None:  # no known sidecar mode at the end: the whole rest is the configuration
        config, sidecars = rest, math.nan
    qps = match["qps"]
    return {
        "requested_qps": math.nan if qps.lower() == "max" else float(qps),
        "connections": float(match["connections"]),
        "payload_bytes": float(match["payload"]),
        "mode": config,
        "sidecars": sidecars,
        "mesh": "none" if sidecars == "none" else "istio",
    }


def rows(table: pd.DataFrame, source: str) -> list[dict[str, Any]]:
    """Rows of the benchmark frame from Istio's CSV, read as a frame of strings."""
    out = []
    for i, record in enumerate(table.to_dict("records")):
        parsed = parse_labels(str(record["Labels"]))
        row: dict[str, Any] = {
            "timestamp": pd.to_datetime(record["StartTime"], utc=True) if record.get("StartTime") else pd.NaT,
            "run_id": f"{record['Labels']}@{record.get('StartTime', i)}",
            "source": source,
            "actual_qps": float(record["ActualQPS"]),
            "connections": float(record["NumThreads"]),
            "duration_s": float(record["ActualDuration"]) if record.get("ActualDuration") else math.nan,
            **{k: v for k, v in parsed.items() if k != "connections"},
            "note": "" if parsed else f"Labels {record['Labels']!r} not in Istio's qps_N_c_N_PAYLOAD_MODE form",
        }
        for key, column in _LATENCY_US.items():
            if key in record and record[key] not in ("", None):
                row[column] = float(record[key]) / 1e3  # microseconds
        for name, value in record.items():
            cost = _COST.match(str(name))
            if cost is None or cost["who"] not in _ROLE or value in ("", None):
                continue
            kind = "cpu_mcores" if cost["kind"] == "cpu_mili" else "mem_mib"
            row[f"{_ROLE[cost['who']]}_{kind}"] = float(value)
        out.append(row)
    return out
