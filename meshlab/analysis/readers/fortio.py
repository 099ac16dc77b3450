"""Fortio JSON results (``fortio load -json``), and Fortio's own percentile estimate.

Fortio keeps latency in a histogram of fixed buckets (seconds). ``Percentiles`` holds the
estimates Fortio computed when it ran; many saved results have ``"Percentiles": null``,
and then :func:`percentile` computes them from the buckets exactly as Fortio's
``HistogramData.CalcPercentile`` does: linear within the bucket that holds the
percentile, the first bucket starting at ``Min``, and at most ``100 / Count`` percent
answered with ``Min``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

__all__ = ["PERCENTILES", "bucket_index", "is_fortio", "percentile", "run_row"]

#: percentile -> benchmark column
PERCENTILES = {50.0: "latency_p50_ms", 90.0: "latency_p90_ms", 99.0: "latency_p99_ms", 99.9: "latency_p999_ms"}
_OK = {"SERVING", "OK"}  # gRPC health and TCP runners' success codes


def is_fortio(doc: object) -> bool:
    """Whether a parsed JSON document is one Fortio result."""
    return isinstance(doc, Mapping) and "DurationHistogram" in doc and "RetCodes" in doc


def percentile(hist: Mapping[str, Any], p: float) -> float:
    """Fortio's estimate of percentile ``p`` (0-100) from a ``DurationHistogram``, in its unit.

    Examples
    --------
    Ten requests: four in the first bucket (from Min), five up to 2 ms, one up to Max.

    >>> h = {"Count": 10, "Min": 0.0005, "Max": 0.0035, "Data": [
    ...     {"Start": 0.0005, "End": 0.001, "Percent": 40}, {"Start": 0.001, "End": 0.002, "Percent": 90},
    ...     {"Start": 0.002, "End": 0.0035, "Percent": 100}]}
    >>> round(percentile(h, 50) * 1e3, 9), round(percentile(h, 99) * 1e3, 9), percentile(h, 5)
    (1.2, 3.35, 0.0005)
    """
    data = hist.get("Data") or []
    if not data:
        return math.nan
    if p >= 100:
        return float(hist["Max"])
    prev = 100.0 / float(hist["Count"])
    if p <= prev:
        return float(hist["Min"])
    for bucket in data:
        if p <= bucket["Percent"]:
            return float(bucket["Start"] + (p - prev) / (bucket["Percent"] - prev) * (bucket["End"] - bucket["Start"]))
        prev = bucket["Percent"]
    return float(hist["Max"])


def bucket_index(hist: Mapping[str, Any], p: float) -> int:
    """The index of the bucket :func:`percentile` reads percentile ``p`` from."""
    data = hist["Data"]
    if p >= 100:
        return len(data) - 1
    if p <= 100.0 / float(hist["Count"]):
        return 0
    for i, bucket in enumerate(data):
        if p <= bucket["Percent"]:
            return i
    return len(data) - 1


def _error_ratio(codes: Mapping[str, Any]) -> tuple[float, float]:
    """(error ratio, requests counted) from RetCodes: HTTP 2xx and gRPC SERVING/TCP OK succeed."""
    total = float(sum(codes.values()))
    if total == 0:
        return math.nan, 0.0
    ok = sum(n for code, n in codes.items() if str(code) in _OK or (str(code).isdigit() and 200 <= int(code) < 300))
    return 1.0 - ok / total, total


def _qps(value: object) -> float:
    if value is None or (isinstance(value, str) and value.strip().lower() in ("max", "", "0", "-1")):
        return math.nan  # Fortio's "max" (and 0/-1, its spellings of no limit)
    return float(value)  # type: ignore[arg-type]


def run_row(result: Mapping[str, Any], source: str, run_id: str) -> dict[str, Any]:
    """One ``benchmark`` row (a dict) from one Fortio result."""
    hist = result.get("DurationHistogram") or {}
    error_ratio, counted = _error_ratio(result.get("RetCodes") or {})
    row: dict[str, Any] = {
        "timestamp": pd.to_datetime(result["StartTime"], utc=True) if result.get("StartTime") else pd.NaT,
        "run_id": run_id,
        "source": source,
        "requested_qps": _qps(result.get("RequestedQPS")),
        "actual_qps": float(result.get("ActualQPS", math.nan)),
        "connections": float(result.get("NumThreads", math.nan)),
        "duration_s": float(result["ActualDuration"]) / 1e9 if result.get("ActualDuration") else math.nan,
        "requests": float(hist.get("Count", counted)),
        "error_ratio": error_ratio,
    }
    own = {float(p["Percentile"]): float(p["Value"]) for p in (hist.get("Percentiles") or [])}
    data = hist.get("Data") or []
    coarse, widths = [], []
    for p, column in PERCENTILES.items():
        value = own[p] if p in own else percentile(hist, p)  # Fortio's own figure first, the same formula otherwise
        row[column] = value * 1e3
        if data:
            bucket = data[bucket_index(hist, p)]
            width = float(bucket["End"]) - float(bucket["Start"])
            widths.append(width * 1e3)
            if bucket is data[0] or width > value:
                coarse.append(column[len("latency_"):-len("_ms")])
    row["latency_max_ms"] = float(hist["Max"]) * 1e3 if "Max" in hist and data else math.nan
    row["latency_resolution_ms"] = max(widths) if widths else math.nan
    row["latency_coarse"] = ",".join(coarse) if data else math.nan
    notes = []
    if error_ratio == 1.0:
        # a run whose every request failed measured failures, not service: never a "fast" run
        for column in (*PERCENTILES.values(), "latency_max_ms"):
            row[column] = math.nan
        row["latency_resolution_ms"] = math.nan
        row["latency_coarse"] = math.nan
        notes.append(f"every request failed (RetCodes {dict(result.get('RetCodes') or {})}): latency not reported")
    elif error_ratio > 0:
        notes.append(f"{error_ratio:.1%} of requests failed (RetCodes {dict(result.get('RetCodes') or {})})")
    if math.isnan(row["requested_qps"]):
        notes.append("requested qps: max")
    row["note"] = "; ".join(notes)
    return row


def rows(doc: object, source: str) -> list[dict[str, Any]]:
    """Rows from a Fortio document: one result, or a list of them."""
    results: Sequence[Any] = doc if isinstance(doc, list) else [doc]
    out = []
    for i, result in enumerate(results):
        run_id = str(result.get("RunID") or "") or (source if len(results) == 1 else f"{source}#{i}")
        if len(results) > 1 and not result.get("RunID"):
            run_id = f"{source}#{i}"
        out.append(run_row(result, source, run_id))
    return out
