"""Altair charts of meshlab frames, rendered offline.

Every chart takes a meshlab frame as it comes (``traffic``, ``edges``, ``benchmark``, or the
analysis frames from :func:`meshlab.compare` and :mod:`meshlab.capacity`), aggregates or
downsamples it so the chart ships at most a few thousand rows, and has tooltips everywhere.
Times are shown in UTC. :func:`save` writes PNG, SVG or HTML with no network access.

Importing this module imports altair; ``import meshlab`` does not.
"""

from __future__ import annotations

from ._analysis import capacity, comparison, latency_vs_load
from ._prep import DEFAULT_MAX_ROWS, downsample
from ._save import FORMATS, save, to_html
from ._timeseries import golden_signals
from ._workloads import edge_matrix, latency_by_mesh, worst_workloads

__all__ = ["DEFAULT_MAX_ROWS", "FORMATS", "capacity", "comparison", "downsample", "edge_matrix", "golden_signals",
           "latency_by_mesh", "latency_vs_load", "save", "to_html", "worst_workloads"]
