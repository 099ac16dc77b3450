"""Latency quantiles: validated, named exactly and uniquely, sorted, and each with its bucket resolution.

Every mesh adapter (all five) is checked: refusals need no server (a closed port: a refused
argument must fail before any request); the values come from one hour of
tests/scenarios/incidents.yaml rendered for all five meshes into a real Prometheus, against
the mesh's own ``histogram_quantile`` and the simulator's exact quantiles.
"""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

import meshlab as ml
from meshlab import schema
from meshlab.errors import InvalidArgument
from meshlab.prometheus.local import LocalPrometheus, free_port
from meshlab.sim import load_scenario, simulate, write_backfill
from meshlab.sim.dist import weighted_quantile
from meshlab.sim.meshes import ENVOY_BUCKETS_MS, HUBBLE_BUCKETS_S, LINKERD_BUCKETS_MS

from .conftest import require_binary

MESHES = ("linkerd", "istio", "consul", "kuma", "hubble")
KINDS = {"linkerd": "deployment", "istio": "deployment", "consul": "service", "kuma": "service",
         "hubble": "deployment"}
#: each mesh's histogram bounds in ms (Hubble's are seconds, read x 1000)
BUCKETS_MS = {"linkerd": LINKERD_BUCKETS_MS, "istio": ENVOY_BUCKETS_MS, "consul": ENVOY_BUCKETS_MS,
              "kuma": ENVOY_BUCKETS_MS, "hubble": tuple(b * 1000 for b in HUBBLE_BUCKETS_S)}
#: Kuma names workloads by Kubernetes Service port: <service>_<namespace>_svc_<port>
KUMA_SERVICES = {"web_front_svc_8080": "web", "api_back_svc_9090": "api"}
INCIDENTS = Path(__file__).parent / "scenarios" / "incidents.yaml"
#: refused quantiles, each with why
REFUSED = [("0.99", "a string"), (True, "a bool"), (False, "a bool"), (math.nan, "NaN"), (2, "above 1"),
           (0, "0"), (1, "1"), (1.0, "1.0"), (1.5, "above 1"), (-0.1, "negative"), (math.inf, "infinite"),
           (None, "None"), (b"0.5", "bytes"), ([0.5], "a list"), (0j + 0.5, "complex")]


def closed_port() -> ml.Prometheus:
    """A client whose every request fails at once: a refusal must come before any request."""
    return ml.Prometheus(f"http://127.0.0.1:{free_port()}", retries=0, timeout=2)


# -- names -------------------------------------------------------------------------------------

quantiles = st.floats(min_value=0.0, max_value=1.0, exclude_min=True, exclude_max=True)


@given(quantiles)
def test_every_quantile_has_an_exact_parseable_column_and_promql_text(q):
    column = schema.quantile_column(q)
    assert schema.column_quantile(column) == (q, None)
    for bound in ("low", "high"):
        assert schema.column_quantile(schema.quantile_column(q, bound)) == (q, bound)
    text = schema.quantile_text(q)
    assert float(text) == q and "e" not in text.lower() and text.startswith("0.")
    # the name is the text's digits, so it is as exact as the PromQL
    assert column == f"latency_p{text[2:].ljust(2, '0')}_ms"
    frame = schema.empty("traffic").assign(**{column: np.array([], dtype="float64"),
                                              schema.quantile_column(q, "low"): np.array([], dtype="float64")})
    schema.validate(frame, "traffic")


@given(quantiles, quantiles)
def test_distinct_quantiles_never_share_a_column(a, b):
    assert (schema.quantile_column(a) == schema.quantile_column(b)) == (a == b)


@pytest.mark.parametrize(("q", "column"), [
    (0.5, "latency_p50_ms"), (0.9, "latency_p90_ms"), (0.99, "latency_p99_ms"), (0.95, "latency_p95_ms"),
    (0.999, "latency_p999_ms"), (0.0999, "latency_p0999_ms"), (0.25, "latency_p25_ms"), (0.025, "latency_p025_ms"),
    (0.05, "latency_p05_ms"), (0.1, "latency_p10_ms"), (0.9999999, "latency_p9999999_ms"),
    (1e-7, "latency_p0000001_ms")])
def test_quantile_columns_are_the_quantiles_digits(q, column):
    assert schema.quantile_column(q) == column
    assert schema.column_quantile(column) == (q, None)


@pytest.mark.parametrize("name", ["latency_p5_ms", "latency_p500_ms", "latency_p00_ms", "latency_p990_ms",
                                  "latency_p-10_ms", "latency_p99_mid_ms", "latency_p150_ms_"])
def test_names_no_quantile_can_have_are_not_latency_columns(name):
    assert schema.column_quantile(name) is None
    with pytest.raises(ml.SchemaError, match="unexpected columns"):
        schema.validate(schema.empty("traffic").assign(**{name: np.array([], dtype="float64")}), "traffic")


