"""meshlab.charts: every chart renders offline, keeps to its row budget, shows UTC, has tooltips.

The chart data is checked against independent pandas computations on the bundled dataset and
on frames built here with the columns the analysis layer documents (issue 12).
"""

from __future__ import annotations

import json
import math
import re
import shutil
import struct
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest

import meshlab as ml
from meshlab.errors import InvalidArgument

from .conftest import require_binary

charts = pytest.importorskip("meshlab.charts")
alt = pytest.importorskip("altair")


# --- frames ---------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def shootout():
    return ml.datasets.load("mesh-shootout")


def benchmark_frame() -> pd.DataFrame:
    """A load sweep with the benchmark frame's columns: three meshes, three connection counts, six levels."""
    rng = np.random.default_rng(7)
    rows = []
    for mesh, idle, per_k, add in (("none", np.nan, np.nan, 0.0), ("istio", 40.0, 180.0, 2.5),
                                   ("linkerd", 10.0, 90.0, 1.0)):
        for conns in (2, 16, 64):
            for qps in (10, 100, 500, 1000, 2000, 3000):
                knee = 1.0 + (qps / 2500) ** 6 * (conns / 16)
                actual = qps * (0.9 if qps == 3000 and mesh != "none" else 0.999)
                p99 = (1.5 + add) * (1 + conns / 32) * knee
                rows.append({"run_id": f"{mesh}-{conns}-{qps}", "mesh": mesh,
                             "mode": "both" if mesh != "none" else "baseline",
                             "requested_qps": float(qps), "actual_qps": actual, "connections": float(conns),
                             "payload_bytes": 1024.0, "error_ratio": 0.0, "latency_resolution_ms": 0.1,
                             "latency_p50_ms": p99 / 3, "latency_p90_ms": p99 / 1.5, "latency_p99_ms": p99,
                             "client_cpu_mcores": idle + 0.8 * per_k * actual / 1000 + rng.normal(0, 5),
                             "server_cpu_mcores": idle + per_k * actual / 1000 + rng.normal(0, 5),
                             "client_mem_mib": 30 + actual / 200, "server_mem_mib": 35 + actual / 150})
    frame = pd.DataFrame(rows)
    for c in ("run_id", "mesh", "mode"):
        frame[c] = frame[c].astype("category")
    return frame


def fit_frame(bench: pd.DataFrame) -> pd.DataFrame:
    """capacity.fit's documented columns, fitted here with numpy.polyfit."""
    rows = []
    for (mesh, mode), part in bench[bench["mesh"] != "none"].groupby(["mesh", "mode"], observed=True):
        for role in ("client", "server"):
            for suffix, resource in (("cpu_mcores", "cpu_mcores"), ("mem_mib", "memory_mib")):
                slope, intercept = np.polyfit(part["actual_qps"], part[f"{role}_{suffix}"], 1)
                rows.append({"mesh": mesh, "mode": mode, "role": role, "resource": resource, "intercept": intercept,
                             "per_1k_rps": slope * 1000, "per_1k_rps_low": slope * 900,
                             "per_1k_rps_high": slope * 1100, "r2": 0.98, "n": float(len(part))})
    return pd.DataFrame(rows)


def compare_frame() -> pd.DataFrame:
    """compare's documented long output for benchmarks: one row per mesh, load level and metric."""
    rows = []
    for mesh, scale in (("istio", 2.0), ("linkerd", 0.7)):
        for qps in (100.0, 1000.0, math.nan):
            for metric, k in (("latency_p50_ms", 0.3), ("latency_p99_ms", 1.0)):
                d = scale * k * (1 + (0 if math.isnan(qps) else qps / 1000))
                single = qps == 1000.0
                rows.append({"mesh": mesh, "mode": "both", "baseline": "none", "requested_qps": qps,
                             "connections": 16.0, "payload_bytes": 1024.0, "metric": metric, "value": 2 + d,
                             "baseline_value": 2.0, "delta": d, "delta_low": math.nan if single else 0.8 * d,
                             "delta_high": math.nan if single else 1.25 * d, "n": 3.0, "baseline_n": 3.0,
                             "saturated": math.isnan(qps), "within_resolution": d < 0.3,
                             "flags": "single_run" if single else "", "summary": f"{mesh} adds {d:.2f} ms"})
    return pd.DataFrame(rows)


