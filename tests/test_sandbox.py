"""meshlab.sandbox(): simulate, backfill, serve a real Prometheus, and cache the blocks."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pytest

import meshlab as ml
from meshlab.errors import BinaryNotFoundError
from meshlab.sim import sandbox as sandbox_module

from .conftest import require_binary
from .samples import stored_samples
from .test_sim import INCIDENTS


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MESHLAB_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _assert_linkerd_counts_are_the_truth(prom, box=None):
    """Requests per deployment over the whole (half-hour) run equal the simulator's ground truth."""
    box = box or prom.sandbox
    at = box.traffic.times_ms[-1] / 1000
    frame = prom.query('sum by (deployment) (increase(request_total{direction="inbound"}[30m]))', time=at)
    truth = box.truth("traffic", "linkerd")
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
    with ml.sandbox(INCIDENTS, meshes=("linkerd",), hours=0.25) as again:  # promtool's blocks, moved to now
        at = again.sandbox.traffic.times_ms[-1] / 1000
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


# --- The run ends now (issue 9) ---------------------------------------------------------------

def _cumulative_truth(box, names, at):
    """Requests each workload received (per its inbound Linkerd view) from the run's start to the last scrape <= at."""
    truth = box.truth("traffic", "linkerd")
    upto = truth[truth["timestamp"] <= at]
    return upto[upto["name"].isin(names)].groupby("name", observed=True)["requests"].sum()


@pytest.fixture(scope="module")
def now_box(tmp_path_factory):
    """The issue's README example, two hours long so that "-1h" has a 5-minute window of data behind it."""
    require_binary("prometheus")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MESHLAB_CACHE", str(tmp_path_factory.mktemp("cache")))
        with ml.sandbox(scenario="shop", meshes=("linkerd",), hours=2) as prom:
            yield prom


def test_readme_sandbox_example_returns_data_now_and_an_hour_ago(now_box):
    prom = now_box
    promql = 'sum by (deployment) (rate(response_total{direction="inbound"}[5m]))'
    now = prom.query(promql)
    hour_ago = prom.query(promql, time="-1h")
    assert set(now["deployment"]) >= {"frontend", "catalog", "checkout"}
    assert set(hour_ago["deployment"]) == set(now["deployment"])
    assert (now["value"] > 0).all() and (hour_ago["value"] > 0).all()
    assert len(ml.Linkerd(prom).traffic("deployment", at="now")) > 0
    end = prom.sandbox.traffic.timestamps()[-1]
    assert ml.timeutil.utc_now() - end < pd.Timedelta("1min")  # the run ends at the time it was started


@pytest.mark.parametrize("when", ["now", "-10m", "-1h", "-119m"])
def test_sandbox_truth_equals_prometheus_at_now_relative_times(now_box, when):
    prom, box = now_box, now_box.sandbox
    at = ml.timeutil.to_timestamp(when)
    names = ["catalog", "checkout", "payments"]  # no restarts in the first hours: counters are cumulative
    frame = prom.query('sum by (deployment) (request_total{direction="inbound"})', time=at)
    got = frame.set_index("deployment")["value"].reindex(names)
    expected = _cumulative_truth(box, names, at).reindex(names)
    assert expected.gt(0).all()
    assert got.tolist() == expected.astype(float).tolist()


def test_end_pins_a_reproducible_run(cache):
    require_binary("prometheus")
    end = pd.Timestamp("2024-05-01T00:30:00Z")
    with ml.sandbox(INCIDENTS, meshes=("linkerd",), hours=0.5, end="2024-05-01T00:30:07Z") as prom:
        assert prom.sandbox.traffic.timestamps()[-1] == end  # rounded down to the scrape interval
        assert prom.sandbox.scenario.start == end - pd.Timedelta("30min")
        _assert_linkerd_counts_are_the_truth(prom)
    with pytest.raises(ml.InvalidArgument, match="end="):
        ml.Sandbox(INCIDENTS, end="yesterday-ish")


def test_a_moved_run_is_the_same_run():
    """end= only moves the run: the same counts at the same offsets, and the dataset keeps its date."""
    from meshlab.sim import load_scenario, simulate, truth

    scenario = load_scenario("shop")
    own = simulate(scenario, hours=0.5)
    assert sandbox_module.end_run_at(own, scenario.start + pd.Timedelta("30min")) is own
    moved = sandbox_module.end_run_at(own, "2030-01-01T12:00:10Z")
    assert moved.timestamps()[-1] == pd.Timestamp("2030-01-01T12:00:00Z")
    assert moved.scenario.start == pd.Timestamp("2030-01-01T11:30:00Z")
    own_truth, moved_truth = truth.traffic_truth(own, "linkerd"), truth.traffic_truth(moved, "linkerd")
    assert moved_truth["requests"].tolist() == own_truth["requests"].tolist()
    assert set(moved_truth["timestamp"] - own_truth["timestamp"]) == {moved.timestamps()[0] - own.timestamps()[0]}


