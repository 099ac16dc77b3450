"""meshlab.sandbox(): simulate, backfill, serve a real Prometheus, and cache the blocks."""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

import meshlab as ml
from meshlab.errors import BinaryNotFoundError
from meshlab.prometheus.local import stored_samples
from meshlab.sim import sandbox as sandbox_module

from .conftest import require_binary
from .test_sim import INCIDENTS


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MESHLAB_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _assert_linkerd_counts_are_the_truth(prom):
    """Requests per deployment over the whole (half-hour) run equal the simulator's ground truth."""
    at = prom.sandbox.traffic.times_ms[-1] / 1000
    frame = prom.query('sum by (deployment) (increase(request_total{direction="inbound"}[30m]))', time=at)
    truth = prom.sandbox.truth("traffic", "linkerd")
    expected = truth.groupby("name", observed=True)["requests"].sum()
    got = frame.set_index("deployment")["value"]
    assert got["web"] == expected["web"] and got["api"] == expected["api"]


def _never(*args, **kwargs):
    raise AssertionError("the cached blocks should have been reused")


def test_sandbox_serves_the_simulation_and_caches_it(cache, monkeypatch):
    require_binary("prometheus")
    with ml.sandbox(INCIDENTS, meshes=("linkerd", "istio"), hours=0.5) as prom:
        assert isinstance(prom, ml.Prometheus)
        _assert_linkerd_counts_are_the_truth(prom)
        at = prom.sandbox.traffic.times_ms[-1] / 1000
        assert len(prom.query("istio_requests_total", time=at)) > 0
        first_samples = stored_samples(prom, at, "1h")
        pid = prom.sandbox.server.pid
    assert prom.sandbox.server is None
    assert [p.name for p in (cache / "sandbox").iterdir() if not p.name.startswith(".")] == [prom.sandbox.key]

    monkeypatch.setattr(sandbox_module, "backfill", _never)
    monkeypatch.setattr(sandbox_module, "push_backfill", _never)
    with ml.sandbox(INCIDENTS, meshes=("linkerd", "istio"), hours=0.5) as again:
        assert again.sandbox.server.pid != pid
        # the cached run is moved to the new end: the same samples, at its own times
        assert stored_samples(again, again.sandbox.traffic.times_ms[-1] / 1000, "1h") == first_samples
        _assert_linkerd_counts_are_the_truth(again)


@pytest.mark.parametrize("load", sandbox_module.LOADERS)
def test_sandbox_without_cache_leaves_nothing(cache, load):
    require_binary("prometheus")
    if load == "promtool":
        require_binary("promtool")
    with ml.sandbox(INCIDENTS, meshes=("linkerd", "consul"), hours=0.5, cache=False, load=load) as prom:
        _assert_linkerd_counts_are_the_truth(prom)
        assert len(prom.query("envoy_cluster_upstream_rq_total", time=prom.sandbox.traffic.times_ms[-1] / 1000))
        workdir = prom.sandbox.server.workdir
    assert not cache.exists() and not workdir.exists()


def test_blocks_cached_by_promtool_serve_the_default_loader(cache, monkeypatch):
    require_binary("prometheus")
    require_binary("promtool")
    with ml.sandbox(INCIDENTS, meshes=("linkerd",), hours=0.25, load="promtool") as prom:
        at = prom.sandbox.traffic.times_ms[-1] / 1000
        first = prom.query("sum(response_total)", time=at)["value"].item()
        first_samples = stored_samples(prom, at, "1h")
    monkeypatch.setattr(sandbox_module, "backfill", _never)
    monkeypatch.setattr(sandbox_module, "push_backfill", _never)
    with ml.sandbox(INCIDENTS, meshes=("linkerd",), hours=0.25) as again:
        assert again.query("sum(response_total)", time=at)["value"].item() == first > 0
        assert stored_samples(again, at, "1h") == first_samples


def test_unknown_loader():
    with pytest.raises(ValueError, match="unknown load 'scp'; must be one of: remote-write, promtool"):
        ml.Sandbox(INCIDENTS, load="scp")


def test_missing_prometheus_says_how_to_install_it(monkeypatch, cache):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(BinaryNotFoundError, match=r"apt-get install .*prometheus.*conda install -c conda-forge "
                                                  r"prometheus"), ml.sandbox(INCIDENTS, hours=0.25):
        pass


def test_unknown_mesh():
    with pytest.raises(ValueError, match="unknown mesh 'osm'; available: linkerd, istio, consul, kuma, hubble, none"):
        ml.Sandbox(INCIDENTS, meshes=("osm",))


def test_the_cache_drops_the_least_recently_used_runs(cache):
    runs = cache / "sandbox"
    for i, name in enumerate(("old", "used", "new")):
        (runs / name).mkdir(parents=True)
        (runs / name / "block").write_bytes(b"x" * 1000)
        os.utime(runs / name, (1_000_000 + i, 1_000_000 + i))
    os.utime(runs / "used")  # used just now, as a cache hit does
    (runs / ".staging-in-progress").mkdir()  # another process's half-built run is not ours to remove
    assert sandbox_module.prune_cache(2500) == [runs / "old"]
    assert sandbox_module.prune_cache(1500, keep=[runs / "new"]) == [runs / "used"]
    assert sorted(p.name for p in runs.iterdir()) == [".lock", ".staging-in-progress", "new"]
    assert sandbox_module.prune_cache(0) == [runs / "new"]


def test_pruning_is_safe_from_several_threads_and_waits_for_readers(cache, monkeypatch):
    runs = cache / "sandbox"
    for i in range(20):
        (runs / f"run{i:02d}").mkdir(parents=True)
        (runs / f"run{i:02d}" / "block").write_bytes(b"x" * 100)
    with ThreadPoolExecutor(4) as pool:
        removed = [run for result in pool.map(lambda _: sandbox_module.prune_cache(0), range(4)) for run in result]
    assert sorted(removed) == [runs / f"run{i:02d}" for i in range(20)]  # each exactly once, no errors
    (runs / "read").mkdir()
    (runs / "read" / "block").write_bytes(b"x")
    with sandbox_module._cache_lock(shared=True):  # a sandbox copying this run
        pruner = threading.Thread(target=sandbox_module.prune_cache, args=(0,))
        pruner.start()
        pruner.join(timeout=0.5)
        assert pruner.is_alive() and (runs / "read").is_dir()
    pruner.join(timeout=5)
    assert not (runs / "read").exists()
    monkeypatch.setenv("MESHLAB_CACHE_MAX_BYTES", "2GiB")
    with pytest.raises(ml.InvalidArgument, match="MESHLAB_CACHE_MAX_BYTES must be a whole number of bytes"):
        sandbox_module.prune_cache()
