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