def test_second_start_moves_the_cached_run_instead_of_loading_it(cache, monkeypatch):
    require_binary("prometheus")
    with ml.sandbox(INCIDENTS, meshes=("linkerd",), hours=0.5, end="2026-01-01T00:00:00Z") as prom:
        first = prom.sandbox.truth("traffic", "linkerd")
    monkeypatch.setattr(sandbox_module, "backfill", _never)
    monkeypatch.setattr(sandbox_module, "push_backfill", _never)
    with ml.sandbox(INCIDENTS, meshes=("linkerd",), hours=0.5) as again:  # ends now: moved, not loaded
        assert again.sandbox.traffic.timestamps()[-1] > pd.Timestamp("2026-06-01T00:00:00Z")
        _assert_linkerd_counts_are_the_truth(again)
        assert again.sandbox.truth("traffic", "linkerd")["requests"].tolist() == first["requests"].tolist()


def test_a_run_too_far_in_time_to_move_is_loaded_afresh(cache):
    require_binary("prometheus")
    with ml.sandbox(INCIDENTS, meshes=("linkerd",), hours=0.25, end="2026-01-01T00:00:00Z"):
        pass
    entry = next(p for p in (cache / "sandbox").iterdir() if not p.name.startswith("."))
    stored = {p: p.read_bytes() for p in entry.rglob("*") if p.is_file()}
    # 2045 needs a longer varint than 2026 in the TSDB's encoding: the blocks cannot be moved in place
    with ml.sandbox(INCIDENTS, meshes=("linkerd",), hours=0.25, end="2045-01-01T00:00:00Z") as prom:
        at = prom.sandbox.traffic.times_ms[-1] / 1000
        frame = prom.query('sum by (deployment) (increase(request_total{direction="inbound"}[15m]))', time=at)
        expected = prom.sandbox.truth("traffic", "linkerd").groupby("name", observed=True)["requests"].sum()
        assert frame.set_index("deployment")["value"]["api"] == expected["api"] > 0
    assert {p: p.read_bytes() for p in entry.rglob("*") if p.is_file()} == stored  # the cache is untouched


# --- A damaged cache is found, dropped and rebuilt (issue 10, item 1) --------------------------

def _first_block(entry):
    return sorted(p for p in entry.iterdir() if p.is_dir())[0]


def _rewrite_manifest(entry):
    from meshlab.prometheus.tsdb import read_manifest, write_manifest

    old = read_manifest(entry)
    write_manifest(entry, **{k: v for k, v in old.items() if k != "files"})


def _garbage_index(entry, manifest_too=False):
    index = _first_block(entry) / "index"
    index.write_bytes(os.urandom(index.stat().st_size))
    if manifest_too:  # the manifest agrees with the damage: only the server's start can tell
        _rewrite_manifest(entry)


