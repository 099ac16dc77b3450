"""ml.compare on live traffic frames: alignment, block-bootstrap intervals and their coverage.

The coverage test needs no Prometheus: the simulator gives each run's traffic and the
ground truth (per-step exact latency quantiles per mesh); an "observed" frame is built
the way a proxy's histogram and a ``rate[1m]`` query every 30 s see it, by drawing every
request's latency from the simulator's distribution and pooling four 15 s intervals per
step, so consecutive steps share half their requests (autocorrelated, as real ones).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from arch.bootstrap import StationaryBootstrap, optimal_block_length

import meshlab as ml
from meshlab import schema
from meshlab.analysis.live import compare_traffic
from meshlab.errors import InvalidArgument
from meshlab.sim import scenario_from_dict, simulate, truth

WINDOW = 4  # intervals per observed window: rate[1m] at a 15 s scrape interval
STEP = 2  # intervals per step: a 30 s query step, as the bundled dataset's (consecutive windows overlap by half)
QUANTILES = {"latency_p50_ms": 0.5, "latency_p90_ms": 0.9, "latency_p99_ms": 0.99}
LATENCY = tuple(QUANTILES)


def small_scenario(seed: int, minutes: int = 120) -> ml.sim.Scenario:
    return scenario_from_dict({
        "name": "pair", "seed": seed, "interval": "15s", "duration": f"{minutes}m",
        "start": "2024-05-01T00:00:00Z",
        "workloads": [
            {"name": "client", "namespace": "front", "meshed": False},
            {"name": "web", "namespace": "front", "latency": {"median_ms": 12, "sigma": 0.5,
                                                             "tail_probability": 0.02, "tail_factor": 5}},
            {"name": "api", "namespace": "back", "latency": {"median_ms": 30, "sigma": 0.4}},
            {"name": "shop", "namespace": "front", "latency": {"median_ms": 5, "sigma": 0.6}},
            {"name": "cart", "namespace": "back", "latency": {"median_ms": 8, "sigma": 0.3,
                                                              "tail_probability": 0.05, "tail_factor": 3}},
        ],
        "edges": [
            {"from": "client", "to": "web", "rate": {"rps": 6}, "errors": {"503": 0.03}},
            {"from": "web", "to": "api", "per_request": 1.5, "errors": {"500": 0.01}},
            {"from": "client", "to": "shop", "rate": {"rps": 5}, "errors": {"503": 0.01}},
            {"from": "shop", "to": "cart", "per_request": 1.0, "errors": {"500": 0.05}},
        ],
    })


def window_quantiles(draws: np.ndarray, requests: np.ndarray, q: np.ndarray) -> np.ndarray:
    """numpy's default (linear) quantiles of the draws of each window of WINDOW intervals,
    ``[window ending at interval k, quantile]`` for k = WINDOW .. n-1, without a Python loop."""
    n = len(requests)
    interval = np.repeat(np.arange(n), requests)
    ends = np.arange(WINDOW, n)
    # every draw belongs to the windows ending at its interval and the WINDOW-1 after it
    member = interval[:, None] + np.arange(WINDOW)[None, :]
    window = member.ravel()
    values = np.repeat(draws, WINDOW)
    keep = (window >= WINDOW) & (window < n)
    window, values = window[keep], values[keep]
    # one sort: windows apart by more than the values' span, values in order within each
    span = float(values.max() - values.min()) + 1.0 if len(values) else 1.0
    keys = np.sort(window * span + (values - values.min()))
    window = np.sort(window)
    values = keys - window * span + values.min()
    sizes = np.bincount(window, minlength=n)[ends]
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    h = (sizes[:, None] - 1) * q[None, :]
    lo = np.floor(h).astype(int)
    hi = np.minimum(lo + 1, sizes[:, None] - 1)
    below, above = values[starts[:, None] + lo], values[starts[:, None] + hi]
    return below + (h - lo) * (above - below)


def observed(traffic: ml.sim.Traffic, exact: pd.DataFrame, mesh: str, rng: np.random.Generator) -> pd.DataFrame:
    """What a mesh's proxies would report per step: quantiles of the requests of the last WINDOW
    intervals (each request's latency drawn from the simulator's distribution), their success
    rate and their rate."""
    times = traffic.timestamps()
    n = traffic.n
    parts = []
    for w in traffic.scenario.workloads:
        part = exact[(exact["namespace"] == w.namespace) & (exact["name"] == w.name)]
        if part.empty:
            continue
        requests = np.concatenate([[0], part["requests"].to_numpy().astype(int)])   # index = interval
        success = np.concatenate([[0], part["success_count"].to_numpy()])
        mix = traffic.latency(w, mesh, "server")
        median, sigma, tail_p, tail_f, shift = (np.broadcast_to(np.asarray(a, dtype=float), (n,)) for a in
                                                (mix.median, mix.sigma, mix.tail_p, mix.tail_f, mix.shift))
        interval = np.repeat(np.arange(n), requests)
        tail = rng.random(len(interval)) < tail_p[interval]
        draws = shift[interval] + np.exp(np.log(median[interval] * np.where(tail, tail_f[interval], 1.0))
                                         + sigma[interval] * rng.standard_normal(len(interval)))
        quantiles = window_quantiles(draws, requests, np.array(list(QUANTILES.values())))
        total = np.convolve(requests, np.ones(WINDOW))[WINDOW - 1:n][1:]
        ok = np.convolve(success, np.ones(WINDOW))[WINDOW - 1:n][1:]
        every = pd.DataFrame({
            "timestamp": times[WINDOW:], "mesh": mesh, "kind": w.kind, "namespace": w.namespace, "name": w.name,
            "success_count": ok, "failure_count": total - ok, "requests": total, "success_rate": ok / total,
            "rps": total / (WINDOW * traffic.interval_s),
            **{c: quantiles[:, i] for i, c in enumerate(QUANTILES)}})
        parts.append(every.iloc[::STEP])
    return schema.conform(pd.concat(parts, ignore_index=True), "traffic")


def one_run(seed: int, minutes: int = 120) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Observed frames of istio and of no mesh (independent traffic, same scenario) and the truth."""
    rng = np.random.default_rng([seed, 99])
    with_mesh = simulate(small_scenario(seed, minutes))
    without = simulate(small_scenario(seed + 10_000, minutes))
    exact_mesh, exact_none = truth.traffic_truth(with_mesh, "istio"), truth.traffic_truth(without, "none")
    frame = pd.concat([observed(with_mesh, exact_mesh, "istio", rng), observed(without, exact_none, "none", rng)],
                      ignore_index=True)
    return frame, pd.concat([exact_mesh, exact_none], ignore_index=True)


