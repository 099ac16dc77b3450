"""ml.sandbox(live=True): after the history, Prometheus scrapes the simulator's exporter in real time."""

from __future__ import annotations

import threading
import time

import numpy as np
import pandas as pd
import pytest

import meshlab as ml
from meshlab.errors import InvalidArgument
from meshlab.sim import load_scenario
from meshlab.sim import sandbox as sandbox_module
from meshlab.sim.truth import traffic_truth

from .conftest import require_binary
from .test_sim import INCIDENTS

INTERVAL_MS = 2_000


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MESHLAB_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def fast_scenario() -> dict:
    """The incidents scenario scraped every 2 s (its first incident is 10 minutes in)."""
    return {**load_scenario(INCIDENTS).to_dict(), "interval": "2s"}


def wait_for_live_scrapes(prom: ml.Prometheus, after_ms: int, count: int, timeout: float = 40.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        newest = prom.query('max(timestamp(request_total{direction="inbound"}))')
        if len(newest) and newest["value"].item() * 1000 > after_ms + count * INTERVAL_MS:
            return
        time.sleep(0.5)
    raise AssertionError(f"no {count} live scrapes after the history within {timeout:g} s")


def test_live_sandbox_continues_the_run_in_real_time(cache):
    require_binary("prometheus")
    with ml.sandbox(fast_scenario(), meshes=("linkerd",), hours=0.05, live=True, live_hours=0.05) as prom:
        box = prom.sandbox
        history, run = box.traffic, box.live_traffic
        n = history.n
        end_ms = int(history.times_ms[-1])
        np.testing.assert_array_equal(run.times_ms[:n], history.times_ms)  # the live run continues the history
        wait_for_live_scrapes(prom, end_ms, 3)

        # at="now" moves: the workloads' traffic now, after the history's end
        now = ml.Linkerd(prom, scrape_interval="2s").traffic("deployment", at="now", window="10s")
        assert set(now["name"].astype(str)) >= {"web", "api"}
        assert (now["timestamp"] > pd.Timestamp(end_ms + 2 * INTERVAL_MS, unit="ms", tz="UTC")).all()
        assert (now.set_index("name").loc[["web", "api"], "requests"] > 0).all()

        # every live scrape holds the run's counters at the scrape the clock was at: what was
        # sent since the history's end is the simulator's ground truth for those scrapes
        raw = prom.query('request_total{direction="inbound"}[1m]')
        at_end = prom.query('sum by (deployment) (request_total{direction="inbound"})', time=end_ms / 1000)
        base = at_end.set_index("deployment")["value"]
        truth = traffic_truth(run, "linkerd")
        truth_ms = truth["timestamp"].astype("int64").to_numpy() // 1_000_000
        live = raw[raw["timestamp"] > pd.Timestamp(end_ms, unit="ms", tz="UTC")]
        # the live series are the history's own (same label sets), not new ones beside them
        labels = [c for c in raw.columns if c not in ("timestamp", "value")]
        series = {tuple(r) for r in live[labels].astype(str).itertuples(index=False)}
        ended = prom.query('request_total{direction="inbound"}', time=end_ms / 1000)
        assert series == {tuple(r) for r in ended[labels].astype(str).itertuples(index=False)}
        sums = live.groupby(["timestamp", "deployment"], observed=True)["value"].sum()
        assert len(sums) >= 2
        for (stamp, deployment), value in sums.items():
            k = (int(stamp.value // 1_000_000) - int(run.times_ms[0])) // INTERVAL_MS
            served = []
            for index in (k, k + 1):  # a scrape taken right at a boundary may serve the next one
                window = (truth_ms > end_ms) & (truth_ms <= run.times_ms[index]) & (truth["name"] == deployment)
                served.append(truth.loc[window, "requests"].sum())
            assert value - base[deployment] in served, (stamp, deployment)
    assert box.exporter is None and box.server is None


def test_live_needs_a_run_that_ends_now(cache):
    require_binary("prometheus")
    with pytest.raises(InvalidArgument, match="live=True"):
        ml.sandbox(INCIDENTS, hours=0.1, live=True, end="2024-05-01T00:30:00Z").__enter__()
    with pytest.raises(InvalidArgument, match="live_hours"):
        ml.sandbox(INCIDENTS, hours=0.1, live=True, live_hours=0).__enter__()


def test_a_live_sandbox_started_from_the_cache_goes_live_too(cache, monkeypatch):
    require_binary("prometheus")
    with ml.sandbox(fast_scenario(), meshes=("linkerd",), hours=0.05):
        pass  # builds the cache entry

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("the cached blocks should have been reused")

    monkeypatch.setattr(sandbox_module, "push_backfill", never)
    with ml.sandbox(fast_scenario(), meshes=("linkerd",), hours=0.05, live=True, live_hours=0.05) as prom:
        end_ms = int(prom.sandbox.traffic.times_ms[-1])
        wait_for_live_scrapes(prom, end_ms, 2)
        now = ml.Linkerd(prom, scrape_interval="2s").traffic("deployment", at="now", window="10s")
        assert (now["timestamp"] > pd.Timestamp(end_ms, unit="ms", tz="UTC")).all() and len(now) > 0


def test_a_live_sandbox_that_fails_to_load_stops_its_exporter(cache, monkeypatch):
    require_binary("prometheus")

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the load failed")

    monkeypatch.setattr(sandbox_module, "push_backfill", broken)
    box = sandbox_module.Sandbox(fast_scenario(), ("linkerd",), 0.05, live=True, live_hours=0.05)
    done = threading.Event()

    def start() -> None:
        with pytest.raises(RuntimeError, match="the load failed"):
            box.start()
        done.set()

    threading.Thread(target=start, daemon=True).start()
    assert done.wait(60), "start() hung after the load failed"
    assert box.exporter is None and box.server is None