def _flip_a_bit(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10
    path.write_bytes(bytes(data))


def _replace_by_file(entry):
    shutil.rmtree(entry)
    entry.write_text("not a run")


DAMAGES = {
    "meta.json removed": lambda e: (_first_block(e) / "meta.json").unlink(),
    "meta.json garbage": lambda e: (_first_block(e) / "meta.json").write_text("{garbage"),
    "block dir deleted": lambda e: shutil.rmtree(_first_block(e)),
    "chunk truncated": lambda e: os.truncate(_first_block(e) / "chunks" / "000001", 1000),
    "chunk bit-flipped": lambda e: _flip_a_bit(_first_block(e) / "chunks" / "000001"),
    "index garbage": _garbage_index,
    "index garbage, manifest agrees": lambda e: _garbage_index(e, manifest_too=True),
    "manifest removed": lambda e: (e / "manifest.json").unlink(),
    "entry replaced by a file": _replace_by_file,
}


@pytest.fixture(scope="module")
def pristine_entry(tmp_path_factory):
    """One cached run (and its sample count), built once and copied for every damage."""
    require_binary("prometheus")
    cache = tmp_path_factory.mktemp("pristine")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MESHLAB_CACHE", str(cache))
        with ml.sandbox(INCIDENTS, meshes=("linkerd",), hours=0.5) as prom:
            key = prom.sandbox.key
    return cache / "sandbox" / key


@pytest.mark.parametrize("damage", DAMAGES)
def test_a_damaged_cache_entry_is_dropped_with_a_warning_and_rebuilt(cache, pristine_entry, damage):
    from meshlab.prometheus.tsdb import verify_manifest

    entry = cache / "sandbox" / pristine_entry.name
    shutil.copytree(pristine_entry, entry)
    verify_manifest(entry)  # the copy is intact until damaged
    DAMAGES[damage](entry)
    box = ml.Sandbox(INCIDENTS, meshes=("linkerd",), hours=0.5)
    with pytest.warns(sandbox_module.SandboxCacheWarning, match=re.escape(str(entry))):
        box.start()
    with box:
        _assert_linkerd_counts_are_the_truth(box.prometheus, box)
        assert stored_samples(box.prometheus, box.traffic.times_ms[-1] / 1000, "1h") > 0
    verify_manifest(entry)  # rebuilt whole
    with ml.sandbox(INCIDENTS, meshes=("linkerd",), hours=0.5) as again:  # and used without a warning
        _assert_linkerd_counts_are_the_truth(again)


def test_checking_the_cache_reads_each_cached_file_once(cache, pristine_entry, monkeypatch):
    """A cached start checks sizes and checksums in one pass over the files (work counted, not timed:
    a timed bound here failed under CI's load)."""
    from meshlab.prometheus import tsdb

    digested: list[Path] = []
    digest = tsdb._digest

    def counting(path):  # type: ignore[no-untyped-def]
        digested.append(Path(path))
        return digest(path)

    monkeypatch.setattr(tsdb, "_digest", counting)
    manifest = tsdb.verify_manifest(pristine_entry)
    assert sorted(digested) == sorted(pristine_entry / name for name in manifest["files"])  # each once
    digested.clear()
    tsdb.verify_manifest(pristine_entry, checksums=False)
    assert digested == []  # sizes only: no file read


# --- A killed build leaves nothing behind (issue 10, item 7) -----------------------------------

def _promtools_of(pid):
    found = []
    for proc in os.listdir("/proc"):
        if not proc.isdigit():
            continue
        try:
            with open(f"/proc/{proc}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{proc}/cmdline", "rb") as cmd:
                argv = cmd.read().split(b"\0")
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if int(fields[1]) == pid and argv and os.path.basename(argv[0]) == b"promtool":
            found.append(int(proc))
    return found


def _alive(pid):
    try:
        with open(f"/proc/{pid}/status") as status:
            return "zombie" not in status.read().lower()
    except FileNotFoundError:
        return False


@pytest.mark.e2e  # kills a real promtool mid-build: process handling, the same on every pandas
def test_a_killed_promtool_build_leaves_no_process_and_the_next_start_cleans_up(tmp_path, monkeypatch):
    require_binary("prometheus")
    require_binary("promtool")
    import tempfile

    cache, tmp = tmp_path / "cache", tmp_path / "tmp"
    tmp.mkdir()
    env = {**os.environ, "MESHLAB_CACHE": str(cache), "TMPDIR": str(tmp),
           "PYTHONPATH": os.pathsep.join([str(sandbox_module.Path(ml.__file__).parent.parent),
                                          os.environ.get("PYTHONPATH", "")])}
    script = ("import meshlab as ml; ml.Sandbox('shop', meshes=('linkerd', 'istio'), hours=4, "
              "load='promtool').start()")
    builder = subprocess.Popen([sys.executable, "-c", script], env=env)
    try:
        deadline = time.monotonic() + 120
        promtools = []
        while not promtools and time.monotonic() < deadline and builder.poll() is None:
            time.sleep(0.05)
            promtools = _promtools_of(builder.pid)
        assert promtools, "the build never started promtool"
        builder.send_signal(signal.SIGKILL)
        builder.wait()
    finally:
        builder.kill()
    deadline = time.monotonic() + 15
    while any(_alive(p) for p in promtools) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(p) for p in promtools)  # promtool died with the build
    left_tmp = list(tmp.glob("meshlab-sandbox-*"))
    left_staging = [p for p in (cache / "sandbox").iterdir() if p.name.startswith(".") and p.is_dir()]
    assert left_tmp and left_staging  # what the kill left...
    monkeypatch.setenv("MESHLAB_CACHE", str(cache))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    with ml.sandbox(INCIDENTS, meshes=("linkerd",), hours=0.25) as prom:  # ...the next start removes
        assert len(prom.query("request_total", time=prom.sandbox.traffic.times_ms[-1] / 1000)) > 0
    assert not any(p.exists() for p in left_tmp + left_staging)



@pytest.mark.parametrize(("end", "last"), [(None, "2024-05-01T00:06:00Z"),
                                           ("2030-01-01T00:00:10Z", "2030-01-01T00:00:00Z")])
def test_sim_backfill_end_moves_the_written_run(tmp_path, capsys, end, last):
    from meshlab.cli import main

    args = ["sim", "backfill", "--scenario", str(INCIDENTS), "--meshes", "linkerd", "--hours", "0.1",
            "--out", str(tmp_path)]
    assert main(args + (["--end", end] if end else [])) == 0
    lines = [line for path in tmp_path.glob("*.om") for line in path.read_bytes().splitlines()]
    stamps = {float(line.rsplit(b" ", 1)[1]) for line in lines if line and not line.startswith(b"#")}
    assert pd.Timestamp(max(stamps), unit="s", tz="UTC") == pd.Timestamp(last)
    assert max(stamps) - min(stamps) == 360  # 0.1 h, wherever it is placed
