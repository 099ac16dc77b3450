"""Load sweeps as ``benchmark`` frames: one row per step of a staircase of request rates.

A sweep scenario has one edge whose rate has ``shape: steps`` (the ``sweep`` scenario is
one). Each step becomes one benchmark "run" of the edge's target, measured over the step
minus a warm-up (the first ``rate`` window still sees the previous step's load):

- :func:`sweep_steps` lists the steps: their level and the instant and window to measure at;
- :func:`benchmark_from_adapter` reads them through a mesh adapter (a real Prometheus):
  ``actual_qps`` and the error ratio from ``traffic``, latency percentiles from the
  adapter's histogram quantiles, proxy CPU and memory from ``proxies``;
- :func:`benchmark_truth` gives the same rows from the simulation itself: exact request
  counts and the exact quantiles of each window's latency distribution.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .. import schema
from ..errors import InvalidArgument
from .dist import weighted_quantile
from .scenario import Edge, Scenario
from .truth import classify, proxies_truth

if TYPE_CHECKING:
    from .traffic import Traffic

__all__ = ["WARMUP_S", "Step", "benchmark_from_adapter", "benchmark_truth", "sweep_edge", "sweep_steps"]

#: What each step drops at its start: the first minute, where a 1 m rate window still sees the step before.
WARMUP_S = 60.0
_QUANTILES = {"latency_p50_ms": 0.5, "latency_p90_ms": 0.9, "latency_p99_ms": 0.99}


@dataclass(frozen=True)
class Step:
    """One level of a sweep: its requested rate, and the instant and window that measure it."""

    index: int
    requested_qps: float
    start: pd.Timestamp
    at: pd.Timestamp
    window_s: float


def sweep_edge(scenario: Scenario) -> Edge:
    """The scenario's one edge with a ``steps`` rate.

    Raises
    ------
    InvalidArgument
        If the scenario has no such edge, or more than one.
    """
    edges = [e for e in scenario.edges if e.rate is not None and e.rate.shape == "steps"]
    if len(edges) != 1:
        raise InvalidArgument(f"scenario {scenario.name!r}: a sweep needs exactly one edge with a 'steps' rate, "
                              f"found {len(edges)}")
    return edges[0]


def sweep_steps(scenario: Scenario, warmup_s: float = WARMUP_S) -> list[Step]:
    """The steps of the scenario's sweep that its duration holds whole."""
    rate = sweep_edge(scenario).rate
    assert rate is not None and rate.steps is not None and rate.step_s is not None
    if not 0 <= warmup_s < rate.step_s - scenario.interval_s:
        raise InvalidArgument(f"warmup_s must be >= 0 and leave more than one scrape interval of each "
                              f"{rate.step_s:g}s step, got {warmup_s!r}")
    steps = []
    for k in range(rate.steps):
        begin = rate.ramp_start_s + k * rate.step_s
        if begin + rate.step_s > scenario.duration_s:
            break
        level = float(rate.at(np.array([begin + rate.step_s / 2]))[0])
        steps.append(Step(k, level, scenario.start + pd.Timedelta(seconds=begin),
                          scenario.start + pd.Timedelta(seconds=begin + rate.step_s), rate.step_s - warmup_s))
    return steps


def _row(scenario: Scenario, step: Step, mesh: str, source: str, values: dict[str, Any]) -> dict[str, Any]:
    edge = sweep_edge(scenario)
    meshed = mesh != "none" and scenario.workload(edge.target).meshed
    client = mesh != "none" and scenario.workload(edge.source).meshed
    sidecars = {(True, True): "both", (True, False): "server", (False, True): "client"}.get((meshed, client), "none")
    return {"timestamp": step.start, "run_id": f"{scenario.name}-{mesh}-step{step.index:02d}", "mesh": mesh,
            "mode": f"sim-{scenario.proxy_latency}", "sidecars": sidecars, "source": source,
            "requested_qps": step.requested_qps, "connections": float(edge.tcp.connections),
            "payload_bytes": edge.tcp.request_bytes, "duration_s": step.window_s, **values}


def _frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    for column in schema.FRAMES["benchmark"].names:  # what a sweep does not measure
        if column not in frame:
            frame[column] = "" if column == "latency_coarse" else np.nan
    return schema.conform(frame[schema.FRAMES["benchmark"].names], "benchmark")


