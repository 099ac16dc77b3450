"""Benchmark: ``ml.compare`` on a week of 1-minute live traffic, 200 workloads, 3 meshes.

Builds a ``traffic`` frame (10,080 steps x 200 workloads x 3 meshes, about 6 million rows)
whose noise is autocorrelated the way overlapping ``rate[5m]`` windows make it, then times
``ml.compare(frame, baseline="none")`` with the block bootstrap included (999 replicates,
block length chosen by the default rule). Target: under 10 s on 2 cores.

Usage: ``python bench/bench_compare.py [--workloads 200] [--days 7] [--reps 999]``
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import pandas as pd

import meshlab as ml
from meshlab import schema


def traffic_frame(workloads: int, days: float, meshes: tuple[str, ...], seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    steps = int(days * 1440)
    times = pd.date_range("2024-03-04", periods=steps, freq="1min", tz="UTC")
    daily = 1 + 0.4 * np.sin(2 * np.pi * np.arange(steps) / 1440)
    base_rps = rng.uniform(5, 200, workloads)
    base_ms = rng.uniform(2, 40, workloads)
    names = [f"svc-{i:03d}" for i in range(workloads)]
    parts = []
    for m, mesh in enumerate(meshes):
        added = 0.0 if mesh == "none" else 1.0 + m
        noise = rng.normal(size=(steps + 4, workloads))
        smooth = (noise[4:] + noise[3:-1] + noise[2:-2] + noise[1:-3] + noise[:-4]) / np.sqrt(5)  # rate[5m] at 1m
        rps = base_rps * daily[:, None] * (1 + 0.02 * smooth)
        requests = rps * 60
        success = requests * (1 - 0.001 * (1 + np.abs(smooth)))
        p50 = base_ms + added + 0.3 * smooth
        parts.append(pd.DataFrame({
            "timestamp": np.repeat(times, workloads), "mesh": mesh, "kind": "deployment",
            "namespace": np.tile([f"ns-{i % 5}" for i in range(workloads)], steps),
            "name": np.tile(names, steps), "success_count": success.ravel(),
            "failure_count": (requests - success).ravel(), "requests": requests.ravel(),
            "success_rate": (success / requests).ravel(), "rps": rps.ravel(), "latency_p50_ms": p50.ravel(),
            "latency_p90_ms": (p50 * 2.2).ravel(), "latency_p99_ms": (p50 * 4.5 + 0.8 * smooth).ravel()}))
    return schema.concat(parts, "traffic")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workloads", type=int, default=200)
    parser.add_argument("--days", type=float, default=7.0)
    parser.add_argument("--reps", type=int, default=999)
    args = parser.parse_args()
    t0 = time.perf_counter()
    frame = traffic_frame(args.workloads, args.days, ("none", "linkerd", "istio"))
    t1 = time.perf_counter()
    print(f"built {len(frame):,} rows in {t1 - t0:.1f} s")
    warm = frame[frame["timestamp"] < frame["timestamp"].min() + pd.Timedelta("1h")]
    ml.compare(warm, baseline="none", reps=50)  # imports (scipy, arch) out of the timing
    t2, c2 = time.perf_counter(), time.process_time()
    result = ml.compare(frame, baseline="none", reps=args.reps)
    t3, c3 = time.perf_counter(), time.process_time()
    overall = result[result["scope"] == "overall"]
    for line in overall["summary"]:
        print(" ", line)
    print(f"compare: {len(result):,} rows, block length {result['block_length'].iloc[0]:g}, "
          f"{args.reps} replicates: {t3 - t2:.2f} s wall, {c3 - c2:.2f} s CPU (target < 10 s; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
