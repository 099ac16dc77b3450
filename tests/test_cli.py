"""The meshlab command line, run as a real subprocess: negative times, one-line errors, one CSV format."""

from __future__ import annotations

import csv
import io
import itertools
import os
import re
import socket
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import click
import pytest
import requests

import meshlab
from meshlab.cli import cli

from . import testdata

ROOT = Path(__file__).resolve().parents[1]
ISO_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")


def run(*args: str, cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "meshlab", *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=timeout)


def _csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text, newline="")))


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- bad input: one line, "meshlab: error:", non-zero, no traceback ----------------------------

@pytest.fixture(scope="module")
def busy_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


@pytest.fixture(scope="module")
def places(tmp_path_factory):
    base = tmp_path_factory.mktemp("cli")
    (base / "a-file").write_text("x")
    return base


_URL = "http://127.0.0.1:{closed}"
BAD = [
    ([], "required: command"),
    (["bogus"], "invalid choice"),
    (["query"], "required: url, promql"),
    (["query", _URL, "up", "--timeout", "0"], "--timeout: must be a positive number"),
    (["query", _URL, "up", "--timeout", "soon"], "--timeout: 'soon' is not a number"),
    (["query", _URL, "up", "--start", "-1h", "--step", "-5"], "step"),
    (["query", _URL, "up", "--time", "yesterday-ish"], "time"),
    (["query", _URL, "up", "--tim", "-5m"], "ambiguous option: --tim could match --time, --timeout"),
    (["query", _URL, "up", "-o", "{dir}"], "is a directory"),
    (["query", _URL, "up", "-o", "{dir}/a-file/out.csv"], "is a file, not a directory"),
    (["query", "not a url", "up"], "url"),
    (["query", _URL, "up", "--timeout", "1"], "could not connect"),
    (["demo", "--out", "{dir}"], "is a directory"),
    (["demo", "--out", "{dir}/a-file/out.csv"], "a-file"),
    (["sim", "backfill", "--hours", "0"], "--hours: must be a positive number of hours, not 0"),
    (["sim", "backfill", "--hours", "-1"], "--hours: must be a positive number of hours, not -1"),
    (["sim", "backfill", "--hours", "nan"], "--hours: must be a positive number"),
    (["sim", "backfill", "--scenario", "{dir}/missing.yaml"], "missing.yaml"),
    (["sim", "backfill", "--scenario", "{dir}"], "directory"),
    (["sim", "backfill", "--meshes", "linkerd,,istio"], "--meshes"),
    (["sim", "serve", "--port", "{busy}"], "Address already in use"),
    (["sim", "serve", "--host", "no-such-host.invalid"], "cannot listen on no-such-host.invalid"),
    (["sim", "serve", "--port", "70000"], "--port: a port is 0 to 65535"),
    (["sim", "serve", "--speed", "0"], "--speed: must be a positive number"),
    (["sim", "push", "--hours", "-1", _URL], "--hours"),
    (["sim", "push"], "required: url"),
]


@pytest.mark.parametrize(("argv", "fragment"), BAD, ids=[" ".join(a) or "(nothing)" for a, _ in BAD])
def test_every_command_refuses_bad_input_in_one_line(argv, fragment, places, busy_port):
    filled = [a.format(dir=places, busy=busy_port, closed=_closed_port()) for a in argv]
    result = run(*filled, cwd=places)
    lines = result.stderr.splitlines()
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert len(lines) == 1 and lines[0].startswith("meshlab: error: "), result.stderr
    assert fragment.lower() in lines[0].lower()
    assert result.stdout == ""


def test_hours_zero_writes_nothing(places):
    out = places / "om-zero"
    run("sim", "backfill", "--hours", "0", "--out", str(out))
    assert not out.exists()


# -- arguments that used to be refused ---------------------------------------------------------

