"""Test helpers that count what a server holds (not part of the library)."""

from __future__ import annotations

from meshlab.prometheus.client import Prometheus

__all__ = ["stored_samples"]


def stored_samples(client: Prometheus, at: float, lookback: str = "2h") -> float:
    """How many samples of every metric ``client``'s server holds in ``lookback`` before ``at`` (unix seconds).

    A load must keep every sample written (promtool, for one, silently drops out-of-order
    ones), so tests and benchmarks compare this with the count written. One query per
    metric name: ``count_over_time`` drops names, which would make series collide.
    """
    return float(sum(client.query(f"sum(count_over_time({name}[{lookback}]))", time=at)["value"].sum()
                     for name in client.get("label/__name__/values")))