def true_latency_difference(exact: pd.DataFrame, frame: pd.DataFrame) -> pd.DataFrame:
    """Mean over the compared steps of istio's exact quantile minus none's, per workload and overall."""
    steps = set(frame["timestamp"])
    at = exact[exact["timestamp"].isin(steps)]
    wide = at.pivot_table(index=["timestamp", "namespace", "name"], columns="mesh", values=list(LATENCY),
                          observed=True)
    diff = pd.DataFrame({m: wide[(m, "istio")] - wide[(m, "none")] for m in LATENCY})
    per = diff.groupby(level=["namespace", "name"], observed=True).mean()
    overall = diff.groupby(level="timestamp").mean().mean()
    per.loc[("", "overall"), :] = overall
    return per


def test_window_quantiles_match_numpy_per_window():
    rng = np.random.default_rng(3)
    requests = rng.integers(0, 30, size=12)
    requests[5] = 0
    draws = rng.normal(size=requests.sum())
    q = np.array([0.5, 0.9, 0.99])
    got = window_quantiles(draws, requests, q)
    ends = np.cumsum(requests)
    for row, k in enumerate(range(WINDOW, len(requests))):
        assert got[row] == pytest.approx(np.quantile(draws[ends[k - WINDOW]:ends[k]], q), abs=1e-9)


