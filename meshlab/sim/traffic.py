"""The simulation itself: who calls whom, how often, with what result, interval by interval.

:func:`simulate` turns a :class:`~meshlab.sim.scenario.Scenario` into :class:`Traffic`:
request counts per interval, per source pod, destination pod and status; TCP
connections and bytes; pods and their restarts. Latency is not sampled here: it is a
distribution per workload and interval (:meth:`Traffic.latency`), which the mesh
renderers sample into histogram buckets and the ground truth reads exactly.

Interval ``k`` is the time between scrapes ``k-1`` and ``k``; index 0 is the first
scrape, when every counter reads zero.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd

from ..errors import InvalidArgument
from .dist import Mixture
from .latency import latency_mixture, queueing_factor
from .pods import MAX_SAMPLES, Pod, _pods, _rng, estimate_samples, pod_timeline
from .scenario import GRPC_CODES, Edge, Scenario, Workload

__all__ = ["MAX_SAMPLES", "EdgeTraffic", "Pod", "Traffic", "estimate_samples", "pod_timeline", "simulate"]


@dataclass
class EdgeTraffic:
    """What travelled over one edge.

    Attributes
    ----------
    statuses : list of str
        HTTP status codes (``"200"`` first) or, on gRPC edges, gRPC status names (``"OK"`` first).
    requests : numpy.ndarray
        int64 ``[interval, source pod, destination pod, status]``; empty on TCP edges.
    opened : numpy.ndarray
        int64 ``[interval, source pod, destination pod]``: connections opened.
    open : numpy.ndarray
        int64 ``[scrape, source pod, destination pod]``: connections open at each scrape.
    sent_bytes, received_bytes : numpy.ndarray
        int64 ``[interval, source pod, destination pod]``, seen from the client.
    """

    edge: Edge
    source: Workload
    target: Workload
    statuses: list[str]
    requests: np.ndarray
    opened: np.ndarray
    open: np.ndarray
    sent_bytes: np.ndarray
    received_bytes: np.ndarray

    @property
    def is_grpc(self) -> bool:
        return self.edge.protocol == "grpc"

    @property
    def is_tcp(self) -> bool:
        return self.edge.protocol == "tcp"

    @cached_property
    def per_status(self) -> np.ndarray:
        """int64 ``[interval, status]``: requests over all pod pairs."""
        return self.requests.sum(axis=(1, 2))

    def http_status(self, status: str) -> str:
        """The HTTP status code a status travels with (gRPC errors ride on HTTP 200)."""
        return "200" if self.is_grpc else status

    def grpc_code(self, status: str) -> str:
        """The numeric gRPC status (``"14"``), or ``""`` for HTTP."""
        return str(GRPC_CODES[status]) if self.is_grpc else ""


@dataclass
class Traffic:
    """A simulated run: the scenario, its time grid, pods and per-edge traffic."""

    scenario: Scenario
    times_ms: np.ndarray
    pods: dict[str, list[Pod]]
    edges: list[EdgeTraffic]
    latency_factor: dict[str, np.ndarray]

    @property
    def interval_s(self) -> float:
        return self.scenario.interval_s

    @property
    def n(self) -> int:
        """The number of scrapes (one more than the number of intervals)."""
        return len(self.times_ms)

    def timestamps(self) -> pd.DatetimeIndex:
        """The scrape times as an aware UTC index."""
        return pd.DatetimeIndex(pd.to_datetime(self.times_ms, unit="ms", utc=True)).as_unit("ns")

    def exists(self, workload: Workload) -> np.ndarray:
        """bool ``[scrape, pod]``: the pod exists (and exports metrics) at the scrape."""
        pods = self.pods[workload.key]
        k = np.arange(self.n)[:, None]
        first = np.array([p.first for p in pods])[None, :]
        last = np.array([p.last for p in pods])[None, :]
        return (k >= first) & (k <= last)

    def resets(self, workload: Workload) -> np.ndarray:
        """bool ``[scrape, pod]``: counters restart from zero during the interval before the scrape."""
        out = np.zeros((self.n, len(self.pods[workload.key])), dtype=bool)
        for j, pod in enumerate(self.pods[workload.key]):
            out[pod.restarts, j] = True
        return out

    def inbound_requests(self, workload: Workload) -> np.ndarray:
        """int64 ``[interval, pod]``: requests each pod of ``workload`` received."""
        return self._requests(workload, received=True)

    def outbound_requests(self, workload: Workload) -> np.ndarray:
        """int64 ``[interval, pod]``: requests each pod of ``workload`` sent."""
        return self._requests(workload, received=False)

    def _requests(self, workload: Workload, *, received: bool) -> np.ndarray:
        total = np.zeros((self.n, len(self.pods[workload.key])), dtype=np.int64)
        for et in self.edges:
            end = et.target if received else et.source
            if end.key == workload.key and not et.is_tcp:
                total += et.requests.sum(axis=(1, 3) if received else (2, 3))
        return total

    def proxy_rps(self, workload: Workload) -> np.ndarray:
        """float ``[interval]``: requests per second through an average proxy of the workload."""
        both = self.inbound_requests(workload) + self.outbound_requests(workload)
        alive = np.maximum(self.exists(workload).sum(axis=1), 1)
        return both.sum(axis=1) / alive / self.interval_s

    def proxy_connections(self, workload: Workload) -> np.ndarray:
        """float ``[scrape]``: HTTP and gRPC connections open through an average proxy of the workload."""
        total = np.zeros(self.n)
        for et in self.edges:
            if not et.is_tcp and workload.key in (et.source.key, et.target.key):
                total += et.open.sum(axis=(1, 2))
        return total / np.maximum(self.exists(workload).sum(axis=1), 1)

    def latency(self, workload: Workload, mesh: str, side: str, caller: Workload | None = None,
                network_ms: float = 0.0) -> Mixture:
        """The latency distribution per interval of requests to ``workload``, as one side sees it.

        ``side="server"`` is what the destination's own proxy measures (service time plus
        its inbound proxy); ``side="client"`` is what the caller's proxy measures (plus the
        network and the caller's outbound proxy). ``mesh="none"`` is the application's own
        view, with no proxy. The model is :mod:`meshlab.sim.latency`'s.
        """
        return latency_mixture(self, workload, mesh, side, caller, network_ms)


def _split(total: np.ndarray, ok: np.ndarray, streams: list[np.random.Generator]) -> np.ndarray:
    """Spread ``total[interval]`` uniformly over the ``ok[interval, pair]`` pairs.

    One binomial draw per pair from that pair's own stream, in time order, so the counts up
    to any interval do not depend on how long the run is or on pods created later.
    """
    n, n_pairs = ok.shape
    out = np.zeros((n, n_pairs), dtype=np.int64)
    remaining = total.astype(np.int64).copy()
    left = ok[:, ::-1].cumsum(axis=1)[:, ::-1]  # ok pairs from this one on
    for j in range(n_pairs):
        p = np.where(ok[:, j], 1.0 / np.maximum(left[:, j], 1), 0.0)
        drawn = streams[j].binomial(remaining, p)
        out[:, j] = drawn
        remaining -= drawn
    return out


def simulate(scenario: Scenario, *, hours: float | None = None, max_samples: int = MAX_SAMPLES) -> Traffic:
    """Run a scenario.

    Parameters
    ----------
    scenario : Scenario
    hours : float, optional
        How long to simulate; the scenario's own duration by default.
    max_samples : int
        Refuse a run that would simulate more values than this (:func:`estimate_samples`),
        rather than run out of memory; :data:`MAX_SAMPLES` by default.

    Raises
    ------
    InvalidArgument
        For ``hours`` that is not a number > 0, or a run larger than ``max_samples``.

    Returns
    -------
    Traffic
    """
    if hours is not None and (isinstance(hours, bool) or not isinstance(hours, (int, float, np.integer, np.floating))
                              or not 0 < hours < math.inf):
        raise InvalidArgument(f"hours must be a number > 0, got {hours!r}")
    duration_s = scenario.duration_s if hours is None else float(hours) * 3600.0
    intervals = max(int(duration_s // scenario.interval_s), 1)
    n = intervals + 1
    size = estimate_samples(scenario, n)
    if size > max_samples:
        raise InvalidArgument(
            f"scenario {scenario.name!r}: a run of {duration_s / 3600:g} h at a {scenario.interval_s:g}s interval "
            f"would hold about {size:,.0f} simulated values ({n:,} scrapes), more than max_samples="
            f"{max_samples:,} (about {max_samples * 8 / 1e9:.1f} GB); run fewer hours, a longer interval or fewer "
            "replicas, or raise the limit: simulate(..., max_samples=N)")
    end_year = 1970 + (scenario.start.value / 1e9 + intervals * scenario.interval_s) / (365.2425 * 86400)
    if end_year >= 2262.27:  # pandas' last nanosecond time, 2262-04-11
        raise InvalidArgument(f"scenario {scenario.name!r}: the run would end in {int(end_year)}, after "
                              "2262-04-11, the last time pandas can hold; start earlier or run fewer hours")
    start_ms = int(scenario.start.value // 1_000_000)
    times_ms = start_ms + np.arange(n, dtype=np.int64) * int(scenario.interval_s * 1000)
    offsets = np.arange(n) * scenario.interval_s
    mid = offsets - scenario.interval_s / 2  # each interval's midpoint (index 0 is unused)
    day_offset = float((scenario.start - scenario.start.normalize()).total_seconds())
    pods = _pods(scenario, n)

    latency_factor = {}
    for w in scenario.workloads:
        factor = np.ones(n)
        for inc in scenario.incidents:
            if inc.kind == "latency_spike" and inc.workload in (w.key, w.name):
                factor = np.where(inc.active(offsets), factor * inc.factor, factor)
        latency_factor[w.key] = factor

    traffic = Traffic(scenario, times_ms, pods, [], latency_factor)
    inbound: dict[str, np.ndarray] = {w.key: np.zeros(n, dtype=np.int64) for w in scenario.workloads}
    for edge in scenario.edge_order():
        source, target = scenario.workload(edge.source), scenario.workload(edge.target)
        # Every random draw comes from its own stream (per edge, status and pod pair) and runs in
        # time order, so a short run is exactly the start of a longer one.
        key = ("edge", source.key, target.key)
        serves_src = traffic.exists(source) & np.roll(traffic.exists(source), 1, axis=0)
        serves_dst = traffic.exists(target) & np.roll(traffic.exists(target), 1, axis=0)
        serves_src[0] = serves_dst[0] = False
        pair_ok = serves_src[:, :, None] & serves_dst[:, None, :]
        n_src, n_dst = pair_ok.shape[1:]
        ok = pair_ok.reshape(n, -1)
        n_pairs = ok.sum(axis=1)
        pair_ids = [(pods[source.key][i].index, pods[target.key][j].index) for i in range(n_src) for j in range(n_dst)]
        if edge.rate is not None:
            expected = edge.rate.at(mid, day_offset, end_s=scenario.duration_s) * scenario.interval_s
        else:
            expected = (edge.per_request or 0.0) * inbound[source.key]
        expected = np.where(n_pairs > 0, expected, 0.0)
        expected[0] = 0.0
        total = _rng(scenario.seed, *key).poisson(expected)

        if edge.protocol == "tcp":
            per_pair = _split(total, ok, [_rng(scenario.seed, *key, "pair", i, j) for i, j in pair_ids])
            et = _tcp_edge(edge, source, target, per_pair.reshape(pair_ok.shape), scenario.interval_s,
                           [_rng(scenario.seed, *key, "bytes", i, j) for i, j in pair_ids])
        else:
            statuses, probs = _status_probabilities(edge, target, scenario, offsets)
            by_status = np.zeros((n, len(statuses)), dtype=np.int64)
            remaining = total.astype(np.int64)
            left = np.ones(n)
            for s in range(len(statuses) - 1, 0, -1):  # errors first, success takes the rest
                p = np.clip(probs[:, s] / np.maximum(left, 1e-12), 0, 1)
                by_status[:, s] = _rng(scenario.seed, *key, "status", statuses[s]).binomial(remaining, p)
                remaining = remaining - by_status[:, s]
                left = left - probs[:, s]
            by_status[:, 0] = remaining
            counts = np.zeros((n, n_src, n_dst, len(statuses)), dtype=np.int64)
            for s, status in enumerate(statuses):
                streams = [_rng(scenario.seed, *key, "pair", status, i, j) for i, j in pair_ids]
                counts[..., s] = _split(by_status[:, s], ok, streams).reshape(pair_ok.shape)
            # pooled connections open with the first interval a pair can serve (a pod's counters read zero
            # at its first scrape)
            conns = np.where(pair_ok, edge.tcp.connections, 0).astype(np.int64)
            opened = np.diff(conns, axis=0, prepend=0).clip(min=0)
            requests = counts.sum(axis=3)
            et = EdgeTraffic(edge, source, target, statuses, counts, opened, conns,
                             np.rint(requests * edge.tcp.request_bytes).astype(np.int64),
                             np.rint(requests * edge.tcp.response_bytes).astype(np.int64))
            inbound[target.key] += requests.sum(axis=(1, 2))
        traffic.edges.append(et)
    for et in traffic.edges:
        _reconnect_after_restarts(et, pods)
    position = {id(edge): i for i, edge in enumerate(scenario.edges)}
    traffic.edges.sort(key=lambda et: position[id(et.edge)])
    for w in scenario.workloads:
        if w.capacity_rps is not None:  # requests queue as a pod's load nears its capacity
            per_pod = traffic.inbound_requests(w).sum(axis=1) / np.maximum(traffic.exists(w).sum(axis=1), 1)
            traffic.latency_factor[w.key] = latency_factor[w.key] * queueing_factor(
                per_pod / scenario.interval_s, w.capacity_rps)
    return traffic


def _reconnect_after_restarts(et: EdgeTraffic, pods: dict[str, list[Pod]]) -> None:
    # A restart takes the pod's proxy down, and every connection through it with it: the peers
    # reconnect at once, as many as were open. Each new connection lives on as the one it
    # replaces, so ``open`` is unchanged and ``opened`` counts the reconnections.
    for axis, workload in ((1, et.source), (2, et.target)):
        for pod in pods[workload.key]:
            for k in pod.restarts:
                if 0 < k < len(et.opened):
                    index = (k, pod.index, slice(None)) if axis == 1 else (k, slice(None), pod.index)
                    before = (k - 1, pod.index, slice(None)) if axis == 1 else (k - 1, slice(None), pod.index)
                    et.opened[index] += et.open[before]


def _status_probabilities(edge: Edge, target: Workload, scenario: Scenario,
                          offsets: np.ndarray) -> tuple[list[str], np.ndarray]:
    """The statuses an edge can return (success first) and their probability per interval."""
    bursts = [i for i in scenario.incidents if i.kind == "error_burst" and i.workload in (target.key, target.name)]
    codes: dict[str, None] = dict.fromkeys(edge.errors)
    for burst in bursts:
        for code in burst.errors:
            if (code in GRPC_CODES) == (edge.protocol == "grpc"):
                codes[code] = None
    statuses = ["OK" if edge.protocol == "grpc" else "200", *codes]
    probs = np.zeros((len(offsets), len(statuses)))
    for s, code in enumerate(statuses[1:], start=1):
        probs[:, s] = edge.errors.get(code, 0.0)
        for burst in bursts:
            probs[:, s] += np.where(burst.active(offsets), burst.errors.get(code, 0.0), 0.0)
    scale = np.maximum(probs[:, 1:].sum(axis=1), 1.0)
    probs[:, 1:] /= scale[:, None]
    probs[:, 0] = 1 - probs[:, 1:].sum(axis=1)
    return statuses, probs


def _tcp_edge(edge: Edge, source: Workload, target: Workload, opened: np.ndarray, interval_s: float,
              streams: list[np.random.Generator]) -> EdgeTraffic:
    # Every connection lasts connection_seconds (rounded to whole intervals): open = opened
    # over that many past intervals; bytes flow at a steady rate while open.
    lifetime = max(round(edge.tcp.connection_seconds / interval_s), 1)
    cumulative = np.cumsum(opened, axis=0)
    before = np.concatenate([np.zeros((lifetime, *opened.shape[1:]), dtype=np.int64), cumulative[:-lifetime]])
    open_now = cumulative - before[: len(cumulative)]
    n = len(opened)
    per_pair = open_now.reshape(n, -1)
    rates = np.array([edge.tcp.sent_bytes_per_second, edge.tcp.received_bytes_per_second]) * interval_s
    moved = np.zeros((n, per_pair.shape[1], 2), dtype=np.int64)
    for j, stream in enumerate(streams):  # [interval, (sent, received)] from each pair's stream, in time order
        moved[:, j] = stream.poisson(per_pair[:, j, None] * rates)
    sent = moved[..., 0].reshape(opened.shape)
    received = moved[..., 1].reshape(opened.shape)
    empty = np.zeros((*opened.shape, 0), dtype=np.int64)
    return EdgeTraffic(edge, source, target, [], empty, opened, open_now, sent, received)