def max_rps_frame(bench: pd.DataFrame, slo: float) -> pd.DataFrame:
    rows = []
    for (mesh, mode, conns), part in bench.groupby(["mesh", "mode", "connections"], observed=True):
        ok = part[part["latency_p99_ms"] <= slo]
        rows.append({"mesh": mesh, "mode": mode, "connections": conns, "slo_ms": slo, "percentile": "p99",
                     "max_rps_measured": ok["requested_qps"].max() if len(ok) else math.nan})
    return pd.DataFrame(rows)


def with_resolution(traffic: pd.DataFrame) -> pd.DataFrame:
    """A traffic frame with made-up bucket bounds for p99 only (the real ones are dropped), so each value is known."""
    out = traffic.drop(columns=[c for c in traffic.columns if c.endswith(("_low_ms", "_high_ms"))])
    out["latency_p99_low_ms"] = out["latency_p99_ms"] * 0.8
    out["latency_p99_high_ms"] = out["latency_p99_ms"] * 1.25
    return out


def builders(data: Any) -> dict[str, Callable[[], Any]]:
    traffic, edges = data.frames["traffic"], data.frames["edges"]
    bench = benchmark_frame()
    return {
        "golden_signals": lambda: charts.golden_signals(traffic),
        "golden_signals_band": lambda: charts.golden_signals(with_resolution(traffic), mesh="istio", latency="band"),
        "golden_signals_edges": lambda: charts.golden_signals(edges, mesh="linkerd", percentiles=["p99"]),
        "latency_by_mesh": lambda: charts.latency_by_mesh(traffic),
        "latency_by_mesh_resolution": lambda: charts.latency_by_mesh(with_resolution(traffic), percentiles=["p99"]),
        "edge_matrix_rps": lambda: charts.edge_matrix(edges),
        "edge_matrix_success": lambda: charts.edge_matrix(edges, metric="success_rate", mesh="consul"),
        "edge_matrix_p99": lambda: charts.edge_matrix(edges, metric="p99", side="server"),
        "worst_workloads": lambda: charts.worst_workloads(traffic, n=3),
        "comparison": lambda: charts.comparison(compare_frame()),
        "capacity": lambda: charts.capacity(bench, fit_frame(bench)),
        "capacity_points": lambda: charts.capacity(bench, resource="memory", roles="server"),
        "latency_vs_load": lambda: charts.latency_vs_load(bench, slo_ms=5, max_rps=max_rps_frame(bench, 5)),
    }


CHART_NAMES = ["golden_signals", "golden_signals_band", "golden_signals_edges", "latency_by_mesh",
               "latency_by_mesh_resolution", "edge_matrix_rps", "edge_matrix_success", "edge_matrix_p99",
               "worst_workloads", "comparison", "capacity", "capacity_points", "latency_vs_load"]


@pytest.fixture(scope="module")
def built(shootout) -> dict[str, Any]:
    return {name: make() for name, make in builders(shootout).items()}


def test_chart_names_cover_every_builder(shootout):
    assert sorted(builders(shootout)) == sorted(CHART_NAMES)
    public = [n for n in charts.__all__ if callable(getattr(charts, n)) and n not in ("save", "to_html", "downsample")]
    for name in public:
        assert any(c == name or c.startswith(name + "_") for c in CHART_NAMES), f"{name} is not rendered by a test"


# --- spec walking ---------------------------------------------------------------------------------------------

def units(spec: Any) -> Iterator[dict[str, Any]]:
    """Every unit view (a dict with a mark) anywhere in a Vega-Lite spec."""
    if isinstance(spec, dict):
        if "mark" in spec:
            yield spec
        for key, value in spec.items():
            if key not in ("datasets", "data"):
                yield from units(value)
    elif isinstance(spec, list):
        for item in spec:
            yield from units(item)


