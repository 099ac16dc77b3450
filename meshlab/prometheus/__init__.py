"""The Prometheus source: HTTP client, response parsing, safe PromQL, local servers.

Submodules load on first use, so ``meshlab.prometheus.promql`` does not pull in the HTTP stack.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = ["MAX_POINTS_PER_SERIES", "Prometheus", "from_prometheus_pandas", "promql"]

_LAZY = {"MAX_POINTS_PER_SERIES": "client", "Prometheus": "client", "from_prometheus_pandas": "interop",
         "promql": "promql"}

if TYPE_CHECKING:
    from . import promql as promql
    from .client import MAX_POINTS_PER_SERIES as MAX_POINTS_PER_SERIES
    from .client import Prometheus as Prometheus
    from .interop import from_prometheus_pandas as from_prometheus_pandas


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'meshlab.prometheus' has no attribute {name!r}")
    module = importlib.import_module(f"{__name__}.{_LAZY[name]}")
    return module if _LAZY[name] == name else getattr(module, name)
