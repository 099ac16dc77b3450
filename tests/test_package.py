"""The package's public face: light imports, the CLI, the README commands' targets."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pandas.testing as tm

import meshlab
from meshlab.cli import main

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
    written = pd.read_csv(out, float_precision="round_trip")  # pandas 2.2 reads floats inexactly otherwise
    assert list(written.columns) == list(frame.columns) and len(written) == len(frame)
    assert (pd.to_datetime(written["timestamp"], utc=True) == frame["timestamp"]).all()
    tm.assert_series_equal(written["value"], frame["value"], check_exact=True)
    assert not list(tmp_path.glob(".*.tmp"))  # the atomic write left no temporary file


def test_cli_reports_errors_without_a_traceback(prometheus_server, capsys):
    assert main(["query", prometheus_server.url, "sum(", "--time", str(T0)]) == 2
    assert "Prometheus rejected the query (bad_data)" in capsys.readouterr().err


def test_demo_runs_end_to_end(prometheus_server, tmp_path, capsys):
    # prometheus_server is requested only so that a missing binary skips (or fails in CI).
    out = tmp_path / "demo.csv"
    assert main(["demo", "--out", str(out)]) == 0
    frame = pd.read_csv(out)
    assert set(frame["deployment"]) == {"frontend", "cart", "ledger"} and len(frame) == 153
    assert "Wrote" in capsys.readouterr().out
    json.dumps(frame.head().to_dict())  # plain data
