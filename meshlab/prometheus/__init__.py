"""The Prometheus source: HTTP client, response parsing, safe PromQL, local servers."""

from __future__ import annotations

from . import promql
from .client import MAX_POINTS_PER_SERIES, Prometheus
from .interop import from_prometheus_pandas

__all__ = ["MAX_POINTS_PER_SERIES", "Prometheus", "from_prometheus_pandas", "promql"]
