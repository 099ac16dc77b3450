"""Fleet sandboxes: several simulated clusters, in one VictoriaMetrics or in one Prometheus each.

>>> with ml.sandbox(clusters={"eu": "shop", "us": "shop"}, meshes=["istio"],   # doctest: +SKIP
...                 store="victoria-metrics") as vm:
...     ml.Istio(vm).traffic(at="now", by_cluster=True)

``store="victoria-metrics"`` is how a fleet ships metrics to one store: each cluster has its
own ``vmagent`` (:class:`~meshlab.prometheus.vmagent.VmAgent`) adding ``cluster=<name>`` and
remote-writing into one VictoriaMetrics, so every series carries ``cluster``. Each cluster's
history is pushed straight to VictoriaMetrics by remote write with the same label; measured
for an hour of ``shop`` (223 k samples), that is searchable at once, where the same push
through a vmagent was acknowledged as fast but became searchable only about 10 s later. The
vmagents then do what an agent is for: with ``live=True`` each scrapes its cluster's
simulator exporter in real time. ``store="prometheus"`` keeps one Prometheus sandbox per
cluster, read with :func:`meshlab.concat_sources`.

Each cluster runs its scenario with a seed of its own (from the cluster's name), so two
clusters of ``"shop"`` have the same workloads but different traffic.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import threading
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd

from .. import schema
from ..errors import InvalidArgument, MeshlabError
from ..prometheus.client import Prometheus
from ..prometheus.local import LocalVictoriaMetrics, find_binary
from ..timeutil import TimeLike
from .meshes import check_mesh
from .sandbox import DEFAULT_MESHES, LIVE_HOURS, Sandbox, live_scrape_config, place_run
from .scenario import Scenario, load_scenario
from .traffic import Traffic

if TYPE_CHECKING:
    from ..prometheus.vmagent import VmAgent
    from .exporter import SimExporter

__all__ = ["CLUSTER_LABEL", "STORES", "Fleet", "cluster_scenario"]

#: Where a fleet sandbox keeps its clusters' metrics; the first is the default.
STORES = ("victoria-metrics", "prometheus")
#: The label every series of a fleet in one store carries.
CLUSTER_LABEL = "cluster"

ScenarioLike = str | os.PathLike[str] | Scenario | dict[str, Any]


def cluster_scenario(scenario: ScenarioLike, cluster: str) -> Scenario:
    """``scenario`` with a seed of its own for ``cluster``: the same workloads, different traffic."""
    loaded = load_scenario(scenario)
    digest = int(hashlib.sha256(cluster.encode()).hexdigest()[:15], 16)
    return dataclasses.replace(loaded, seed=(loaded.seed + digest) % 2**64)


def _check_clusters(clusters: object) -> dict[str, ScenarioLike]:
    if not isinstance(clusters, Mapping) or not clusters:
        raise InvalidArgument("clusters must be a non-empty mapping of cluster name to scenario, such as "
                              "{'eu': 'shop', 'us': 'shop'}")
    for name in clusters:
        if not isinstance(name, str) or not name or "," in name or "=" in name or not name.isprintable():
            raise InvalidArgument(f"cluster names must be non-empty text without ',' or '=', got {name!r}")
    return dict(clusters)


class Fleet:
    """Several simulated clusters served together; see :func:`meshlab.sandbox` (``clusters=``).

    Attributes
    ----------
    traffic : dict of str to Traffic
        Each cluster's history, at the times the store holds it (ground truth: :meth:`truth`).
    server : LocalVictoriaMetrics or None
        With ``store="victoria-metrics"``, while running.
    agents : dict of str to VmAgent
        With ``live=True`` on VictoriaMetrics: each cluster's vmagent.
    sandboxes : dict of str to Sandbox
        With ``store="prometheus"``: one sandbox per cluster.
    """

    def __init__(self, clusters: Mapping[str, ScenarioLike], meshes: Sequence[str] = DEFAULT_MESHES,
                 hours: float | None = None, *, store: str = "victoria-metrics", end: TimeLike | None = None,
                 live: bool = False, live_hours: float = LIVE_HOURS, cache: bool = True, load: str = "remote-write"):
        specs = _check_clusters(clusters)
        if store not in STORES:
            raise InvalidArgument(f"unknown store {store!r}; must be one of: {', '.join(STORES)}")
        for mesh in meshes:
            check_mesh(mesh)
        self.store = store
        self.meshes = tuple(meshes)
        self.live = live
        scenarios = {name: cluster_scenario(spec, name) for name, spec in specs.items()}
        self.sandboxes: dict[str, Sandbox] = {}
        self.live_traffic: dict[str, Traffic] = {}
        if store == "prometheus":
            self.sandboxes = {name: Sandbox(s, meshes, hours, cache=cache, load=load, end=end, live=live,
                                            live_hours=live_hours) for name, s in scenarios.items()}
            self.traffic = {name: box.traffic for name, box in self.sandboxes.items()}
        else:
            find_binary("victoria-metrics", "victoria-metrics-prod", env="MESHLAB_VICTORIA_METRICS")
            if live:
                find_binary("vmagent", "vmagent-prod", env="MESHLAB_VMAGENT")
            self.traffic = {}
            for name, scenario in scenarios.items():
                self.traffic[name], continued = place_run(scenario, hours, end=end, live=live, live_hours=live_hours)
                if continued is not None:
                    self.live_traffic[name] = continued
        self.server: LocalVictoriaMetrics | None = None
        self.agents: dict[str, VmAgent] = {}
        self.exporters: dict[str, SimExporter] = {}

    @property
    def clusters(self) -> list[str]:
        return list(self.traffic)

    @property
    def prometheus(self) -> Prometheus:
        """The client of the one store (``store="victoria-metrics"``)."""
        if self.store != "victoria-metrics":
            raise MeshlabError("a fleet with store='prometheus' has one server per cluster: use .sources")
        if self.server is None:
            raise RuntimeError("the fleet is not running; use it in a `with` block")
        return self.server.client

    @property
    def sources(self) -> dict[str, Prometheus]:
        """Cluster name -> client: one server each (``store="prometheus"``), or the one store for all."""
        if self.store == "prometheus":
            return {name: box.prometheus for name, box in self.sandboxes.items()}
        return dict.fromkeys(self.traffic, self.prometheus)

    def start(self) -> Fleet:
        """Load every cluster's history and, with ``live=True``, start scraping each cluster live."""
        try:
            if self.store == "prometheus":
                for box in self.sandboxes.values():
                    box.start()
            else:
                self._start_store()
        except BaseException:
            self.stop()
            raise
        return self

    def _start_store(self) -> None:
        from .exporter import SimExporter
        from .output import push_backfill

        warm = []
        for name, traffic in self.live_traffic.items():
            exporter = SimExporter(traffic, self.meshes, origin_ms=int(traffic.times_ms[0]))
            self.exporters[name] = exporter
            warm.append(threading.Thread(target=exporter.render, daemon=True))  # the first scrape, rendered early
            warm[-1].start()
        self.server = LocalVictoriaMetrics()
        self.server.start()
        for name, traffic in self.traffic.items():
            push_backfill(traffic, self.meshes, self.server.client, labels={CLUSTER_LABEL: name})
        self.server.force_flush()
        for thread in warm:
            thread.join()
        if self.live_traffic:
            self._go_live()

    def _go_live(self) -> None:
        from ..prometheus.vmagent import VmAgent

        assert self.server is not None
        interval = max(t.interval_s for t in self.live_traffic.values())
        for name, exporter in self.exporters.items():
            exporter.start()
            config = live_scrape_config(exporter.address, self.live_traffic[name].interval_s)
            agent = VmAgent(self.server.url, labels={CLUSTER_LABEL: name}, scrape_config=config)
            self.agents[name] = agent
            agent.start()
        deadline = time.monotonic() + 2 * interval + 30
        waiting = dict(self.agents)
        while waiting and time.monotonic() < deadline:
            waiting = {name: agent for name, agent in waiting.items() if not agent.targets_up()}
            time.sleep(0.2)
        if waiting:
            name, agent = next(iter(waiting.items()))
            raise MeshlabError(f"vmagent of cluster {name!r} did not scrape its exporter within "
                               f"{2 * interval + 30:g} s; its log ends with:\n{agent.log_tail()}")

    def stop(self) -> None:
        """Stop every agent, exporter and server, and remove their data."""
        for agent in self.agents.values():
            agent.stop()
        self.agents = {}
        for exporter in self.exporters.values():
            exporter.stop()
        self.exporters = {}
        if self.server is not None:
            self.server.stop()
            self.server = None
        for box in self.sandboxes.values():
            box.stop()

    def __enter__(self) -> Fleet:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def truth(self, kind: str = "traffic", mesh: str | None = None) -> pd.DataFrame:
        """Ground truth of every cluster's history, with a categorical ``cluster`` column."""
        from . import truth

        makers = {"traffic": truth.traffic_truth, "edges": truth.edges_truth, "tcp": truth.tcp_truth,
                  "proxies": truth.proxies_truth}
        if kind not in makers:
            raise InvalidArgument(f"unknown truth kind {kind!r}; must be one of: {', '.join(makers)}")
        meshes = [mesh] if mesh else [*self.meshes, "none"]
        parts = [makers[kind](traffic, m).assign(cluster=name) for name, traffic in self.traffic.items()
                 for m in meshes]
        out = schema.concat(parts, kind)
        out["cluster"] = out["cluster"].cat.set_categories(self.clusters)
        return out