@pytest.mark.e2e
def test_traffic_compare_intervals_cover_the_true_difference_in_about_95_percent_of_runs():
    """Across 40 seeded two-hour runs of four workloads, the 95 % block-bootstrap intervals
    cover the true difference (latency: the mean of the exact quantiles' difference from the
    ground truth; success rate and rate: 0, both sides running the same scenario) in 90-99 %
    of the 800 (run, workload, metric) cases, and in at least 85 % for each metric (160 cases
    each). An i.i.d. bootstrap of the same data (block length 1) covers the latency
    difference clearly less often: that is why the blocks are there."""
    runs = 40
    hits: dict[str, list[bool]] = {}
    iid_hits: list[bool] = []
    for seed in range(runs):
        frame, exact = one_run(seed)
        result = compare_traffic(frame, baseline="none", reps=400, seed=seed)
        iid = compare_traffic(frame, baseline="none", metrics=LATENCY, reps=400, seed=seed, block_length=1)
        known = true_latency_difference(exact, frame)
        for r in result.itertuples():
            key = ("", "overall") if r.scope == "overall" else (r.namespace, r.name)
            target = known.loc[key, r.metric] if r.metric in QUANTILES else 0.0
            hits.setdefault(f"{r.metric}/{r.scope}", []).append(bool(r.delta_low <= target <= r.delta_high))
        for r in iid[iid["scope"] == "workload"].itertuples():
            iid_hits.append(bool(r.delta_low <= known.loc[(r.namespace, r.name), r.metric] <= r.delta_high))
    coverage = {k: float(np.mean(v)) for k, v in hits.items()}
    pooled = float(np.mean([h for k, v in hits.items() if k.endswith("/workload") for h in v]))
    print(f"coverage: pooled {pooled:.3f}", coverage, f"iid (latency): {np.mean(iid_hits):.3f}")
    assert len([h for k, v in hits.items() if k.endswith("/workload") for h in v]) == runs * 4 * 5
    assert 0.90 <= pooled <= 0.99
    for name, value in coverage.items():
        if name.endswith("/workload"):
            assert 0.85 <= value <= 1.0, (name, value)
    assert np.mean(iid_hits) < 0.88


# -- exact values against independent computations --------------------------------------------

@pytest.fixture(scope="module")
def shootout() -> pd.DataFrame:
    return ml.datasets.load("mesh-shootout").frames["traffic"]


def test_traffic_compare_point_estimates_match_a_pandas_merge(shootout):
    """value, baseline_value, delta and n per workload, and the overall figures (latency: mean
    over workloads; success rate: pooled requests; rps: total), recomputed with a plain merge."""
    result = ml.compare(shootout, baseline="linkerd", reps=100)
    assert set(result["mesh"]) == {"istio", "consul"} and set(result["baseline"]) == {"linkerd"}
    keys = ["namespace", "name", "timestamp"]
    base = shootout[shootout["mesh"] == "linkerd"].astype({"namespace": str, "name": str})
    for mesh in ("istio", "consul"):
        other = shootout[shootout["mesh"] == mesh].astype({"namespace": str, "name": str})
        merged = other.merge(base, on=keys, suffixes=("", "_b"))
        for metric in ("latency_p50_ms", "latency_p99_ms", "success_rate", "rps"):
            rows = result[(result["mesh"] == mesh) & (result["metric"] == metric)]
            both = merged.dropna(subset=[metric, f"{metric}_b"])
            for (namespace, name), part in both.groupby(["namespace", "name"]):
                row = rows[(rows["namespace"] == namespace) & (rows["name"] == name)].iloc[0]
                assert row["n"] == len(part)
                assert row["value"] == pytest.approx(part[metric].mean(), rel=1e-12)
                assert row["baseline_value"] == pytest.approx(part[f"{metric}_b"].mean(), rel=1e-12)
                assert row["delta"] == pytest.approx((part[metric] - part[f"{metric}_b"]).mean(), rel=1e-9, abs=1e-12)
                assert row["delta_low"] <= row["delta"] <= row["delta_high"]
            per_step = both.groupby("timestamp")
            if metric == "success_rate":
                expected = (per_step["success_count"].sum() / per_step["requests"].sum()
                            - per_step["success_count_b"].sum() / per_step["requests_b"].sum()).mean()
            elif metric == "rps":
                expected = (per_step["rps"].sum() - per_step["rps_b"].sum()).mean()
            else:
                expected = (per_step[metric].mean() - per_step[f"{metric}_b"].mean()).mean()
            overall = rows[rows["scope"] == "overall"].iloc[0]
            assert overall["delta"] == pytest.approx(expected, rel=1e-9, abs=1e-12)
            assert pd.isna(overall["namespace"]) and pd.isna(overall["name"])
    assert result["summary"].str.len().min() > 20
    line = result[(result["mesh"] == "istio") & (result["scope"] == "overall")
                  & (result["metric"] == "latency_p99_ms")]["summary"].iloc[0]
    assert line.startswith("istio adds ") and "at p99 over linkerd overall, over 719 aligned steps" in line