def test_numbers_of_any_real_type_are_read_exactly():
    assert schema.check_quantiles([np.float64(0.95), Fraction(1, 4), np.float32(0.5)]) == (0.25, 0.5, 0.9, 0.95, 0.99)
    assert schema.check_quantiles(()) == schema.QUANTILES


# -- refusals, for every adapter ------------------------------------------------------------------

@pytest.mark.parametrize("mesh", MESHES)
@pytest.mark.parametrize("method", ["traffic", "edges"])
@pytest.mark.parametrize(("bad", "why"), REFUSED, ids=[why + "-" + repr(b) for b, why in REFUSED])
def test_bad_quantiles_are_refused_naming_the_argument(mesh, method, bad, why):
    adapter = ml.mesh(mesh, closed_port())
    with pytest.raises(InvalidArgument, match=r"^quantiles must be"):
        getattr(adapter, method)(at="2024-05-01T00:30:00Z", quantiles=(0.95, bad))


@pytest.mark.parametrize("mesh", MESHES)
@pytest.mark.parametrize("bad", ["0.95", 0.95, 3, None])
def test_quantiles_must_be_a_list(mesh, bad):
    adapter = ml.mesh(mesh, closed_port())
    with pytest.raises(InvalidArgument, match=r"^quantiles must be a list"):
        adapter.traffic(at="2024-05-01T00:30:00Z", quantiles=bad)


@pytest.mark.parametrize("mesh", MESHES)
@pytest.mark.parametrize(("bad", "why"), REFUSED, ids=[why + "-" + repr(b) for b, why in REFUSED])
def test_promql_refuses_bad_quantiles(mesh, bad, why):
    with pytest.raises(InvalidArgument, match=r"^quantile must be"):
        ml.mesh(mesh, closed_port()).promql("latency", quantile=bad)


@pytest.mark.parametrize("mesh", MESHES)
@pytest.mark.parametrize("q", [0.9999999, 0.0999, 0.025, 1e-7, 0.123456789012345])
def test_promql_carries_the_exact_quantile(mesh, q):
    query = ml.mesh(mesh, closed_port()).promql("latency", quantile=q)
    text = query.removeprefix("histogram_quantile(").split(",", 1)[0]
    assert float(text) == q and "e" not in text


# -- through a real Prometheus ------------------------------------------------------------------

@pytest.fixture(scope="module")
def five(tmp_path_factory: pytest.TempPathFactory):
    """The incidents hour for all five meshes in one Prometheus: ``(traffic, prom)``."""
    require_binary("prometheus")
    require_binary("promtool")
    traffic = simulate(load_scenario(INCIDENTS))
    files, _ = write_backfill(traffic, MESHES, tmp_path_factory.mktemp("five"))
    with LocalPrometheus(openmetrics=files) as server:
        yield traffic, server.client


def _latency_columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if schema.column_quantile(c) is not None]


@pytest.mark.parametrize("mesh", MESHES)
def test_extra_quantiles_add_to_the_defaults_sorted_with_no_blank_stand_ins(five, mesh):
    traffic, prom = five
    end = traffic.timestamps()[-1]
    adapter = ml.mesh(mesh, prom)
    asked = (0.999, 0.0999, 0.95, 0.25, 0.025)
    frame = adapter.traffic(KINDS[mesh], at=end, quantiles=asked)
    order = sorted({*schema.QUANTILES, *asked})
    assert _latency_columns(frame) == ([schema.quantile_column(q) for q in order]
                                       + [schema.quantile_column(q, b) for q in order for b in ("low", "high")])
    busy = frame[frame["requests"] > 0]
    assert len(busy) >= 2
    # no column is a blank stand-in: wherever there were requests, every estimate and bound is there
    assert busy[_latency_columns(frame)].notna().all().all()
    # each equals the mesh's own histogram_quantile at that exact quantile, and the defaults what they are alone
    for q in asked:
        theirs = prom.query(adapter.promql("latency", KINDS[mesh], quantile=q), time=end)
        assert len(theirs) == len(frame)
        np.testing.assert_allclose(np.sort(busy[schema.quantile_column(q)].to_numpy()),
                                   np.sort(theirs["value"].dropna().to_numpy()), rtol=1e-12)
    alone = adapter.traffic(KINDS[mesh], at=end)
    pd.testing.assert_frame_equal(frame[alone.columns], alone)


