"""The package's public face: light imports, the CLI, the README commands' targets."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pandas.testing as tm

import meshlab
from meshlab.cli import main

from .conftest import require_binary
from .test_source import T0, T_END


def test_import_is_light():
    code = ("import sys, meshlab; heavy = ['altair', 'kubernetes', 'jupyterlab', 'jupyter_server', 'requests', "
            "'pyarrow', 'tqdm', 'orjson', 'prometheus_pandas']; print([m for m in heavy if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_public_names_resolve():
    for name in meshlab.__all__:
        assert getattr(meshlab, name) is not None
    assert meshlab.Prometheus.__module__ == "meshlab.prometheus.client"


def test_unknown_attribute():
    import pytest

    with pytest.raises(AttributeError, match="no attribute 'Prometheuss'"):
        _ = meshlab.Prometheuss  # type: ignore[attr-defined]


def test_cli_query_writes_the_same_frame_as_csv(prometheus_server, tmp_path):
    out = tmp_path / "q.csv"
    code = main(["query", prometheus_server.url, "test_gauge", "--start", str(T0), "--end", str(T_END),
                 "--step", "15s", "-o", str(out)])
    assert code == 0
    frame = prometheus_server.client.query_range("test_gauge", T0, T_END, "15s")
    # pandas 2.2's default float parser is not exact; pandas 3's is (and deprecates the option)
    exact = {"float_precision": "round_trip"} if pd.__version__.startswith("2.") else {}
    written = pd.read_csv(out, **exact)
    assert list(written.columns) == list(frame.columns) and len(written) == len(frame)
    assert (pd.to_datetime(written["timestamp"], utc=True) == frame["timestamp"]).all()
    tm.assert_series_equal(written["value"], frame["value"], check_exact=True)
    assert not list(tmp_path.glob(".*.tmp"))  # the atomic write left no temporary file


def test_cli_reports_errors_without_a_traceback(prometheus_server, capsys):
    assert main(["query", prometheus_server.url, "sum(", "--time", str(T0)]) == 2
    assert "Prometheus rejected the query (bad_data)" in capsys.readouterr().err


def test_demo_summarises_the_bundled_dataset(tmp_path, capsys):
    out = tmp_path / "demo.csv"
    assert main(["demo", "--out", str(out), "--report", str(tmp_path / "meshlab-report")]) == 0
    summary = pd.read_csv(out)
    assert set(summary["mesh"]) == {"linkerd", "istio", "consul"}
    assert set(summary["workload"]) == {"frontend", "catalog", "cart", "checkout", "payments", "ledger"}
    # identical offered load: every mesh sees the same request rate per workload
    spread = summary.groupby("workload")["rps"].agg(["min", "max"])
    assert ((spread["max"] - spread["min"]) <= 1e-9 * spread["max"]).all()
    assert "Wrote" in capsys.readouterr().out


def test_sim_backfill_command(tmp_path, capsys):
    require_binary("promtool")
    scenario = str(Path(__file__).parent / "scenarios" / "incidents.yaml")
    code = main(["sim", "backfill", "--scenario", scenario, "--meshes", "linkerd", "--hours", "0.25",
                 "--out", str(tmp_path / "om"), "--tsdb", str(tmp_path / "tsdb")])
    assert code == 0
    assert list((tmp_path / "om").glob("chunk-*.om")) and any((tmp_path / "tsdb").iterdir())
    assert "samples in 1 OpenMetrics files" in capsys.readouterr().out


def test_sim_serve_command_serves_metrics():
    import socket
    import threading
    import time

    import requests

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    scenario = str(Path(__file__).parent / "scenarios" / "incidents.yaml")
    thread = threading.Thread(target=main, args=(["sim", "serve", "--scenario", scenario, "--meshes", "istio",
                                                  "--hours", "0.25", "--port", str(port)],), daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while True:
        try:
            body = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
            break
        except requests.ConnectionError:
            assert time.monotonic() < deadline
            time.sleep(0.1)
    assert "# TYPE istio_requests_total counter" in body
