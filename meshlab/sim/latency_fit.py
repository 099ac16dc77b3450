"""The fit behind the simulator's load-dependent proxy latency (:data:`meshlab.sim.costs.ENVOY_ADDED_LATENCY`).

Source: Istio's own ``perf/benchmark`` results (``istio/tools``
perf/benchmark/graph_plotter/example_plot/benchmark.csv, 2020-08-12; bundled with the tests as
``istio-tools-benchmark.csv``), read with :func:`meshlab.read_benchmark`. For each load level
(requested qps, connections, payload) the latency added by the sidecars is the mean of the
mode's runs minus the mean of the ``*_baseline`` runs (mesh ``"none"``) at the same level, at
p50, p90 and p99. Fortio's client and the server both had a sidecar (``sidecars="both"``), so
one proxy adds half of it.

The model, one per quantile, fitted by least squares (:func:`numpy.linalg.lstsq`)::

    added_ms = a + b * krps + c * log2(connections)

Why this form: a proxy's work per second grows in proportion to the requests it handles, and
the CSV's added p50 grows about linearly from 100 to 3000 qps at 16 connections; the
connection counts double from 2 to 64 at 1000 qps and the added p90 and p99 grow by a roughly
constant amount per doubling (more requests in flight queue inside the proxy), which a
linear term in connections would not follow (it would be flat below 16 and too steep at 64).
For ``v2-stats-nullvm`` (Istio's default telemetry) R² is 0.81 (p50), 0.85 (p90) and 0.83 (p99)
over 11 levels; the largest residual is 0.17, 0.25 and 0.32 ms per proxy. The CSV's
levels run from 10 to 3000 qps and from 2 to 64 connections: the simulator holds
connections inside that range and extrapolates the load term linearly.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import InvalidArgument

__all__ = ["FIT_MODE", "FIT_QUANTILES", "FIT_SOURCE", "added_latency_levels", "fit_added_latency"]

#: The file the constants were fitted to.
FIT_SOURCE = ("istio/tools perf/benchmark/graph_plotter/example_plot/benchmark.csv (2020-08-12), "
              "bundled as istio-tools-benchmark.csv")
#: Istio's default telemetry mode in that CSV.
FIT_MODE = "v2-stats-nullvm"
#: The quantiles the model is fitted at, with the benchmark frame's columns.
FIT_QUANTILES = {0.5: "latency_p50_ms", 0.9: "latency_p90_ms", 0.99: "latency_p99_ms"}
_LEVEL = ["requested_qps", "connections", "payload_bytes"]
_PROXIES = {"both": 2, "client": 1, "server": 1}


def added_latency_levels(frame: pd.DataFrame, mode: str = FIT_MODE) -> pd.DataFrame:
    """The latency one proxy adds at each load level of a benchmark frame, per quantile.

    Parameters
    ----------
    frame : pandas.DataFrame
        A ``benchmark`` frame (:func:`meshlab.read_benchmark`) with runs of ``mode`` and
        baseline runs (mesh ``"none"``) at the same levels.
    mode : str
        The sidecar mode to measure.

    Returns
    -------
    pandas.DataFrame
        One row per level both have: ``requested_qps``, ``connections``, ``payload_bytes``,
        ``krps`` and, per quantile, the added milliseconds per proxy (``latency_p50_ms`` ...).

    Raises
    ------
    InvalidArgument
        If the frame has no runs of ``mode``, or none at a baseline's level.
    """
    quantiles = list(FIT_QUANTILES.values())
    runs = frame[(frame["mesh"].astype(str) != "none") & (frame["mode"].astype(str) == mode)]
    if runs.empty:
        known = sorted(set(frame.loc[frame["mesh"].astype(str) != "none", "mode"].astype(str)))
        raise InvalidArgument(f"mode {mode!r} has no sidecar runs in the frame; modes: {known}")
    sidecars = set(runs["sidecars"].astype(str))
    if len(sidecars) != 1 or next(iter(sidecars)) not in _PROXIES:
        raise InvalidArgument(f"mode {mode!r} mixes or lacks sidecar placements ({sorted(sidecars)}); "
                              "the added latency per proxy needs one of both, client or server")
    proxies = _PROXIES[next(iter(sidecars))]
    base = frame[frame["mesh"].astype(str) == "none"].groupby(_LEVEL)[quantiles].mean()
    mesh = runs.groupby(_LEVEL)[quantiles].mean()
    added = ((mesh - base.reindex(mesh.index)) / proxies).dropna().reset_index()
    if added.empty:
        raise InvalidArgument(f"mode {mode!r}: no baseline (mesh 'none') run at any of its load levels")
    added.insert(3, "krps", added["requested_qps"] / 1000)
    return added


def fit_added_latency(frame: pd.DataFrame, mode: str = FIT_MODE) -> dict[float, tuple[float, float, float]]:
    """Fit ``added_ms = a + b * krps + c * log2(connections)`` per quantile (module docstring).

    Returns
    -------
    dict
        quantile (0.5, 0.9, 0.99) -> ``(a, b, c)``: per-proxy milliseconds, milliseconds per
        1000 rps, milliseconds per doubling of the connections.
    """
    levels = added_latency_levels(frame, mode)
    design = np.column_stack([np.ones(len(levels)), levels["krps"], np.log2(levels["connections"])])
    out = {}
    for q, column in FIT_QUANTILES.items():
        coef = np.linalg.lstsq(design, levels[column].to_numpy(np.float64), rcond=None)[0]
        out[q] = (float(coef[0]), float(coef[1]), float(coef[2]))
    return out