def test_traffic_compare_interval_is_arch_percentile_interval_of_the_mean():
    """With one workload and a fixed block length, the interval equals arch's own
    StationaryBootstrap(...).conf_int(np.mean, method="percentile") with the same seed."""
    rng = np.random.default_rng(5)
    n = 300
    times = pd.date_range("2024-01-01", periods=n, freq="30s", tz="UTC")
    noise = np.convolve(rng.normal(size=n + 1), [1, 1], "valid")
    frames = []
    for mesh, latency in (("istio", 20 + 3 * noise), ("none", np.full(n, 18.0))):
        frames.append(pd.DataFrame({"timestamp": times, "mesh": mesh, "kind": "deployment", "namespace": "ns",
                                    "name": "w", "success_count": 100.0, "failure_count": 0.0, "requests": 100.0,
                                    "success_rate": 1.0, "rps": 100 / 30, "latency_p50_ms": latency,
                                    "latency_p90_ms": latency, "latency_p99_ms": latency}))
    frame = schema.concat(frames, "traffic")
    result = compare_traffic(frame, baseline="none", metrics=["latency_p99_ms"], reps=500, block_length=7, seed=42)
    row = result[result["scope"] == "workload"].iloc[0]
    expected = StationaryBootstrap(7, 20 + 3 * noise - 18.0, seed=42).conf_int(np.mean, 500, method="percentile")
    assert row["delta"] == pytest.approx(float(np.mean(2 + 3 * noise)), rel=1e-12)
    assert row["delta_low"] == pytest.approx(expected[0, 0], rel=1e-9)
    assert row["delta_high"] == pytest.approx(expected[1, 0], rel=1e-9)
    assert row["block_length"] == 7
    # the default length: twice arch's optimal_block_length of the difference, rounded up
    auto = compare_traffic(frame, baseline="none", metrics=["latency_p99_ms"], reps=100)
    optimal = float(optimal_block_length(20 + 3 * noise - 18.0)["stationary"].iloc[0])
    assert auto["block_length"].iloc[0] == np.ceil(2 * optimal)


def _two_meshes(resolution: bool) -> pd.DataFrame:
    times = pd.date_range("2024-01-01", periods=40, freq="1min", tz="UTC")
    rows = []
    for mesh, shift in (("linkerd", 0.0), ("none", 0.0)):
        for name, p99 in (("a", 10.0), ("b", 50.0)):
            for i, t in enumerate(times):
                row = {"timestamp": t, "mesh": mesh, "kind": "deployment", "namespace": "ns", "name": name,
                       "success_count": 99.0, "failure_count": 1.0, "requests": 100.0, "success_rate": 0.99,
                       "rps": 100 / 60, "latency_p50_ms": 5.0, "latency_p90_ms": 8.0,
                       "latency_p99_ms": p99 + shift + (0.5 if mesh == "linkerd" else 0.0) + 0.1 * (i % 3)}
                if resolution:  # the bucket holding p99: [10, 25) for a, [50, 100) for b
                    row["latency_p99_low_ms"], row["latency_p99_high_ms"] = (10.0, 25.0) if name == "a" else (50, 100)
                rows.append(row)
    return pd.DataFrame(rows).astype({"mesh": "category", "kind": "category", "namespace": "category",
                                      "name": "category"})


@pytest.mark.parametrize("resolution", [True, False], ids=["with-resolution-columns", "without"])
def test_traffic_compare_flags_differences_within_the_histogram_resolution(resolution):
    result = compare_traffic(_two_meshes(resolution), baseline="none", metrics=["latency_p99_ms"], reps=100)
    assert result["delta"].to_numpy() == pytest.approx([0.5, 0.5, 0.5])
    if resolution:
        assert result["resolution_ms"].tolist() == [15.0, 50.0, 32.5]  # a, b, overall (mean bucket width)
        assert result["within_resolution"].all()
        assert result["flags"].str.contains("within_resolution").all()
        assert "within the histogram's resolution, 15 ms" in result["summary"].iloc[0]
    else:
        assert result["resolution_ms"].isna().all() and not result["within_resolution"].any()


