"""Meshery / Service Mesh Performance (SMP) documents.

Two shapes:

- Meshery results, which wrap Fortio's results in ``runner_results`` (the shape of SMP's
  published ``test-results.json``); each runner result becomes one run, the document's
  ``mesh`` (null: no mesh) labels it;
- SMP ``PerformanceTestResult`` documents (``smp_version``, ``latencies_ms``,
  ``actual_QPS``, ``labels``), as :func:`meshlab.write_smp` writes them: latency in
  milliseconds, everything the message has no field for in ``labels`` as exact decimal
  strings, so a written frame reads back equal.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pandas as pd

from . import fortio

__all__ = ["is_meshery", "is_smp_result", "meshery_rows", "smp_rows", "to_smp"]

SMP_VERSION = "v0.0.1"
_LATENCY = {"p50": "latency_p50_ms", "p90": "latency_p90_ms", "p99": "latency_p99_ms", "max": "latency_max_ms"}
_LABEL_PREFIX = "meshlab."
_TEXT = ("mesh", "mode", "sidecars", "source", "latency_coarse", "note")  # the other labels are numbers


def _first(doc: object) -> object:
    return doc[0] if isinstance(doc, list) and doc else doc


def is_meshery(doc: object) -> bool:
    """Whether a parsed JSON document is a Meshery result (or a list of them)."""
    first = _first(doc)
    return isinstance(first, Mapping) and "runner_results" in first


def is_smp_result(doc: object) -> bool:
    """Whether a parsed JSON document is an SMP PerformanceTestResult (or a list of them)."""
    first = _first(doc)
    return isinstance(first, Mapping) and any(k in first for k in ("latencies_ms", "latenciesMs")) and any(
        k in first for k in ("smp_version", "smpVersion", "actual_QPS", "actualQPS"))


def meshery_rows(doc: object, source: str) -> list[dict[str, Any]]:
    """Rows from Meshery result documents: one per Fortio runner result."""
    out = []
    for i, result in enumerate(doc if isinstance(doc, list) else [doc]):
        runners = result.get("runner_results") or []
        if isinstance(runners, Mapping):
            runners = [runners]
        for j, runner in enumerate(runners):
            run_id = str(result.get("meshery_id") or result.get("name") or f"{source}#{i}")
            if len(runners) > 1:
                run_id += f"#{j}"
            row = fortio.run_row(runner, source, run_id)
            row["mesh"] = result.get("mesh") or "none"  # Meshery writes null for a run without a mesh
            if row["mesh"] == "none":
                row["sidecars"] = "none"
            out.append(row)
    return out


def _float(text: object) -> float:
    return math.nan if text is None or text == "" else float(text)  # type: ignore[arg-type]


def smp_rows(doc: object, source: str) -> list[dict[str, Any]]:
    """Rows from SMP PerformanceTestResult documents."""
    out = []
    for i, result in enumerate(doc if isinstance(doc, list) else [doc]):
        latency = result.get("latencies_ms") or result.get("latenciesMs") or {}
        labels = dict(result.get("labels") or {})
        mine = {k[len(_LABEL_PREFIX):]: v for k, v in labels.items() if k.startswith(_LABEL_PREFIX)}
        start = result.get("start_time") or result.get("startTime")
        row: dict[str, Any] = {
            "timestamp": pd.to_datetime(start, utc=True) if start else pd.NaT,
            "run_id": result.get("id") or f"{source}#{i}",
            "source": source,
            "actual_qps": _float(result.get("actual_QPS", result.get("actualQPS"))),
        }
        for key, column in _LATENCY.items():
            row[column] = _float(latency.get(key))
        for key, value in mine.items():
            row[key] = _float(value) if key not in _TEXT else value
        if "note" not in row:
            row["note"] = ""
        out.append(row)
    return out


def to_smp(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """SMP PerformanceTestResult documents (JSON-ready dicts) for the rows of a benchmark frame."""
    docs = []
    for record in frame.to_dict("records"):
        labels = {}
        for column, value in record.items():
            if column in ("timestamp", "run_id", "actual_qps", *_LATENCY.values()):
                continue
            if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
                continue
            # repr() of a float is the shortest string that reads back to the same double
            labels[_LABEL_PREFIX + str(column)] = repr(float(value)) if isinstance(value, (int, float)) else str(value)
        doc: dict[str, Any] = {"smp_version": SMP_VERSION, "id": str(record["run_id"]), "labels": labels}
        start = record["timestamp"]
        if start is not pd.NaT and not pd.isna(start):
            doc["start_time"] = start.strftime("%Y-%m-%dT%H:%M:%S.%f") + f"{start.nanosecond:03d}Z"
            duration = record.get("duration_s")
            if duration is not None and not math.isnan(duration):
                end = start + pd.Timedelta(seconds=duration)
                doc["end_time"] = end.strftime("%Y-%m-%dT%H:%M:%S.%f") + f"{end.nanosecond:03d}Z"
        doc["latencies_ms"] = {key: float(record[column]) for key, column in _LATENCY.items()
                               if not math.isnan(record[column])}
        if not math.isnan(record["actual_qps"]):
            doc["actual_QPS"] = float(record["actual_qps"])
        docs.append(doc)
    return docs
