"""Pods: who runs when. Every pod a scenario ever runs, its name, IP, restarts and scale events.

Split from :mod:`meshlab.sim.traffic` (which re-exports these names) to keep each module short.
"""

from __future__ import annotations

import hashlib
import zlib
from dataclasses import dataclass, field

import numpy as np

from ..errors import InvalidArgument
from .scenario import Scenario, Workload

__all__ = ["MAX_SAMPLES", "Pod", "estimate_samples", "pod_timeline"]

_HASH_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # the alphabet Kubernetes uses for generated names


def _rng(seed: int, *parts: object) -> np.random.Generator:
    # One independent, reproducible stream per named thing, whatever order things are built in.
    return np.random.default_rng([seed, *(zlib.crc32(str(p).encode()) for p in parts)])


def _token(seed: int, text: str, length: int) -> str:
    digest = hashlib.sha256(f"{seed}:{text}".encode()).digest()
    return "".join(_HASH_ALPHABET[b % len(_HASH_ALPHABET)] for b in digest[:length])


@dataclass
class Pod:
    """One pod of a workload.

    Attributes
    ----------
    name : str
        The pod name, e.g. ``frontend-7c9f8b6d4f-x2k9p`` (Deployments) or ``db-0`` (StatefulSets).
    ip : str
        A made-up pod IP, used in ``instance`` labels.
    first : int
        The first scrape at which the pod exists (its counters read zero there).
    last : int
        The last scrape at which it exists.
    restarts : list of int
        Scrapes whose interval contains a restart: the counters read only that interval.
    """

    workload: Workload
    index: int
    name: str
    ip: str
    template_hash: str
    first: int
    last: int
    restarts: list[int] = field(default_factory=list)


#: ``Pod.last`` of a pod that runs until the end of any run.
_FOREVER = 2**62


def _scrape_at(offset_s: float, interval_s: float) -> int:
    # An event at offset t takes effect at the first scrape at or after t.
    return int(np.ceil(offset_s / interval_s))


def pod_timeline(scenario: Scenario) -> dict[str, list[Pod]]:
    """Every pod the scenario ever runs, independent of any run's length.

    Pods that run to the end have ``last`` = a very large number; :func:`simulate` cuts
    the timeline at its last scrape, so a shorter run holds exactly the pods and restarts
    of a longer one up to its end and nothing scheduled after it.

    Raises
    ------
    InvalidArgument
        If a ``pod_restart`` names a pod that does not run at that time.
    """
    pods: dict[str, list[Pod]] = {}
    interval_s = scenario.interval_s
    for w_index, w in enumerate(scenario.workloads):
        events = sorted((i for i in scenario.incidents if i.workload in (w.key, w.name) and i.kind == "scale"),
                        key=lambda i: i.start_s)
        template = _token(scenario.seed, f"{w.key}/template", 10)
        made: list[Pod] = []

        def add(index: int, first: int, w: Workload = w, template: str = template, made: list[Pod] = made,
                w_index: int = w_index) -> None:
            if w.kind == "statefulset":
                name = f"{w.name}-{index}"
            elif w.kind == "job" or w.kind == "daemonset":
                name = f"{w.name}-{_token(scenario.seed, f'{w.key}/{index}', 5)}"
            else:
                name = f"{w.name}-{template}-{_token(scenario.seed, f'{w.key}/{index}', 5)}"
            ip = f"10.{w_index % 250 + 1}.{index // 250}.{index % 250 + 2}"
            made.append(Pod(w, index, name, ip, template, first, _FOREVER))

        replicas = 1 if w.external else w.replicas
        for i in range(replicas):
            add(i, 0)
        for event in events:
            k = _scrape_at(event.start_s, interval_s)
            live = [p for p in made if p.last == _FOREVER]
            if event.replicas > len(live):
                for i in range(len(made), len(made) + event.replicas - len(live)):
                    add(i, k)
            for pod in live[event.replicas:]:
                pod.last = k - 1 if k > pod.first else pod.first
        for event in scenario.incidents:
            if event.kind == "pod_restart" and event.workload in (w.key, w.name):
                k = max(_scrape_at(event.start_s, interval_s), 1)
                if not (event.pod < len(made) and made[event.pod].first <= k <= made[event.pod].last):
                    running = [p.index for p in made if p.first <= k <= p.last]
                    raise InvalidArgument(f"pod_restart on {w.key} at {event.start_s:g}s: there is no pod "
                                          f"{event.pod} at that time (pods running: {running})")
                made[event.pod].restarts.append(k)
        pods[w.key] = made
    return pods


def _pods(scenario: Scenario, n: int) -> dict[str, list[Pod]]:
    # The timeline cut at scrape n - 1: what is scheduled later does not happen in this run.
    return {key: [Pod(p.workload, p.index, p.name, p.ip, p.template_hash, p.first, min(p.last, n - 1),
                      sorted(r for r in p.restarts if r <= n - 1))
                  for p in pods if p.first <= n - 1]
            for key, pods in pod_timeline(scenario).items()}


#: The default largest run :func:`simulate` accepts, in simulated values (see
#: :func:`estimate_samples`). Measured at about 7 bytes of peak memory per value (a week of
#: the shop scenario: 7.0 M values, +50 MB, 1.3 s), so about 0.7 GB and 20 s at the limit,
#: before any mesh renders it.
MAX_SAMPLES = 100_000_000


def estimate_samples(scenario: Scenario, n: int) -> int:
    """How many values a run of ``n`` scrapes simulates, before simulating it.

    Per edge: one count per scrape, pair of pods and status, plus four for connections and
    bytes; per pod two series (CPU and memory). Cheap: it counts pods without making them.
    """
    pods: dict[str, int] = {}
    for w in scenario.workloads:
        live = made = 1 if w.external else w.replicas
        for event in sorted((i for i in scenario.incidents if i.kind == "scale" and i.workload in (w.key, w.name)),
                            key=lambda i: i.start_s):
            made += max(event.replicas - live, 0)
            live = event.replicas
        pods[w.key] = made
    bursts = {code for i in scenario.incidents if i.kind == "error_burst" for code in i.errors}
    per_scrape = 2 * sum(pods.values())
    for edge in scenario.edges:
        statuses = 0 if edge.protocol == "tcp" else 1 + len(set(edge.errors) | bursts)
        pairs = pods[scenario.workload(edge.source).key] * pods[scenario.workload(edge.target).key]
        per_scrape += pairs * (statuses + 4)
    return n * per_scrape