def inline_datasets(spec: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    return spec.get("datasets", {})


def dataset_with(spec: dict[str, Any], *fields: str) -> pd.DataFrame:
    found = [pd.DataFrame(v) for v in inline_datasets(spec).values() if v and all(f in v[0] for f in fields)]
    assert len(found) == 1, f"expected one dataset with {fields}, found {len(found)}"
    return found[0]


# --- the class: every chart ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name", CHART_NAMES)
def test_every_chart_renders_a_png_of_plausible_size(built, name, tmp_path):
    path = charts.save(built[name], tmp_path / f"{name}.png")
    raw = path.read_bytes()
    assert raw[:8] == b"\x89PNG\r\n\x1a\n"
    assert raw[12:16] == b"IHDR"
    width, height = struct.unpack(">II", raw[16:24])
    assert 300 <= width <= 6000, width
    assert 150 <= height <= 6000, height
    assert len(raw) > 10_000  # a chart, not an empty canvas


@pytest.mark.parametrize("name", CHART_NAMES)
def test_every_chart_has_tooltips_on_every_mark(built, name):
    views = list(units(built[name].to_dict()))
    assert views
    for view in views:
        assert "tooltip" in view.get("encoding", {}), f"{name}: a {view['mark']} mark has no tooltip"


@pytest.mark.parametrize("name", CHART_NAMES)
def test_every_time_axis_and_tooltip_is_utc(built, name):
    for view in units(built[name].to_dict()):
        for channel, definition in view.get("encoding", {}).items():
            defs = definition if isinstance(definition, list) else [definition]
            for d in defs:
                if not isinstance(d, dict) or d.get("type") != "temporal":
                    continue
                if channel in ("x", "y"):
                    assert d["scale"]["type"] == "utc", (name, channel)
                    assert "UTC" in d["title"], (name, channel)
                else:
                    assert d.get("timeUnit", "").startswith("utc"), (name, channel, d)
                # Vega-Lite 6 renders nothing for formatType "utc" with a format string
                assert d.get("formatType") != "utc"


@pytest.mark.parametrize("name", CHART_NAMES)
def test_every_chart_ships_under_the_row_and_byte_budget(built, name):
    spec = built[name].to_dict()
    rows = sum(len(v) for v in inline_datasets(spec).values())
    assert 0 < rows <= charts.DEFAULT_MAX_ROWS
    assert len(json.dumps(spec)) < 600_000


@pytest.mark.parametrize("name", ["golden_signals", "edge_matrix_rps", "capacity", "comparison"])
def test_html_inlines_vega_with_no_remote_scripts(built, name, tmp_path):
    html = charts.save(built[name], tmp_path / f"{name}.html").read_text()
    assert not re.search(r"<script[^>]*\bsrc\s*=\s*[\"']?(https?:)?//", html, re.I)
    assert not re.search(r"<link[^>]*\bhref\s*=\s*[\"']?(https?:)?//", html, re.I)
    assert "vegaEmbed" in html and len(html) > 300_000  # the libraries themselves are in the page


def test_svg_is_written(built, tmp_path):
    svg = charts.save(built["worst_workloads"], tmp_path / "w.svg").read_text()
    assert svg.lstrip().startswith("<svg") and "</svg>" in svg


# --- values: downsampling and aggregation against independent pandas ----------------------------------------

@pytest.fixture(scope="module")
def month() -> pd.DataFrame:
    """30 days of 1-minute traffic for 40 workloads: 1.7 million rows."""
    rng = np.random.default_rng(3)
    times = pd.date_range("2024-05-01", periods=30 * 24 * 60, freq="1min", tz="UTC").as_unit("ns")
    n, w = len(times), 40
    requests = rng.poisson(60, size=(w, n)).astype("float64")
    failures = rng.binomial(requests.astype(int), 0.01).astype("float64")
    p99 = rng.lognormal(3, 0.3, size=(w, n))
    frame = pd.DataFrame({
        "timestamp": np.tile(times, w),
        "mesh": "linkerd", "kind": "deployment", "namespace": "shop",
        "name": np.repeat([f"svc{i:02d}" for i in range(w)], n),
        "success_count": (requests - failures).ravel(), "failure_count": failures.ravel(),
        "requests": requests.ravel(), "success_rate": ((requests - failures) / requests).ravel(),
        "rps": (requests / 60).ravel(), "latency_p50_ms": (p99 / 4).ravel(), "latency_p90_ms": (p99 / 2).ravel(),
        "latency_p99_ms": p99.ravel()})
    for c in ("mesh", "kind", "namespace", "name"):
        frame[c] = frame[c].astype("category")
    return ml.validate(frame, "traffic")


def test_a_month_of_minutes_is_downsampled_under_budget_with_right_bucket_means(month):
    chart = charts.golden_signals(month)
    spec = chart.to_dict()
    rows = sum(len(v) for v in inline_datasets(spec).values())
    size = len(json.dumps(spec))
    assert rows <= charts.DEFAULT_MAX_ROWS
    assert size < 600_000, size
    wide = dataset_with(spec, "rps", "success_rate")
    stamps = pd.to_datetime(wide["timestamp"], unit="ms", utc=True)
    width = stamps.drop_duplicates().sort_values().diff().dropna().min()
    assert width > pd.Timedelta("1min")
    assert f"{width.days} day" in spec["title"]
    # independently: pandas resample per workload, epoch-aligned
    one = month[month["name"] == "svc07"].set_index("timestamp")
    resampled = one[["rps", "success_count", "requests"]].resample(width, origin="epoch").sum(min_count=1)
    counts = one["rps"].resample(width, origin="epoch").count()
    expected_rps = resampled["rps"] / counts
    expected_success = resampled["success_count"] / resampled["requests"]
    mine = wide[wide["series"] == "shop/svc07"].assign(timestamp=stamps).set_index("timestamp").sort_index()
    assert list(mine.index) == list(expected_rps.index)
    np.testing.assert_allclose(mine["rps"], expected_rps, rtol=1e-5)
    np.testing.assert_allclose(mine["success_rate"], expected_success, rtol=1e-5)
    long = dataset_with(spec, "latency_ms", "percentile")
    p99 = long[(long["series"] == "shop/svc07") & (long["percentile"] == "p99")].sort_values("timestamp")
    expected_p99 = one["latency_p99_ms"].resample(width, origin="epoch").mean()
    np.testing.assert_allclose(p99["latency_ms"], expected_p99, rtol=1e-5)


def test_a_month_of_minutes_renders_to_png(month, tmp_path):
    path = charts.save(charts.golden_signals(month, workloads=["svc01", "svc02"]), tmp_path / "month.png")
    assert path.read_bytes()[:4] == b"\x89PNG"


def test_golden_signals_ships_raw_windows_when_they_fit(shootout):
    traffic = shootout.frames["traffic"]
    part = traffic[(traffic["mesh"] == "istio") & (traffic["name"] == "cart")]
    spec = charts.golden_signals(part).to_dict()
    wide = dataset_with(spec, "rps", "success_rate")
    assert len(wide) == len(part)
    expected = part.sort_values("timestamp")
    np.testing.assert_allclose(wide["rps"], expected["rps"], rtol=1e-5)
    ms = (expected["timestamp"] - pd.Timestamp(0, tz="UTC")) // pd.Timedelta("1ms")
    assert list(wide["timestamp"]) == list(ms)
    assert "raw windows" in spec["title"]


def test_percentile_resolution_is_drawn_as_a_band(shootout):
    traffic = shootout.frames["traffic"]
    part = traffic[(traffic["mesh"] == "linkerd") & (traffic["name"] == "ledger")]
    spec = charts.golden_signals(with_resolution(part)).to_dict()
    areas = [v for v in units(spec) if (v["mark"] if isinstance(v["mark"], str) else v["mark"]["type"]) == "area"]
    assert any(v["encoding"]["y"]["field"] == "low_ms" and v["encoding"]["y2"]["field"] == "high_ms" for v in areas)
    long = dataset_with(spec, "latency_ms", "low_ms", "high_ms")
    p99 = long[long["percentile"] == "p99"]
    np.testing.assert_allclose(p99["low_ms"], part.sort_values("timestamp")["latency_p99_ms"] * 0.8, rtol=1e-5)
    # without bounds there is no band
    bounds = [c for c in part.columns if c.endswith(("_low_ms", "_high_ms"))]
    plain = charts.golden_signals(part.drop(columns=bounds)).to_dict()
    assert not [v for v in units(plain) if "low_ms" in json.dumps(v.get("encoding", {}))]


def test_latency_by_mesh_values_are_medians_over_windows(shootout):
    traffic = shootout.frames["traffic"]
    spec = charts.latency_by_mesh(with_resolution(traffic), percentiles=["p50", "p99"]).to_dict()
    data = dataset_with(spec, "latency_ms", "low_ms", "high_ms")
    cart = traffic[(traffic["name"] == "cart") & (traffic["mesh"] == "consul")]
    p99 = data[(data["series"] == "shop/cart") & (data["mesh"] == "consul") & (data["percentile"] == "p99")]
    assert p99["latency_ms"].item() == pytest.approx(cart["latency_p99_ms"].median(), rel=1e-5)
    assert p99["high_ms"].item() == pytest.approx((cart["latency_p99_ms"] * 1.25).median(), rel=1e-5)
    # p50 has no bounds: its bar is the interquartile range
    p50 = data[(data["series"] == "shop/cart") & (data["mesh"] == "consul") & (data["percentile"] == "p50")]
    assert p50["low_ms"].item() == pytest.approx(cart["latency_p50_ms"].quantile(0.25), rel=1e-5)


def test_edge_matrix_cells_match_pandas(shootout):
    edges = shootout.frames["edges"]
    spec = charts.edge_matrix(edges, metric="success_rate").to_dict()
    data = dataset_with(spec, "source", "destination", "success_rate")
    client = edges[(edges["side"] == "client") & (edges["mesh"] == "istio") & (edges["src_name"] == "frontend")
                   & (edges["dst_name"] == "checkout")]
    cell = data[(data["mesh"] == "istio") & (data["source"] == "shop/frontend")
                & (data["destination"] == "payments/checkout")]
    assert cell["success_rate"].item() == pytest.approx(client["success_count"].sum() / client["requests"].sum(),
                                                        rel=1e-5)
    assert cell["rps"].item() == pytest.approx(client["rps"].mean(), rel=1e-5)
    # a destination outside the mesh (no namespace) keeps its name
    assert "stripe" in set(data["destination"])


def test_worst_workloads_are_the_lowest_success_rates(shootout):
    traffic = shootout.frames["traffic"]
    spec = charts.worst_workloads(traffic, n=2).to_dict()
    data = dataset_with(spec, "label", "success_rate")
    totals = traffic.groupby(["mesh", "name"], observed=True)[["success_count", "requests"]].sum()
    rate = (totals["success_count"] / totals["requests"]).rename("rate").reset_index()
    for mesh, part in rate.groupby("mesh", observed=True):
        expected = part.nsmallest(2, "rate")
        mine = data[data["mesh"] == mesh]
        assert sorted(mine["series"].str.split("/").str[1]) == sorted(expected["name"].astype(str))
        np.testing.assert_allclose(sorted(mine["success_rate"]), sorted(expected["rate"]), rtol=1e-5)


def test_capacity_line_and_band_follow_the_fit():
    bench = benchmark_frame()
    fit = fit_frame(bench)
    spec = charts.capacity(bench, fit, roles="server").to_dict()
    data = pd.DataFrame(next(iter(inline_datasets(spec).values())))
    line = data[(data["layer"] == "fit") & (data["who"] == "istio")]
    assert len(line) >= 2
    row = fit[(fit["mesh"] == "istio") & (fit["role"] == "server") & (fit["resource"] == "cpu_mcores")].iloc[0]
    np.testing.assert_allclose(line["cost"], row["intercept"] + row["per_1k_rps"] * line["rps"] / 1000, rtol=1e-5)
    np.testing.assert_allclose(line["cost_high"], row["intercept"] + row["per_1k_rps_high"] * line["rps"] / 1000,
                               rtol=1e-5)
    runs = data[(data["layer"] == "run") & (data["who"] == "istio")]
    assert len(runs) == (bench["mesh"] == "istio").sum()
    np.testing.assert_allclose(sorted(runs["cost"]), sorted(bench[bench["mesh"] == "istio"]["server_cpu_mcores"]),
                               rtol=1e-5)


def test_latency_vs_load_marks_saturated_runs_and_the_slo():
    bench = benchmark_frame()
    spec = charts.latency_vs_load(bench, slo_ms=5).to_dict()
    data = pd.DataFrame(next(iter(inline_datasets(spec).values())))
    saturated = bench["actual_qps"] < 0.95 * bench["requested_qps"]
    assert (data["saturated"] == "saturated").sum() == saturated.sum() > 0
    assert any(v.get("encoding", {}).get("y", {}).get("datum") == 5 for v in units(spec))


def test_comparison_keeps_rows_without_an_interval():
    frame = compare_frame()
    spec = charts.comparison(frame).to_dict()
    data = pd.DataFrame(next(iter(inline_datasets(spec).values())))
    assert len(data) == len(frame)
    assert set(data["key"]) == {"100 qps, 16 conn, 1024 B", "1000 qps, 16 conn, 1024 B", "max qps, 16 conn, 1024 B"}
    assert data["delta_low"].isna().sum() == frame["delta_low"].isna().sum() > 0


# --- arguments -----------------------------------------------------------------------------------------------

BAD_CALLS: list[tuple[str, Callable[[Any], Any], str]] = [
    ("not a frame", lambda d: charts.golden_signals([1, 2]), "traffic"),
    ("empty", lambda d: charts.golden_signals(d.frames["traffic"].iloc[:0]), "traffic"),
    ("workload", lambda d: charts.golden_signals(d.frames["traffic"], workloads=["nope"]), "workloads"),
    ("mesh", lambda d: charts.golden_signals(d.frames["traffic"], mesh="kuma"), "mesh"),
    ("latency", lambda d: charts.golden_signals(d.frames["traffic"], latency="dots"), "latency"),
    ("max_rows", lambda d: charts.golden_signals(d.frames["traffic"], max_rows=9000), "max_rows"),
    ("percentile", lambda d: charts.golden_signals(d.frames["traffic"], percentiles=["p75"]), "percentiles"),
    ("metric", lambda d: charts.edge_matrix(d.frames["edges"], metric="bytes"), "metric"),
    ("side", lambda d: charts.edge_matrix(d.frames["edges"], side="both"), "side"),
    ("edges frame", lambda d: charts.edge_matrix(d.frames["traffic"]), "edges"),
    ("n", lambda d: charts.worst_workloads(d.frames["traffic"], n=0), "n"),
    ("slo", lambda d: charts.latency_vs_load(benchmark_frame(), slo_ms=-1), "slo_ms"),
    ("slo nan", lambda d: charts.latency_vs_load(benchmark_frame(), slo_ms=math.nan), "slo_ms"),
    ("resource", lambda d: charts.capacity(benchmark_frame(), resource="disk"), "resource"),
    ("roles", lambda d: charts.capacity(benchmark_frame(), roles="gateway"), "roles"),
    ("metrics", lambda d: charts.comparison(compare_frame(), metrics=["rps"]), "metrics"),
    ("compare frame", lambda d: charts.comparison(d.frames["traffic"]), "compare"),
]


@pytest.mark.parametrize(("what", "call", "argument"), BAD_CALLS, ids=[b[0] for b in BAD_CALLS])
def test_bad_arguments_are_refused_naming_the_argument(shootout, what, call, argument):
    with pytest.raises(InvalidArgument, match=rf"^{argument}:"):
        call(shootout)


def test_save_refuses_unknown_formats_and_missing_directories(built, tmp_path):
    chart = built["worst_workloads"]
    with pytest.raises(InvalidArgument, match="format"):
        charts.save(chart, tmp_path / "chart.gif")
    with pytest.raises(InvalidArgument, match="directory"):
        charts.save(chart, tmp_path / "missing" / "chart.png")
    with pytest.raises(InvalidArgument, match="chart"):
        charts.save({"mark": "point"}, tmp_path / "chart.png")


class Unrenderable:
    def to_dict(self) -> dict[str, Any]:
        return {"mark": "no-such-mark", "data": {"values": [{"a": 1}]}}


@pytest.mark.parametrize("suffix", ["png", "svg"])
def test_a_failed_render_leaves_the_previous_file(built, tmp_path, suffix):
    path = tmp_path / f"chart.{suffix}"
    charts.save(built["worst_workloads"], path)
    before = path.read_bytes()
    with pytest.raises(InvalidArgument, match="vl-convert could not render"):
        charts.save(Unrenderable(), path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_import_meshlab_does_not_import_altair():
    code = ("import sys, meshlab; assert 'altair' not in sys.modules, 'altair imported'; "
            "meshlab.charts; assert 'altair' in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


# --- a real browser ------------------------------------------------------------------------------------------

@pytest.mark.e2e
def test_html_renders_in_headless_chromium(built, tmp_path):
    require_binary("chromium", "chromium-browser")
    from PIL import Image, ImageStat

    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    page = charts.save(built["golden_signals"], tmp_path / "page.html")
    shot = tmp_path / "shot.png"
    subprocess.run([str(binary), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    "--no-first-run", "--disable-extensions", f"--user-data-dir={tmp_path / 'profile'}",
                    "--window-size=1400,1100", "--virtual-time-budget=15000", f"--screenshot={shot}",
                    page.as_uri()], check=True, timeout=120, capture_output=True)
    image = Image.open(shot).convert("RGB")
    grey = ImageStat.Stat(image.convert("L"))
    assert grey.var[0] > 100, "the screenshot is blank"
    # the lines are coloured: a page showing only an error message would be black on white
    pixels = np.asarray(image, dtype=np.int16)
    coloured = (pixels.max(axis=2) - pixels.min(axis=2)) > 60
    assert coloured.mean() > 0.002, coloured.mean()


def test_comparison_draws_a_live_traffic_comparison(shootout):
    """ml.compare on traffic frames adds scope, n, block_length, resolution_ms: once taken for row labels, it failed."""
    delta = ml.compare(shootout.frames["traffic"], baseline="linkerd", metrics=["latency_p99_ms"])
    assert delta.attrs["keys"] == ["scope", "namespace", "name"]
    spec = charts.comparison(delta).to_dict()
    data = dataset_with(spec, "key", "delta")
    overall = delta[delta["scope"] == "overall"].set_index("mesh")["delta"]
    drawn = data[data["key"] == "overall"].set_index("mesh")["delta"]
    assert set(drawn.index) == {"istio", "consul"}
    for mesh, value in drawn.items():
        assert value == pytest.approx(overall[mesh], rel=1e-5)
    assert "shop/cart" in set(data["key"])


def test_every_chart_draws_in_chromium_with_a_silent_console(built, tmp_path):
    """All charts on one page (the report's page and bundle): each draws, and Vega-Lite logs nothing.

    Vega-Lite's compile warnings (e.g. a faceted independent scale over differently filtered layers,
    an opacity channel on an unsorted nominal field) go to the console; any message fails.
    """
    require_binary("chromium", "chromium-browser")
    from meshlab._reportpage import page, vega_bundle
    from meshlab.charts._save import _vl_version

    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    specs = [(name, built[name].to_dict()) for name in CHART_NAMES]
    html = page("every chart", None, pd.Timestamp("2024-01-01", tz="UTC"), {}, {}, specs, [],
                pd.DataFrame(), vega_bundle(_vl_version()))
    path = tmp_path / "charts.html"
    path.write_text(html, encoding="utf-8")
    result = subprocess.run([str(binary), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                             f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0",
                             "--virtual-time-budget=20000", "--dump-dom", path.as_uri()],
                            capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-2000:]
    console = [line for line in result.stderr.splitlines() if ":CONSOLE" in line]
    assert console == [], "\n".join(console)
    rendered = re.findall(r'<div [^>]*id="(chart-\d+)" data-rendered="true"', result.stdout)
    assert sorted(rendered) == sorted(f"chart-{i}" for i in range(len(specs))), \
        [CHART_NAMES[i] for i in range(len(specs)) if f"chart-{i}" not in rendered]


def _texts(node: Any) -> Iterator[str]:
    """Every text drawn in a Vega scenegraph."""
    if isinstance(node, dict):
        if isinstance(node.get("text"), str):
            yield node["text"]
        for value in node.values():
            yield from _texts(value)
    elif isinstance(node, list):
        for value in node:
            yield from _texts(value)


def test_latency_vs_load_draws_the_slo_label_once_per_panel():
    """It was drawn once per run, on top of itself (a smeared label); the scenegraph counts what is drawn."""
    import vl_convert

    from meshlab.charts._save import _vl_version

    bench = benchmark_frame()
    spec = charts.latency_vs_load(bench, slo_ms=5).to_dict()
    scene = vl_convert.vegalite_to_scenegraph(spec, vl_version=_vl_version())
    labels = [t for t in _texts(scene) if t == "SLO p99 5 ms"]
    assert len(labels) == bench["mesh"].nunique() == 3
