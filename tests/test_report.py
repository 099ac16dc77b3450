"""write_csv: UTC timestamps, umask permissions, formula-safe cells, symlinks, no leftovers after a kill."""

from __future__ import annotations

import csv
import fcntl
import math
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meshlab.errors import InvalidArgument
from meshlab.report import write_csv

ROOT = Path(__file__).resolve().parents[1]


def _rows(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle))


# -- timestamps --------------------------------------------------------------------------------

# UTC instants around each zone's interesting moments, the DST switches included
_INSTANTS = ["2024-03-04T00:00:00", "2024-03-31T00:30:00", "2024-03-31T01:30:00", "2024-03-10T06:59:59",
             "2024-03-10T07:00:00", "2024-11-03T05:30:00", "2024-11-03T06:30:00", "2024-07-01T12:34:56.789"]


@pytest.mark.parametrize("zone", ["Europe/Berlin", "America/New_York", "Asia/Kolkata", "Asia/Kathmandu", "UTC"])
def test_write_csv_writes_zoned_timestamps_as_utc(tmp_path, zone):
    utc = pd.DatetimeIndex(_INSTANTS, tz="UTC")
    frame = pd.DataFrame({"timestamp": utc.tz_convert(zone), "value": np.arange(len(utc), dtype="float64")})
    rows = _rows(write_csv(frame, tmp_path / "t.csv"))
    # the expected text from the standard library, independently of pandas
    expected = [datetime.fromisoformat(t).replace(tzinfo=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
                for t in _INSTANTS]
    assert [r[0] for r in rows[1:]] == expected


# -- permissions -------------------------------------------------------------------------------

@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_write_csv_gives_a_new_file_the_umask_permissions(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        path = write_csv(pd.DataFrame({"a": [1.0]}), tmp_path / "r.csv")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o7777 == mode


def test_write_csv_keeps_an_existing_files_permissions(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("old\n")
    path.chmod(0o640)
    write_csv(pd.DataFrame({"a": [1.0]}), path)
    assert path.stat().st_mode & 0o7777 == 0o640
    assert _rows(path) == [["a"], ["1.0"]]


# -- formula injection and row splitting -------------------------------------------------------

def _spreadsheet_safe(value: str) -> str:
    """What a safe cell holds: a formula-like text gets a leading quote; plain numbers stay."""
    try:
        number = float(value)
        plain_number = value.strip() == value and "_" not in value and math.isfinite(number)
    except ValueError:
        plain_number = False
    if value[:1] in ("=", "+", "-", "@", "\t", "\r") and not plain_number:
        return "'" + value
    return value


_ATTACKS = ["=1+1", "+1+1", "-1+1", "@SUM(A1)", "\t=1+1", "\r=1+1", '=HYPERLINK("http://x","y")',
            "a\r=1+1", "a\n=1+1", "a\r\n-2+3", "-5", "+1.5", "-1e3", "web", "", "+Inf", "-inf", "'=x"]


@pytest.mark.parametrize("dtype", ["category", "object", "string"])
def test_write_csv_neutralises_formula_cells(tmp_path, dtype):
    frame = pd.DataFrame({"label": pd.Series(_ATTACKS, dtype=dtype), "value": [-1.5] * len(_ATTACKS)})
    rows = _rows(write_csv(frame, tmp_path / "x.csv"))
    assert rows[0] == ["label", "value"]
    assert [r[0] for r in rows[1:]] == [_spreadsheet_safe(v) for v in _ATTACKS]
    assert rows[1][0] == "'=1+1" and rows[-1][0] == "'=x" and rows[11][0] == "-5"
    assert {r[1] for r in rows[1:]} == {"-1.5"}  # numbers stay numbers


def test_write_csv_safe_false_writes_text_verbatim(tmp_path):
    frame = pd.DataFrame({"label": pd.Categorical(_ATTACKS)})
    rows = _rows(write_csv(frame, tmp_path / "x.csv", safe=False))
    assert [r[0] for r in rows[1:]] == _ATTACKS


def test_write_csv_quotes_a_bare_carriage_return(tmp_path):
    path = write_csv(pd.DataFrame({"a": ["x\ry"], "b": [1.0]}), tmp_path / "x.csv", safe=False)
    assert path.read_bytes() == b'a,b\n"x\ry",1.0\n'


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.lists(st.text(max_size=12), min_size=1, max_size=6),
       dtype=st.sampled_from(["category", "object", "string"]), safe=st.booleans())
def test_any_label_value_round_trips_through_a_csv_reader(tmp_path, values, dtype, safe):
    frame = pd.DataFrame({"label": pd.Series(values, dtype=dtype), "value": np.arange(len(values), dtype="float64")})
    rows = _rows(write_csv(frame, tmp_path / "h.csv", safe=safe))
    assert len(rows) == len(values) + 1  # no row split, none lost
    assert [r[0] for r in rows[1:]] == [_spreadsheet_safe(v) if safe else v for v in values]
    assert [r[1] for r in rows[1:]] == [f"{float(i)}" for i in range(len(values))]
    # a reader that splits lines first (as some spreadsheets do) sees a CR or LF only inside quotes
    text = (tmp_path / "h.csv").read_bytes().decode()
    outside = text.split('"')[::2]
    assert sum(part.count("\r") for part in outside) == 0
    assert sum(part.count("\n") for part in outside) == len(values) + 1


# -- symlinks and directories ------------------------------------------------------------------

def test_write_csv_writes_through_a_symlink(tmp_path):
    target = tmp_path / "data" / "real.csv"
    target.parent.mkdir()
    target.write_text("old\n")
    link = tmp_path / "link.csv"
    link.symlink_to(target)
    write_csv(pd.DataFrame({"a": [2.0]}), link)
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert _rows(target) == [["a"], ["2.0"]]
    dangling = tmp_path / "dangling.csv"
    dangling.symlink_to(tmp_path / "data" / "new.csv")
    write_csv(pd.DataFrame({"a": [3.0]}), dangling)
    assert dangling.is_symlink() and _rows(tmp_path / "data" / "new.csv") == [["a"], ["3.0"]]
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["new.csv", "real.csv"]


def test_write_csv_refuses_a_directory_and_a_symlink_loop(tmp_path):
    with pytest.raises(InvalidArgument, match="is a directory"):
        write_csv(pd.DataFrame({"a": [1.0]}), tmp_path)
    (tmp_path / "a.csv").symlink_to(tmp_path / "b.csv")
    (tmp_path / "b.csv").symlink_to(tmp_path / "a.csv")
    with pytest.raises(InvalidArgument, match=r"a\.csv"):
        write_csv(pd.DataFrame({"a": [1.0]}), tmp_path / "a.csv")


# -- killed writers ----------------------------------------------------------------------------

_BIG_WRITE = """
import sys
import numpy as np, pandas as pd
from meshlab.report import write_csv
n = 3_000_000
frame = pd.DataFrame({"timestamp": pd.date_range("2024-01-01", periods=n, freq="s", tz="UTC"),
                      "name": pd.Categorical(np.where(np.arange(n) % 2, "web", "=api")),
                      "value": np.arange(n, dtype="float64")})
print("writing", flush=True)
write_csv(frame, sys.argv[1])
"""


def _temporaries(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.name.startswith("."))


def test_a_write_killed_midway_leaves_nothing_after_the_next_write(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen([sys.executable, "-c", _BIG_WRITE, str(tmp_path / "big.csv")], env=env,
                               stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None and process.stdout.readline() == "writing\n"
        deadline = time.monotonic() + 60
        while not any(p.stat().st_size > 0 for p in _temporaries(tmp_path)):
            assert process.poll() is None, "the writer finished before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
    finally:
        process.kill()
        process.wait()
    assert _temporaries(tmp_path), "the kill should have left the partial temporary file"
    assert not (tmp_path / "big.csv").exists()  # never a truncated report
    write_csv(pd.DataFrame({"a": [1.0]}), tmp_path / "other.csv")
    assert _temporaries(tmp_path) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.csv"]


_HOLD = """
import fcntl, sys, time
handle = open(sys.argv[1], "wb")
fcntl.flock(handle, fcntl.LOCK_EX)
print("locked", flush=True)
time.sleep(60)
"""


def test_a_live_writers_temporary_file_is_left_alone(tmp_path):
    live = tmp_path / ".report.csv.abc123.meshlab-tmp"
    process = subprocess.Popen([sys.executable, "-c", _HOLD, str(live)], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None and process.stdout.readline() == "locked\n"
        write_csv(pd.DataFrame({"a": [1.0]}), tmp_path / "other.csv")
        assert live.exists()
    finally:
        process.kill()
        process.wait()
    # its writer is dead now: the next write removes it
    with open(live, "rb") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)  # takes: nobody holds it
    write_csv(pd.DataFrame({"a": [1.0]}), tmp_path / "other.csv")
    assert not live.exists()
