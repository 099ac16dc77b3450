"""A slow, obviously-correct conversion of raw Prometheus API JSON into the tidy frame.

It shares no code with meshlab's parser: the standard json module with Decimal
timestamps, one Python dict per point, and pandas' own inference.
"""

from __future__ import annotations

import json
from decimal import Decimal

import pandas as pd
import requests

RESERVED = ("timestamp", "value")


def column_name(label: str, labels: set[str]) -> str:
    name = label
    while name in RESERVED or (name != label and name in labels):
        name = "label_" + name
    return name


def to_ms(ts: Decimal | int | float) -> int:
    return int((Decimal(ts) * 1000).to_integral_value())


def reference_frame(doc: dict) -> pd.DataFrame:
    """Tidy frame from a decoded (``parse_float=Decimal``) matrix or vector response."""
    data = doc["data"]
    kind = data["resultType"]
    series = data["result"]
    if kind == "scalar":
        series = [{"metric": {}, "value": series}]
    labels = {name for s in series for name in s["metric"]}
    rename = {n: column_name(n, labels) for n in labels}
    rows = []
    for s in series:
        metric = {rename[k]: v for k, v in s["metric"].items()}
        points = s["values"] if kind == "matrix" else [s["value"]]
        for ts, value in points:
            rows.append({**metric, "timestamp": to_ms(ts), "value": float(value)})
    ordered = [rename[n] for n in sorted(labels, key=lambda n: (n != "__name__", n))]
    frame = pd.DataFrame(rows, columns=["timestamp", "value", *ordered])
    frame["timestamp"] = pd.to_datetime(frame["timestamp"].astype("int64"), unit="ms", utc=True).dt.as_unit("ns")
    frame["value"] = frame["value"].astype("float64")
    for name in ordered:
        frame[name] = frame[name].astype("category")
    return frame


def raw_json(url: str, endpoint: str, **params: str) -> dict:
    """GET /api/v1/<endpoint> with plain requests and decode it with Decimal floats."""
    response = requests.get(f"{url}/api/v1/{endpoint}", params=params, timeout=60)
    return json.loads(response.text, parse_float=Decimal)
