"""``meshlab.sandbox()``: a real Prometheus on your laptop, full of simulated mesh traffic.

>>> with ml.sandbox(scenario="shop", meshes=("linkerd", "istio"), hours=2) as prom:   # doctest: +SKIP
...     prom.query("sum by (deployment) (rate(response_total[5m]))")

The scenario is simulated and loaded into ``prometheus`` from PATH, on a free loopback
port: pushed by remote write (the default, about five times faster), or written as
OpenMetrics and backfilled with promtool (``load="promtool"``). On exit the server is
stopped by PID and its data removed. The run's TSDB blocks are cached (keyed by meshlab's
version, the scenario and the arguments), so the next sandbox of the same run starts in
well under a second;
the cache keeps to ``$MESHLAB_CACHE_MAX_BYTES`` (2 GiB by default), dropping the least
recently used runs first (:func:`prune_cache`).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from .. import __version__, schema
from ..errors import InvalidArgument, MeshlabError
from ..prometheus.client import Prometheus
from ..prometheus.local import LocalPrometheus, backfill, find_binary
from .meshes import check_mesh
from .output import push_backfill, write_backfill
from .scenario import Scenario, load_scenario
from .traffic import Traffic, simulate

__all__ = ["Sandbox", "cache_dir", "prune_cache", "sandbox"]

DEFAULT_MESHES = ("linkerd", "istio", "consul")
#: How a sandbox loads its run into Prometheus; the first is the default.
LOADERS = ("remote-write", "promtool")
#: How much the sandbox cache may hold before the least recently used runs are removed.
CACHE_MAX_BYTES = 2 * 2**30


def cache_dir() -> Path:
    """Where sandboxes cache their TSDB blocks: ``$MESHLAB_CACHE``, else ``~/.cache/meshlab``."""
    explicit = os.environ.get("MESHLAB_CACHE")
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "meshlab"


def prune_cache(max_bytes: int | None = None, *, keep: Sequence[Path] = ()) -> list[Path]:
    """Remove the least recently used cached runs until the sandbox cache holds at most ``max_bytes``.

    Safe to run from several processes: pruning takes the cache's lock exclusively, and a
    sandbox holds it shared while it copies a run, so no run is removed under a reader.

    Parameters
    ----------
    max_bytes : int, optional
        The budget; ``$MESHLAB_CACHE_MAX_BYTES``, else 2 GiB. ``0`` empties the cache.
    keep : sequence of Path
        Runs never removed (the one just built).

    Returns
    -------
    list of Path
        The runs removed.
    """
    budget = _cache_budget() if max_bytes is None else max_bytes
    root = cache_dir() / "sandbox"
    removed = []
    with _cache_lock(shared=False):
        runs = {}
        for run in root.iterdir():
            if run.is_dir() and not run.name.startswith("."):  # dot-names are runs still being built
                try:
                    runs[run] = (run.stat().st_mtime, sum(f.stat().st_size for f in run.rglob("*") if f.is_file()))
                except FileNotFoundError:  # removed by hand meanwhile
                    continue
        total = sum(size for _, size in runs.values())
        for run in sorted(runs, key=lambda r: runs[r][0]):  # oldest use first
            if total <= budget:
                break
            if run in keep:
                continue
            shutil.rmtree(run, ignore_errors=True)
            total -= runs[run][1]
            removed.append(run)
    return removed


def _cache_budget() -> int:
    text = os.environ.get("MESHLAB_CACHE_MAX_BYTES")
    if text is None:
        return CACHE_MAX_BYTES
    try:
        return int(text)
    except ValueError:
        raise InvalidArgument(f"MESHLAB_CACHE_MAX_BYTES must be a whole number of bytes (e.g. {CACHE_MAX_BYTES}), "
                              f"got {text!r}") from None


@contextmanager
def _cache_lock(*, shared: bool) -> Iterator[None]:
    """The sandbox cache's lock: shared while a run is read, exclusive while runs are removed."""
    root = cache_dir() / "sandbox"
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "ab") as lock:
        fcntl.flock(lock, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        yield


class Sandbox:
    """A simulated run served by a real local Prometheus; see :func:`sandbox`.

    Attributes
    ----------
    scenario : Scenario
    traffic : Traffic
        The simulated run, for ground truth (:meth:`truth`).
    server : LocalPrometheus
    prometheus : Prometheus
        The client for the running server.
    """

    def __init__(self, scenario: str | os.PathLike[str] | Scenario | dict[str, Any] = "shop",
                 meshes: Sequence[str] = DEFAULT_MESHES, hours: float | None = None, *, cache: bool = True,
                 load: str = "remote-write"):
        for name in meshes:
            check_mesh(name)
        if load not in LOADERS:
            raise InvalidArgument(f"unknown load {load!r}; must be one of: {', '.join(LOADERS)}")
        find_binary("prometheus", env="MESHLAB_PROMETHEUS")  # fail early, with how to install it
        if load == "promtool":
            find_binary("promtool", env="MESHLAB_PROMTOOL")
        self.load = load
        self.scenario = load_scenario(scenario)
        self.meshes = tuple(meshes)
        self.traffic: Traffic = simulate(self.scenario, hours=hours)
        self.cache = cache
        self.server: LocalPrometheus | None = None

    @property
    def key(self) -> str:
        """What identifies this run's data: meshlab's version, the scenario, the length and the meshes."""
        spec = {"version": __version__, "scenario": self.scenario.to_dict(), "meshes": self.meshes,
                "scrapes": self.traffic.n}
        return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def _cache_path(self) -> Path:
        return cache_dir() / "sandbox" / self.key

    def _store_in_cache(self, fill: Callable[[Path], object]) -> Path:
        """Fill a staging directory with the run's blocks and move it into the cache atomically."""
        target = self._cache_path()
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{self.key}-", dir=target.parent))
        try:
            fill(staging)
            os.replace(staging, target)  # atomic: a half-written cache is never used
        except OSError:
            if not target.exists():
                raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)  # left only if another process won the race
        prune_cache(keep=[target])
        return target

    def _backfill_blocks(self, directory: Path) -> None:
        with tempfile.TemporaryDirectory(prefix="meshlab-sandbox-") as tmp:
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

    def start(self) -> Sandbox:
        """Load the run into Prometheus (or reuse its cached blocks) and start serving it."""
        if not self.cache:
            if self.load == "remote-write":
                self.server = self._pushed_server()
                return self
            with tempfile.TemporaryDirectory(prefix="meshlab-sandbox-") as tmp:
                files, _ = write_backfill(self.traffic, self.meshes, tmp)
                self.server = LocalPrometheus(openmetrics=files)  # promtool writes straight into its TSDB
                self.server.start()
            return self
        _cache_budget()  # a bad setting fails before the work, not after
        for _attempt in range(2):
            blocks = self._cache_path()
            if not blocks.exists() and self.load == "remote-write":
                self.server = self._pushed_server()  # serve the loaded server; cache a snapshot of it
                try:
                    self._store_in_cache(self.server.snapshot)
                except BaseException:
                    self.stop()
                    raise
                return self
            if not blocks.exists():
                self._store_in_cache(self._backfill_blocks)
            with _cache_lock(shared=True):  # no pruning while Prometheus copies the run
                if not blocks.exists():
                    continue  # pruned by another process since it was built: build it again
                os.utime(blocks)  # a use: the least recently used runs are pruned first
                self.server = LocalPrometheus(blocks=blocks)
                self.server.start()
                return self
        raise MeshlabError("the sandbox cache was pruned twice while this run was being built; raise "
                           "MESHLAB_CACHE_MAX_BYTES or pass cache=False")

    @property
    def prometheus(self) -> Prometheus:
        if self.server is None:
            raise RuntimeError("the sandbox is not running; use it in a `with` block")
        return self.server.client

    def stop(self) -> None:
        """Stop Prometheus and remove its data (the cache stays)."""
        if self.server is not None:
            self.server.stop()
            self.server = None

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

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
            cache: bool = True, load: str = "remote-write") -> Iterator[Prometheus]:
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
    cache : bool
        Reuse (and keep) the TSDB blocks of identical runs.
    load : {"remote-write", "promtool"}
        How the run gets into Prometheus: pushed by remote write into the running server
        (about five times faster), or written as OpenMetrics and backfilled with
        ``promtool tsdb create-blocks-from openmetrics`` before it starts. Both hold the same
        samples.

    Yields
    ------
    Prometheus
        Its ``sandbox`` attribute is the :class:`Sandbox` (scenario, traffic, truth).

    Raises
    ------
    BinaryNotFoundError
        When ``prometheus`` (or, for ``load="promtool"``, ``promtool``) is not on PATH, saying
        how to install it: ``apt-get install prometheus`` or ``conda install -c conda-forge
        prometheus``.
    """
    box = Sandbox(scenario, meshes, hours, cache=cache, load=load)
    with box:
        client = box.prometheus
        client.sandbox = box  # type: ignore[attr-defined]
        yield client
