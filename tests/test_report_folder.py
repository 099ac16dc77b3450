"""ml.report: a report folder (CSV, Parquet, columns.csv, a self-contained report.html), atomic, in a real browser."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

import meshlab as ml
import meshlab._reportdir
from meshlab.errors import InvalidArgument

from .conftest import require_binary

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
KINDS = ("traffic", "edges", "tcp", "proxies")


@pytest.fixture(scope="module")
def data():
    return ml.datasets.load("mesh-shootout")


@pytest.fixture(scope="module")
def demo(data, tmp_path_factory):
    """The demo report, built once for the module."""
    from meshlab.report import build_demo_report

    return build_demo_report(tmp_path_factory.mktemp("demo") / "meshlab-report")


UPSTREAM = ROOT.parent / "shared" / "fixtures" / "upstream" / "istio-tools-benchmark.csv"


@pytest.fixture(scope="module")
def analysis(tmp_path_factory):
    """A report of the analysis frames: the real Istio benchmark CSV, its comparison and capacity fit."""
    if not UPSTREAM.exists():
        pytest.skip("the upstream Istio benchmark CSV is not here")
    bench = ml.read_benchmark(UPSTREAM)
    tables = {"bench": bench, "compare": ml.compare(bench, baseline="none"), "fit": ml.capacity.fit(bench)}
    return ml.report(tables, tmp_path_factory.mktemp("analysis") / "r", title="Istio overhead", slo_ms=10), tables


def _listing(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


# -- the folder ------------------------------------------------------------------------------

def test_the_demo_report_holds_every_table_as_csv_and_parquet(demo, data):
    names = {p.name for p in demo.path.iterdir()}
    for table in ("summary", "proxy_cost", *KINDS):
        assert {f"{table}.csv", f"{table}.parquet"} <= names
    assert {"columns.csv", "report.html", "report.json"} <= names
    assert not [n for n in os.listdir(demo.path.parent) if n.startswith(".")], "a temporary was left beside it"
    for kind in KINDS:
        frame = data.frames[kind]
        back = pd.read_parquet(demo.path / f"{kind}.parquet")
        pd.testing.assert_frame_equal(back, frame, check_categorical=False, check_dtype=False)
        csv = pd.read_csv(demo.path / f"{kind}.csv", dtype=str, keep_default_na=False)
        assert list(csv.columns) == list(frame.columns) and len(csv) == len(frame)
        # ISO 8601 in UTC with a Z, equal to the frame's instants
        assert csv["timestamp"].str.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z").all()
        assert (pd.to_datetime(csv["timestamp"], utc=True) == frame["timestamp"].reset_index(drop=True)).all()
        metric = next(c for c in frame.columns if frame[c].dtype == "float64")
        # float() reads the text exactly (pandas 2.2's to_numeric parser may be off in the last digit)
        assert csv[metric].replace("", "nan").map(float).equals(frame[metric].reset_index(drop=True))


def test_the_demo_summary_table_is_the_per_mesh_mean(demo, data):
    summary = pd.read_csv(demo.path / "summary.csv")
    traffic = data.frames["traffic"]
    for row in summary.itertuples():
        mine = traffic[(traffic["mesh"] == row.mesh) & (traffic["name"] == row.workload)]
        assert row.rps == pytest.approx(mine["rps"].mean(), rel=1e-12)
        assert row.success_rate == pytest.approx(mine["success_count"].sum() / mine["requests"].sum(), rel=1e-12)


def test_the_demo_s_proxy_cost_is_the_average_and_a_least_squares_marginal_cost(demo, data):
    """The average (total CPU over total requests, idle cost in it) and the marginal cost (a straight line through
    each proxy's CPU against its load) beside it, both per 1000 requests/s through the proxies: the demo printed
    only the average, 11 times Envoy's marginal cost at the shop's light load, under a name that did not say so."""
    from collections import defaultdict

    from scipy import stats

    cost = pd.read_csv(demo.path / "proxy_cost.csv").set_index("mesh")
    proxies, traffic, edges = (data.frames[k] for k in ("proxies", "traffic", "edges"))
    assert set(cost.index) == {"linkerd", "istio", "consul"}
    for mesh in cost.index:
        p = proxies[proxies["mesh"] == mesh]
        t = traffic[traffic["mesh"] == mesh]
        calls = edges[(edges["mesh"] == mesh) & (edges["side"] == "client")]
        assert set(p["timestamp"]) == set(t["timestamp"])
        # requests/s through a workload's proxies at a step: what it received and the calls it made
        load: dict[tuple, float] = defaultdict(float)
        for frame, namespace, name in ((t, "namespace", "name"), (calls, "src_namespace", "src_name")):
            for key, rps in zip(zip(frame["timestamp"], frame[namespace].astype(str), frame[name].astype(str),
                                    strict=True),
                                frame["rps"], strict=True):
                load[key] += rps
        mine = cost.loc[mesh]
        assert mine["average_cores_per_1k_rps"] == pytest.approx(p["cpu_cores"].sum() / sum(load.values()) * 1000,
                                                                 rel=1e-9)
        # one point per proxy and step: its CPU against its share of its workload's load (redis, TCP only, has none)
        pods = p.groupby(["timestamp", "namespace", "workload"], observed=True)["pod"].transform("nunique")
        x, y = [], []
        for key, cores, n in zip(zip(p["timestamp"], p["namespace"].astype(str), p["workload"].astype(str),
                                     strict=True),
                                 p["cpu_cores"], pods, strict=True):
            if key in load:
                x.append(load[key] / n / 1000)
                y.append(cores)
        line = stats.linregress(x, y)
        half = stats.t.ppf(0.975, len(x) - 2) * line.stderr
        assert mine["marginal_cores_per_1k_rps"] == pytest.approx(line.slope, rel=1e-9)
        assert mine["marginal_cores_per_1k_rps_low"] == pytest.approx(line.slope - half, rel=1e-9)
        assert mine["marginal_cores_per_1k_rps_high"] == pytest.approx(line.slope + half, rel=1e-9)
        assert mine["idle_cpu_cores"] == pytest.approx(line.intercept, rel=1e-9)
        # at this light load the average is mostly idle cost: far above what 1000 more requests/s cost
        assert mine["average_cores_per_1k_rps"] > 1.5 * mine["marginal_cores_per_1k_rps_high"] > 0


@pytest.mark.parametrize("case", ["one step of one workload", "proxies that serve none of the load"])
def test_the_demo_says_when_the_load_did_not_vary_enough_to_fit_a_marginal_cost(case, data):
    """No number rather than a meaningless one: NaN in the table, and the printed table says why."""
    from types import SimpleNamespace

    from meshlab._demo import _cost_table, demo_summary

    frames = dict(data.frames)
    if case == "one step of one workload":  # every proxy carries the same load: no line to fit
        first = frames["traffic"]["timestamp"].min()
        frames = {kind: frame[frame["timestamp"] == first] for kind, frame in frames.items()}
        frames["proxies"] = frames["proxies"][frames["proxies"]["workload"] == "frontend"]
        frames["traffic"] = frames["traffic"][frames["traffic"]["name"] == "frontend"]
        frames["edges"] = frames["edges"][frames["edges"]["src_name"] == "frontend"]
    else:  # redis serves only TCP
        frames["proxies"] = frames["proxies"][frames["proxies"]["workload"] == "redis"]
    _, cost = demo_summary(SimpleNamespace(frames=frames))
    assert len(cost) == 3 and (cost["average_cores_per_1k_rps"] > 0).all()
    for column in ("marginal_cores_per_1k_rps", "marginal_cores_per_1k_rps_low", "marginal_cores_per_1k_rps_high",
                   "idle_cpu_cores"):
        assert cost[column].isna().all(), column
    assert (_cost_table(cost)["marginal_cores_per_1k_rps"] == "NaN: the load did not vary enough to fit").all()


# (column, unit) as a reader of the CSVs needs them, written out by hand
UNITS = {("traffic", "timestamp"): "UTC, ISO 8601", ("traffic", "rps"): "requests/s",
         ("traffic", "latency_p99_ms"): "ms", ("traffic", "latency_p99_high_ms"): "ms",
         ("traffic", "success_rate"): "fraction (0-1)", ("traffic", "success_count"): "count",
         ("traffic", "name"): "", ("tcp", "sent_bytes_per_second"): "bytes/s", ("tcp", "open_connections"): "count",
         ("proxies", "cpu_cores"): "cores", ("proxies", "memory_bytes"): "bytes"}


def test_columns_csv_describes_every_column_of_every_table(demo, data):
    dictionary = pd.read_csv(demo.columns, keep_default_na=False)
    assert list(dictionary.columns) == ["table", "column", "dtype", "unit", "description"]
    for kind in KINDS:
        mine = dictionary[dictionary["table"] == kind]
        assert list(mine["column"]) == list(data.frames[kind].columns)
        assert (mine["description"] != "").all(), mine[mine["description"] == ""]
    lookup = dictionary.set_index(["table", "column"])["unit"]
    for key, unit in UNITS.items():
        assert lookup[key] == unit, key
    docs = dictionary.set_index(["table", "column"])["description"]
    assert docs[("traffic", "rps")] == ml.schema.FRAMES["traffic"].columns[9].doc


def test_columns_csv_describes_the_demo_s_own_tables_with_units(demo):
    dictionary = pd.read_csv(demo.columns, keep_default_na=False).set_index(["table", "column"])
    own = dictionary.loc[["summary", "proxy_cost"]]
    assert (own["description"] != "").all(), own[own["description"] == ""]
    numeric = own[own["dtype"] == "float64"]
    assert (numeric["unit"] != "").all(), numeric[numeric["unit"] == ""]
    # an average with idle cost in it and the marginal cost: their names, units and descriptions say which is which
    for column in ("average_cores_per_1k_rps", "marginal_cores_per_1k_rps", "marginal_cores_per_1k_rps_low",
                   "marginal_cores_per_1k_rps_high"):
        assert dictionary.loc[("proxy_cost", column), "unit"] == "cores per 1000 requests/s", column
    assert dictionary.loc[("proxy_cost", "idle_cpu_cores"), "unit"] == "cores"
    assert "idle cost included" in dictionary.loc[("proxy_cost", "average_cores_per_1k_rps"), "description"]
    marginal = dictionary.loc[("proxy_cost", "marginal_cores_per_1k_rps"), "description"]
    assert "idle cost excluded" in marginal and "ml.capacity.fit" in marginal


def test_analysis_frames_get_their_charts_and_tables(analysis):
    report, tables = analysis
    assert {n: t.kind for n, t in report.tables.items()} == {"bench": "benchmark", "compare": "comparison",
                                                             "fit": "capacity_fit"}
    assert report.charts == ["bench: proxy CPU against load", "bench: latency against load",
                             "compare: difference from the baseline"]
    assert report.warnings == []
    for name, frame in tables.items():
        back = pd.read_parquet(report.path / f"{name}.parquet")
        pd.testing.assert_frame_equal(back, frame.reset_index(drop=True), check_categorical=False, check_dtype=False)
    units = pd.read_csv(report.columns, keep_default_na=False).set_index(["table", "column"])["unit"]
    assert units[("bench", "server_cpu_mcores")] == "millicores" and units[("bench", "actual_qps")] == "requests/s"
    assert units[("fit", "per_1k_rps")] == units[("fit", "per_1k_rps_high")] == "per 1000 requests/s"
    assert units[("compare", "delta")] == "" and units[("bench", "latency_p99_ms")] == "ms"


def test_report_csvs_neutralise_formula_cells_and_keep_numbers(tmp_path):
    frame = pd.DataFrame({"timestamp": pd.to_datetime(["2024-01-01T01:00:00+01:00"]),
                          "name": pd.Categorical(["=HYPERLINK(\"http://x\")"]), "note": ["-5"], "value": [-1.5]})
    report = ml.report({"hostile": frame}, tmp_path / "r", charts=False)
    rows = (report.path / "hostile.csv").read_text().splitlines()
    assert rows[1] == "2024-01-01T00:00:00.000000Z,\"'=HYPERLINK(\"\"http://x\"\")\",-5,-1.5"
    back = pd.read_parquet(report.path / "hostile.parquet")  # Parquet: as it is, the +01:00 offset kept
    assert back["timestamp"].dt.tz.utcoffset(None) == pd.Timedelta(hours=1)  # pandas 2.2 names it pytz.FixedOffset
    pd.testing.assert_frame_equal(back.assign(timestamp=back["timestamp"].dt.tz_convert("UTC")),
                                  frame.assign(timestamp=frame["timestamp"].dt.tz_convert("UTC")))


# -- the page --------------------------------------------------------------------------------

class _Sources(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.remote: list[str] = []
        self.charts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href", "data", "srcset", "poster") and value and re.match(r"\s*(https?:)?//", value):
                self.remote.append(f"<{tag} {name}={value}>")
            if name == "id" and value and value.startswith("chart-"):
                self.charts.append(value)


def test_report_html_loads_nothing_from_the_network(demo):
    page = demo.html.read_text(encoding="utf-8")
    parser = _Sources()
    parser.feed(page)
    assert parser.remote == []
    assert len(parser.charts) == len(demo.charts) == 5
    assert "@import" not in page and not re.search(r"url\(\s*['\"]?https?:", page)
    specs = json.loads(re.search(r'<script type="application/json" id="meshlab-specs">(.*?)</script>', page,
                                 re.S)[1])  # type: ignore[index]
    assert sorted(specs) == sorted(parser.charts)
    for spec in specs.values():  # data travels inline, never as a URL to fetch
        assert "url" not in json.dumps(spec.get("data", {})) and "datasets" in spec


def test_report_html_escapes_titles_and_names(tmp_path):
    frame = pd.DataFrame({"<b>col</b>": ["<script>alert(1)</script>"]})
    report = ml.report({"t": frame}, tmp_path / "r", title="<img src=x onerror=alert(1)>", charts=False)
    page = report.html.read_text()
    assert "<img src=x" not in page and "<script>alert" not in page and "<b>col" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page


def _chromium() -> str:
    require_binary("chromium", "chromium-browser")
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    assert found is not None
    return found


def _headless(binary: str, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([binary, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                           "--enable-logging=stderr", "--v=0", "--virtual-time-budget=20000", *args, url],
                          capture_output=True, text=True, timeout=180)


def _console(stderr: str) -> list[str]:
    """What the page logged: chromium prints every console message (a Vega-Lite warning too) as INFO:CONSOLE."""
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


@pytest.mark.e2e
@pytest.mark.parametrize("which", ["demo", "analysis"])
def test_report_html_renders_every_chart_in_chromium(which, request, tmp_path):
    binary = _chromium()
    demo = request.getfixturevalue(which)
    demo = demo[0] if isinstance(demo, tuple) else demo
    # the check can fail: a page that logs an error is caught
    canary = tmp_path / "canary.html"
    canary.write_text("<!doctype html><script>console.error('canary')</script>")
    assert any("canary" in line for line in _console(_headless(binary, canary.as_uri(), "--dump-dom").stderr))

    result = _headless(binary, demo.html.as_uri(), "--dump-dom")
    assert result.returncode == 0, result.stderr[-2000:]
    assert _console(result.stderr) == [], "the page logged to the console"

    class Views(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.stack: list[str] = []
            self.views: dict[str, int] = {}
            self.rendered: set[str] = set()

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            attributes = dict(attrs)
            chart = attributes.get("id") or ""
            if tag == "div" and chart.startswith("chart-"):
                self.stack.append(chart)
                self.views[chart] = 0
                if attributes.get("data-rendered") == "true":
                    self.rendered.add(chart)
            elif self.stack and tag in ("svg", "canvas") and "marks" in (attributes.get("class") or ""):
                self.views[self.stack[0]] += 1
                self.stack.clear()

    views = Views()
    views.feed(result.stdout)
    assert sorted(views.views) == [f"chart-{i}" for i in range(len(demo.charts))]
    assert all(n == 1 for n in views.views.values()), views.views
    assert views.rendered == set(views.views)

    shot = tmp_path / "report.png"  # the artifact: look at it under the pytest tmp dir
    result = _headless(binary, demo.html.as_uri(), f"--screenshot={shot}", "--window-size=1280,2400")
    assert shot.exists(), result.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 50_000


# -- atomic at folder level -------------------------------------------------------------------

def _small(n: int = 3) -> dict[str, pd.DataFrame]:
    return {f"t{i}": pd.DataFrame({"a": [float(i)] * 5}) for i in range(n)}


def test_a_failed_report_leaves_the_previous_one_whole(tmp_path, monkeypatch):
    path = tmp_path / "r"
    ml.report(_small(), path, title="first")
    before = _listing(path)
    written = []

    def fail_on_second(frame: pd.DataFrame, folder: Path, name: str, safe: bool) -> None:
        written.append(name)
        if len(written) == 2:
            raise OSError(28, "No space left on device")
        real(frame, folder, name, safe)

    real = meshlab._reportdir._write_table
    monkeypatch.setattr(meshlab._reportdir, "_write_table", fail_on_second)
    with pytest.raises(OSError, match="No space"):
        ml.report({**_small(), "t9": pd.DataFrame({"b": [1.0]})}, path, title="second")
    assert _listing(path) == before
    assert sorted(os.listdir(tmp_path)) == ["r"]


def test_a_failed_first_report_leaves_none(tmp_path, monkeypatch):
    monkeypatch.setattr(meshlab._reportdir, "render_page", lambda *a, **k: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        ml.report(_small(), tmp_path / "r")
    assert os.listdir(tmp_path) == []


_KILLED_REPORT = """
import sys, time
import pandas as pd
import meshlab as ml, meshlab._reportdir as rd
real = rd._write_table
def slow(*args):
    real(*args)
    print("writing", flush=True)
    time.sleep(60)
rd._write_table = slow
ml.report({"t": pd.DataFrame({"a": [2.0]})}, sys.argv[1], charts=False)
"""


def test_a_killed_report_build_leaves_the_old_report_and_is_cleaned_up(tmp_path):
    path = tmp_path / "r"
    ml.report(_small(1), path, charts=False)
    before = _listing(path)
    process = subprocess.Popen([sys.executable, "-c", _KILLED_REPORT, str(path)], env=ENV, stdout=subprocess.PIPE,
                               text=True)
    try:
        assert process.stdout is not None and process.stdout.readline() == "writing\n"
        process.send_signal(signal.SIGKILL)
        process.wait(10)
    finally:
        process.kill()
        process.wait()
    assert _listing(path) == before
    assert len(os.listdir(tmp_path)) == 2  # the killed build's folder, until the next build
    ml.report(_small(2), path, charts=False)
    assert sorted(os.listdir(tmp_path)) == ["r"]
    assert {"t0.csv", "t1.csv"} <= set(os.listdir(path))


# -- arguments ------------------------------------------------------------------------------

BAD = [
    (pd.DataFrame({"a": [1.0]}), "mapping of table names"),
    ({}, "no tables"),
    ({"../up": pd.DataFrame()}, "cannot be a file name"),
    ({"columns": pd.DataFrame()}, "cannot be a file name"),
    ({"a b": pd.DataFrame()}, "cannot be a file name"),
    ({"t": [1, 2]}, r"frames\['t'\]: expected a pandas DataFrame"),
    ({"T": pd.DataFrame(), "t": pd.DataFrame()}, "differ only in case"),
    ([1], "expected a mapping"),
]


@pytest.mark.parametrize(("frames", "message"), BAD, ids=[m for _, m in BAD])
def test_report_refuses_bad_tables(tmp_path, frames, message):
    with pytest.raises(InvalidArgument, match=message):
        ml.report(frames, tmp_path / "r")
    assert os.listdir(tmp_path) == []


def test_report_refuses_to_replace_a_folder_that_is_not_a_report(tmp_path):
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "thesis.tex").write_text("years of work")
    with pytest.raises(InvalidArgument, match="not a meshlab report"):
        ml.report(_small(1), tmp_path / "home")
    assert (tmp_path / "home" / "thesis.tex").read_text() == "years of work"
    (tmp_path / "file").write_text("x")
    with pytest.raises(InvalidArgument, match="is a file"):
        ml.report(_small(1), tmp_path / "file")
    with pytest.raises(InvalidArgument, match="slo_ms"):
        ml.report(_small(1), tmp_path / "r", slo_ms=-1)


def test_ml_report_is_callable_before_and_after_importing_the_module():
    code = ("import meshlab as ml, pandas as pd, sys, tempfile, os\n"
            "d = tempfile.mkdtemp()\n"
            "a = ml.report({'t': pd.DataFrame({'x': [1.0]})}, os.path.join(d, 'a'), charts=False)\n"
            "import meshlab.report\n"
            "from meshlab.report import write_csv\n"
            "b = ml.report({'t': pd.DataFrame({'x': [1.0]})}, os.path.join(d, 'b'), charts=False)\n"
            "print(type(a).__name__, type(b).__name__, sorted(os.listdir(d)))\n")
    out = subprocess.run([sys.executable, "-c", code], env=ENV, capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "Report Report ['a', 'b']", out.stderr


# -- rich display -------------------------------------------------------------------------------

def test_report_dataset_and_sandbox_show_a_summary_in_jupyter(demo, data):
    shown = demo._repr_html_()
    assert "meshlab report: mesh-shootout" in shown and "traffic" in shown
    assert f"{len(data.frames['traffic']):,}" in shown
    shown = data._repr_html_()
    for kind, frame in data.frames.items():
        assert f"frames[&#x27;{kind}&#x27;]" in shown and f"{len(frame):,}" in shown
    require_binary("prometheus")
    box = ml.Sandbox("shop", ("linkerd",), hours=0.1, cache=False)
    shown = box._repr_html_()
    assert "linkerd" in shown and "not running" in shown and "shop" in shown


# -- make demo ---------------------------------------------------------------------------------

def test_demo_builds_the_report_and_says_where(tmp_path, capsys):
    from meshlab.cli import main

    assert main(["demo", "--out", str(tmp_path / "s.csv"), "--report", str(tmp_path / "meshlab-report")]) == 0
    out = capsys.readouterr().out
    assert f"Wrote the full report to {tmp_path / 'meshlab-report'}/" in out
    assert "requests per second, by workload" in out  # today's summary is still printed
    assert re.search(r"^ +cpu_cores +memory_mib +idle_cpu_cores +average_cores_per_1k_rps +marginal_cores_per_1k_rps$",
                     out, re.M), out
    cost = pd.read_csv(tmp_path / "meshlab-report" / "proxy_cost.csv").set_index("mesh")
    for mesh, row in cost.iterrows():  # the marginal cost printed beside the average, with its interval
        assert re.search(rf"^{mesh} .* {row['average_cores_per_1k_rps']:.3f} +{row['marginal_cores_per_1k_rps']:.3f} "
                         rf"\({row['marginal_cores_per_1k_rps_low']:.3f}-{row['marginal_cores_per_1k_rps_high']:.3f}\)$",
                         out, re.M), mesh
    manifest = json.loads((tmp_path / "meshlab-report" / "report.json").read_text())
    assert set(manifest["tables"]) == {"summary", "proxy_cost", *KINDS} and len(manifest["charts"]) == 5
