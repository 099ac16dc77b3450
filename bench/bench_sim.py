"""Benchmark: generate and backfill simulated mesh metrics.

Simulates a generated layered application (``--workloads``, default 30) for ``--hours``
(default 24) at a 15 s scrape interval, renders it for each mesh in ``--meshes``, writes
OpenMetrics (one file per 2-hour block) and backfills it with promtool, one process per
CPU. Prints the time of each stage, the samples, and throughputs.

Usage: ``python bench/bench_sim.py [--workloads 30] [--hours 24] [--meshes linkerd]``
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from meshlab.prometheus.local import backfill
from meshlab.sim import layered_scenario, simulate, write_backfill


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workloads", type=int, default=30)
    parser.add_argument("--hours", type=float, default=24.0)
    parser.add_argument("--meshes", default="linkerd")
    args = parser.parse_args()
    scenario = layered_scenario(args.workloads, hours=args.hours)
    with tempfile.TemporaryDirectory(prefix="meshlab-bench-sim-") as tmp:
        t0 = time.perf_counter()
        traffic = simulate(scenario)
        t1 = time.perf_counter()
        files, samples = write_backfill(traffic, args.meshes.split(","), Path(tmp) / "om")
        t2 = time.perf_counter()
        size = sum(f.stat().st_size for f in files)
        blocks = Path(tmp) / "tsdb"
        blocks.mkdir()
        backfill(files, blocks)
        t3 = time.perf_counter()
    pods = sum(len(p) for p in traffic.pods.values())
    print(f"{args.workloads} workloads ({pods} pods, {len(scenario.edges)} edges), {args.hours:g} h at 15 s, "
          f"meshes: {args.meshes}; {os.cpu_count()} CPUs")
    print(f"simulate          {t1 - t0:7.1f} s")
    print(f"render + write    {t2 - t1:7.1f} s   {samples / 1e6:.1f} M samples, {size / 1e9:.2f} GB of OpenMetrics "
          f"({size / samples:.0f} B/sample), {samples / (t2 - t1) / 1e6:.2f} M samples/s")
    print(f"promtool backfill {t3 - t2:7.1f} s   {samples / (t3 - t2) / 1e6:.2f} M samples/s "
          f"({len(files)} files, {min(len(files), os.cpu_count() or 1)} at a time)")
    print(f"total             {t3 - t0:7.1f} s")


if __name__ == "__main__":
    main()
