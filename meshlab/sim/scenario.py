"""Scenarios: a declarative, seeded description of an application and its traffic.

A scenario names the workloads, the calls between them (with request rates over time,
latency and errors), TCP-only connections, and incidents. It is plain data: build it
in Python, or load it from YAML or TOML with :func:`load_scenario`. Longer than 400 lines:
the scenario's classes are one model, and its worked example below is the format's reference.

Example (YAML)::

    name: shop
    seed: 7
    interval: 15s                  # the scrape interval
    workloads:
      - {name: loadgen, namespace: shop, meshed: false}
      - {name: frontend, namespace: shop, replicas: 2, latency: {median_ms: 12, sigma: 0.5}}
      - {name: catalog, namespace: shop, latency: {median_ms: 6, tail_probability: 0.02, tail_factor: 6}}
    edges:
      - {from: loadgen, to: frontend, rate: {rps: 40, shape: diurnal, amplitude: 0.4}}
      - {from: frontend, to: catalog, per_request: 1.5, protocol: grpc, errors: {UNAVAILABLE: 0.002}}
    incidents:
      - {kind: latency_spike, workload: catalog, start: 2h, duration: 10m, factor: 4}

Times inside a scenario (``start`` of an incident, ``at``) are offsets from the
scenario's start. Durations use Prometheus notation (``15s``, ``10m``, ``2h``).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from ..errors import InvalidArgument
from ..timeutil import to_timedelta

__all__ = [
    "GRPC_CODES",
    "MAX_REPLICAS",
    "Edge",
    "Incident",
    "Latency",
    "Rate",
    "Scenario",
    "ScenarioError",
    "ScenarioFileNotFound",
    "TcpTraffic",
    "Workload",
    "load_scenario",
    "scenario_from_dict",
]

#: gRPC status names and their numeric codes, as proxies report them.
GRPC_CODES = {
    "OK": 0, "CANCELLED": 1, "UNKNOWN": 2, "INVALID_ARGUMENT": 3, "DEADLINE_EXCEEDED": 4, "NOT_FOUND": 5,
    "ALREADY_EXISTS": 6, "PERMISSION_DENIED": 7, "RESOURCE_EXHAUSTED": 8, "FAILED_PRECONDITION": 9,
    "ABORTED": 10, "OUT_OF_RANGE": 11, "UNIMPLEMENTED": 12, "INTERNAL": 13, "UNAVAILABLE": 14,
    "DATA_LOSS": 15, "UNAUTHENTICATED": 16,
}
KINDS: tuple[str, ...] = ("deployment", "statefulset", "daemonset", "job")
SHAPES: tuple[str, ...] = ("steady", "diurnal", "ramp", "bursts", "steps")
#: How proxies add latency: ``linear`` (one shift at every quantile, the default) or ``fitted``
#: (per quantile, load and connections; :data:`meshlab.sim.costs.ENVOY_ADDED_LATENCY`).
PROXY_LATENCY: tuple[str, ...] = ("linear", "fitted")
PROTOCOLS: tuple[str, ...] = ("http", "grpc", "tcp")
INCIDENTS: tuple[str, ...] = ("error_burst", "latency_spike", "pod_restart", "scale")
#: The most pods a workload may have at once; the simulator keeps an array per pair of pods,
#: so this bounds one edge's size.
MAX_REPLICAS = 1000


def _seconds(value: Any, name: str) -> float:
    return to_timedelta(value, name=name).total_seconds()


@dataclass(frozen=True)
class Rate:
    """Requests (or, on TCP edges, connections) per second over time.

    Attributes
    ----------
    rps : float
        The base rate.
    shape : {"steady", "diurnal", "ramp", "bursts", "steps"}
        ``steady`` is constant; ``diurnal`` is ``rps * (1 + amplitude * cos(...))`` peaking
        at ``peak_at`` each ``period``; ``ramp`` goes linearly from ``rps`` to ``to_rps``
        between ``ramp_start`` and ``ramp_end`` (the scenario's ``duration`` by default);
        ``bursts`` multiplies by ``burst_factor`` for ``burst_length`` every ``burst_every``;
        ``steps`` is a staircase for load sweeps: ``steps`` levels evenly spaced from ``rps``
        to ``to_rps``, each held for ``step`` from ``ramp_start`` on (then ``to_rps``).
    """

    rps: float
    shape: Literal["steady", "diurnal", "ramp", "bursts", "steps"] = "steady"
    amplitude: float = 0.3
    period_s: float = 86_400.0
    peak_at_s: float = 14 * 3600.0
    to_rps: float | None = None
    ramp_start_s: float = 0.0
    ramp_end_s: float | None = None
    burst_every_s: float = 3600.0
    burst_length_s: float = 300.0
    burst_factor: float = 3.0
    steps: int | None = None
    step_s: float | None = None

    def __post_init__(self) -> None:
        if not (self.rps >= 0 and math.isfinite(self.rps)):
            raise InvalidArgument(f"rate rps must be a finite number >= 0, got {self.rps!r}")
        if self.shape not in SHAPES:
            raise InvalidArgument(f"unknown rate shape {self.shape!r}; must be one of: {', '.join(SHAPES)}")
        if self.shape == "diurnal" and not 0 <= self.amplitude <= 1:
            raise InvalidArgument(f"diurnal amplitude must be between 0 and 1, got {self.amplitude!r}")
        if self.shape == "ramp" and self.to_rps is None:
            raise InvalidArgument("a ramp rate needs to_rps (the rate at the end of the ramp)")
        if self.shape == "steps" and (self.to_rps is None or self.steps is None or self.step_s is None
                                      or self.steps < 2 or not self.step_s > 0):
            raise InvalidArgument("a steps rate needs to_rps (the last level), steps (how many levels, >= 2) and "
                                  "step (how long each level lasts, e.g. '5m')")
        if self.burst_factor < 0 or self.burst_length_s > self.burst_every_s:
            raise InvalidArgument("bursts need burst_factor >= 0 and burst_length <= burst_every")

    def at(self, offsets_s: np.ndarray, day_offset_s: float = 0.0, *, end_s: float | None = None) -> np.ndarray:
        """The rate at each offset (seconds from the scenario start).

        ``end_s`` is where a ramp without ``ramp_end`` ends: the scenario's duration when
        simulated (so a shorter run ramps exactly as the start of the full one), else the
        last offset.
        """
        t = np.asarray(offsets_s, dtype=np.float64)
        if self.shape == "steady":
            return np.full(t.shape, float(self.rps))
        if self.shape == "diurnal":
            phase = 2 * np.pi * ((t + day_offset_s - self.peak_at_s) / self.period_s)
            return self.rps * (1 + self.amplitude * np.cos(phase))
        if self.shape == "ramp":
            end = self.ramp_end_s if self.ramp_end_s is not None else (
                end_s if end_s is not None else float(t.max(initial=0.0)))
            span = max(end - self.ramp_start_s, 1e-9)
            frac = np.clip((t - self.ramp_start_s) / span, 0, 1)
            return self.rps + (float(self.to_rps or 0.0) - self.rps) * frac
        if self.shape == "steps":
            levels = int(self.steps or 2)
            k = np.clip(np.floor((t - self.ramp_start_s) / float(self.step_s or 1.0)), 0, levels - 1)
            return self.rps + (float(self.to_rps or 0.0) - self.rps) * k / (levels - 1)
        in_burst = np.mod(t, self.burst_every_s) < self.burst_length_s
        return np.where(in_burst, self.rps * self.burst_factor, self.rps)


@dataclass(frozen=True)
class Latency:
    """A workload's own service time: a lognormal body with an optional slow tail.

    A share ``tail_probability`` of requests takes ``tail_factor`` times longer
    (a second lognormal with the same shape), which gives the heavy p99 real services show.
    """

    median_ms: float = 10.0
    sigma: float = 0.5
    tail_probability: float = 0.0
    tail_factor: float = 5.0

    def __post_init__(self) -> None:
        if not (self.median_ms > 0 and self.sigma > 0):
            raise InvalidArgument("latency needs median_ms > 0 and sigma > 0")
        if not (0 <= self.tail_probability < 1 and self.tail_factor >= 1):
            raise InvalidArgument("latency needs 0 <= tail_probability < 1 and tail_factor >= 1")


@dataclass(frozen=True)
class TcpTraffic:
    """Connection-level traffic of an edge.

    On HTTP and gRPC edges, bytes follow the requests (``request_bytes`` and
    ``response_bytes`` each) over ``connections`` pooled connections per client pod.
    On TCP edges, the edge's rate is new connections per second, each lasting
    ``connection_seconds`` on average and moving bytes at the given rates.
    """

    request_bytes: float = 512.0
    response_bytes: float = 2048.0
    connections: int = 1
    connection_seconds: float = 60.0
    sent_bytes_per_second: float = 2_000.0
    received_bytes_per_second: float = 8_000.0


@dataclass(frozen=True)
class Workload:
    """A Kubernetes workload: its pods run the application and, if meshed, a proxy.

    ``capacity_rps`` (optional) is what one pod can serve: as its load nears it, requests
    queue and the service time grows as in an M/M/1 queue, by ``1 / (1 - load / capacity)``
    (held at 20 times from 95 % on), which gives a load sweep its knee.
    """

    name: str
    namespace: str
    kind: Literal["deployment", "statefulset", "daemonset", "job"] = "deployment"
    replicas: int = 1
    latency: Latency = field(default_factory=Latency)
    meshed: bool = True
    external: bool = False
    service: str | None = None
    capacity_rps: float | None = None

    def __post_init__(self) -> None:
        if self.capacity_rps is not None and not (self.capacity_rps > 0 and math.isfinite(self.capacity_rps)):
            raise InvalidArgument(f"workload {self.name!r}: capacity_rps must be a finite number > 0")
        if self.kind not in KINDS:
            raise InvalidArgument(
                f"workload {self.name!r}: unknown kind {self.kind!r}; must be one of: {', '.join(KINDS)}")
        if not 1 <= self.replicas <= MAX_REPLICAS:
            raise InvalidArgument(f"workload {self.name!r}: replicas must be from 1 to {MAX_REPLICAS}")
        if self.external and self.meshed:
            object.__setattr__(self, "meshed", False)

    @property
    def key(self) -> str:
        """``namespace/name``, unique within a scenario."""
        return f"{self.namespace}/{self.name}"

    @property
    def service_name(self) -> str:
        """The Kubernetes (and Consul) service name; the workload name by default."""
        return self.service or self.name


@dataclass(frozen=True)
class Edge:
    """Calls from one workload to another.

    Exactly one of ``rate`` (an absolute rate) and ``per_request`` (calls per request the
    source receives, which ties the edge to upstream load) is set. ``errors`` maps HTTP
    status codes (``"503"``) or, on gRPC edges, gRPC status names (``"UNAVAILABLE"``) to
    the share of requests that end that way.
    """

    source: str
    target: str
    protocol: Literal["http", "grpc", "tcp"] = "http"
    rate: Rate | None = None
    per_request: float | None = None
    errors: Mapping[str, float] = field(default_factory=dict)
    tcp: TcpTraffic = field(default_factory=TcpTraffic)
    network_ms: float = 0.2

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise InvalidArgument(f"edge {self.source}->{self.target}: unknown protocol {self.protocol!r}; "
                                  f"must be one of: {', '.join(PROTOCOLS)}")
        if (self.rate is None) == (self.per_request is None):
            raise InvalidArgument(f"edge {self.source}->{self.target}: give exactly one of rate and per_request")
        if self.per_request is not None and not self.per_request >= 0:
            raise InvalidArgument(f"edge {self.source}->{self.target}: per_request must be >= 0")
        _check_errors(self.errors, self.protocol, f"edge {self.source}->{self.target}")


def _check_errors(errors: Mapping[str, float], protocol: str, where: str) -> None:
    for code, share in errors.items():
        if protocol == "grpc":
            if code not in GRPC_CODES or code == "OK":
                raise InvalidArgument(f"{where}: {code!r} is not a gRPC error status; use one of "
                                      f"{', '.join(c for c in GRPC_CODES if c != 'OK')}")
        elif not (code.isdigit() and 400 <= int(code) <= 599):
            raise InvalidArgument(f"{where}: {code!r} is not an HTTP error status (400-599)")
        if not 0 <= share <= 1:
            raise InvalidArgument(f"{where}: the share of {code} must be between 0 and 1, got {share!r}")
    if sum(errors.values()) > 1:
        raise InvalidArgument(f"{where}: error shares add up to more than 1")


@dataclass(frozen=True)
class Incident:
    """Something that happens to a workload during the scenario.

    - ``error_burst``: from ``start`` for ``duration``, calls to ``workload`` also fail
      with ``errors`` (HTTP codes, or gRPC names on gRPC edges);
    - ``latency_spike``: service time multiplied by ``factor`` for ``duration``;
    - ``pod_restart``: pod number ``pod`` restarts at ``start``: its proxy's counters reset to zero;
    - ``scale``: the workload has ``replicas`` pods from ``start`` on.
    """

    kind: Literal["error_burst", "latency_spike", "pod_restart", "scale"]
    workload: str
    start_s: float
    duration_s: float = 600.0
    errors: Mapping[str, float] = field(default_factory=dict)
    factor: float = 1.0
    pod: int = 0
    replicas: int = 1

    def __post_init__(self) -> None:
        if self.kind not in INCIDENTS:
            raise InvalidArgument(f"unknown incident kind {self.kind!r}; must be one of: {', '.join(INCIDENTS)}")
        if self.start_s < 0 or self.duration_s <= 0:
            raise InvalidArgument(f"incident {self.kind} on {self.workload}: start must be >= 0 and duration > 0")
        if self.kind == "latency_spike" and self.factor <= 0:
            raise InvalidArgument(f"latency_spike on {self.workload}: factor must be positive")
        if self.kind == "error_burst" and not self.errors:
            raise InvalidArgument(f"error_burst on {self.workload}: give errors, e.g. {{'503': 0.3}}")
        if self.kind == "scale" and not 1 <= self.replicas <= MAX_REPLICAS:
            raise InvalidArgument(f"scale on {self.workload}: replicas must be from 1 to {MAX_REPLICAS}")

    def active(self, offsets_s: np.ndarray) -> np.ndarray:
        """Which offsets fall inside the incident."""
        return (offsets_s > self.start_s) & (offsets_s <= self.start_s + self.duration_s)


@dataclass(frozen=True)
class Scenario:
    """An application, its traffic and its incidents; seeded, so a scenario is reproducible.

    Attributes
    ----------
    name : str
    workloads : tuple of Workload
    edges : tuple of Edge
    incidents : tuple of Incident
    seed : int
    interval_s : float
        The scrape interval; every output has one point per interval.
    start : pandas.Timestamp
        When the scenario begins (UTC). Fixed by default, so datasets are reproducible.
    duration_s : float
        The default length of a run.
    description : str
    proxy_latency : {"linear", "fitted"}
        How proxies add latency: one load-dependent shift at every quantile (``linear``, the
        default, which the bundled mesh-shootout dataset was built with), or per quantile,
        load and connections as fitted to Istio's benchmark (``fitted``; see
        :mod:`meshlab.sim.costs`).
    """

    name: str
    workloads: tuple[Workload, ...]
    edges: tuple[Edge, ...]
    incidents: tuple[Incident, ...] = ()
    seed: int = 0
    interval_s: float = 15.0
    start: pd.Timestamp = field(default_factory=lambda: pd.Timestamp("2024-03-04T00:00:00Z"))
    duration_s: float = 6 * 3600.0
    description: str = ""
    proxy_latency: Literal["linear", "fitted"] = "linear"

    def __post_init__(self) -> None:
        if self.proxy_latency not in PROXY_LATENCY:
            raise InvalidArgument(f"scenario {self.name!r}: unknown proxy_latency {self.proxy_latency!r}; "
                                  f"must be one of: {', '.join(PROXY_LATENCY)}")
        if self.interval_s < 1 or self.interval_s != int(self.interval_s):
            raise InvalidArgument(f"scenario {self.name!r}: interval must be a whole number of seconds >= 1")
        keys = [w.key for w in self.workloads]
        duplicates = sorted({k for k in keys if keys.count(k) > 1})
        if duplicates:
            raise InvalidArgument(f"scenario {self.name!r}: workloads defined twice: {duplicates}")
        if not self.workloads:
            raise InvalidArgument(f"scenario {self.name!r} has no workloads")
        for edge in self.edges:
            for end in (edge.source, edge.target):
                self.workload(end)
            if self.workload(edge.source).external:
                raise InvalidArgument(f"edge {edge.source}->{edge.target}: an external service cannot call out")
        for incident in self.incidents:
            self.workload(incident.workload)
        self.edge_order()  # raises on cycles
        from .traffic import pod_timeline

        pod_timeline(self)  # raises on a restart of a pod that does not run then

    def workload(self, ref: str) -> Workload:
        """Find a workload by ``name`` (if unique) or ``namespace/name``."""
        matches = self._workloads_by_ref.get(ref, [])
        if len(matches) == 1:
            return matches[0]
        known = ", ".join(w.key for w in self.workloads)
        if not matches:
            raise InvalidArgument(f"scenario {self.name!r}: unknown workload {ref!r}; known: {known}")
        raise InvalidArgument(f"scenario {self.name!r}: {ref!r} is ambiguous; write namespace/name ({known})")

    @functools.cached_property
    def _workloads_by_ref(self) -> dict[str, list[Workload]]:
        """Each ``key`` and ``name`` to its workloads: fleets have thousands (a scan per lookup was quadratic)."""
        found: dict[str, list[Workload]] = {}
        for w in self.workloads:
            for ref in dict.fromkeys((w.key, w.name)):
                found.setdefault(ref, []).append(w)
        return found

    @property
    def namespaces(self) -> list[str]:
        """The namespaces, in order of first appearance."""
        return list(dict.fromkeys(w.namespace for w in self.workloads))

    def edge_order(self) -> list[Edge]:
        """Edges in an order where every ``per_request`` edge follows the edges into its source."""
        key = {ref: self.workload(ref).key for e in self.edges for ref in (e.source, e.target)}  # looked up once
        pending = list(self.edges)
        done: list[Edge] = []
        while pending:
            called = {key[p.target] for p in pending}
            ready = [e for e in pending if e.per_request is None or key[e.source] not in called]
            if not ready:
                cycle = ", ".join(f"{e.source}->{e.target}" for e in pending)
                raise InvalidArgument(f"scenario {self.name!r}: per_request edges form a cycle: {cycle}")
            done += ready
            taken = {id(e) for e in ready}
            pending = [e for e in pending if id(e) not in taken]
        return done

    def to_dict(self) -> dict[str, Any]:
        """The scenario as plain data, as :func:`scenario_from_dict` reads it."""
        return _scenario_to_dict(self)


def _scenario_to_dict(scenario: Scenario) -> dict[str, Any]:
    from .scenario_file import scenario_to_dict

    return scenario_to_dict(scenario)


# Reading files lives in scenario_file (this module holds the model); its public names are ours too.
from .scenario_file import START_RANGE as START_RANGE  # noqa: E402
from .scenario_file import ScenarioError, ScenarioFileNotFound, load_scenario, scenario_from_dict  # noqa: E402
