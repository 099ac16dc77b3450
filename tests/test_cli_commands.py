"""``meshlab stat``, ``edges``, ``top``, ``sandbox``, ``datasets list`` and ``-o``, run as real subprocesses.

Numbers are checked against the mesh adapters' frames and the raw Prometheus API at the same
instant; every command's error paths against the one-line ``meshlab: error:`` contract.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import click
import pytest
import requests

import meshlab as ml
from meshlab.cli import cli

from .test_cli import run

ROOT = Path(__file__).resolve().parents[1]
#: Half an hour into tests/scenarios/incidents.yaml: the scale-up of api (40m) is later, the restart of web (30m) now.
AT = "2024-05-01T00:25:00Z"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _json(result: subprocess.CompletedProcess[str]) -> list[dict]:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _num(value: float | None) -> float:
    """JSON's null is a missing number."""
    return float("nan") if value is None else value


def _raw(url: str, promql: str, at: str) -> list[dict]:
    body = requests.get(f"{url}/api/v1/query", params={"query": promql, "time": at}, timeout=10).json()
    assert body["status"] == "success", body
    return body["data"]["result"]


@pytest.fixture(scope="module")
def url(sim_run) -> str:
    _, client, _ = sim_run
    return client.url


# -- stat ------------------------------------------------------------------------------------

@pytest.mark.prometheus
def test_stat_matches_the_adapter_frames_and_the_raw_api(url):
    rows = _json(run("stat", "--prometheus", url, "--mesh", "linkerd", "--at", AT, "-o", "json"))
    adapter = ml.mesh("linkerd", url)
    traffic = adapter.traffic(at=AT, window="1m", quantiles=(0.95,))
    tcp = adapter.tcp(at=AT, window="1m", per="workload")
    assert {(r["namespace"], r["name"]) for r in rows} == \
        {*zip(traffic["namespace"].astype(str), traffic["name"].astype(str), strict=True),
         *zip(tcp["dst_namespace"].astype(str), tcp["dst_name"].astype(str), strict=True)}
    assert {r["timestamp"] for r in rows} == {AT}
    by_name = {(r["namespace"], r["name"]): r for r in rows}
    for t in traffic.itertuples():
        row = by_name[(t.namespace, t.name)]
        for column in ("success_rate", "rps", "latency_p50_ms", "latency_p95_ms", "latency_p99_ms", "requests"):
            assert _num(row[column]) == pytest.approx(getattr(t, column), nan_ok=True), column
    for t in tcp.itertuples():
        got = _num(by_name[(t.dst_namespace, t.dst_name)]["tcp_open_connections"])
        assert got == pytest.approx(t.open_connections, nan_ok=True)
    # Independently of the adapters: requests per second from Linkerd's own counters.
    raw = _raw(url, 'sum by (namespace, deployment) (increase(response_total{direction="inbound"}[1m])) / 60', AT)
    expected = {(r["metric"]["namespace"], r["metric"]["deployment"]): float(r["value"][1]) for r in raw}
    got = {key: row["rps"] for key, row in by_name.items() if key in expected}
    assert got and got == pytest.approx(expected)
    # MESHED: pods with a linkerd-proxy container at that instant, counted from cAdvisor by pod name.
    pods = _raw(url, 'count by (namespace, pod) (container_memory_working_set_bytes{container="linkerd-proxy"})', AT)
    for (namespace, name), row in by_name.items():
        mine = [p for p in pods if p["metric"]["namespace"] == namespace
                and p["metric"]["pod"].startswith(f"{name}-")]
        assert row["meshed_pods"] == (len(mine) or None), name