def benchmark_from_adapter(adapter: Any, scenario: Scenario, mesh: str, kind: str, *,
                           source: str = "sweep", warmup_s: float = WARMUP_S) -> pd.DataFrame:
    """One benchmark row per step, read through a mesh adapter from the Prometheus holding the run.

    Parameters
    ----------
    adapter : meshlab.meshes.Mesh
        The mesh's adapter on that Prometheus.
    scenario : Scenario
        The sweep, placed where the run is in time.
    mesh : str
    kind : str
        The kind the adapter names the sweep's target by (``deployment``; Consul: ``service``).
    """
    edge = sweep_edge(scenario)
    target = scenario.workload(edge.target)
    name = target.service_name if kind == "service" else target.name
    rows = []
    for step in sweep_steps(scenario, warmup_s):
        window = f"{step.window_s:g}s"
        t = adapter.traffic(kind, target.namespace, name, at=step.at, window=window)
        if len(t) != 1:
            raise InvalidArgument(f"{mesh}: expected one traffic row for {target.key} at {step.at}, got {len(t)}")
        rec = t.iloc[0]
        widths = [rec[f"{c[:-3]}_high_ms"] - rec[f"{c[:-3]}_low_ms"] for c in _QUANTILES]
        cost = adapter.proxies(namespace=target.namespace, workload=target.name, at=step.at, window=window)
        values = {
            "actual_qps": float(rec["rps"]), "requests": float(rec["rps"]) * step.window_s,
            "error_ratio": 1.0 - float(rec["success_rate"]),
            **{c: float(rec[c]) for c in _QUANTILES},
            "latency_resolution_ms": float(np.nanmax(widths)) if np.isfinite(widths).any() else np.nan,
            "server_cpu_mcores": float(cost["cpu_cores"].mean()) * 1000 if len(cost) else np.nan,
            "server_mem_mib": float(cost["memory_bytes"].mean()) / 2**20 if len(cost) else np.nan,
            "note": f"simulated; latency as {target.name}'s own proxy reports it (histogram_quantile)",
        }
        rows.append(_row(scenario, step, mesh, source, values))
    return _frame(rows)


def benchmark_truth(traffic: Traffic, mesh: str, *, source: str = "sweep (ground truth)",
                    warmup_s: float = WARMUP_S) -> pd.DataFrame:
    """The same rows as :func:`benchmark_from_adapter`, from the simulation: exact counts and quantiles.

    A window's latency percentiles are exact quantiles of the requests of all its scrape
    intervals together (each interval's distribution weighted by its requests), as the
    target's own proxy (``"none"``: the application) sees them.
    """
    scenario = traffic.scenario
    edge = sweep_edge(scenario)
    target = scenario.workload(edge.target)
    times = traffic.timestamps()
    incoming = [et for et in traffic.edges if et.target.key == target.key and not et.is_tcp]
    requests = np.sum([et.per_status.sum(axis=1) for et in incoming], axis=0).astype(np.float64)
    failed = np.sum([et.per_status[:, [classify(mesh, et, s) for s in et.statuses]].sum(axis=1) for et in incoming],
                    axis=0)
    mixture = traffic.latency(target, mesh, "server")
    cost = proxies_truth(traffic, mesh) if mesh != "none" else None
    rows = []
    for step in sweep_steps(scenario, warmup_s):
        inside = (times > step.at - pd.Timedelta(seconds=step.window_s)) & (times <= step.at)
        index = np.flatnonzero(inside)
        part = mixture.select(index, traffic.n)
        values: dict[str, Any] = {
            "actual_qps": requests[index].sum() / step.window_s, "requests": requests[index].sum(),
            "error_ratio": failed[index].sum() / max(requests[index].sum(), 1.0),
            **{c: weighted_quantile(part, requests[index], q) for c, q in _QUANTILES.items()},
            "note": "simulated ground truth",
        }
        if cost is not None and target.meshed:
            mine = cost[(cost["workload"] == target.name) & (cost["namespace"] == target.namespace)]
            mine = mine[(mine["timestamp"] > step.at - pd.Timedelta(seconds=step.window_s))
                        & (mine["timestamp"] <= step.at)]
            values["server_cpu_mcores"] = float(mine["cpu_cores"].mean()) * 1000
            values["server_mem_mib"] = float(mine.loc[mine["timestamp"] == step.at, "memory_bytes"].mean()) / 2**20
        rows.append(_row(scenario, step, mesh, source, values))
    return _frame(rows)