def test_traffic_compare_reports_unmatched_workloads_never_pairs_them():
    frame = _two_meshes(False)
    frame = frame[~((frame["mesh"] == "none") & (frame["name"] == "b"))]
    result = compare_traffic(frame, baseline="none", metrics=["latency_p99_ms"], reps=100)
    b = result[result["name"] == "b"].iloc[0]
    assert b["flags"] == "unmatched" and np.isnan(b["delta"]) and b["n"] == 0
    assert "none has no traffic for it; not compared" in b["summary"]
    overall = result[result["scope"] == "overall"].iloc[0]
    a = result[result["name"] == "a"].iloc[0]
    assert overall["delta"] == pytest.approx(a["delta"])  # overall over the matched workloads only


def test_traffic_compare_keeps_clusters_apart():
    one, two = _two_meshes(False), _two_meshes(False)
    two["latency_p99_ms"] += np.where(two["mesh"] == "linkerd", 2.0, 0.0)  # linkerd adds 2.5 ms in cluster b
    frame = pd.concat([one.assign(cluster="a"), two.assign(cluster="b")], ignore_index=True)
    result = compare_traffic(frame, baseline="none", metrics=["latency_p99_ms"], reps=100)
    rows = result[result["scope"] == "workload"]
    assert list(zip(rows["cluster"], rows["namespace"], rows["name"], strict=True)) == [
        ("a", "ns", "a"), ("a", "ns", "b"), ("b", "ns", "a"), ("b", "ns", "b")]
    assert rows["delta"].to_numpy() == pytest.approx([0.5, 0.5, 2.5, 2.5])
    assert "cluster" not in compare_traffic(one, baseline="none", metrics=["rps"], reps=100).columns


def test_traffic_compare_aligns_on_time_and_uses_only_shared_steps():
    frame = _two_meshes(False)
    late = frame["timestamp"] >= frame["timestamp"].min() + pd.Timedelta("30min")
    frame = frame[~((frame["mesh"] == "linkerd") & late)]
    result = compare_traffic(frame, baseline="none", metrics=["rps"], reps=100)
    assert (result["n"] == 30).all()


@pytest.mark.parametrize(("change", "message"), [
    (lambda f: f.drop(columns=["requests"]), "needs columns ['requests']"),
    (lambda f: f[f["mesh"] != "none"], "baseline: no traffic of mesh 'none'"),
    (lambda f: pd.concat([f, f]), "several rows share a mesh, workload and timestamp"),
])
def test_traffic_compare_rejects_bad_frames_clearly(change, message):
    with pytest.raises(InvalidArgument, match=message.replace("[", r"\[").replace("]", r"\]")):
        compare_traffic(change(_two_meshes(False)), baseline="none")


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"level": 1.5}, "level"), ({"reps": 5}, "reps"), ({"block_length": 0}, "block_length"),
    ({"metrics": ["cpu"]}, "cpu"),
])
def test_traffic_compare_rejects_bad_arguments_clearly(kwargs, message):
    with pytest.raises(InvalidArgument, match=message):
        compare_traffic(_two_meshes(False), baseline="none", **kwargs)


def test_adapter_frames_without_none_get_a_hint(shootout):
    with pytest.raises(InvalidArgument, match="adapter frames have no 'none'"):
        ml.compare(shootout)


def test_readme_live_example_prints_what_the_readme_shows(monkeypatch):
    import contextlib
    import io
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    section = (root / "README.md").read_text().split("## Comparing meshes and planning capacity", 1)[1]
    section = section.split("\n## ", 1)[0]
    code = re.findall(r"```python\n(.*?)```", section, re.S)
    shown = re.findall(r"```text\n(.*?)```", section, re.S)
    assert len(code) == len(shown) == 2
    monkeypatch.chdir(root)
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        exec(compile(code[1], "README.md", "exec"), {})
    assert buffer.getvalue() == shown[1]