@pytest.mark.prometheus
def test_stat_table_shows_the_json_values(url):
    rows = {r["name"]: r for r in _json(run("stat", "--prometheus", url, "--mesh", "linkerd", "--at", AT, "-n",
                                            "back", "-o", "json"))}
    table = run("stat", "--prometheus", url, "--mesh", "linkerd", "--at", AT, "-n", "back")
    assert table.returncode == 0, table.stderr
    header, *lines = table.stdout.splitlines()
    assert header.split() == ["NAME", "MESHED", "SUCCESS", "RPS", "LATENCY_P50", "LATENCY_P95", "LATENCY_P99",
                              "TCP_CONN"]
    assert {line.split()[0] for line in lines} == set(rows) and rows
    for line in lines:
        name, meshed, success, rps, p50, p95, p99, conn = line.split()
        row = rows[name]
        assert meshed == ("-" if row["meshed_pods"] is None else f"{row['meshed_pods']:.0f}")
        if row["requests"]:
            assert success == f"{100 * row['success_rate']:.2f}%"
            for shown, column in ((p50, "latency_p50_ms"), (p95, "latency_p95_ms"), (p99, "latency_p99_ms")):
                assert float(shown.removesuffix("ms")) == pytest.approx(row[column], rel=0.01)
        else:  # no requests: no success rate nor latency
            assert success == p50 == p95 == p99 == "-" and row["success_rate"] is None
        assert float(rps) == pytest.approx(row["rps"], abs=0.005)
        assert conn == ("-" if row["tcp_open_connections"] is None else f"{row['tcp_open_connections']:.0f}")


@pytest.mark.prometheus
def test_stat_auto_reads_every_mesh_detected(url):
    rows = _json(run("stat", "--prometheus", url, "--at", AT, "-o", "json", "-n", "front"))
    assert {r["mesh"] for r in rows} == set(ml.detect(url)) == {"linkerd", "istio", "consul"}


# -- edges, top, query -o ------------------------------------------------------------------------

@pytest.mark.prometheus
def test_edges_match_the_adapter_frame(url):
    rows = _json(run("edges", "--prometheus", url, "--mesh", "istio", "--at", AT, "-o", "json"))
    frame = ml.mesh("istio", url).edges(at=AT, window="1m", quantiles=(0.95,))
    assert len(rows) == len(frame) > 0
    got = {(r["src_name"], r["dst_name"], r["side"]):
           tuple(map(_num, (r["rps"], r["success_rate"], r["latency_p95_ms"]))) for r in rows}
    want = {(str(e.src_name), str(e.dst_name), str(e.side)): (e.rps, e.success_rate, e.latency_p95_ms)
            for e in frame.itertuples()}
    assert got.keys() == want.keys()
    for key, values in want.items():
        assert got[key] == pytest.approx(values, nan_ok=True), key
    server = _json(run("edges", "--prometheus", url, "--mesh", "istio", "--at", AT, "-o", "json", "--side", "server"))
    assert {r["side"] for r in server} == {"server"} and len(server) == (frame["side"] == "server").sum()


@pytest.mark.prometheus
def test_top_lists_the_lowest_success_rates_first(url):
    at = "2024-05-01T00:13:00Z"  # api's error burst (10m to 15m)
    rows = _json(run("top", "--prometheus", url, "--mesh", "linkerd", "--at", at, "--limit", "2", "-o", "json"))
    traffic = ml.mesh("linkerd", url).traffic(at=at, window="1m")
    traffic = traffic[traffic["requests"] > 0].sort_values("success_rate")
    assert [r["name"] for r in rows] == list(traffic["name"].astype(str)[:2])
    assert rows[0]["name"] == "api" and rows[0]["success_rate"] == pytest.approx(traffic["success_rate"].iloc[0])
    assert rows[0]["success_rate"] < 0.9  # the burst fails 30% on top of 3%