def test_version():
    result = run("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"meshlab {meshlab.__version__}"


def test_meshes_may_have_spaces_after_commas(tmp_path):
    result = run("sim", "backfill", "--meshes", "linkerd, istio", "--hours", "0.05", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    text = "".join(p.read_text() for p in tmp_path.glob("*.om"))
    assert "response_total{" in text and "istio_requests_total{" in text  # both meshes' metrics


@pytest.mark.parametrize("argv", [
    ["--start", "-1h"], ["--start", "-1h", "--end", "-5m"], ["--time", "-5m"], ["--star", "-5m"],
    ["--start", "-90m", "--end", "-1m", "--step", "30s"], ["-o", "x.csv", "--start", "-1h"],
])
def test_time_options_take_negative_values(argv):
    query = cli.get_command(click.Context(cli), "query")
    with query.make_context("query", ["URL", "up", *argv]) as ctx:
        parsed = ctx.params
    given = dict(zip(argv[::2], argv[1::2], strict=True))
    for option, value in given.items():
        name = {"--star": "start", "-o": "out"}.get(option, option.lstrip("-"))
        assert parsed[name] == value


# -- against a real Prometheus -----------------------------------------------------------------

def _seconds_ago(unix: float) -> int:
    return int(time.time() - unix)


def _raw(url: str, path: str, **params: object) -> list[dict]:
    body = requests.get(f"{url}/api/v1/{path}", params=params, timeout=10).json()
    assert body["status"] == "success"
    return body["data"]["result"]


def _unix(text: str) -> float:
    assert ISO_Z.match(text), text
    return round(datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc).timestamp(), 3)


@pytest.mark.prometheus
@pytest.mark.parametrize("form", ["separate", "equals"])
def test_query_with_negative_relative_times_matches_the_raw_api(prometheus_server, form):
    url = prometheus_server.url
    middle = testdata.T0_MS / 1000 + 1800
    ago = _seconds_ago(middle)

    def opt(name: str, value: str) -> list[str]:
        return [f"{name}={value}"] if form == "equals" else [name, value]

    # instant: --time -Ns
    result = run("query", url, "test_gauge", *opt("--time", f"-{ago}s"))
    assert result.returncode == 0, result.stderr
    rows = _csv(result.stdout)
    assert len(rows) == 6
    at = _unix(rows[0]["timestamp"])
    assert abs(at - middle) < 120  # "now" moved on by the CLI's start-up only
    raw = {r["metric"]["instance"]: float(r["value"][1]) for r in _raw(url, "query", query="test_gauge", time=at)}
    assert {r["instance"]: float(r["value"]) for r in rows} == raw

    # range: --start -Ns --end -Ms
    result = run("query", url, "test_gauge", *opt("--start", f"-{ago}s"), *opt("--end", f"-{ago - 300}s"),
                 "--step", "15s")
    assert result.returncode == 0, result.stderr
    rows = _csv(result.stdout)
    stamps = sorted({_unix(r["timestamp"]) for r in rows})
    assert 19 <= len(stamps) <= 21 and all(b - a == pytest.approx(15) for a, b in itertools.pairwise(stamps))
    raw_range = _raw(url, "query_range", query="test_gauge", start=stamps[0], end=stamps[-1], step=15)
    expected = {(r["metric"]["instance"], round(float(t), 3)): float(v) for r in raw_range for t, v in r["values"]}
    got = {(r["instance"], _unix(r["timestamp"])): float(r["value"]) for r in rows}
    assert len(got) == len(rows) == 6 * len(stamps)
    assert got == expected


@pytest.mark.prometheus
def test_stdout_and_file_use_one_timestamp_format(prometheus_server, tmp_path):
    at = str(testdata.T0_MS // 1000 + 600)
    stdout = run("query", prometheus_server.url, "test_gauge", "--time", at)
    written = run("query", prometheus_server.url, "test_gauge", "--time", at, "-o", str(tmp_path / "q.csv"))
    assert stdout.returncode == written.returncode == 0
    assert written.stdout.startswith("wrote 6 rows to ")
    assert (tmp_path / "q.csv").read_bytes().decode() == stdout.stdout
    rows = _csv(stdout.stdout)
    assert {r["timestamp"] for r in rows} == {"2023-11-14T22:23:20.000000Z"}  # 1700000600 by hand


@pytest.mark.prometheus
def test_a_query_that_matches_nothing_says_so_on_stderr(prometheus_server):
    result = run("query", prometheus_server.url, "no_such_metric", "--start", "-1h")
    assert result.returncode == 0
    assert result.stdout == "timestamp,value\n"
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("meshlab: note: the query matched no series from -1h to now")
    assert "--start" in lines[0]