@pytest.mark.parametrize("mesh", MESHES)
def test_the_true_percentile_lies_within_the_reported_bucket(five, mesh):
    """For every mesh, workload, step and quantile: low <= estimate <= high, low and high are adjacent
    bounds of the mesh's own buckets, and the simulator's exact quantile over the window lies within them
    (to the sampling noise of the window's requests: the bucket's CDF range holds q)."""
    traffic, prom = five
    times = traffic.timestamps()
    qs = (0.5, 0.9, 0.99, 0.999)
    frame = ml.mesh(mesh, prom).traffic(KINDS[mesh], start=times[20], end=times[-1], step="5m", window="5m",
                                        quantiles=qs)
    edges = np.array([0.0, *BUCKETS_MS[mesh], math.inf])
    if mesh == "kuma":
        frame = frame.assign(name=frame["name"].astype(str).map(lambda n: KUMA_SERVICES.get(n, n)))
    checked = 0
    for workload in ("web", "api"):
        w = traffic.scenario.workload(workload)
        mixture = traffic.latency(w, mesh, "server")
        counts = traffic.inbound_requests(w).sum(axis=1)
        rows = frame[frame["name"].astype(str) == workload]
        assert len(rows) == frame["timestamp"].nunique() > 5
        for row in rows.itertuples():
            k = int(np.searchsorted(traffic.times_ms, row.timestamp.value // 1_000_000))
            window = slice(k - 19, k + 1)
            part = mixture.select(window, traffic.n)
            for q in qs:
                estimate = getattr(row, schema.quantile_column(q))
                low = getattr(row, schema.quantile_column(q, "low"))
                high = getattr(row, schema.quantile_column(q, "high"))
                i = int(np.searchsorted(edges, high))
                assert edges[i] == high and edges[i - 1] == low, (workload, q, low, high)
                assert low <= estimate <= high
                # The histogram holds a sample of the distribution: its q-quantile lies in [low, high] up
                # to the sampling noise of n requests (4 binomial standard deviations of the rank).
                n = counts[window].sum()
                noise = 4 * math.sqrt(q * (1 - q) / n)
                at_low, at_high = (float((part.cdf(x) * counts[window]).sum() / n) if np.isfinite(x) else 1.0
                                   for x in (low, high))
                exact = weighted_quantile(part, counts[window], q)
                assert at_low - noise <= q <= at_high + noise, (workload, row.timestamp, q, low, exact, high)
                checked += 1
    assert checked == 2 * len(qs) * frame["timestamp"].nunique()


@pytest.mark.parametrize("mesh", MESHES)
def test_edges_carry_bounds_on_every_side(five, mesh):
    traffic, prom = five
    frame = ml.mesh(mesh, prom).edges(KINDS[mesh], at=traffic.timestamps()[-1], quantiles=(0.95,))
    busy = frame[frame["requests"] > 0]
    assert len(busy) > 0
    for q in (*schema.QUANTILES, 0.95):
        low, estimate, high = (busy[schema.quantile_column(q, b)] for b in ("low", None, "high"))
        assert (low <= estimate).all() and (estimate <= high).all() and (low < high).all()
    idle = frame[frame["requests"] == 0]
    assert idle[_latency_columns(frame)].isna().all().all()  # no requests: no estimate, no bounds


# -- the dataset and the demo ------------------------------------------------------------------------

def test_dataset_build_and_demo_say_when_meshes_differ_within_bucket_resolution(tmp_path, monkeypatch):
    """scripts/build_datasets.py writes the bounds through the adapters; the demo's CSV names, for each
    mesh and workload, the meshes whose p99 bucket overlaps its own."""
    import importlib.util

    import meshlab.datasets
    from meshlab.cli import main

    require_binary("prometheus")
    spec = importlib.util.spec_from_file_location("build_datasets",
                                                  Path(__file__).parent.parent / "scripts" / "build_datasets.py")
    assert spec is not None and spec.loader is not None
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    build.build(tmp_path, 0.5)
    monkeypatch.setattr(meshlab.datasets, "data_dir", lambda: tmp_path)
    traffic = meshlab.datasets.load("mesh-shootout").frames["traffic"]
    for q in schema.QUANTILES:
        estimate, low, high = (traffic[schema.quantile_column(q, b)] for b in (None, "low", "high"))
        assert (estimate.notna() == low.notna()).all() and (low <= estimate).all() and (estimate <= high).all()
    out = tmp_path / "demo.csv"
    assert main(["demo", "--out", str(out), "--report", str(tmp_path / "meshlab-report")]) == 0
    summary = pd.read_csv(out, keep_default_na=False, na_values=[""], dtype={"latency_p99_within_resolution_of": str})
    layouts = {"linkerd": LINKERD_BUCKETS_MS, "istio": ENVOY_BUCKETS_MS, "consul": ENVOY_BUCKETS_MS}
    for row in summary.itertuples():
        edges = (0.0, *layouts[row.mesh])
        assert row.latency_p99_low_ms in edges and row.latency_p99_high_ms in edges
        assert row.latency_p99_low_ms <= row.latency_p99_ms <= row.latency_p99_high_ms
        overlapping = sorted(
            other.mesh for other in summary.itertuples()
            if other.workload == row.workload and other.mesh != row.mesh
            and max(row.latency_p99_low_ms, other.latency_p99_low_ms)
            <= min(row.latency_p99_high_ms, other.latency_p99_high_ms))
        noted = row.latency_p99_within_resolution_of
        assert (sorted(noted.split(", ")) if isinstance(noted, str) else []) == overlapping