@pytest.mark.prometheus
@pytest.mark.parametrize("fmt", ["json", "table", "wide", "csv"])
def test_query_output_formats_hold_the_raw_values(prometheus_server, fmt):
    from . import testdata

    at = str(testdata.T0_MS // 1000 + 600)
    result = run("query", prometheus_server.url, "test_gauge", "--time", at, "-o", fmt)
    assert result.returncode == 0, result.stderr
    raw = {r["metric"]["instance"]: float(r["value"][1]) for r in _raw(prometheus_server.url, "test_gauge", at)}
    if fmt == "json":
        got = {r["instance"]: r["value"] for r in json.loads(result.stdout)}
    elif fmt == "csv":
        import csv
        import io

        got = {r["instance"]: float(r["value"]) for r in csv.DictReader(io.StringIO(result.stdout))}
    else:
        header, *lines = result.stdout.splitlines()
        columns = header.split()
        got = {dict(zip(columns, line.split(), strict=True))["instance"]:
               float(dict(zip(columns, line.split(), strict=True))["value"]) for line in lines}
    assert got == pytest.approx(raw)


def test_datasets_list():
    rows = _json(run("datasets", "list", "-o", "json"))
    assert [r["name"] for r in rows] == ml.datasets.list()
    for row in rows:
        manifest = json.loads((ml.datasets.data_dir() / row["name"] / "manifest.json").read_text())
        assert row["hours"] == manifest["hours"]
    table = run("datasets", "list")
    assert table.returncode == 0 and table.stdout.split()[:4] == ["NAME", "HOURS", "MESHES", "STEP"]


# -- every command's errors ----------------------------------------------------------------------

_SOURCE = ["--prometheus", "http://127.0.0.1:{closed}"]
ERRORS = [
    *[(cmd, [*_SOURCE, "--mesh", "linkerd", "--timeout", "1"], "could not connect to Prometheus at http://127.0.0.1:")
      for cmd in ("stat", "edges", "top")],
    *[(cmd, [*_SOURCE, "--mesh", "nosuchmesh"], "unknown mesh 'nosuchmesh'; available: consul, hubble, istio")
      for cmd in ("stat", "edges", "top")],
    *[(cmd, [*_SOURCE, "--window", "5x"], "--window") for cmd in ("stat", "edges", "top")],
    *[(cmd, [*_SOURCE, "--window", "0s"], "--window: must be a positive duration") for cmd in ("stat", "edges", "top")],
    *[(cmd, [*_SOURCE, "--at", "half past"], "--at='half past' is not a time") for cmd in ("stat", "edges", "top")],
    *[(cmd, [*_SOURCE, "-o", "yaml"], "-o") for cmd in ("stat", "edges", "top")],
    *[(cmd, ["-o", "yaml"], "--output: 'yaml' is not one of") for cmd in ("datasets list", "sandbox")],
    *[(cmd, ["--mesh", "linkerd"], "required: --prometheus") for cmd in ("stat", "edges", "top")],
    ("top", [*_SOURCE, "--limit", "0"], "--limit: must be a positive number"),
    ("edges", [*_SOURCE, "--side", "both"], "--side"),
    ("stat", [*_SOURCE, "--mesh", "linkerd", "--kind", "pod", "--timeout", "1"], "could not connect"),
    ("query", ["http://127.0.0.1:{closed}", "up", "--step", "soon", "--start", "-1h"],
     "--step='soon' is not a duration"),
    ("sandbox", ["--meshes", "linkerd,nosuchmesh"], "nosuchmesh"),
    ("sandbox", ["--hours", "0"], "--hours: must be a positive number"),
    ("report", [*_SOURCE, "--mesh", "linkerd", "--timeout", "1"], "could not connect to Prometheus at http://127.0.0.1:"),
    ("report", [*_SOURCE, "--mesh", "nosuchmesh"], "unknown mesh 'nosuchmesh'; available: consul, hubble, istio"),
    ("report", [*_SOURCE, "--step", "5x"], "--step"),
    ("report", [*_SOURCE, "--window", "0s"], "--window: must be a positive duration"),
    ("report", [*_SOURCE, "--start", "half past"], "--start='half past' is not a time"),
    ("report", ["--dataset", "nosuchdataset"], "nosuchdataset"),
    ("query", ["http://127.0.0.1:{closed}", "up", "--timeout", "1"], "could not connect to Prometheus at http://127.0"),
    ("query", ["http://127.0.0.1:{closed}", "up", "--start", "-1h", "--end", "whenever"], "--end"),
    ("sim push", ["http://127.0.0.1:{closed}", "--hours", "0.01"], "could not connect to http://127.0.0.1:"),
    ("sim backfill", ["--meshes", "linkerd,nosuchmesh", "--hours", "0.01"], "nosuchmesh"),
    ("serve-smi", _SOURCE, "connection refused"),
    ("serve-smi", [*_SOURCE, "--window", "5x"], "--window"),
    ("serve-smi", [*_SOURCE, "--mesh", "nosuchmesh"], "nosuchmesh"),
    ("serve-smi", [*_SOURCE, "--port", "70000"], "--port: a port is 0 to 65535"),
    ("datasets", [], "required: command"),
    ("datasets", ["nope"], "invalid choice: 'nope'"),
]


@pytest.mark.parametrize(("command", "argv", "fragment"), ERRORS,
                         ids=[f"{c} {' '.join(a)}" for c, a, _ in ERRORS])
def test_every_command_says_what_is_wrong_in_one_line(command, argv, fragment, tmp_path):
    filled = [a.format(closed=_closed_port()) for a in [*command.split(), *argv]]
    result = run(*filled, cwd=tmp_path)
    lines = result.stderr.splitlines()
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert len(lines) == 1 and lines[0].startswith("meshlab: error: "), result.stderr
    assert fragment.lower() in lines[0].lower(), lines[0]
    assert result.stdout == ""


@pytest.mark.prometheus
def test_bad_promql_is_one_line(prometheus_server):
    result = run("query", prometheus_server.url, "sum(rate(x[5m])")
    lines = result.stderr.splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert lines[0].startswith("meshlab: error: ") and "parse error" in lines[0].lower()


@pytest.mark.prometheus
def test_a_kind_the_mesh_cannot_name_is_refused(url):
    result = run("stat", "--prometheus", url, "--mesh", "consul", "--kind", "statefulset", "--at", AT)
    assert result.returncode == 2 and result.stderr.startswith("meshlab: error: consul cannot name workloads by kind")


def test_debug_shows_the_traceback():
    result = run("--debug", "query", f"http://127.0.0.1:{_closed_port()}", "up")
    assert result.returncode == 2
    assert "Traceback" in result.stderr and result.stderr.splitlines()[-1].startswith("meshlab: error: could not")
    after = run("query", f"http://127.0.0.1:{_closed_port()}", "up", "--debug")
    assert after.returncode == 2 and "Traceback" in after.stderr


def _commands(group, path=()):
    """Every command's path, the lazily loaded ones too (``group.commands`` holds only those loaded)."""
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        yield (*path, name)
        if isinstance(command, click.Group):
            yield from _commands(command, (*path, name))


def test_the_command_list_names_every_command_with_its_own_short_help():
    """``meshlab --help`` lists lazy commands from cli.LAZY without importing them: it must say what they say."""
    from meshlab.cli import LAZY

    ctx = click.Context(cli)
    assert cli.list_commands(ctx) == sorted(LAZY) and len(LAZY) >= 9
    for name, (_, short) in LAZY.items():
        command = cli.get_command(ctx, name)
        assert command is not None and command.name == name
        assert command.get_short_help_str(limit=200) == short, name
    listed = run("--help").stdout
    for name, (_, short) in LAZY.items():
        assert re.search(rf"^  {name} +{re.escape(short)}$", listed, re.M), name


@pytest.mark.parametrize("path", [(), *_commands(cli)], ids=lambda p: " ".join(p) or "meshlab")
def test_every_command_has_help(path):
    result = run(*path, "--help")
    assert result.returncode == 0 and result.stderr == ""
    assert result.stdout.startswith(f"Usage: meshlab {' '.join(path)}".rstrip())


# -- start-up: nothing heavy before it is needed -----------------------------------------------------

_PROBE = """
import sys
from meshlab.cli import main
status = main(sys.argv[1:])
HEAVY = ("pandas", "numpy", "requests", "rich", "pyarrow", "altair", "kubernetes", "scipy")
print("loaded:", sorted(m for m in HEAVY if m in sys.modules),
      "status:", status, file=sys.stderr)
"""


@pytest.mark.parametrize("argv", [
    ["--help"], ["--version"], ["stat", "--help"], ["edges", "--help"], ["report", "--help"], ["sim", "--help"],
    ["query", "http://127.0.0.1:{closed}", "up", "--start", "-1h", "--timeout", "1"],
    ["stat", "--prometheus", "http://127.0.0.1:{closed}", "--mesh", "linkerd", "--at", "-5m"],
], ids=lambda a: " ".join(a))
def test_help_version_and_a_refused_local_server_load_nothing_heavy(argv):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    filled = [a.format(closed=_closed_port()) for a in argv]
    result = subprocess.run([sys.executable, "-c", _PROBE, *filled], capture_output=True, text=True, env=env,
                            timeout=60)
    assert "loaded: [] status:" in result.stderr, result.stderr


# -- sandbox -----------------------------------------------------------------------------------------

@pytest.mark.prometheus
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_sandbox_serves_until_a_signal_stops_it(signum, tmp_path):
    from .conftest import require_binary

    require_binary("prometheus")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MESHLAB_CACHE": str(tmp_path / "cache")}
    process = subprocess.Popen([sys.executable, "-m", "meshlab", "sandbox", "--meshes", "linkerd", "--hours", "0.1"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), process.stderr.read() if process.stderr else ""
        end = time.time()
        # Linkerd's series are there, ending about now.
        raw = _raw(url, "count(response_total)", str(end))
        assert raw and float(raw[0]["value"][1]) > 0
        process.send_signal(signum)
        assert process.wait(timeout=30) == 0
        stderr = process.stderr.read() if process.stderr else ""
        assert "Traceback" not in stderr and stderr.splitlines()[-1] == "meshlab: sandbox stopped"
        with pytest.raises(requests.ConnectionError):
            requests.get(url + "/-/ready", timeout=5)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


# -- sim -o, warnings ----------------------------------------------------------------------------------

def test_sim_backfill_json_counts_what_it_wrote(tmp_path):
    rows = _json(run("sim", "backfill", "--hours", "0.05", "--meshes", "linkerd", "--out", str(tmp_path), "-o", "json"))
    (row,) = rows
    written = sum(1 for path in tmp_path.glob("*.om") for line in path.read_text().splitlines()
                  if line and not line.startswith("#"))
    assert row["samples"] == written > 0 and row["files"] == len(list(tmp_path.glob("*.om")))
    assert row["start"] == "2024-03-04T00:00:00Z"  # the shop scenario's own start


@pytest.mark.prometheus
def test_a_warning_is_one_line(url):
    result = run("stat", "--prometheus", url, "--mesh", "linkerd", "--at", AT, "--window", "20s", "-o", "json")
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) >= 1 and all(line.startswith("meshlab: warning: window=20s cannot hold two scrapes")
                                   for line in lines), result.stderr


@pytest.mark.parametrize("path", [(), ("stat",), ("sim", "push")], ids=lambda p: " ".join(p) or "meshlab")
def test_dash_h_is_help(path):
    short, long = run(*path, "-h"), run(*path, "--help")
    assert short.returncode == long.returncode == 0 and short.stdout == long.stdout and "-h, --help" in long.stdout


# -- report ------------------------------------------------------------------------------------------

def test_report_from_a_dataset_writes_every_frame(tmp_path):
    result = run("report", "--dataset", "mesh-shootout", "--out", str(tmp_path / "r"), "--no-charts")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"wrote 4 tables and {tmp_path / 'r' / 'report.html'}"
    frames = ml.datasets.load("mesh-shootout").frames
    for kind, frame in frames.items():
        lines = (tmp_path / "r" / f"{kind}.csv").read_text().splitlines()
        assert len(lines) == len(frame) + 1, kind


@pytest.mark.prometheus
def test_report_from_prometheus_holds_the_adapter_frames(url, tmp_path):
    span = ["--start", "2024-05-01T00:20:00Z", "--end", "2024-05-01T00:30:00Z", "--step", "1m"]
    result = run("report", "--prometheus", url, "--mesh", "linkerd", *span, "--out", str(tmp_path / "r"),
                 "--no-charts")
    assert result.returncode == 0, result.stderr
    adapter = ml.mesh("linkerd", url)
    expected = adapter.traffic(start="2024-05-01T00:20:00Z", end="2024-05-01T00:30:00Z", step="1m")
    lines = (tmp_path / "r" / "traffic.csv").read_text().splitlines()
    assert len(lines) == len(expected) + 1 > 1


@pytest.mark.parametrize("argv", [[], ["--dataset", "mesh-shootout", "--prometheus", "http://127.0.0.1:9"]])
def test_report_needs_one_source(argv, tmp_path):
    result = run("report", *argv, "--out", str(tmp_path / "r"))
    assert result.returncode == 2 and result.stderr == \
        "meshlab: error: give one source: --dataset NAME or --prometheus URL\n"


# -- progress on a terminal; machine output stays clean --------------------------------------------

def _run_with_terminal_stderr(*args: str) -> tuple[int, str, str]:
    """Run meshlab with stderr on a pseudo-terminal (as at a shell prompt) and stdout on a pipe."""
    import pty

    leader, follower = pty.openpty()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TERM": "xterm", "COLUMNS": "120"}
    env.pop("NO_COLOR", None)
    process = subprocess.Popen([sys.executable, "-m", "meshlab", *args], stdout=subprocess.PIPE, stderr=follower,
                               text=True, env=env)
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    assert process.stdout is not None
    out = process.stdout.read()
    os.close(leader)
    return process.wait(timeout=120), out, b"".join(chunks).decode(errors="replace")


@pytest.mark.prometheus
@pytest.mark.parametrize("fmt", ["json", "csv"])
def test_progress_goes_to_a_terminal_stderr_and_never_into_machine_output(url, fmt):
    argv = ["stat", "--prometheus", url, "--at", AT, "-n", "front", "-o", fmt]
    plain = run(*argv)
    assert plain.returncode == 0 and plain.stderr == "", plain.stderr  # a pipe gets no progress
    status, out, err = _run_with_terminal_stderr(*argv)
    assert status == 0, err
    assert "fetching" in err and "istio traffic" in err  # the bar was drawn, on stderr
    assert out == plain.stdout  # stdout holds the result and nothing else
    if fmt == "json":
        assert {r["mesh"] for r in json.loads(out)} == {"linkerd", "istio", "consul"}


@pytest.mark.parametrize("name", sorted(ml.meshes.available()))
def test_resolve_kind_is_the_public_way_to_name_a_kind(name):
    from meshlab.errors import InvalidArgument
    from meshlab.meshes import get_mesh

    spec = get_mesh(name)
    assert spec.resolve_kind(None) == spec.default_kind and spec.default_kind in spec.kinds
    for kind in spec.kinds:
        assert spec.resolve_kind(kind) == kind
    with pytest.raises(InvalidArgument, match=f"{name} cannot name workloads by kind 'galaxy'; supported kinds: "):
        spec.resolve_kind("galaxy")


def test_every_command_has_its_error_paths_tested():
    """Each runnable command appears in the one-line error tables (here and test_cli.BAD), so a new one cannot
    arrive without them."""
    from .test_cli import BAD

    ctx = click.Context(cli)
    leaves = {" ".join(path) for path in _commands(cli)
              if not isinstance(_resolve(cli, ctx, path), click.Group)}
    covered = {command for command, _, _ in ERRORS} | {" ".join(argv[:2]) for argv, _ in BAD if argv} \
        | {argv[0] for argv, _ in BAD if argv}
    assert leaves - covered == set(), sorted(leaves - covered)


def _resolve(group: click.Group, ctx: click.Context, path: tuple[str, ...]) -> click.Command | None:
    command: click.Command | None = group
    for name in path:
        assert isinstance(command, click.Group)
        command = command.get_command(ctx, name)
    return command


def _misused_options() -> list[tuple[tuple[str, ...], str]]:
    """(command path, argument) for every option of every command and group: a value option given last with no
    value (``meshlab report --start``), a flag given a value (``meshlab --debug=x demo``)."""
    ctx = click.Context(cli)
    cases = []
    for path in [(), *_commands(cli)]:
        command = _resolve(cli, ctx, path)
        assert command is not None
        for param in command.params:
            if isinstance(param, click.Option):
                name = max(param.opts, key=len)
                takes_value = not param.is_flag and not param.count
                cases.append((path, name if takes_value else f"{name}=x"))
    return cases


MISUSED = _misused_options()


def test_every_command_is_in_the_misused_option_table():
    from meshlab.cli import LAZY

    with_values = {path for path, argument in MISUSED if not argument.endswith("=x")}
    leaves = {path for path in _commands(cli) if not isinstance(_resolve(cli, click.Context(cli), path), click.Group)}
    assert leaves - with_values == set() and {path[0] for path in leaves} == set(LAZY)


@pytest.mark.parametrize(("path", "argument"), MISUSED, ids=[" ".join(["meshlab", *p, a]) for p, a in MISUSED])
def test_an_option_without_its_value_points_at_that_command_s_help(path, argument, capsys):
    """Click's parser raises these without naming the command: the hint said ``meshlab --help`` for every one."""
    import io

    from meshlab.cli import main

    err = io.StringIO()
    group = _resolve(cli, click.Context(cli), path)
    # a group's option is parsed before its command, which must be there for the parser to get that far
    after = sorted(group.list_commands(click.Context(group)))[:1] if isinstance(group, click.Group) else []
    assert main([*path, argument, *after], stderr=err) == 2
    lines = err.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].startswith("meshlab: error: "), err.getvalue()
    assert lines[0].endswith(f"(see: {' '.join(['meshlab', *path])} --help)"), lines[0]
    assert argument.partition("=")[0] in lines[0]
    assert capsys.readouterr().out == ""
