"""One atomic-write helper for every writer: whole files (or the old one), no leftovers, killed writers cleaned up."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import meshlab._files
from meshlab._files import atomic_folder, atomic_write
from meshlab.errors import InvalidArgument

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def _hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


# -- concurrent writers ------------------------------------------------------------------------

_WRITER = """
import sys
from meshlab._files import atomic_write
path, byte, rounds = sys.argv[1], sys.argv[2].encode(), int(sys.argv[3])
payload = byte * 1_000_000
print("ready", flush=True)
sys.stdin.readline()
for _ in range(rounds):
    with atomic_write(path, "wb", durable=False) as handle:
        for i in range(0, len(payload), 65536):  # many small writes: a torn file would show
            handle.write(payload[i:i + 65536])
"""


def test_two_concurrent_writers_leave_one_whole_file(tmp_path):
    path = tmp_path / "shared.bin"
    path.write_bytes(b"o" * 1_000_000)
    writers = [subprocess.Popen([sys.executable, "-c", _WRITER, str(path), byte, "40"], env=ENV,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) for byte in "ab"]
    try:
        for w in writers:
            assert w.stdout is not None and w.stdout.readline() == "ready\n"
        for w in writers:
            assert w.stdin is not None
            w.stdin.write("go\n")
            w.stdin.flush()
        seen = set()
        while any(w.poll() is None for w in writers):
            data = path.read_bytes()
            assert len(data) == 1_000_000 and len(set(data)) == 1, "a reader saw a torn or mixed file"
            seen.add(data[:1])
        assert all(w.wait(60) == 0 for w in writers)
    finally:
        for w in writers:
            w.kill()
            w.wait()
    data = path.read_bytes()
    assert data in (b"a" * 1_000_000, b"b" * 1_000_000)
    assert seen & {b"a", b"b"}, "the reader never saw a new file"
    assert _hidden(tmp_path) == []


_FOLDER_WRITER = """
import sys
from meshlab._files import atomic_folder
path, tag, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
print("ready", flush=True)
sys.stdin.readline()
for n in range(rounds):
    with atomic_folder(path) as staging:
        for part in range(5):
            (staging / f"part{part}.txt").write_text(f"{tag} {n}\\n" * 2000)
