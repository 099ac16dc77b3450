"""A small synthetic request history for the demo and the first notebook.

This stands in until the mesh traffic simulator and the bundled datasets exist: three
workloads with Poisson request counts, as a counter ``demo_requests_total``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .openmetrics import Series, write_openmetrics

__all__ = ["DEMO_END_MS", "DEMO_WORKLOADS", "write_demo_history"]

#: The history ends here (2023-11-14T22:13:20Z) and covers the hour before.
DEMO_END_MS = 1_700_000_000_000
#: (namespace, deployment, mean requests per second)
DEMO_WORKLOADS = (("shop", "frontend", 40.0), ("shop", "cart", 12.0), ("pay", "ledger", 5.0))


def write_demo_history(path: str | os.PathLike[str], *, seed: int = 7) -> Path:
    """Write one hour of ``demo_requests_total`` at a 15 s interval as OpenMetrics."""
    times = np.arange(DEMO_END_MS - 3_600_000, DEMO_END_MS + 1, 15_000)
    rng = np.random.default_rng(seed)
    series = [
        Series("demo_requests_total", {"namespace": namespace, "deployment": workload},
               times, np.cumsum(rng.poisson(rps * 15, size=len(times))).astype(float))
        for namespace, workload, rps in DEMO_WORKLOADS
    ]
    return write_openmetrics(path, series)
