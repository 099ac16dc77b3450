"""``meshlab.sandbox()``: a real Prometheus on your laptop, full of simulated mesh traffic.

>>> with ml.sandbox(scenario="shop", meshes=("linkerd", "istio"), hours=2) as prom:   # doctest: +SKIP
...     prom.query("sum by (deployment) (rate(response_total[5m]))")

The scenario is simulated and loaded into ``prometheus`` from PATH, on a free loopback
port: pushed by remote write (the default, about five times faster), or written as
OpenMetrics and backfilled with promtool (``load="promtool"``). On exit the server is
stopped by PID and its data removed. The run ends now unless ``end=`` pins it. The run's
TSDB blocks are cached (keyed by meshlab's version, the scenario and the arguments, not the
time), with a manifest of sizes and checksums checked on every use, so the next sandbox of
the same run only copies them and moves them in time (:func:`meshlab.prometheus.tsdb.shift_blocks`);
the cache keeps to ``$MESHLAB_CACHE_MAX_BYTES`` (2 GiB by default), dropping the least
recently used runs first (:func:`prune_cache`, in :mod:`meshlab.sim.cache`). Several clusters at
once (``clusters=``) are :mod:`meshlab.sim.fleet`'s.

Longer than 400 lines: over half of them are docstrings, and the run's placement in time, the
Sandbox and its cache-aware loader share the run and the server; the cache itself is its own module.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import signal
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from .. import __version__, schema
from ..errors import InvalidArgument, MeshlabError
from ..prometheus.client import Prometheus
from ..prometheus.local import (
    LocalPrometheus,
    backfill,
    find_binary,
    locked_tempdir,
    remove_stale_dirs,
    remove_stale_workdirs,
)
from ..prometheus.tsdb import ManifestError, can_shift, verify_manifest, write_manifest
from ..timeutil import TimeLike, format_duration, to_millis, to_timestamp, utc_now
from .cache import CACHE_MAX_BYTES as CACHE_MAX_BYTES
from .cache import _cache_budget, _cache_lock, cache_dir, prune_cache
from .meshes import check_mesh
from .output import push_backfill, write_backfill
from .scenario import Scenario, load_scenario
from .traffic import Traffic, simulate

if TYPE_CHECKING:
    from .exporter import SimExporter

__all__ = ["Sandbox", "SandboxCacheWarning", "cache_dir", "end_run_at", "prune_cache", "sandbox"]

DEFAULT_MESHES = ("linkerd", "istio", "consul")
#: How a sandbox loads its run into Prometheus; the first is the default.
LOADERS = ("remote-write", "promtool")
#: How many hours of traffic a live sandbox simulates after its history (then its counters stop).
LIVE_HOURS = 6.0
#: The scrape job of a live sandbox's Prometheus.
LIVE_JOB = "meshlab-sim"


class SandboxCacheWarning(UserWarning):
    """A cached run was damaged (or would not start) and is being rebuilt."""


def end_run_at(traffic: Traffic, end: TimeLike | None = None) -> Traffic:
    """The same run moved in time so that its last scrape is at ``end``.

    Parameters
    ----------
    traffic : Traffic
        A simulated run.
    end : time, optional
        ``None`` or ``"now"`` for the current time, else any time :func:`meshlab.timeutil.to_timestamp`
        reads (``"2024-03-04T06:00:00Z"``, ``"-1h"``, unix seconds). Rounded down to a whole
        scrape interval since the epoch.

    Returns
    -------
    Traffic
        Every timestamp (and the scenario's ``start``) moved by the same amount; the counts,
        pods and incidents are the run's own, so its truth moves with it.
    """
    stamp = utc_now() if end is None else to_timestamp(end, name="end")
    step = int(traffic.interval_s * 1000)
    end_ms = to_millis(stamp) // step * step
    delta = end_ms - int(traffic.times_ms[-1])
    if delta == 0:
        return traffic
    scenario = dataclasses.replace(traffic.scenario, start=traffic.scenario.start + pd.Timedelta(delta, unit="ms"))
    return dataclasses.replace(traffic, scenario=scenario, times_ms=traffic.times_ms + delta)


def place_run(scenario: Scenario, hours: float | None, *, end: TimeLike | None = None, live: bool = False,
              live_hours: float = LIVE_HOURS) -> tuple[Traffic, Traffic | None]:
    """Simulate ``scenario`` ending at ``end``; with ``live``, also the run that continues it in real time.

    Returns
    -------
    (Traffic, Traffic or None)
        The history, and (``live=True``) the history and ``live_hours`` after it as one run,
        placed so that its first ``len(history)`` scrapes are the history's.
    """
    traffic = end_run_at(simulate(scenario, hours=hours), end)
    if not isinstance(live, bool):
        raise InvalidArgument(f"live must be True or False, got {live!r}; give live_hours= for how long")
    if not live:
        return traffic, None
    if end is not None and to_millis(to_timestamp(end, name="end")) < to_millis(utc_now()) - 1000 * 3600:
        raise InvalidArgument("live=True continues the run in real time from its end: leave end= out (or near now)")
    if isinstance(live_hours, bool) or not isinstance(live_hours, (int, float)) or not live_hours > 0:
        raise InvalidArgument(f"live_hours must be a number of hours > 0, got {live_hours!r}")
    history_h = traffic.interval_s * (traffic.n - 1) / 3600
    # a shorter run is the start of a longer one: the history, then what comes after it
    full = simulate(scenario, hours=history_h + float(live_hours))
    extra_ms = int(full.times_ms[-1] - full.times_ms[traffic.n - 1])
    return traffic, end_run_at(full, pd.Timestamp(int(traffic.times_ms[-1]) + extra_ms, unit="ms", tz="UTC"))


def live_scrape_config(address: str, interval_s: float) -> str:
    """The scrape configuration (Prometheus' or vmagent's) of a live sandbox's exporter at ``address``."""
    interval = format_duration(pd.Timedelta(seconds=interval_s))
    # honor_labels keeps the proxies' own job and instance labels, so the live series continue the history's
    return (f"global:\n  scrape_interval: {interval}\n  scrape_timeout: {interval}\n"
            f"scrape_configs:\n  - job_name: {LIVE_JOB}\n    honor_labels: true\n"
            f"    static_configs:\n      - targets: ['{address}']\n")


class Sandbox:
    """A simulated run served by a real local Prometheus; see :func:`sandbox`.

    Attributes
    ----------
    scenario : Scenario
        The scenario, its ``start`` moved to where the run is placed.
    traffic : Traffic
        The simulated run at the times Prometheus holds it, for ground truth (:meth:`truth`).
    server : LocalPrometheus
    prometheus : Prometheus
        The client for the running server.
    live_traffic : Traffic or None
        With ``live=True``: the history and the live hours after it, one run placed in real time,
        whose later scrapes the exporter serves as the clock reaches them.
    exporter : SimExporter or None
        With ``live=True``, while running: the ``/metrics`` endpoint Prometheus scrapes.
    """

    def __init__(self, scenario: str | os.PathLike[str] | Scenario | dict[str, Any] = "shop",
                 meshes: Sequence[str] = DEFAULT_MESHES, hours: float | None = None, *, cache: bool = True,
                 load: str = "remote-write", end: TimeLike | None = None, live: bool = False,
                 live_hours: float = LIVE_HOURS):
        for name in meshes:
            check_mesh(name)
        if load not in LOADERS:
            raise InvalidArgument(f"unknown load {load!r}; must be one of: {', '.join(LOADERS)}")
        find_binary("prometheus", env="MESHLAB_PROMETHEUS")  # fail early, with how to install it
        if load == "promtool":
            find_binary("promtool", env="MESHLAB_PROMTOOL")
        self.load = load
        self._scenario = load_scenario(scenario)  # the run as simulated, placed at the scenario's own start
        self.meshes = tuple(meshes)
        self.traffic, self.live_traffic = place_run(self._scenario, hours, end=end, live=live, live_hours=live_hours)
        self.scenario = self.traffic.scenario
        self.cache = cache
        self.server: LocalPrometheus | None = None
        self.exporter: SimExporter | None = None

    @property
    def key(self) -> str:
        """What identifies this run's data: meshlab's version, the scenario, the length and the meshes.

        Not where the run is placed in time: a cached run is moved to the time asked for.
        """
        spec = {"version": __version__, "scenario": self._scenario.to_dict(), "meshes": self.meshes,
                "scrapes": self.traffic.n}
        return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def _cache_path(self) -> Path:
        return cache_dir() / "sandbox" / self.key

    def _store_in_cache(self, fill: Callable[[Path], object]) -> Path:
        """Fill a staging directory with the run's blocks and a manifest, and move it into the cache atomically.

        The staging directory is locked while it is filled, so a start after this process is
        killed removes it (:func:`~meshlab.prometheus.local.remove_stale_dirs`).
        """
        target = self._cache_path()
        target.parent.mkdir(parents=True, exist_ok=True)
        with locked_tempdir(f".{self.key}-", target.parent) as staging:
            run = staging / "run"
            run.mkdir()
            fill(run)
            write_manifest(run, start_ms=int(self.traffic.times_ms[0]), end_ms=int(self.traffic.times_ms[-1]),
                           meshlab=__version__)
            try:
                os.replace(run, target)  # atomic: a half-written cache is never used
            except OSError:
                if not target.exists():
                    raise  # otherwise another process stored the same run first
        prune_cache(keep=[target])
        return target

    def _backfill_blocks(self, directory: Path) -> None:
        with locked_tempdir("meshlab-sandbox-") as tmp:
            files, _ = write_backfill(self.traffic, self.meshes, tmp)
            backfill(files, directory)

    def _pushed_server(self) -> LocalPrometheus:
        """A running Prometheus loaded by remote write."""
        server = LocalPrometheus(remote_write=True)
        try:
            server.start()
            push_backfill(self.traffic, self.meshes, server.client)
        except BaseException:
            server.stop()
            raise
        return server

    def _uncached_server(self) -> LocalPrometheus:
        if self.load == "remote-write":
            return self._pushed_server()
        with locked_tempdir("meshlab-sandbox-") as tmp:
            files, _ = write_backfill(self.traffic, self.meshes, tmp)
            server = LocalPrometheus(openmetrics=files)  # promtool writes straight into its TSDB
            server.start()
        return server

    def _drop(self, entry: Path, why: str) -> None:
        """Remove a damaged cache entry (unless another process has replaced it by a good one), and say so."""
        with _cache_lock(shared=False):
            try:
                verify_manifest(entry)
                if why.startswith("its manifest"):
                    return  # rebuilt meanwhile by another process
            except ManifestError:
                pass
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            elif entry.exists() or entry.is_symlink():
                entry.unlink()
        warnings.warn(f"the sandbox cache entry {entry} was dropped and is being rebuilt: {why}",
                      SandboxCacheWarning, stacklevel=4)

    def start(self) -> Sandbox:
        """Load the run into Prometheus (or reuse its cached blocks, moved in time) and start serving it.

        A live sandbox then has Prometheus scrape the simulator's exporter in real time.
        """
        warm: threading.Thread | None = None
        if self.live_traffic is not None:
            from .exporter import SimExporter

            traffic = self.live_traffic
            self.exporter = SimExporter(traffic, self.meshes, origin_ms=int(traffic.times_ms[0]))
            # Rendering the run up to now (counter state carries from chunk to chunk) takes seconds
            # for hours of history: done while the history loads, not during the first scrape.
            warm = threading.Thread(target=self.exporter.render, daemon=True)
            warm.start()
        try:
            self._load()
            if warm is not None:
                warm.join()
                self._go_live()
        except BaseException:
            self.stop()
            raise
        return self

    def _go_live(self) -> None:
        """Point the loaded server's scrapes at an exporter serving the run's continuation, as the clock goes."""
        assert self.server is not None and self.live_traffic is not None and self.exporter is not None
        traffic = self.live_traffic
        self.exporter.start()
        config = live_scrape_config(self.exporter.address, traffic.interval_s)
        # Only now: a scrape during the load would put samples at "now" ahead of the history being pushed.
        (self.server.workdir / "prometheus.yml").write_text(config)
        pid = self.server.pid
        if pid is None:
            raise MeshlabError(f"prometheus stopped before the live scrapes began:\n{self.server.log_tail()}")
        os.kill(pid, signal.SIGHUP)  # reload the configuration
        deadline = time.monotonic() + 2 * traffic.interval_s + 30
        while time.monotonic() < deadline:
            targets = self.server.client.get("targets", {"state": "active"}).get("activeTargets", [])
            if any(t.get("health") == "up" for t in targets):
                return
            time.sleep(0.2)
        raise MeshlabError(f"prometheus did not scrape the live exporter at {self.exporter.url} within "
                           f"{2 * traffic.interval_s + 30:g} s; its log ends with:\n{self.server.log_tail()}")

    def _load(self) -> None:
        remove_stale_workdirs("sandbox")  # OpenMetrics of builds that were killed
        if not self.cache:
            self.server = self._uncached_server()
            return
        _cache_budget()  # a bad setting fails before the work, not after
        root = cache_dir() / "sandbox"
        root.mkdir(parents=True, exist_ok=True)
        remove_stale_dirs(root, ".?*-*")  # staging folders of builds that were killed
        start_ms, end_ms = int(self.traffic.times_ms[0]), int(self.traffic.times_ms[-1])
        for _attempt in range(3):
            entry = self._cache_path()
            damage = ""
            with _cache_lock(shared=True):  # no pruning while the run is checked and copied
                if entry.exists() or entry.is_symlink():
                    try:
                        manifest: dict[str, Any] = verify_manifest(entry)
                        cached_start = int(manifest["start_ms"])
                        cached_end = int(manifest["end_ms"])
                        if cached_end - cached_start != end_ms - start_ms:
                            raise ManifestError(f"{entry} holds {cached_start}..{cached_end}, not a run this long")
                    except (ManifestError, KeyError, TypeError, ValueError) as exc:
                        damage = f"its manifest does not match: {exc}"
                    else:
                        delta = start_ms - cached_start
                        if not can_shift(cached_start, cached_end, delta):
                            break  # too far in time to move: load it afresh, outside the lock
                        os.utime(entry)  # a use: the least recently used runs are pruned first
                        server = LocalPrometheus(blocks=entry, shift_ms=delta)
                        try:
                            server.start()
                        except MeshlabError as exc:
                            damage = f"prometheus did not start from it: {exc}"
                        else:
                            self.server = server
                            return
            if damage:
                self._drop(entry, damage)
                continue
            if self.load == "remote-write":
                self.server = self._pushed_server()  # serve the loaded server; cache a snapshot of it
                try:
                    self._store_in_cache(self.server.snapshot)
                except BaseException:
                    self.stop()
                    raise
                return
            self._store_in_cache(self._backfill_blocks)  # then serve it from the cache, like any other start
        else:
            raise MeshlabError(f"the sandbox cache at {root} kept failing (pruned or damaged three times while "
                               "this run was being built); raise MESHLAB_CACHE_MAX_BYTES, check the disk, or pass "
                               "cache=False")
        self.server = self._uncached_server()
        return

    @property
    def prometheus(self) -> Prometheus:
        if self.server is None:
            raise RuntimeError("the sandbox is not running; use it in a `with` block")
        return self.server.client

    def stop(self) -> None:
        """Stop Prometheus (and a live sandbox's exporter) and remove its data (the cache stays)."""
        if self.exporter is not None:
            self.exporter.stop()
            self.exporter = None
        if self.server is not None:
            self.server.stop()
            self.server = None

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _repr_html_(self) -> str:
        from .._html import sandbox_html

        return sandbox_html(self)

    def truth(self, kind: str = "traffic", mesh: str | None = None) -> pd.DataFrame:
        """Ground truth of the run: ``traffic``, ``edges``, ``tcp``, ``proxies`` or ``status_counts``."""
        from . import truth

        if kind == "status_counts":
            return truth.status_truth(self.traffic)
        makers = {"traffic": truth.traffic_truth, "edges": truth.edges_truth, "tcp": truth.tcp_truth,
                  "proxies": truth.proxies_truth}
        if kind not in makers:
            known = ", ".join([*makers, "status_counts"])
            raise InvalidArgument(f"unknown truth kind {kind!r}; must be one of: {known}")
        meshes = [mesh] if mesh else [*self.meshes, "none"]
        return schema.concat((makers[kind](self.traffic, m) for m in meshes), kind)


@contextmanager
def sandbox(scenario: str | os.PathLike[str] | Scenario | dict[str, Any] = "shop",
            meshes: Sequence[str] = DEFAULT_MESHES, hours: float | None = None, *,
            cache: bool = True, load: str = "remote-write", end: TimeLike | None = None, live: bool = False,
            live_hours: float = LIVE_HOURS, clusters: Mapping[str, Any] | None = None,
            store: str = "victoria-metrics") -> Iterator[Any]:
    """Simulate a scenario into a real local Prometheus and yield a client for it.

    Parameters
    ----------
    scenario : str, path, Scenario or dict
        A built-in scenario name (``"shop"``), a YAML/TOML file, or a scenario.
    meshes : sequence of str
        Whose metrics to render: ``linkerd``, ``istio``, ``consul``, ``kuma``, ``hubble`` (``none``
        renders none).
    hours : float, optional
        How much history; the scenario's own duration by default.
    end : time, optional
        When the run ends: now by default (rounded down to the scrape interval), so ``"now"``
        and ``"-1h"`` fall inside it; pin a time (``"2024-03-04T06:00:00Z"``) for a
        reproducible run. The run itself (counts, incidents at their offsets from its start,
        a diurnal shape's phase) is the scenario's whatever the end: it is moved in time, not
        simulated again, and :meth:`Sandbox.truth` moves with it.
    cache : bool
        Reuse (and keep) the TSDB blocks of identical runs; a cached run is moved to ``end``
        (0.3 s for six hours of three meshes) instead of loaded again. Every use checks the
        entry against its manifest (sizes and checksums); a damaged one is dropped, with a
        :class:`SandboxCacheWarning` naming it, and rebuilt.
    load : {"remote-write", "promtool"}
        How the run gets into Prometheus: pushed by remote write into the running server
        (about five times faster), or written as OpenMetrics and backfilled with
        ``promtool tsdb create-blocks-from openmetrics`` before it starts. Both hold the same
        samples.
    live : bool
        Keep the run going after its history: the simulator's exporter serves the scrapes that
        follow, each when the wall clock reaches it, and the sandbox's Prometheus scrapes it
        every scrape interval, so ``at="now"`` moves. Scraping starts once the history is loaded
        (and cached); the history's end, and so ``end=``, is now.
    live_hours : float
        How long the live traffic lasts (6 hours by default); after it the counters stand still.
    clusters : mapping of str to scenario, optional
        A fleet: one simulated cluster per name (``{"eu": "shop", "us": "shop"}``; each with a
        seed of its own, so their traffic differs), instead of ``scenario``. See
        :mod:`meshlab.sim.fleet`.
    store : {"victoria-metrics", "prometheus"}
        With ``clusters``: one VictoriaMetrics for all, every series labelled ``cluster``
        (a ``vmagent`` per cluster scrapes it live), yielded as one client (read it with
        ``by_cluster=True``); or one Prometheus per cluster, yielded as a dict of clients
        for :func:`meshlab.concat_sources`. ``cache`` and ``load`` apply to Prometheus only.

    Yields
    ------
    Prometheus
        Its ``sandbox`` attribute is the :class:`Sandbox` (scenario, traffic, truth); with
        ``clusters``, the :class:`~meshlab.sim.fleet.Fleet` (and, for ``store="prometheus"``,
        a dict of cluster name to client).

    Raises
    ------
    BinaryNotFoundError
        When ``prometheus`` (or, for ``load="promtool"``, ``promtool``) is not on PATH, saying
        how to install it: ``apt-get install prometheus`` or ``conda install -c conda-forge
        prometheus``.
    """
    if clusters is not None:
        from .fleet import Fleet

        if scenario != "shop":
            raise InvalidArgument("give each cluster its scenario in clusters= ({'eu': 'shop'}), not scenario=")
        fleet = Fleet(clusters, meshes, hours, store=store, end=end, live=live, live_hours=live_hours, cache=cache,
                      load=load)
        with fleet:
            if store == "prometheus":
                yield fleet.sources
                return
            client = fleet.prometheus
            client.sandbox = fleet  # type: ignore[attr-defined]
            yield client
        return
    box = Sandbox(scenario, meshes, hours, cache=cache, load=load, end=end, live=live, live_hours=live_hours)
    with box:
        client = box.prometheus
        client.sandbox = box  # type: ignore[attr-defined]
        yield client
