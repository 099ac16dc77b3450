"""The real-server harness: start, backfill, stop by PID, clean up, explain failures."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import requests

from meshlab.errors import BinaryNotFoundError, MeshlabError
from meshlab.openmetrics import OpenMetricsWriter, Series, seconds_to_millis_lines, write_openmetrics
from meshlab.prometheus.local import LocalPrometheus, LocalVictoriaMetrics, find_binary, remove_stale_workdirs

from .conftest import require_binary


def process_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as status:
            return "zombie" not in status.read().lower()
    except FileNotFoundError:
        return False


def test_missing_binary_says_how_to_install(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(BinaryNotFoundError, match=r"`prometheus` was not found on PATH; install it with "
                                                  r"`apt-get install --no-install-recommends prometheus`.*conda"):
        LocalPrometheus()
    with pytest.raises(BinaryNotFoundError, match="victoria-metrics"):
        find_binary("victoria-metrics", "victoria-metrics-prod")


def test_explicit_binary_path_must_be_executable(monkeypatch, tmp_path):
    monkeypatch.setenv("MESHLAB_PROMETHEUS", str(tmp_path / "nope"))
    with pytest.raises(BinaryNotFoundError, match="MESHLAB_PROMETHEUS"):
        find_binary("prometheus", env="MESHLAB_PROMETHEUS")


def test_server_is_stopped_by_pid_and_its_data_removed(tmp_path):
    require_binary("prometheus")
    require_binary("promtool")
    data = write_openmetrics(tmp_path / "one.om", [Series("one", {"a": "b"}, [1_700_000_000_000], [1.0])])
    server = LocalPrometheus(openmetrics=data)
    with server:
        pid, workdir, url = server.pid, server.workdir, server.url
        assert pid and os.path.exists(f"/proc/{pid}")
        assert requests.get(url + "/-/ready", timeout=5).status_code == 200
        assert server.client.query("one", time=1_700_000_000)["value"].tolist() == [1.0]
    assert not process_alive(pid)
    assert not workdir.exists()
    assert server.pid is None
    with pytest.raises(MeshlabError, match="not running"):
        _ = server.url


def test_promtool_rejections_are_explained(tmp_path):
    require_binary("prometheus")
    require_binary("promtool")
    bad = tmp_path / "bad.om"
    bad.write_text("# TYPE x gauge\nx{a=\"b\"} 1 1700000000\n")  # no "# EOF"
    with pytest.raises(MeshlabError, match=r"promtool could not backfill .*bad\.om"):
        LocalPrometheus(openmetrics=bad).start()


def test_promtool_proves_the_written_file(tmp_path):
    require_binary("promtool")
    series = [Series("odd", {"v": 'q"\\\n😀'}, np.arange(3) * 15_000 + 1_700_000_000_000, [np.nan, np.inf, -1.5]),
              Series("odd", {"v": "plain"}, [1_700_000_000_000], [0.1])]
    path = write_openmetrics(tmp_path / "w.om", series)
    out = tmp_path / "blocks"
    result = subprocess.run(["promtool", "tsdb", "create-blocks-from", "openmetrics", str(path), str(out)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    (out / "wal").mkdir()  # `promtool tsdb dump` wants a WAL directory, even an empty one
    dump = subprocess.run(["promtool", "tsdb", "dump", str(out)], capture_output=True, text=True, check=True).stdout
    assert dump.count("odd") == 4 and "1700000030000" in dump  # seconds in the file, milliseconds stored


def test_writer_refuses_what_promtool_would_silently_drop():
    with pytest.raises(MeshlabError, match="strictly increase"):
        write_series(times=[2_000, 1_000])
    with pytest.raises(MeshlabError, match="timestamps but"):
        write_series(times=[1_000, 2_000], values=[1.0])


def write_series(times, values=None):
    import io
    with OpenMetricsWriter(io.StringIO()) as writer:
        writer.family("x")
        writer.series("x", {}, times, values if values is not None else [1.0] * len(times))


def test_families_must_be_contiguous():
    import io
    writer = OpenMetricsWriter(io.StringIO())
    writer.family("x")
    writer.family("y")
    with pytest.raises(MeshlabError, match="already written"):
        writer.family("x")


def test_millisecond_rewrite_for_victoriametrics():
    lines = [b"# TYPE x gauge\n", b'x{a="1 2"} 1.5 1700000000.25\n', b"x 2 1700000001\n", b"# EOF\n"]
    assert list(seconds_to_millis_lines(lines)) == [
        b"# TYPE x gauge\n", b'x{a="1 2"} 1.5 1700000000250\n', b"x 2 1700000001000\n", b"# EOF\n"]


def test_victoriametrics_import_is_streamed_and_searchable(tmp_path):
    require_binary("victoria-metrics", "victoria-metrics-prod")
    times = 1_700_000_000_000 + np.arange(100) * 15_000
    path = write_openmetrics(tmp_path / "vm.om", [Series("vm_test", {"a": "b"}, times, np.arange(100.0))])
    with LocalVictoriaMetrics(openmetrics=path) as server:
        frame = server.client.query_range("vm_test", 1_700_000_000, 1_700_000_000 + 99 * 15, "15s")
        pid = server.pid
    assert frame["value"].tolist() == list(np.arange(100.0))
    assert not process_alive(pid)


def test_server_dies_with_a_killed_parent(tmp_path):
    require_binary("prometheus")
    script = ("import sys, time; from meshlab.prometheus.local import LocalPrometheus; "
              "s = LocalPrometheus().start(); print(s.pid, s.workdir, flush=True); time.sleep(60)")
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=env)
    try:
        child, workdir = parent.stdout.readline().split()
        assert process_alive(int(child))
        parent.kill()  # SIGKILL: no finalizer, no atexit
        parent.wait()
        deadline = time.monotonic() + 15
        while process_alive(int(child)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not process_alive(int(child))
    finally:
        parent.kill()
    # the dead parent's data stays until the next server starts, which removes it
    assert Path(workdir).is_dir() and Path(workdir).parent == tmp_path
    live = LocalPrometheus()  # holds its directory's lock: never touched
    kept = LocalPrometheus(keep=True)
    kept.stop()  # stopped, lock released, but kept on purpose
    try:
        for server in (live, kept):
            server.workdir = server.workdir.rename(tmp_path / server.workdir.name)
        assert remove_stale_workdirs("prometheus", tmp_path) == [Path(workdir)]
        assert not Path(workdir).exists() and live.workdir.is_dir() and kept.workdir.is_dir()
    finally:
        live.stop()
    assert not live.workdir.exists() and kept.workdir.is_dir()


@pytest.mark.parametrize("failure", ["bad flag", "damaged blocks"])
def test_a_failed_start_leaves_no_copy_of_the_data(tmp_path, monkeypatch, failure):
    require_binary("prometheus")
    import tempfile

    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    blocks = tmp_path / "blocks"
    block = blocks / "01HQ0000000000000000000000"
    (block / "chunks").mkdir(parents=True)
    (block / "chunks" / "000001").write_bytes(os.urandom(4096))
    (block / "index").write_bytes(os.urandom(4096))  # a garbage index: prometheus refuses the block
    (block / "meta.json").write_text('{"ulid": "01HQ0000000000000000000000", "minTime": 1700000000000, '
                                     '"maxTime": 1700007200000, "stats": {}, "compaction": {"level": 1}, '
                                     '"version": 1}')
    args = {"extra_args": ["--no-such-flag"]} if failure == "bad flag" else {"blocks": blocks}
    server = LocalPrometheus(**args)
    with pytest.raises(MeshlabError, match="did not start"):
        server.start()
    assert server.pid is None
    assert list(tmp.glob("meshlab-prometheus-*")) == []  # neither the copied blocks nor the log stay
    started = LocalPrometheus(**({} if failure == "bad flag" else {"blocks": None}))
    with started:  # the same kind of server still starts afterwards
        assert started.pid
    assert list(tmp.glob("meshlab-prometheus-*")) == []