"""


def test_two_concurrent_folder_builds_leave_one_whole_folder(tmp_path):
    path = tmp_path / "report"
    writers = [subprocess.Popen([sys.executable, "-c", _FOLDER_WRITER, str(path), tag, "30"], env=ENV,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) for tag in "ab"]
    try:
        for w in writers:
            assert w.stdout is not None and w.stdout.readline() == "ready\n"
        for w in writers:
            assert w.stdin is not None
            w.stdin.write("go\n")
            w.stdin.flush()
        checks = 0
        while any(w.poll() is None for w in writers):
            # A reader pins the folder it opened (as a browser or `cd` does) and reads in it. An old
            # folder is removed after it is replaced: a reader still in it may see files vanish, but
            # the folder at `path` is always one whole build.
            try:
                folder = os.open(path, os.O_RDONLY)
            except FileNotFoundError:
                continue
            try:
                names = sorted(os.listdir(folder))
                texts = set()
                for n in names:
                    try:
                        fd = os.open(n, os.O_RDONLY, dir_fd=folder)
                    except FileNotFoundError:
                        continue
                    with open(fd, encoding="utf-8") as handle:
                        texts.add(handle.read())
                assert len(texts) <= 1, "files of two different builds in one folder"
                replaced = os.stat(path).st_ino != os.fstat(folder).st_ino if path.exists() else True
                if not replaced:
                    assert names == [f"part{i}.txt" for i in range(5)], names
                    checks += 1
            finally:
                os.close(folder)
        assert all(w.wait(60) == 0 for w in writers)
    finally:
        for w in writers:
            w.kill()
            w.wait()
    texts = {p.read_text() for p in path.iterdir()}
    assert len(texts) == 1 and next(iter(texts)).split("\n")[0] in ("a 29", "b 29")
    assert checks > 0
    assert _hidden(tmp_path) == []


# -- failed writes, every writer ---------------------------------------------------------------

def _benchmark() -> pd.DataFrame:
    import meshlab as ml

    upstream = ROOT.parent / "shared" / "fixtures" / "upstream" / "smp-test-results.json"
    if not upstream.exists():
        upstream = ROOT / "tests" / "fixtures-missing"
        pytest.skip("the upstream SMP fixture is not here")
    return ml.read_benchmark(upstream)


def _write_csv(path: Path) -> None:
    from meshlab.report import write_csv

    write_csv(pd.DataFrame({"a": [1.0, 2.0]}), path)


def _save_chart(path: Path) -> None:
    import altair as alt

    from meshlab.charts import save

    save(alt.Chart(pd.DataFrame({"x": [1, 2]})).mark_point().encode(x="x"), path, format="json")


def _write_smp(path: Path) -> None:
    from meshlab.analysis.benchmarks import write_smp

    write_smp(_benchmark(), path)


def _write_manifest(path: Path) -> None:
    from meshlab.prometheus.tsdb import write_manifest

    (path.parent / "block.bin").write_bytes(b"x")
    write_manifest(path.parent)


def _write_openmetrics(path: Path) -> None:
    from meshlab.openmetrics import Series, write_openmetrics

    write_openmetrics(path, [Series("up", {"job": "a"}, np.array([1_700_000_000_000]), np.array([1.0]))])


def _write_chunk(path: Path) -> None:
    from meshlab.sim import load_scenario, simulate
    from meshlab.sim.meshes import mesh_families
    from meshlab.sim.output import write_chunk
    from meshlab.sim.render import render_chunks

    traffic = simulate(load_scenario("shop"), hours=0.05)
    scrapes, blocks = next(iter(render_chunks(mesh_families(traffic, "linkerd"), traffic.n, traffic.n,
                                              seed=traffic.scenario.seed, mesh="linkerd")))
    write_chunk(path, blocks, traffic.times_ms[scrapes])


WRITERS = {"write_csv": (_write_csv, "x.csv"), "charts.save": (_save_chart, "x.json"),
           "write_smp": (_write_smp, "x.json"), "write_manifest": (_write_manifest, "manifest.json"),
           "write_openmetrics": (_write_openmetrics, "x.om"), "sim write_chunk": (_write_chunk, "chunk.om")}


@pytest.mark.parametrize("writer", list(WRITERS))
def test_every_writer_leaves_the_old_file_and_nothing_else_when_the_write_fails(tmp_path, monkeypatch, writer):
    write, name = WRITERS[writer]
    path = tmp_path / name
    write(path)  # it works, and writes a whole file
    assert path.stat().st_size > 0
    path.write_bytes(b"the old file\n")
    before = sorted(p.name for p in tmp_path.iterdir())

    def refuse(*args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", refuse)  # the write fails at its last step
    with pytest.raises(OSError, match="No space left"):
        write(path)
    assert path.read_bytes() == b"the old file\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == before, "the failed write left a file behind"


def test_an_error_inside_the_block_leaves_the_old_file(tmp_path):
    path = tmp_path / "f.txt"
    path.write_text("old")
    def write() -> None:
        with atomic_write(path) as handle:
            handle.write("half of the new")
            raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        write()
    assert path.read_text() == "old"
    assert _hidden(tmp_path) == []


def test_a_folder_build_that_fails_leaves_the_old_folder(tmp_path):
    path = tmp_path / "out"
    with atomic_folder(path) as staging:
        (staging / "a.txt").write_text("old")
    def build() -> None:
        with atomic_folder(path) as staging:
            (staging / "a.txt").write_text("new")
            (staging / "b.txt").write_text("new")
            raise RuntimeError("the build failed")

    with pytest.raises(RuntimeError):
        build()
    assert sorted(p.name for p in path.iterdir()) == ["a.txt"] and (path / "a.txt").read_text() == "old"
    assert _hidden(tmp_path) == []


def test_a_folder_is_replaced_without_renameat2_too(tmp_path, monkeypatch):
    monkeypatch.setattr(meshlab._files, "_exchange", lambda a, b: False)  # a system without RENAME_EXCHANGE
    path = tmp_path / "out"
    for text in ("one", "two"):
        with atomic_folder(path) as staging:
            (staging / "a.txt").write_text(text)
    assert (path / "a.txt").read_text() == "two"
    assert _hidden(tmp_path) == []


def test_atomic_write_keeps_umask_permissions_and_writes_through_symlinks(tmp_path):
    target = tmp_path / "real.txt"
    link = tmp_path / "link.txt"
    link.symlink_to(target)
    old = os.umask(0o027)
    try:
        with atomic_write(link) as handle:
            handle.write("x")
    finally:
        os.umask(old)
    assert link.is_symlink() and target.read_text() == "x"
    assert target.stat().st_mode & 0o777 == 0o640


def test_atomic_write_refuses_a_directory_and_a_bad_mode(tmp_path):
    with pytest.raises(InvalidArgument, match="directory"), atomic_write(tmp_path):
        pass
    with pytest.raises(InvalidArgument, match="mode"), atomic_write(tmp_path / "x", "a"):
        pass


# -- killed writers ----------------------------------------------------------------------------

_KILLED = """
import sys, time
from meshlab._files import atomic_folder, atomic_write
kind, path = sys.argv[1], sys.argv[2]
if kind == "file":
    with atomic_write(path, "wb") as handle:
        handle.write(b"partial" * 1000)
        handle.flush()
        print("writing", flush=True)
        time.sleep(60)
else:
    with atomic_folder(path) as staging:
        (staging / "a.txt").write_text("partial")
        print("writing", flush=True)
        time.sleep(60)
"""


@pytest.mark.parametrize("kind", ["file", "folder"])
def test_a_sigkilled_writer_leaves_nothing_after_the_next_write(tmp_path, kind):
    path = tmp_path / ("x.bin" if kind == "file" else "out")
    process = subprocess.Popen([sys.executable, "-c", _KILLED, kind, str(path)], env=ENV,
                               stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None and process.stdout.readline() == "writing\n"
        # a live writer's temporary is left alone by a write beside it
        with atomic_write(tmp_path / "other.txt") as handle:
            handle.write("beside")
        assert len(_hidden(tmp_path)) == 1
        process.send_signal(signal.SIGKILL)
        process.wait(10)
    finally:
        process.kill()
        process.wait()
    assert len(_hidden(tmp_path)) == 1, "the kill should have left the temporary behind"
    assert not path.exists()
    time.sleep(0.05)
    with atomic_write(tmp_path / "other.txt") as handle:
        handle.write("again")
    assert _hidden(tmp_path) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.txt"]


def test_the_manifest_write_leaves_no_fixed_name_temporary(tmp_path):
    """write_manifest used a fixed '.manifest.json.tmp': two writers collided on it."""
    from meshlab.prometheus.tsdb import read_manifest, write_manifest

    (tmp_path / "chunk").write_bytes(b"abc")
    write_manifest(tmp_path, start_ms=1)
    assert json.loads((tmp_path / "manifest.json").read_text())["start_ms"] == 1
    assert read_manifest(tmp_path)["files"]["chunk"]["size"] == 3
    assert _hidden(tmp_path) == []
